"""Typed, validated view of ``params.yaml``: one frozen dataclass per section.

Every knob of the pipeline lives in ``params.yaml``; this module is the single place that reads it.
A missing, unknown or mistyped key fails at start-up with the key's dotted name, so a typo never
silently falls back to a default deep inside a stage.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from unigrec.errors import UnigrecError

PARAMS_FILE = "params.yaml"


class ParamsLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader reading floats as YAML 1.2 does, as DVC (ruamel) does.

    YAML 1.1 wants a dot in an exponent float, so ``1e-05``, which DVC's own writer (``dvc exp run -S``,
    ``unigrec run --set``) puts down for small values, would otherwise come back as a string. The libyaml
    parser where PyYAML has it (the wheels do): a CLI call reads the params file several times, and the
    pure-Python parser took ~14 ms a read against ~2 ms.
    """


ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_params_file(path: str | Path) -> dict[str, Any]:
    """The parsed params file (empty mapping for an empty file); every reader of params.yaml uses this.

    A file that is missing, unreadable, not YAML or not a mapping fails here as a :class:`ConfigError`
    naming the file (and the line, for YAML), so ``--params`` mistakes read as one line, not a traceback.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a params file") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: params file is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the params file: {err.strerror}") from None
    try:
        raw = yaml.load(text, Loader=ParamsLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}:{where} not valid YAML: {problem}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping in params.yaml's shape (section: keys), "
                          f"got a {type(raw).__name__}")
    return raw


class ConfigError(UnigrecError, ValueError):
    """A value in params.yaml is missing, unknown or of the wrong type."""


# --------------------------------------------------------------------------- ingest
@dataclasses.dataclass(frozen=True)
class QueryConfig:
    """How semi-synthetic search events are made for datasets without a query log (data/queries.py)."""

    search_fraction: float  # share of each user's positive interactions recast as search events
    # multi_form: each search event draws one of ``forms`` (seeded by the event's own fields);
    # category: the item's whole genre list / category path is its one query (Van Gysel / Ai et al.)
    generator: Literal["multi_form", "category"]
    include_decade: bool  # category generator: add the release decade ("1990s") to genre queries
    forms: dict[str, float]  # multi_form: relative weight of each query form (0 = never drawn)
    max_genres: int  # multi_form: most genres / category-path levels in one query
    max_title_words: int  # multi_form: most title words in one query
    min_title_word_chars: int  # multi_form: shorter title words ("ii", "ed") are never drawn
    seed: int


@dataclasses.dataclass(frozen=True)
class ParquetSourceConfig:
    """User-supplied canonical tables; ``columns`` maps canonical name -> the user's column name."""

    items: str | None
    interactions: str | None
    searches: str | None
    columns: dict[str, str]


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    source: Literal["movielens-100k", "movielens-1m", "amazon2014", "parquet"]
    path: str | None  # local folder with the source files; None = obtain them automatically
    label_threshold: float  # rating >= threshold -> label 1
    max_users: int | None  # keep only the first N users (sorted by id) for quick runs; None = all
    queries: QueryConfig
    parquet: ParquetSourceConfig


# --------------------------------------------------------------------------- validate
@dataclasses.dataclass(frozen=True)
class ValidateConfig:
    contracts_dir: str  # folder with the pandera models (tables.py) and the GX suites (*.json)
    max_examples: int  # example rows shown per failed rule


# --------------------------------------------------------------------------- split
@dataclasses.dataclass(frozen=True)
class BM25Config:
    k1: float
    b: float
    pool: int  # BM25 hits retrieved per query before drawing the hard negatives


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    # time_consistent: nothing later than a user's earliest held-out event is trained on (events between
    # are "gap"); per_stream: each stream's last two events held out on their own (the pre-issue-35 rule)
    protocol: Literal["time_consistent", "per_stream"]
    # time_consistent only: a stream's pair is held out only if its valid event is among the user's last
    # this-many events; None = always (both streams' pairs, whatever lies between them becomes gap)
    holdout_window: int | None
    min_events: int  # a user needs this many events in a stream to give a valid and a test event
    n_negatives: int  # negatives per candidate list (GenSAR's 1+99 protocol: 99)
    popularity_smoothing: float  # added to every item's train count before popularity sampling
    # share of the items with a held-out event whose TRAINING events are removed (seeded by ``seed``), so
    # the evaluation's cold-item slice shows what text buys for items no model saw trained; 0 = none
    cold_items: float
    seed: int
    bm25: BM25Config


# --------------------------------------------------------------------------- identifiers
@dataclasses.dataclass(frozen=True)
class CollaborativeConfig:
    """The collaborative input of the IDs: item vectors of a model trained on the training split only, either
    BPR matrix factorisation's item factors or a sequential model's item embeddings (GenSAR's choice)."""

    # bpr: BPR-MF (seconds of CPU, order-blind) | sasrec: the item embeddings of SASRec+ (the `sasrec` block),
    # trained on the same events in timeline order, as GenSAR builds its collaborative half from UniSAR's
    source: Literal["bpr", "sasrec"]
    dim: int  # BPR: item/user factor width (sasrec: the vectors are `sasrec.hidden` wide)
    epochs: int  # passes over the training interactions
    batch_size: int
    lr: float
    l2: float  # L2 penalty on the factors touched by a batch
    include_negatives: bool  # treat label-0 training events (watched but disliked) as co-consumption too
    eval_users: int  # users sampled for the validation HR@k sanity check (a diagnostic, not a target)
    eval_k: int
    sasrec: SASRecConfig  # source sasrec: its recipe (the baseline's dataclass; its own values, so tuning the
    # evaluate stage's baseline does not rebuild the IDs and retrain the model)

    def problems(self) -> dict[str, str]:
        found = {}
        if self.sasrec.patience is not None:
            found["sasrec.patience"] = "must be null: the IDs' source trains its fixed number of epochs"
        return found

    @property
    def width(self) -> int:
        """Width of the vectors the source gives the quantiser."""
        return self.sasrec.hidden if self.source == "sasrec" else self.dim


@dataclasses.dataclass(frozen=True)
class RQVAEConfig:
    """Shapes and training of the residual quantiser (docs/design.md §3)."""

    latent_dim: int  # encoder output width per source; the shared levels see 2x this in dual mode
    hidden_dims: tuple[int, ...]  # encoder MLP widths (decoders mirror them)
    shared_levels: int
    shared_codebook_size: int
    specific_levels: int  # per source in dual mode; single-source modes use shared + specific levels
    specific_codebook_size: int
    beta: float  # commitment weight
    steps: int  # optimiser steps (not epochs, so cost does not grow with the catalogue)
    batch_size: int
    lr: float
    kmeans_iters: int  # Lloyd iterations of the codebook initialisation
    warmup_steps: int  # plain auto-encoder steps before k-means init, so codebooks start on a trained latent


@dataclasses.dataclass(frozen=True)
class CollisionConfig:
    sinkhorn_epsilon: float  # entropic regularisation, relative to the group's largest cost
    sinkhorn_iters: int
    dedup_size: int  # disambiguation tokens reserved in the last level (grown if a tie needs more)


@dataclasses.dataclass(frozen=True)
class IdentifiersConfig:
    mode: Literal["dual", "semantic_only", "collaborative_only"]
    # rqvae: GenSAR's, MLP encoders trained with the codebooks | rqkmeans: GRID's residual k-means on a PCA
    # projection (closed form); both use the rqvae block's levels and sizes
    quantiser: Literal["rqvae", "rqkmeans"]
    seed: int
    ridge_lambda: float  # text -> collaborative map for items without training events (cold start)
    collaborative: CollaborativeConfig
    rqvae: RQVAEConfig
    collisions: CollisionConfig


# --------------------------------------------------------------------------- train
AUTO = "auto"
Auto = Literal["auto"]  # a train key that takes train.sizing's value for the size of the data


def flatten_mapping(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"d_model": 64}}`` -> ``{"model.d_model": 64}`` (sizing tiers; MLflow's flat names)."""
    out: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_mapping(value, prefix=f"{name}."))
        else:
            out[name] = value
    return out


@dataclasses.dataclass(frozen=True)
class SizingConfig:
    """What the train keys set to ``auto`` take, by the size of the data (:func:`resolve_auto`).

    Why: one default serves ml-100k and ML-1M, whose best measured recipes differ in the model's width, the
    context, the schedule and the precision; a user's own catalogue gets the recipe measured at its size
    instead of ml-100k's wherever it is 10x larger. A key given a value (an overlay, ``--set``) keeps it."""

    # the train split's events (recommendations and searches) from which ``large`` applies; null = never
    large_from_train_events: int | None
    # below the threshold: train keys in params.yaml's shape (model: {d_model: 64}), so that DVC's and
    # `unigrec run --set`'s dotted paths reach them (train.sizing.small.model.d_model=96)
    small: dict[str, Any]
    large: dict[str, Any]  # the same keys, at or above it

    def values(self, tier: Literal["small", "large"]) -> dict[str, Any]:
        """The tier as dotted train keys (``model.d_model``) -> value."""
        return flatten_mapping(getattr(self, tier))

    def problems(self) -> dict[str, str]:
        found = {}
        small, large = self.values("small"), self.values("large")
        if self.large_from_train_events is not None and self.large_from_train_events < 1:
            found["large_from_train_events"] = f"must be null or >= 1, got {self.large_from_train_events}"
        if AUTO in (*small.values(), *large.values()):
            found["small"] = "a tier's values are what auto stands for, not auto"
        if set(small) != set(large):
            odd = sorted(set(small) ^ set(large))
            found["large"] = f"must set the keys small sets, no more, no fewer: {', '.join(odd)} in one only"
        return found


# train.model.item_representation values whose vocabulary is one token per catalogue item (in catalogue order): the
# ranking read-out is an MLP on the item position and retrieval scores the catalogue densely
ONE_TOKEN_PER_ITEM = ("atomic", "hybrid_dense")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shape of the one generative transformer (docs/design.md §4)."""

    # GenSAR codes; UniGRF's one token per item; hybrid: codes plus a learned per-item embedding at each
    # event's last code for items with training events (decoding still over codes, docs/design.md §4); or
    # hybrid_dense: one token per item whose embedding is its dual IDs' code embeddings plus, for items with
    # training events, its own, scored by a dense head over the whole catalogue (cold items by codes alone)
    item_representation: Literal["semantic_ids", "atomic", "hybrid", "hybrid_dense"]
    d_model: int | Auto  # auto: train.sizing's tier for the data's size
    n_layers: int
    n_heads: int
    d_ff: int | Auto  # feed-forward width
    dropout: float  # on embeddings and residual branches
    attention_dropout: float  # on attention probabilities; costs a (B, H, T, T) random mask per layer
    n_query_tokens: int  # soft tokens projected from a query's MiniLM sentence vector
    # gpt2: every weight N(0, 0.02), token embeddings read as they are. scaled (Vaswani et al., SASRec):
    # token and position embeddings N(0, 1/d_model), token embeddings x sqrt(d_model) on input, so an item
    # enters at unit variance and the tied output head starts with unit-variance logits. scaled_queries: scaled,
    # and a query's soft tokens enter at the items' unit variance too (under scaled they start 50x fainter)
    embedding_init: Literal["gpt2", "scaled", "scaled_queries"]
    # learned: an absolute position embedding per token slot; rotary: RoPE on queries and keys, so attention
    # sees how far back each token is wherever the window starts
    positions: Literal["learned", "rotary"]
    # how an event is written (model/tokenizer.py): behaviour_item_action: <rec_item> codes <pos|neg>;
    # behaviour_item: no action token; item: a recommendation event is its codes alone, each event's last
    # code predicting the next one's first (SASRec's layout) as well as its own action
    event_layout: Literal["behaviour_item_action", "behaviour_item", "item"]
    # true: the token after each event's last code adds a learned embedding of that event's action, so a layout
    # without action tokens still reads what the user liked (the 3-token layout's <pos|neg> tokens carry it and
    # refuse this). The default lets configs written before the key load as those models trained
    past_action_input: bool = False


@dataclasses.dataclass(frozen=True)
class RetrievalLossConfig:
    """Which softmax the retrieval losses use (train/losses.py), for atomic and code-based items alike.

    ``full``: each target against every token of its legal slice (its level's codebook; for atomic ids the
    catalogue). ``sampled``: HSTU's sampled softmax, the target against ``negatives`` tokens drawn from the
    same slice, on cosine logits over a temperature. With a full softmax every item is already a negative,
    so the enhancer's hard negatives can add nothing; in a sampled one they join the softmax as extra
    negatives. ``l2_normalise`` and ``temperature`` shape the sampled softmax only: the full one keeps the
    raw dot product, exactly the logits it always had. The model decodes with the logits it trained on.

    ``draw``: ``position`` draws each target's own negatives (HSTU's local sampler); ``batch`` draws one set
    per code level and batch, shared by its positions (one matrix product, the old atomic sampled softmax).
    Shared, a step pushes down only ``negatives`` items of the catalogue whatever the batch holds: on ML-1M
    (3,706 items, 128 negatives, 20 epochs) it ended 0.05 rec NDCG@10 below the per-target draw (0.118 vs
    0.168; docs/experiments/2026-12-06-enhancer-item-layout.md).
    """

    softmax: Literal["full", "sampled"]
    negatives: int  # sampled: tokens drawn per target (draw: position) or per batch and code level (batch)
    draw: Literal["position", "batch"]
    l2_normalise: bool  # sampled: cosine logits (hidden state and token embeddings L2-normalised)
    temperature: float | Auto  # sampled: logits divided by it; auto: train.sizing's tier
    # sampled, per-target draws: up to this many tokens in the slices a batch draws from, the logits come
    # from one product of the states with those tokens' rows, read per target afterwards (the same values);
    # beyond it (a large atomic catalogue) each target's rows are gathered. 0: always gathered
    product_columns: int

    def problems(self) -> dict[str, str]:
        """Key -> what is wrong with its value; :func:`build_section` refuses the section naming each."""
        found = {}
        if self.negatives < 1:
            found["negatives"] = f"must be >= 1, got {self.negatives}"
        if self.temperature != AUTO and not self.temperature > 0:
            found["temperature"] = f"must be > 0, got {self.temperature}"
        if self.product_columns < 0:
            found["product_columns"] = f"must be >= 0, got {self.product_columns}"
        return found


@dataclasses.dataclass(frozen=True)
class LossWeightsConfig:
    """Base weights of the per-task losses: the fixed weights, and the start of the adaptive ones.

    A task weighted 0 is switched off (the two-stage ablation trains retrieval-only / ranking-only models).
    """

    retrieval_rec: float
    retrieval_search: float
    ranking: float


@dataclasses.dataclass(frozen=True)
class HardNegativesConfig:
    """(a) the m retrieved non-positives scored lowest (``candidate_score``), as retrieval negatives.

    ``into``: ``contrastive``, a sequence-level contrastive loss of the target against them (a term of its
    own, ``temperature`` and ``weight`` apply); ``sampled_softmax``, extra negatives inside the main
    retrieval loss's sampled softmax at the context's target positions (train/losses.py), where they add
    what uniform sampling misses: each is one more negative of one main-loss target, so ``temperature``
    and ``weight`` do not apply. Needs ``train.retrieval_loss.softmax: sampled``.
    """

    enabled: bool
    count: int  # m: too many overfit ML-1M in UniGRF's study
    into: Literal["contrastive", "sampled_softmax"]
    temperature: float  # contrastive: of the softmax over [target, negatives] summed code log-probabilities
    weight: float  # contrastive: see EnhancerConfig.target_weighting for what it is relative to


@dataclasses.dataclass(frozen=True)
class ExtraTargetsConfig:
    """(b) retrieved candidates the ranker scores above alpha become extra, down-weighted retrieval targets."""

    enabled: bool
    alpha: float  # P(<pos>) threshold; also keeps such candidates out of the hard negatives
    weight: float


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """(c) KL from the ranker's distribution over the K candidates to the retrieval distribution."""

    enabled: bool
    temperature: float
    weight: float


@dataclasses.dataclass(frozen=True)
class RankingNegativesConfig:
    """(d) the best-retrieved non-positives as extra label-0 examples of the ranking loss."""

    enabled: bool
    count: int
    weight: float


@dataclasses.dataclass(frozen=True)
class EnhancerWarmupConfig:
    """When the enhancer starts: mining by a ranker near chance picks noise, so it waits for the ranker.

    Both gates must pass; once passed the enhancer stays on (train/enhancer.py ``enhancer_ready``).
    """

    epochs: int  # completed training epochs before the enhancer's first step; 0 = from the start
    # validation ranking AUC (val/ranking_auc) the last finished epoch must reach; None = no AUC gate
    min_valid_auc: float | None

    def problems(self) -> dict[str, str]:
        found = {}
        if self.epochs < 0:
            found["epochs"] = f"must be >= 0, got {self.epochs}"
        if self.min_valid_auc is not None and not 0.0 <= self.min_valid_auc <= 1.0:
            found["min_valid_auc"] = f"must be null or in [0, 1], got {self.min_valid_auc}"
        return found


@dataclasses.dataclass(frozen=True)
class EnhancerConfig:
    """UniGRF's ranking-driven enhancer (docs/design.md §4); every part switchable for ablation."""

    enabled: bool
    every_n_steps: int  # N: the enhancer runs on every N-th training step
    contexts_per_step: int  # action positions sampled from the batch per enhancer step (its cost knob)
    top_k: int  # K candidates retrieved per context by trie-constrained beam search
    warmup: EnhancerWarmupConfig
    # How a part's term is scaled before its ``weight``: context_mean = the mean over the step's contexts
    # (or targets) of that part, so the whole term weighs like a task's whole mean loss, ~100x one main-loss
    # target per context; per_target = the sum over them divided by the main-loss targets of the task it
    # joins in the batch, so one enhancer target weighs ``weight`` main-loss targets
    target_weighting: Literal["context_mean", "per_target"]
    # What (a) ranks candidates by, lowest first: ranking = P(<pos>) (the paper: high retrieval, low
    # ranking); next_and_like = P(next) * P(<pos>), so a candidate likely to come next is not pushed down
    # only because the ranker, which predicts "liked", dislikes it. (b)'s alpha test is P(<pos>) either way.
    candidate_score: Literal["ranking", "next_and_like"]
    hard_negatives: HardNegativesConfig
    extra_targets: ExtraTargetsConfig
    distill: DistillConfig
    ranking_negatives: RankingNegativesConfig

    @property
    def feeds_sampled_softmax(self) -> bool:
        """(a)'s hard negatives go into the main retrieval loss's sampled softmax (not a loss of their own)."""
        return self.enabled and self.hard_negatives.enabled and self.hard_negatives.into == "sampled_softmax"


@dataclasses.dataclass(frozen=True)
class WeighterConfig:
    """Gradient-guided adaptive task weighter (docs/design.md §4); weights sum to the number of active tasks."""

    mode: Literal["fixed", "dwa", "gradnorm", "uncertainty"]
    # What the adaptive modes balance: three = each loss group its own task; two = retrieval (rec and
    # search retrieval at their base ratio) vs ranking, UniGRF's two tasks (train/weighter.py)
    tasks: Literal["three", "two"]
    temperature: float  # DWA: w = T * softmax(r / temperature)
    # DWA: steps between weight updates, or "epoch" for one update at the end of each training epoch
    # (the original rule's time scale)
    update_every: int | Literal["epoch"]
    # DWA: updates that only record the losses the next ratio is taken against (Liu et al. hold the weights
    # for two epochs, so the first ratio is epoch 2's loss over epoch 1's, not a trained loss over the
    # initial one, which every task "falls" from by its own untrained scale)
    baseline_updates: int
    loss_smoothing: float  # EMA factor of the per-task losses the rates are computed from
    gradnorm_alpha: float  # GradNorm asymmetry: how strongly slow tasks are pulled up
    lr: float  # step size of the learned weights (gradnorm) / log-variances (uncertainty)
    min_weight: float  # floor of an active task's weight before renormalising
    log_grad_norms: bool  # per-task gradient norm on the last shared block, on logging steps (a backward per task)


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    lr: float
    weight_decay: float
    warmup_steps: int  # linear learning-rate warm-up, then the schedule below
    schedule: Literal["constant", "cosine"] | Auto  # after warm-up: hold lr, or cosine-decay it over max_epochs
    min_lr_ratio: float | Auto  # cosine: the lr at the last step, as a share of lr
    gradient_clip: float  # max gradient norm; 0 = off
    # time constant, in epochs, of an exponential moving average of the weights that validation, checkpoints
    # and the shipped model use instead of the last step's (unigrec/averaging.py); None = off; auto: train.sizing's
    # tier. The default lets a params file written before the key read as it trained
    ema_epochs: float | None | Auto = None

    def problems(self) -> dict[str, str]:
        """Key -> what is wrong with its value; :func:`build_section` refuses the section naming each."""
        if self.ema_epochs not in (None, AUTO) and not self.ema_epochs > 0:
            return {"ema_epochs": f"must be null or > 0 epochs, got {self.ema_epochs}"}
        return {}


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """Lightning Trainer knobs; strategy/devices/num_nodes make DDP a params change only."""

    max_epochs: int | Auto  # auto: train.sizing's tier (the cosine schedule decays over it)
    accelerator: str  # cpu | gpu | auto
    devices: int | str  # 1, 2, "auto"
    num_nodes: int
    strategy: str  # auto | ddp | ddp_spawn | ...
    precision: str | Auto  # "32-true", "bf16-mixed", ... (Lightning's names)
    patience: int | Auto  # epochs without a better validation NDCG before early stopping
    log_every_n_steps: int
    resume: bool  # continue an interrupted run of the same params and data from its last checkpoint


@dataclasses.dataclass(frozen=True)
class QuickEvalConfig:
    """Validation retrieval/ranking during and right after training."""

    # Validation users per stream scored every epoch (beam search is the costly part); None = all of them,
    # for when the monitor's sampling noise, not its cost, is what limits the checkpoint choice.
    epoch_users: int | None
    final_users: int | None  # users per stream in the stage's metrics file; None = all
    beam_size: int
    k: int  # HR@k / NDCG@k cut-off
    # How the per-epoch monitor (checkpoint choice, early stopping) averages the streams' NDCG@k:
    # streams = each stream once; prompts = each validation prompt once; rec = the recommendation stream
    # alone (see lightning_module.monitor_value)
    monitor_average: Literal["streams", "prompts", "rec"]


@dataclasses.dataclass(frozen=True)
class AlignmentConfig:
    """Query-to-ID alignment for every catalogue item (train/alignment.py): one-event search sequences
    "a view of the item's own text -> its ID", so the search head can emit items never searched in training."""

    views: list[str]  # text | title | genres | genres_decade; [] = off
    weight: float  # factor on the alignment pass's search-retrieval loss, added to that task's loss


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    seed: int
    max_events: int | Auto  # most recent events kept per user (training sequence and prompt context)
    train_windows: Literal["latest", "all"]  # latest: one sequence per user; all: every max_events window
    # each search event's <src_query> token (history and task read, query not yet) also predicts its item as
    # a recommendation target: a next-item model learns from every event, the rec task otherwise only from
    # recommendation events (the alignment searches never: they have no history)
    rec_targets_at_searches: bool
    # Each task's loss is the mean over its own targets, so a rare task's target weighs (weight / its
    # targets) against the commonest task's: a rare task's loss weight is lowered so that one of its targets
    # weighs at most this many times one of the commonest task's (fit.capped_loss_weights); null = as given
    max_target_weight_ratio: float | None
    batch_size: int  # users per training step
    model: ModelConfig
    retrieval_loss: RetrievalLossConfig
    loss_weights: LossWeightsConfig
    enhancer: EnhancerConfig
    weighter: WeighterConfig
    optim: OptimConfig
    trainer: TrainerConfig
    eval: QuickEvalConfig
    alignment: AlignmentConfig
    sizing: SizingConfig

    def problems(self) -> dict[str, str]:
        """Choices that only make sense together (each section checks its own values)."""
        found = {}
        if self.max_target_weight_ratio is not None and not self.max_target_weight_ratio >= 1:
            found["max_target_weight_ratio"] = f"must be null or >= 1, got {self.max_target_weight_ratio}"
        if self.model.past_action_input and self.model.event_layout == "behaviour_item_action":
            found["model.past_action_input"] = (
                "the 'behaviour_item_action' layout already writes each action as a token: set "
                "train.model.past_action_input: false or a layout without action tokens"
            )
        if self.enhancer.feeds_sampled_softmax and self.retrieval_loss.softmax != "sampled":
            found["enhancer.hard_negatives.into"] = (
                "'sampled_softmax' needs train.retrieval_loss.softmax: sampled, got "
                f"{self.retrieval_loss.softmax!r} (in a full softmax every item already is a negative); "
                "set train.retrieval_loss.softmax: sampled or train.enhancer.hard_negatives.into: contrastive"
            )
        if not found:  # the checks above read no key auto may stand for; the tiers are built with them passed
            found.update(self._sizing_problems())
        return found

    def _sizing_problems(self) -> dict[str, str]:
        """The sizing table names keys that take ``auto``, covers every key set to it, and each tier makes a
        valid config (whatever size the data turns out to be). A resolved config has no ``auto`` left, so
        building a tier does not recurse."""
        found: dict[str, str] = {}
        keys = train_keys(self)
        small = self.sizing.values("small")
        unknown = sorted(k for k in small if not keys.get(k, (None, False))[1])
        if unknown:
            found["sizing.small"] = (f"{', '.join(unknown)}: not a train key that takes auto (the keys typed "
                                     "`| Auto` in config.py, e.g. model.d_model)")
            return found
        autos = auto_keys(self)
        uncovered = sorted(set(autos) - set(small))
        if uncovered:
            found["sizing"] = f"{', '.join(uncovered)} set to auto but not in train.sizing.small / large"
        elif autos and set(small) == set(self.sizing.values("large")):
            for tier in ("small", "large"):
                try:
                    resolve_auto(self, tier)
                except ConfigError as err:
                    found[f"sizing.{tier}"] = str(err)
        return found


def train_keys(cfg: TrainConfig) -> dict[str, tuple[Any, bool]]:
    """Every dotted train key (``model.d_model``) -> (its value, whether its type admits sizing's ``auto``).

    The flag is read from the type (``int | Auto``), not the value: Lightning's own keys take an ``auto``
    of theirs (``trainer.strategy: auto``) that sizing must leave alone. The sizing tiers' keys are left out."""

    def walk(node: Any, prefix: str) -> dict[str, tuple[Any, bool]]:
        hints = typing.get_type_hints(type(node))
        out: dict[str, tuple[Any, bool]] = {}
        for f in dataclasses.fields(node):
            value, key = getattr(node, f.name), f"{prefix}{f.name}"
            if node is cfg and f.name == "sizing":
                continue
            if dataclasses.is_dataclass(value):
                out.update(walk(value, f"{key}."))
            else:
                hint = hints[f.name]
                sizable = get_origin(hint) in (typing.Union, types.UnionType) and Auto in get_args(hint)
                out[key] = (value, sizable)
        return out

    return walk(cfg, "")


def auto_keys(cfg: TrainConfig) -> list[str]:
    """The dotted train keys set to sizing's ``auto``."""
    return [key for key, (value, sizable) in train_keys(cfg).items() if sizable and value == AUTO]


def size_tier(cfg: SizingConfig, train_events: int) -> Literal["small", "large"]:
    """``large`` from ``large_from_train_events`` events in the train split on, else ``small``."""
    threshold = cfg.large_from_train_events
    return "large" if threshold is not None and train_events >= threshold else "small"


def resolve_auto(cfg: TrainConfig, tier: Literal["small", "large"]) -> TrainConfig:
    """``cfg`` with every ``auto`` key set to the sizing tier's value (checked as params.yaml's values are);
    keys given a value keep it. The train stage calls it with the tier of its data (:func:`size_tier`)."""
    values = cfg.sizing.values(tier)
    raw = dataclasses.asdict(cfg)
    for key in auto_keys(cfg):
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node[leaf] = values[key]
    return build_section(TrainConfig, raw, f"train (sizing.{tier})")


# --------------------------------------------------------------------------- baselines
@dataclasses.dataclass(frozen=True)
class SASRecConfig:
    """ID-based self-attentive sequential recommender (Kang & McAuley 2018), trained on the train split."""

    max_len: int  # most recent history items the model reads
    hidden: int  # embedding and attention width
    n_blocks: int
    n_heads: int
    dropout: float
    loss: Literal["bce", "ce"]  # bce: the paper's, one sampled negative per position; ce: full-catalogue softmax
    epochs: int
    batch_size: int  # user sequences per step
    lr: float
    l2: float  # Adam weight decay
    seed: int
    # where it trains and scores: gpu needs a CUDA device; auto takes one when torch sees it (scores are
    # copied back to the CPU either way). ML-1M with 200-event contexts: an estimated hour a fit on 2 CPUs
    accelerator: Literal["cpu", "gpu", "auto"]
    # early stopping (the published SASRec+ recipe: patience 10, up to 100 epochs): stop once this many
    # epochs in a row did not beat the best validation NDCG@monitor_k, and keep the best epoch's weights;
    # null = train all `epochs` with no validation pass
    patience: int | None
    monitor_k: int
    # latest: each user's last max_len+1 events (the published recipe); all: every window of the history, so
    # a short max_len still trains on every transition (the unified model's train.train_windows: all)
    train_windows: Literal["latest", "all"]
    # the unified model's weight average (train.optim.ema_epochs, unigrec/averaging.py) for SASRec+ too, so the
    # baseline may have what the model has: the monitor and the kept weights are the average's; null = off
    ema_epochs: float | None = None

    def problems(self) -> dict[str, str]:
        found = {}
        if self.patience is not None and self.patience < 1:
            found["patience"] = f"must be null or >= 1, got {self.patience}"
        if self.ema_epochs is not None and not self.ema_epochs > 0:
            found["ema_epochs"] = f"must be null or > 0 epochs, got {self.ema_epochs}"
        if self.monitor_k < 1:
            found["monitor_k"] = f"must be >= 1, got {self.monitor_k}"
        return found


@dataclasses.dataclass(frozen=True)
class BM25SearchConfig:
    k1: float
    b: float


@dataclasses.dataclass(frozen=True)
class BaselinesConfig:
    """Reference methods run by the evaluation code on the same split as the generative model."""

    sasrec: SASRecConfig
    bm25: BM25SearchConfig


# --------------------------------------------------------------------------- evaluate
@dataclasses.dataclass(frozen=True)
class QueryReadingConfig:
    """How a typed query is read into terms (:func:`unigrec.data.relevance.normalise_query`)."""

    max_edit_distance: int  # a word this close (adjacent swap = 1) to exactly one catalogue word reads as it
    min_typo_length: int  # shorter words are never corrected: "war" is not a typo of "wars"
    two_digit_decade_pivot: int  # "20s" and below read as 2000s+, this and above as 1900s ("90s" = 1990s)


@dataclasses.dataclass(frozen=True)
class TypedQueriesConfig:
    """The typed-query set: every catalogue query form, typed several ways, served to sampled users."""

    min_relevant: int  # a query form enters only with at least this many fully relevant (grade 2) items
    max_queries: int | None  # a seeded sample of that many forms; null = every form
    users_per_query: int  # sampled users each form (and each of its typed variants) is served for
    seed: int


@dataclasses.dataclass(frozen=True)
class RelevanceConfig:
    """Relevance metrics of search results, judged from item metadata (docs/design.md §5)."""

    cutoff: int  # relevance NDCG@k and P@k (share of the top k that is fully relevant)
    reading: QueryReadingConfig
    typed_queries: TypedQueriesConfig


@dataclasses.dataclass(frozen=True)
class LexicalConfig:
    """BM25 in the served search pipeline (inference/lexical.py): its best unseen items join the re-ranked
    pool and ``λ * BM25 / max BM25 + μ * term coverage`` joins the fused score; written to the serving bundle."""

    weights: tuple[float, ...]  # the λ grid, chosen with the re-ranking w on validation (0 = off)
    # the μ grid of μ * term coverage (share of the query's terms an item holds), chosen with λ and w
    coverage_weights: tuple[float, ...]
    candidates: int  # BM25's best unseen items that join a search request's pool
    k1: float  # BM25 of the item text (the bm25 baseline's values, baselines.bm25)
    b: float
    # read a typed query as the relevance judge does (spellings, "90s", typos; evaluate.relevance.reading)
    # before BM25 looks it up; the bm25 baseline keeps the raw words
    normalise_queries: bool


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    """Test-split evaluation of the generative model (and optional baselines) under every protocol."""

    sampled_hr_cutoffs: tuple[int, ...]  # 1+99 protocol (GenSAR): HR@k
    sampled_ndcg_cutoffs: tuple[int, ...]  # 1+99 protocol: NDCG@k
    full_hr_cutoffs: tuple[int, ...]  # full-catalogue protocol (UniGRF/HSTU): HR@k
    full_ndcg_cutoffs: tuple[int, ...]  # full-catalogue protocol: NDCG@k
    curve_max_k: int  # HR@1..k curve in the plots (<= beam_size)
    beam_size: int  # constrained beam width; must cover the largest cut-off after seen items are dropped
    pipeline_k: int  # unified pipeline: retrieve this many, re-rank them with the ranking head
    pipeline_ndcg_cutoff: int  # NDCG@k of the re-ranked list
    # Re-ranking score (1 - w) * log P(item) + w * log P(<pos>): the w of this grid with the best
    # validation NDCG@pipeline_ndcg_cutoff, per request kind, is used on test and served.
    fusion_weights: tuple[float, ...]
    lexical: LexicalConfig  # BM25 and term coverage fused into search re-ranking, λ, μ chosen with w on validation
    cold_user_max_events: int  # users with at most this many TRAIN events are the "cold" slice
    popular_item_quantile: float  # target items above this quantile of train counts are "popular"
    baselines: tuple[str, ...]  # popularity | sasrec | bm25 | dense | query_lookup, same code, same cases
    relevance: RelevanceConfig  # does each search result fit the query? (graded from item metadata)


# --------------------------------------------------------------------------- register
@dataclasses.dataclass(frozen=True)
class GateConfig:
    """When a candidate replaces the champion: better on some gate metric, worse on none."""

    metrics: tuple[str, ...]  # dotted names in metrics/evaluate.json's valid block, e.g. valid.rec.full.ndcg@10
    lower_is_better: tuple[str, ...]  # those of ``metrics`` where smaller wins (e.g. a logloss)
    min_improvement: float  # a gate metric must improve by MORE than this to count as better
    max_regression: float  # no gate metric may get worse by more than this
    # The champion was made under other ingest/split params, so this split may hold out events it trained
    # on and its validation figures would flatter it: promote the candidate (the one model validated on
    # events it never saw) or keep the champion; neither is compared (stages/register.py).
    on_new_split: Literal["promote", "keep"]


@dataclasses.dataclass(frozen=True)
class RegisterConfig:
    tracking_uri: str  # MLFLOW_TRACKING_URI, when set, wins; relative sqlite paths are from the project root
    artifact_dir: str  # artifact store of the experiment when this stage creates it (project-relative)
    experiment: str
    model_name: str  # registered model name
    alias: str  # the alias that marks the serving model
    loader: str  # "module:function" rebuilding a servable model from the model folder
    top_k: int  # default number of items the registered model returns per request
    requirements: tuple[str, ...]  # packages pinned (at their installed versions) into the model's env
    lock_file: str | None  # null = next to the SQLite file; set it to serialise against a server URI
    lock_timeout_s: float  # wait this long for another registration to finish before giving up
    # When the champion was evaluated on other data than the candidate (a new split, new candidate
    # lists), evaluate the champion on this data first so the gate compares like with like.
    reevaluate_champion: bool
    gate: GateConfig


# --------------------------------------------------------------------------- orchestration
@dataclasses.dataclass(frozen=True)
class ScheduledDeploymentConfig:
    """A Prefect deployment of a flow: its name, cron schedule and how many of its runs may overlap."""

    name: str
    cron: str  # five-field cron, read in orchestration.timezone
    concurrency_limit: int  # runs of this deployment at once; Prefect queues the rest


@dataclasses.dataclass(frozen=True)
class ContractCheckDeploymentConfig(ScheduledDeploymentConfig):
    drop_path: str  # folder of canonical parquet tables the scheduled check validates (relative to root)


@dataclasses.dataclass(frozen=True)
class OrchestrationConfig:
    """Prefect flows and deployments around the DVC pipeline (flows/); no DVC stage reads this section."""

    lock_timeout_s: float  # a second pipeline run waits this long for the workspace, then fails; 0 = at once
    default_retries: int  # retries of a stage task not named in stage_retries
    stage_retries: dict[str, int]  # only where a retry can help (a download), never a contract check
    retry_delay_s: float
    work_pool: str  # process work pool the deployments run on
    timezone: str  # IANA zone of the cron schedules
    training: ScheduledDeploymentConfig
    contract_check: ContractCheckDeploymentConfig


# --------------------------------------------------------------------------- serving
@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """``unigrec serve`` and the limits every request meets (HTTP, CLI, ``Recommender.predict``); no stage
    reads this section."""

    host: str  # the service's interface; loopback by default, so nothing outside the machine reaches it
    port: int
    max_k: int  # the largest k a request may ask for: the beam widens to k, so memory grows with it
    max_batch: int  # requests in one batch call (each one is a prompt decoded at once)
    max_query_chars: int  # longer search queries are refused, not truncated
    max_body_bytes: int  # larger HTTP request bodies are refused (413) before they are parsed
    poll_s: float  # seconds between checks of the registry alias for a new champion; 0 = never


# --------------------------------------------------------------------------- runtime
@dataclasses.dataclass(frozen=True)
class StageThreadsConfig:
    """Intra-op CPU threads while a stage runs (restored afterwards); None = torch's default, one per core."""

    identifiers: int | None
    train: int | None


@dataclasses.dataclass(frozen=True)
class BatchSizesConfig:
    """Rows processed at once where the batch changes only memory and speed, never a result."""

    text_encoding: int  # MiniLM: item texts (identifiers, dense baseline) and queries (train, evaluate)
    rqvae_inference: int  # items encoded at once when assigning codes
    validation_prompts: int  # training's validation prompts per beam search
    evaluation_prompts: int  # evaluate's prompts per beam search; also the served batch
    baseline_contexts: int  # contexts a baseline scores against the whole catalogue at once


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """How the stages run, never what they compute: no stage's DVC params name this section, so changing
    a knob here re-runs nothing (``dvc status`` stays clean)."""

    cache_dir: str  # downloaded wheels, text-embedding and query-vector caches (outside DVC outputs)
    progress_bar: bool  # tqdm/Lightning bars in a terminal; logs get timestamped lines either way
    dataloader_workers: int  # training DataLoader workers; 0 = in the training process
    train_logger: Literal["csv", "mlflow"]  # Lightning logger beside the CSV the stage reads
    mlflow_tracking_uri: str  # only for train_logger: mlflow
    torch_threads: StageThreadsConfig
    batch_sizes: BatchSizesConfig
    # users whose encoded history a serving process keeps (unigrec.inference.user_states); memory only,
    # written into the serving bundle by the evaluate stage as the served batch size is; 0 = none kept
    cached_histories: int

    def problems(self) -> dict[str, str]:
        """Key -> what is wrong with its value; :func:`build_section` refuses the section naming each."""
        found = {}
        if self.cached_histories < 0:
            found["cached_histories"] = f"must be >= 0, got {self.cached_histories}"
        return found


# --------------------------------------------------------------------------- all
@dataclasses.dataclass(frozen=True)
class Params:
    ingest: IngestConfig
    validate: ValidateConfig
    split: SplitConfig
    identifiers: IdentifiersConfig
    train: TrainConfig
    baselines: BaselinesConfig
    evaluate: EvaluateConfig
    register: RegisterConfig
    orchestration: OrchestrationConfig
    serving: ServingConfig
    runtime: RuntimeConfig


def _matches(value: Any, hint: Any) -> bool:
    origin = get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in get_args(hint))
    if origin is Literal:
        return value in get_args(hint)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is dict:
        key_t, val_t = get_args(hint)
        return isinstance(value, dict) and all(
            _matches(k, key_t) and _matches(v, val_t) for k, v in value.items()
        )
    if origin is list:
        (item_t,) = get_args(hint)
        return isinstance(value, list) and all(_matches(v, item_t) for v in value)
    if origin is tuple:
        item_t = get_args(hint)[0]
        return isinstance(value, (list, tuple)) and all(_matches(v, item_t) for v in value)
    return isinstance(value, hint)


def build_section(cls: type, raw: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, recursing into nested dataclasses.

    ``where`` is the dotted path used in error messages (e.g. ``ingest.queries``).
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key = f"{where}.{name}"
        if name not in raw:
            if field.default is not dataclasses.MISSING:
                values[name] = field.default
                continue
            if field.default_factory is not dataclasses.MISSING:
                values[name] = field.default_factory()
                continue
            raise ConfigError(f"{key}: missing")
        hint = hints[name]
        value = raw[name]
        if dataclasses.is_dataclass(hint):
            values[name] = build_section(hint, value, key)
        elif not _matches(value, hint):
            raise ConfigError(f"{key}: {value!r} is not a valid {_describe(hint)}")
        else:
            if hint is float and isinstance(value, int):
                value = float(value)
            if get_origin(hint) is tuple:
                value = tuple(value)
            values[name] = value
    built = cls(**values)
    # a section may refuse values its types allow (a count below 1, a temperature of 0): it says which
    problems = built.problems() if hasattr(built, "problems") else {}
    if problems:
        raise ConfigError("; ".join(f"{where}.{name}: {problem}" for name, problem in problems.items()))
    return built


def _describe(hint: Any) -> str:
    if get_origin(hint) is Literal:
        return "choice of " + ", ".join(repr(a) for a in get_args(hint))
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate the whole params file."""
    return params_from_dict(read_params_file(path))


def params_from_dict(raw: dict[str, Any]) -> Params:
    """Validate a parsed params mapping; sections not declared in :class:`Params` are rejected."""
    return build_section(Params, raw, "params")


def load_section(name: str, path: str | Path = PARAMS_FILE) -> Any:
    """Read and validate one section only, so a stage depends on nothing but its own knobs."""
    raw = read_params_file(path)
    hints = typing.get_type_hints(Params)
    if name not in hints:
        raise ConfigError(f"params: no section named {name!r}")
    if name not in raw:
        raise ConfigError(f"params.{name}: missing")
    return build_section(hints[name], raw[name], f"params.{name}")
