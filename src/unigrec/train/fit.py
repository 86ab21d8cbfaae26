"""Assemble data, network, LightningModule and Trainer from the ``train`` params, and fit.

Lightning is imported inside the functions so importing this module (and ``unigrec --help``) stays fast.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from unigrec.config import (
    AUTO,
    ONE_TOKEN_PER_ITEM,
    ConfigError,
    LossWeightsConfig,
    ModelConfig,
    RetrievalLossConfig,
    RuntimeConfig,
    TrainConfig,
    TrainerConfig,
    auto_keys,
)
from unigrec.inference.prompts import (
    PromptExample,
    UserEvents,
    cap_per_stream,
    group_user_events,
    prompt_examples,
)
from unigrec.inference.retrieval import id_spaces
from unigrec.logs import bar_on_stderr
from unigrec.model.item_codes import CodeComposition, ItemCodes
from unigrec.model.tokenizer import LOSS_GROUPS, RANKING, SequenceSerialiser, TokenSequence
from unigrec.model.transformer import GenerativeTransformer, TransformerDims
from unigrec.model.vocabulary import NEG, PAD, POS, Vocabulary
from unigrec.train.alignment import alignment_sequences, indexed_pairs
from unigrec.train.enhancer import EnhancerTokens, RankingDrivenEnhancer
from unigrec.train.losses import LossSpec
from unigrec.train.quick_eval import popularity_rankings
from unigrec.train.resume import (
    LAST_CHECKPOINT,
    checkpoint_dir,
    checkpoint_epoch,
    fingerprints,
    merge_metrics,
    read_checkpoint,
    relocate_checkpoint,
    resumable_checkpoint,
    stale_run,
    start_fresh,
    stash_metrics,
    write_state,
)
from unigrec.train.sequences import items_with_train_events, training_sequences
from unigrec.train.weighter import TaskWeighter

log = logging.getLogger(__name__)
BEST_CHECKPOINT = "best"  # checkpoints/best.ckpt: the weights the stage keeps (last.ckpt is for resuming)


@dataclasses.dataclass
class TrainingData:
    vocab: Vocabulary
    items: ItemCodes
    serialiser: SequenceSerialiser
    query_table: np.ndarray  # (Q, query_dim) sentence vectors, row = query index
    users: list[UserEvents]
    train_sequences: list[TokenSequence]
    alignment_sequences: list[TokenSequence]  # one-event "item text view -> ID" searches (train/alignment.py)
    epoch_examples: list[PromptExample]  # capped validation prompts scored every epoch
    final_examples: list[PromptExample]  # validation prompts of the stage's metrics file
    popularity: dict[bool, np.ndarray]  # is_search -> every item, most frequent in train first
    # (n_items,) bool: items with an event in the TRAIN split; the hybrid form's per-item embeddings are
    # kept for these only (model.transformer.GenerativeTransformer._item_vectors)
    items_with_events: np.ndarray
    # the task loss weights training uses: train.loss_weights with a rare task's lowered
    # (capped_loss_weights); fit_generative_model trains with these
    loss_weights: LossWeightsConfig
    # hybrid_dense only: the dual IDs' codes each item's row is composed from (items in ``items``' order)
    composition: CodeComposition | None = None


@dataclasses.dataclass
class FitResult:
    net: GenerativeTransformer  # best-checkpoint weights loaded
    is_global_zero: bool
    seconds: float
    epochs_run: int
    selected_on: str  # the validation metric that chose the kept checkpoint (and stopped early)
    best_score: float | None
    metrics_csv: Path | None  # Lightning's CSVLogger file (per step/epoch rows)
    sequences_per_second: float
    resumed_after_epoch: int | None  # 0-based epoch (metrics.csv's) of the checkpoint it continued from; None: fresh
    device: str  # where the (last part of the) run computed
    finished: bool  # ran to its end (not interrupted): the caller marks it complete once its outputs are written


def prepare_training_data(
    cfg: TrainConfig,
    events: pd.DataFrame,
    items: ItemCodes,
    codebooks: dict[str, Any],
    query_texts: tuple[str, ...],
    query_table: np.ndarray,
    alignment: Sequence[tuple[str, str]] = (),
    composition: CodeComposition | None = None,
) -> TrainingData:
    """Everything training reads. ``alignment``: (item_id, query) pairs (:func:`alignment_pairs`); their
    queries must be rows of ``query_texts`` / ``query_table``, after the events' own. ``composition``: the
    hybrid_dense form's item codes (:func:`unigrec.stages.train.training_items`). ``cfg`` is sized for the
    data already (:func:`unigrec.train.sizing.sized_for`)."""
    unsized = auto_keys(cfg)
    if unsized:
        raise ConfigError(f"train: {', '.join(unsized)} still auto: size the config for its data first "
                          "(unigrec.train.sizing.sized_for), as the train stage does")
    if (cfg.model.item_representation == "hybrid_dense") != (composition is not None):
        raise ValueError("a code composition goes with train.model.item_representation hybrid_dense, and only")
    vocab = Vocabulary.from_codebooks(codebooks)
    serialiser = SequenceSerialiser(vocab, items, cfg.model.n_query_tokens, cfg.max_events, cfg.model.event_layout)
    users = group_user_events(events, items, query_texts)
    train = training_sequences(users, serialiser, cfg.train_windows, cfg.rec_targets_at_searches)
    query_index = {q: i for i, q in enumerate(query_texts)}
    aligned = alignment_sequences(indexed_pairs(alignment, items.index(), query_index), serialiser)
    if aligned:
        log.info("alignment: %d one-event searches over the catalogue's own text (train.alignment.views %s)",
                 len(aligned), ", ".join(cfg.alignment.views))
    valid = prompt_examples(users, serialiser, "valid")
    counts = targets_per_task(train)
    log.info(
        "train data: %d users, %d training sequences (%d targets), %d validation prompts",
        len(users), len(train), sum(counts.values()), len(valid),
    )
    # Each task's loss is the mean over its own targets in the batch, so a task with few targets (sparse
    # search logs) gives each of them a far larger weight and a noisy gradient that slows the others down
    # (docs/experiments/2026-12-04-ml1m-default-recipe.md): its weight is lowered to a bound.
    per_batch = cfg.batch_size / max(len(train), 1)
    log.info("targets per batch of %d sequences (each task's loss is the mean over its own): %s", cfg.batch_size,
             ", ".join(f"{task} {n * per_batch:,.1f}" for task, n in counts.items()))
    weights = dataclasses.asdict(cfg.loss_weights)
    capped = capped_loss_weights(weights, counts, cfg.max_target_weight_ratio)
    for task, (ratio, common) in overweighted_targets(counts, weights, cfg.max_target_weight_ratio).items():
        log.info(
            "task %s has %.1f targets per batch against %s's %.1f: at weight %g each of its targets would weigh "
            "%.0fx one of %s's; trained at weight %.4g, %gx (train.max_target_weight_ratio)",
            task, counts[task] * per_batch, common, counts[common] * per_batch, weights[task], ratio, common,
            capped[task], cfg.max_target_weight_ratio,
        )
    return TrainingData(
        vocab=vocab,
        items=items,
        serialiser=serialiser,
        query_table=np.asarray(query_table, dtype=np.float32),
        users=users,
        train_sequences=train,
        alignment_sequences=aligned,
        epoch_examples=cap_per_stream(valid, cfg.eval.epoch_users, cfg.seed),
        final_examples=cap_per_stream(valid, cfg.eval.final_users, cfg.seed),
        popularity=popularity_rankings(users, items.n_items),
        items_with_events=items_with_train_events(users, items.n_items),
        loss_weights=LossWeightsConfig(**capped),
        composition=composition,
    )


def targets_per_task(sequences: list[TokenSequence]) -> dict[str, int]:
    """Training targets of each loss group (LOSS_GROUPS order) over ``sequences``."""
    groups = np.concatenate([s.groups[s.groups >= 0] for s in sequences]) if sequences else np.zeros(0, np.int64)
    counts = np.bincount(groups, minlength=len(LOSS_GROUPS))
    # ranking's targets are the action labels (an item's last code in the `item` layout is also a retrieval target)
    counts[RANKING] = sum(int((s.actions >= 0).sum()) for s in sequences)
    return {task: int(n) for task, n in zip(LOSS_GROUPS, counts, strict=True)}


def capped_loss_weights(
    weights: dict[str, float], counts: dict[str, int], max_ratio: float | None
) -> dict[str, float]:
    """``weights`` with each rare task's lowered so that one of its targets weighs exactly ``max_ratio``
    times one of the most frequent active task's (None: unchanged); tasks within the bound keep theirs.

    Why a bound on the ratio and not a fixed weight: the ratio is what hurts (ML-1M with 1% searches:
    one search target weighed ~190x one recommendation target at weight 1; test rec NDCG@10 0.057 against
    0.145 at weight 0.1, ~19x), and it depends on the search share of the data: with ml-100k's 25% searches
    it is ~7x at weight 1, where a fixed 0.1 would starve search instead.
    """
    out = dict(weights)
    if max_ratio is None:
        return out
    for task, (ratio, _) in overweighted_targets(counts, weights, max_ratio).items():
        out[task] = weights[task] * max_ratio / ratio
    return out


def overweighted_targets(
    counts: dict[str, int], weights: dict[str, float], max_ratio: float | None
) -> dict[str, tuple[float, str]]:
    """Tasks whose single target outweighs one of the most frequent task's by more than ``max_ratio``.

    With a per-task mean, one target of a task weighs ``weight / count`` against the others'; returns
    {task: (that ratio to the most frequent active task, the name of that task)}. Switched-off or empty
    tasks are ignored. Ratios from the sequences' counts are the expected per-batch ones.
    """
    active = {task: n for task, n in counts.items() if n > 0 and weights.get(task, 0.0) > 0}
    if len(active) < 2 or max_ratio is None:
        return {}
    common = max(active, key=active.__getitem__)
    per_target = {task: weights[task] / n for task, n in active.items()}
    ratios = {task: w / per_target[common] for task, w in per_target.items() if task != common}
    return {task: (ratio, common) for task, ratio in ratios.items() if ratio > max_ratio}


def transformer_dims(
    cfg: ModelConfig,
    retrieval: RetrievalLossConfig,
    vocab: Vocabulary,
    max_positions: int,
    query_dim: int,
    n_items: int = 0,
    composition: CodeComposition | None = None,
) -> TransformerDims:
    """The network's shape; ``n_items`` (the catalogue size) sizes the hybrid forms' per-item tables and is
    required for them alone, as ``composition`` (the codes each item's row is made of) is for hybrid_dense."""
    hybrid = cfg.item_representation == "hybrid"
    dense = cfg.item_representation == "hybrid_dense"
    if (hybrid or dense) and n_items < 1:
        raise ValueError(f"train.model.item_representation: {cfg.item_representation} needs the catalogue size "
                         "(n_items >= 1)")
    if dense and composition is None:
        raise ValueError("train.model.item_representation: hybrid_dense needs the items' code composition")
    l2_normalise, temperature = retrieval_logit_form(retrieval)
    return TransformerDims(
        vocab_size=vocab.size,
        max_positions=max_positions,
        d_model=cfg.d_model,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        d_ff=cfg.d_ff,
        dropout=cfg.dropout,
        attention_dropout=cfg.attention_dropout,
        query_dim=query_dim,
        n_query_tokens=cfg.n_query_tokens,
        pos_token=vocab.token(POS),
        neg_token=vocab.token(NEG),
        ranking_head=cfg.item_representation in ONE_TOKEN_PER_ITEM,
        logits_l2_normalise=l2_normalise,
        logits_temperature=temperature,
        item_embedding=hybrid,
        n_items=n_items if hybrid or dense else 0,
        composed_levels=composition.index.shape[1] if dense and composition is not None else 0,
        code_table_size=composition.table_size if dense and composition is not None else 0,
        embedding_init=cfg.embedding_init,
        positions=cfg.positions,
        past_action_input=cfg.past_action_input,
    )


def retrieval_logit_form(cfg: RetrievalLossConfig) -> tuple[bool, float]:
    """(L2-normalise, temperature) of the logits the model trains and decodes retrieval with.

    Both shape the sampled softmax only: the full softmax keeps the raw dot product at temperature 1,
    the logits it has always had, so its results stay what they were.
    """
    if cfg.softmax == "full":
        return False, 1.0
    if cfg.temperature == AUTO:
        raise ConfigError("train.retrieval_loss.temperature is still auto: size the config for its data first "
                          "(unigrec.train.sizing.sized_for), as the train stage does")
    return cfg.l2_normalise, cfg.temperature


def loss_spec(cfg: RetrievalLossConfig, vocab: Vocabulary) -> LossSpec:
    """Full softmax: each retrieval target against its legal slice (its level's codebook; for atomic ids the
    catalogue). Sampled: against ``cfg.negatives`` tokens drawn from that slice (train/losses.py)."""
    negatives = cfg.negatives if cfg.softmax == "sampled" else None
    return LossSpec(vocab.legal_mask(), negatives, per_position=cfg.draw == "position",
                    product_columns=cfg.product_columns)


def task_weighter(cfg: TrainConfig) -> TaskWeighter:
    return TaskWeighter(cfg.weighter, [getattr(cfg.loss_weights, name) for name in LOSS_GROUPS])


def ranking_enhancer(cfg: TrainConfig, vocab: Vocabulary) -> RankingDrivenEnhancer | None:
    """The enhancer, or None when it is off or cannot work (it needs both retrieval and ranking trained)."""
    w = cfg.loss_weights
    if not cfg.enhancer.enabled or w.ranking <= 0 or (w.retrieval_rec <= 0 and w.retrieval_search <= 0):
        return None
    return RankingDrivenEnhancer(cfg.enhancer, EnhancerTokens.for_vocabulary(vocab))


def selection_metric(cfg: TrainConfig) -> str:
    """Validation metric of checkpointing/early stopping: a model trained on ranking alone is chosen by AUC."""
    from unigrec.train.lightning_module import MONITOR, RANKING_MONITOR

    w = cfg.loss_weights
    return RANKING_MONITOR if w.retrieval_rec <= 0 and w.retrieval_search <= 0 else MONITOR


def build_trainer(
    cfg: TrainerConfig,
    runtime: RuntimeConfig,
    work_dir: Path,
    monitor: str,
    gradient_clip: float,
    extra_callbacks: list | None = None,
) -> Any:
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger

    _quiet_lightning()
    loggers: list[Any] = [CSVLogger(str(work_dir), name="csv", version=0)]
    if runtime.train_logger == "mlflow":
        loggers.append(MLFlowLogger(experiment_name="unigrec-train", tracking_uri=runtime.mlflow_tracking_uri))
    # Fixed names (no version counter): a fresh run starts from an emptied folder, and a resumed one must
    # overwrite its own files (Lightning would otherwise write last-v1.ckpt beside a file it did not record).
    checkpoint = ModelCheckpoint(
        dirpath=str(checkpoint_dir(work_dir)), filename=BEST_CHECKPOINT, monitor=monitor, mode="max", save_top_k=1,
        enable_version_counter=False,
    )
    callbacks: list[Any] = [checkpoint, EarlyStopping(monitor=monitor, mode="max", patience=cfg.patience)]
    if cfg.resume:
        # The resume point is a checkpoint of its own, written after every epoch. ``save_last=True`` on the
        # best-checkpoint callback is not that: since Lightning 2.6 it writes last.ckpt only when the epoch
        # was a new best, so a run killed after a few epochs without gain lost them all. Listed after the
        # best one so the state it saves already holds this epoch's best-score update.
        callbacks.append(ModelCheckpoint(
            dirpath=str(checkpoint_dir(work_dir)), filename=Path(LAST_CHECKPOINT).stem, monitor=None, save_top_k=1,
            every_n_epochs=1, enable_version_counter=False,
        ))
    return L.Trainer(
        max_epochs=cfg.max_epochs,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        precision=cfg.precision,
        gradient_clip_val=gradient_clip if gradient_clip > 0 else None,
        log_every_n_steps=cfg.log_every_n_steps,
        logger=loggers,
        callbacks=[*callbacks, *(extra_callbacks or [])],
        # Lightning's bar draws into pipes too; EpochLog writes the per-epoch line a log wants instead.
        enable_progress_bar=bar_on_stderr(runtime.progress_bar),
        enable_model_summary=False,
        default_root_dir=str(work_dir),
    )


def _quiet_lightning() -> None:
    # Lightning's start-up banners and two warnings that say nothing actionable here (see stack.md §2e).
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    # only a resumed run finds its checkpoint folder non-empty: fresh runs start from an emptied work dir
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")


def fit_generative_model(
    cfg: TrainConfig, data: TrainingData, work_dir: Path, runtime: RuntimeConfig
) -> FitResult:
    """Train from scratch, or continue this very run from its last checkpoint (``train.trainer.resume``, see
    ``unigrec.train.resume``); returns the network holding the best validation checkpoint's weights."""
    import lightning as L

    from unigrec.train.callbacks import EpochLog, ThroughputMeter, WeightEMA
    from unigrec.train.datamodule import SplitDataModule
    from unigrec.train.lightning_module import GenerativeRecModule

    cfg = dataclasses.replace(cfg, loss_weights=data.loss_weights)  # a rare task's weight lowered
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    work_dir = Path(work_dir)
    metrics_csv = work_dir / "csv" / "version_0" / "metrics.csv"
    # Decided before fit: DDP workers only start inside fit, and must find the folder as rank 0 left it.
    key, older = run_fingerprints(cfg, data) if cfg.trainer.resume else (None, None)
    last = resumable_checkpoint(work_dir, key, also=[older]) if key is not None else None
    resumed_after = checkpoint_epoch(last) if last is not None else None
    stashed: Path | None = None
    if last is None:
        if key is not None and stale_run(work_dir, key, also=[older]):
            log.warning("%s holds an unfinished run of other train params or data: it is discarded, this run "
                        "starts from scratch", work_dir)
        start_fresh(work_dir, key)
    else:
        write_state(work_dir, {"fingerprint": key, "complete": False})  # an older unigrec's key, renewed
        stashed = stash_metrics(metrics_csv)
        if relocate_checkpoint(last, checkpoint_dir(work_dir)):
            log.info("the run's folder moved since its checkpoint was written: its recorded paths now point here")
        # counted from 1 like the per-epoch log lines; the record keeps Lightning's 0-based index (metrics.csv's)
        log.info("resuming the unfinished run in %s: epoch %d of %d was its last finished one", work_dir,
                 resumed_after + 1, cfg.trainer.max_epochs)
    dims = transformer_dims(cfg.model, cfg.retrieval_loss, data.vocab, data.serialiser.max_length,
                            data.query_table.shape[1], data.items.n_items, data.composition)
    net = fresh_network(dims, data)
    module = GenerativeRecModule(
        net=net,
        loss_spec=loss_spec(cfg.retrieval_loss, data.vocab),
        weighter=task_weighter(cfg),
        optim=cfg.optim,
        spaces=id_spaces(data.vocab, data.items),
        beam_size=cfg.eval.beam_size,
        k=cfg.eval.k,
        enhancer=ranking_enhancer(cfg, data.vocab),
        log_grad_norms=cfg.weighter.log_grad_norms,
        monitor_average=cfg.eval.monitor_average,
        alignment_weight=cfg.alignment.weight,
    )
    datamodule = SplitDataModule(
        train_sequences=data.train_sequences,
        alignment_sequences=data.alignment_sequences,
        val_examples=data.epoch_examples,
        query_table=data.query_table,
        n_query_tokens=cfg.model.n_query_tokens,
        pad_token=data.vocab.token(PAD),
        n_items=data.items.n_items,
        batch_size=cfg.batch_size,
        eval_batch_size=runtime.batch_sizes.validation_prompts,
        num_workers=runtime.dataloader_workers,
    )
    meter = ThroughputMeter()
    monitor = selection_metric(cfg)
    extra: list[Any] = [meter, EpochLog(meter)]
    if cfg.optim.ema_epochs is not None:
        extra.append(WeightEMA(cfg.optim.ema_epochs))
    trainer = build_trainer(cfg.trainer, runtime, work_dir, monitor, cfg.optim.gradient_clip, extra)
    n_params = sum(p.numel() for p in net.parameters())
    log.info("training: %d parameters, %d sequences per epoch", n_params, len(data.train_sequences))
    # weights_only: the resume point is read as data only, like every checkpoint (see read_checkpoint)
    ckpt_path = str(last) if last is not None else None
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    if stashed is not None and trainer.is_global_zero:
        merge_metrics(stashed, metrics_csv, resumed_after)
    checkpoint = next(c for c in trainer.checkpoint_callbacks if c.filename == BEST_CHECKPOINT)
    best_path = getattr(checkpoint, "best_model_path", "")
    if best_path:
        state = read_checkpoint(Path(best_path))["state_dict"]
        net.load_state_dict({k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")})
    best = getattr(checkpoint, "best_model_score", None)
    epochs = int(trainer.current_epoch)
    return FitResult(
        net=net.cpu().eval(),
        is_global_zero=bool(trainer.is_global_zero),
        seconds=meter.wall_seconds,  # a resumed run's clock includes the part before the interruption
        epochs_run=epochs,
        selected_on=monitor,
        best_score=float(best) if best is not None else None,
        metrics_csv=metrics_csv if metrics_csv.exists() else None,
        sequences_per_second=meter.sequences_per_second,
        resumed_after_epoch=resumed_after,
        device=device_name(trainer.strategy.root_device),
        finished=not trainer.interrupted,
    )


def fresh_network(dims: TransformerDims, data: TrainingData) -> GenerativeTransformer:
    """An untrained network of ``dims`` holding what the hybrid forms read from the data: which items have
    training events, and each item's codes (hybrid_dense). The weights save them, so a served model is whole."""
    net = GenerativeTransformer(dims)
    if dims.item_embedding or dims.composed_levels:
        net.item_has_events.copy_(torch.from_numpy(data.items_with_events))
    if dims.composed_levels:
        if data.composition is None:
            raise ValueError("hybrid_dense dims need the training data's code composition")
        net.item_code_index.copy_(torch.from_numpy(data.composition.index))
    return net


def device_name(device: torch.device) -> str:
    """Where the run computed, for its metrics ("cpu", "cuda: NVIDIA H200"): its time and throughput mean
    nothing without it, and a run may have been trained on another machine than the one evaluating it."""
    return f"{device.type}: {torch.cuda.get_device_name(device)}" if device.type == "cuda" else device.type


def run_fingerprints(cfg: TrainConfig, data: TrainingData) -> tuple[str, str]:
    """What makes two runs the same run: the train params and every array the network trains on (the
    fingerprint, and its older form that a folder from an earlier unigrec may carry)."""
    arrays = [data.query_table, *(data.items.codes[kind] for kind in sorted(data.items.codes))]
    for seq in [*data.train_sequences, *data.alignment_sequences]:
        arrays += [seq.tokens, seq.targets, seq.slots, seq.groups, seq.query_ids, seq.query_parts]
    if cfg.model.item_representation == "hybrid":
        # the per-item mask is data the net trains with; the other forms' keys stay what they were
        arrays += [data.items_with_events, *(seq.item_refs for seq in data.train_sequences)]
    if data.composition is not None:
        arrays += [data.items_with_events, data.composition.index]
    return fingerprints(cfg, arrays)
