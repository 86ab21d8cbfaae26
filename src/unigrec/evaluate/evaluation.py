"""Evaluate the trained model and any baselines on the TEST split, every method on the same cases.

The cases are the split's held-out test events with their leak-free histories
(:func:`~unigrec.evaluate.baselines.context.held_out_cases`); the model reads the same events as prompts
(:func:`~unigrec.inference.prompts.prompt_examples`), and the two are checked to line up row by row.

The VALIDATION split is decoded once (:func:`score_validation`): it chooses the re-ranking weights and gives
the ``valid`` block the registry gate chooses between model versions on (:func:`validation_metrics`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from unigrec.config import BaselinesConfig, EvaluateConfig, QueryReadingConfig, RuntimeConfig
from unigrec.errors import ContractViolation
from unigrec.evaluate.baselines.context import KINDS, HeldOutCase, held_out_cases
from unigrec.evaluate.inputs import TestInputs
from unigrec.evaluate.metrics import hr_at_k, ndcg_at_k
from unigrec.evaluate.protocols import (
    best_weight,
    drop_seen,
    hit_rate_curve,
    list_ranks,
    ranking_metrics,
    retrieval_metrics,
    sampled_ranks,
)
from unigrec.evaluate.slices import SLICE_STREAMS, slice_masks
from unigrec.paths import Layout

if TYPE_CHECKING:
    from unigrec.evaluate.relevance import RelevanceInputs

log = logging.getLogger(__name__)

SPLIT = "test"
TUNING_SPLIT = "valid"  # the only data that chooses anything (the re-ranking weights)
MODEL = "unigrec"  # the generative model's name in tables and plots


@dataclasses.dataclass
class MethodRanks:
    """Target ranks of one method, per stream; ``rows`` are the case indices of that stream."""

    rows: dict[str, np.ndarray]
    sampled: dict[str, np.ndarray]
    full: dict[str, np.ndarray]
    relevance: dict[str, Any] | None = None  # does the search list fit its query? (evaluate/relevance.py)
    training: dict[str, Any] | None = None  # how a trained baseline's fit went (CatalogueScorer.training)


@dataclasses.dataclass
class Evaluation:
    metrics: dict[str, Any]  # the nested metrics file
    curves: dict[str, dict[str, np.ndarray]]  # stream -> method -> HR@1..curve_max_k
    methods: dict[str, MethodRanks]
    seconds: dict[str, float]  # wall time per method
    n_cases: dict[str, int]
    n_negatives: int  # negatives per 1+N candidate list
    settings: Any  # the DecodeSettings measured here (re-ranking weights tuned on validation): served as is


def check_settings(cfg: EvaluateConfig) -> None:
    from unigrec.config import ConfigError

    top = max(cfg.full_hr_cutoffs + cfg.full_ndcg_cutoffs + (cfg.curve_max_k,))
    if cfg.beam_size < top:
        raise ConfigError(f"params.evaluate.beam_size: {cfg.beam_size} cannot fill a list of {top} items")
    if cfg.pipeline_k < cfg.pipeline_ndcg_cutoff or cfg.pipeline_k > cfg.beam_size:
        raise ConfigError("params.evaluate.pipeline_k: must lie between pipeline_ndcg_cutoff and beam_size")
    if not cfg.fusion_weights or any(not 0.0 <= w <= 1.0 for w in cfg.fusion_weights):
        raise ConfigError("params.evaluate.fusion_weights: give at least one weight, each within [0, 1]")
    for name in ("weights", "coverage_weights"):
        grid = getattr(cfg.lexical, name)
        if not grid or any(not lam >= 0.0 for lam in grid):
            raise ConfigError(f"params.evaluate.lexical.{name}: give at least one weight, none negative (0 = off)")
    if cfg.lexical.candidates < 0:
        raise ConfigError("params.evaluate.lexical.candidates: must not be negative")


def candidate_lists(cases: Sequence[HeldOutCase], candidates: pd.DataFrame) -> list[list[str]]:
    """Each case's 1+99 list from the split stage, target first."""
    frame = candidates[candidates["split"] == SPLIT]
    lookup = {(str(r.user_id), str(r.kind)): r for r in frame.itertuples(index=False)}
    out = []
    for case in cases:
        row = lookup.get((case.context.user_id, case.context.kind))
        if row is None or str(row.item_id) != case.target:
            raise ContractViolation(
                f"candidates.parquet has no {SPLIT} list for user {case.context.user_id} "
                f"({case.context.kind}, target {case.target}): re-run the split stage"
            )
        out.append([case.target, *(str(i) for i in row.negatives)])
    if len({len(c) for c in out}) > 1:
        raise ContractViolation("candidates.parquet: candidate lists differ in length")
    return out


def seen_item_indices(cases: Sequence[HeldOutCase], index: Mapping[str, int]) -> list[list[int]]:
    """The model's dense indices of the items in each case's history (what retrieval must not return)."""
    return [sorted({index[e.item_id] for e in c.context.history if e.item_id in index}) for c in cases]


def _stream_rows(cases: Sequence[HeldOutCase]) -> dict[str, np.ndarray]:
    kinds = np.array([c.context.kind for c in cases], dtype=object)
    return {kind: np.flatnonzero(kinds == kind) for kind in KINDS}


@dataclasses.dataclass(frozen=True)
class ValidationPass:
    """The model's one decode of the VALIDATION split, shared by the re-ranking weight tuning and the
    registry gate's figures (so the gate's figures need no second decode)."""

    cases: list[HeldOutCase]
    scores: Any  # GenerativeScores, one row per case
    seconds: float  # wall time of the decode


def score_validation(
    model: Any,
    grouped: Any,
    events: pd.DataFrame,
    query_table: np.ndarray,
    settings: Any,
    ranker: Any = None,
    lexical: Any = None,
) -> ValidationPass:
    """Decode every validation case once: the retrieved list (seen items out) and the re-ranking pool; no
    1+N lists (the split stage draws none for validation). ``lexical``: the pipeline's BM25 index
    (:func:`lexical_index`), so each search's BM25 candidates are scored for the lexical weight's choice."""
    from unigrec.evaluate.generative import score_prompts
    from unigrec.inference.prompts import prompt_examples

    started = time.perf_counter()
    cases = held_out_cases(events, TUNING_SPLIT)
    examples = prompt_examples(grouped, model.serialiser, TUNING_SPLIT)
    _check_aligned(cases, examples, model.items.item_ids)
    no_lists = np.zeros((len(cases), 0), dtype=np.int64)
    seen = seen_item_indices(cases, model.items.index())
    queries = [c.context.query for c in cases]
    scores = score_prompts(model, examples, no_lists, seen, query_table, settings, ranker, lexical, queries)
    return ValidationPass(cases, scores, time.perf_counter() - started)


def validation_metrics(cfg: EvaluateConfig, valid: ValidationPass) -> dict[str, Any]:
    """The ``valid`` block of the metrics file, which the registry gate chooses on: per stream, the
    full-catalogue HR/NDCG@k and MRR of the model's RETRIEVAL list (seen items out), the protocol and names
    of ``test.<stream>.full``.

    The retrieval figure, not the served (re-ranked) one: the re-ranking weight is chosen on these very
    cases, so the served figure here is the best of the weight grid, optimistic by an amount that varies
    between models. The retrieval list involves no choice made on validation except the checkpoint, which
    every version picks by the same rule on the same cases, so two versions compare fairly on it.
    """
    list_length = max(cfg.full_hr_cutoffs + cfg.full_ndcg_cutoffs + (cfg.curve_max_k,))
    seen = [{e.item_id for e in c.context.history} for c in valid.cases]
    full_lists = drop_seen(valid.scores.retrieved, seen, list_length)
    targets = [c.target for c in valid.cases]
    return {
        stream: {
            "n": int(rows.size),
            "full": retrieval_metrics(
                list_ranks([full_lists[i] for i in rows], [targets[i] for i in rows]),
                cfg.full_hr_cutoffs, cfg.full_ndcg_cutoffs, True,
            ),
        }
        for stream, rows in _stream_rows(valid.cases).items()
    }


def method_metrics(
    ranks: MethodRanks, masks: Mapping[str, np.ndarray], cfg: EvaluateConfig
) -> dict[str, Any]:
    """Both protocols per stream, and per slice (the same numbers on a subset of the cases)."""

    def block(stream: str, keep: np.ndarray | None) -> dict[str, Any]:
        sel = slice(None) if keep is None else keep[ranks.rows[stream]]
        sampled, full = ranks.sampled[stream][sel], ranks.full[stream][sel]
        return {
            "n": int(full.size),
            "sampled": retrieval_metrics(sampled, cfg.sampled_hr_cutoffs, cfg.sampled_ndcg_cutoffs, False),
            "full": retrieval_metrics(full, cfg.full_hr_cutoffs, cfg.full_ndcg_cutoffs, True),
        }

    out: dict[str, Any] = {s: block(s, None) for s in ranks.rows}
    out["slices"] = {
        name: {s: block(s, mask) for s in ranks.rows if s in SLICE_STREAMS[name]} for name, mask in masks.items()
    }
    if ranks.relevance is not None:
        out["relevance"] = ranks.relevance
    if ranks.training is not None:
        out["training"] = ranks.training
    return out


def _baseline_ranks(
    name: str,
    baselines_cfg: BaselinesConfig,
    runtime: RuntimeConfig,
    layout: Layout,
    train_events: pd.DataFrame,
    validation: Sequence[HeldOutCase],
    items: pd.DataFrame,
    cases: Sequence[HeldOutCase],
    lists: Sequence[Sequence[str]],
    rows: Mapping[str, np.ndarray],
    list_length: int,
    reading: QueryReadingConfig,
    relevance: RelevanceInputs | None = None,
) -> MethodRanks:
    from unigrec.evaluate.baselines import build_baseline
    from unigrec.evaluate.relevance import method_relevance

    method = build_baseline(name, baselines_cfg, runtime, layout, reading)
    method = method.use_validation(validation).fit(train_events, items)
    out = MethodRanks({}, {}, {}, training=method.training())
    for stream in method.tasks:
        idx = rows[stream]
        contexts = [cases[i].context for i in idx]
        targets = [cases[i].target for i in idx]
        scores = method.score(contexts, [lists[i] for i in idx])
        top = method.top_k(contexts, list_length, exclude_history=True)
        out.rows[stream] = idx
        out.sampled[stream] = sampled_ranks(scores)
        out.full[stream] = list_ranks(top, targets)
        if stream == "search" and relevance is not None:
            typed = method.top_k(relevance.contexts, relevance.cutoff, exclude_history=True)
            out.relevance = method_relevance(
                relevance, top, [c.query or "" for c in contexts], [{e.item_id for e in c.history} for c in contexts],
                typed,
            )
    return out


def case_slices(
    cfg: EvaluateConfig, cases: Sequence[HeldOutCase], events: pd.DataFrame, items: pd.DataFrame
) -> dict[str, np.ndarray]:
    """Slice name -> bool mask over ``cases`` (cold users, popular targets, unseen queries, ...)."""
    return slice_masks(
        [c.context.user_id for c in cases], [c.target for c in cases], [c.context.query for c in cases],
        events, items["item_id"].astype(str).tolist(), cfg.cold_user_max_events, cfg.popular_item_quantile,
    )


def score_baselines(
    cfg: EvaluateConfig,
    baselines_cfg: BaselinesConfig,
    runtime: RuntimeConfig,
    layout: Layout,
    events: pd.DataFrame,
    items: pd.DataFrame,
    cases: Sequence[HeldOutCase],
    lists: Sequence[Sequence[str]],
    seconds: dict[str, float],
    relevance: RelevanceInputs | None = None,
    validation: Sequence[HeldOutCase] | None = None,
) -> dict[str, MethodRanks]:
    """Fit each of ``cfg.baselines`` on the train split and rank ``cases``; wall time into ``seconds``.
    With ``relevance``, a search method's lists are also judged (its ``relevance`` figures). ``validation``:
    the ``TUNING_SPLIT`` cases when the caller already has them (built from ``events`` otherwise)."""
    train_events = events[events["split"] == "train"]
    # a baseline may choose its epoch on these (SASRec's early stopping), never on the cases it is graded on
    if validation is None:
        validation = held_out_cases(events, TUNING_SPLIT)
    rows = _stream_rows(cases)
    list_length = max(cfg.full_hr_cutoffs + cfg.full_ndcg_cutoffs + (cfg.curve_max_k,))
    out = {}
    for name in cfg.baselines:
        started = time.perf_counter()
        out[name] = _baseline_ranks(
            name, baselines_cfg, runtime, layout, train_events, validation, items, cases, lists, rows, list_length,
            cfg.relevance.reading, relevance,
        )
        seconds[name] = time.perf_counter() - started
        log.info("evaluate: baseline %s in %.1fs", name, seconds[name])
    return out


def evaluate_baselines(
    cfg: EvaluateConfig,
    data: TestInputs,
    baselines_cfg: BaselinesConfig,
    runtime: RuntimeConfig,
    layout: Layout,
) -> dict[str, Any]:
    """Test metrics of ``cfg.baselines`` alone, on the cases and rules of :func:`evaluate_test_split`.

    For benchmarks that repeat a seeded baseline without re-scoring the model each time. A search baseline
    is judged for relevance as in the full evaluation, so a benchmark table can set the served model's
    relevance beside BM25's from the same judgments.
    """
    from unigrec.evaluate.relevance import relevance_inputs

    check_settings(cfg)
    cases = held_out_cases(data.events, SPLIT)
    if not cases:
        raise ContractViolation(f"the events table has no {SPLIT} events to evaluate")
    masks = case_slices(cfg, cases, data.events, data.items)
    lists = candidate_lists(cases, data.candidates)
    relevance = relevance_inputs(cfg.relevance, data.items, data.events)
    ranks = score_baselines(
        cfg, baselines_cfg, runtime, layout, data.events, data.items, cases, lists, {}, relevance
    )
    return {name: method_metrics(r, masks, cfg) for name, r in ranks.items()}


def evaluate_test_split(
    cfg: EvaluateConfig,
    data: TestInputs,
    model_dir: Path,
    runtime: RuntimeConfig,
    layout: Layout,
    baselines_cfg: BaselinesConfig | None = None,
    ranker_dir: Path | None = None,
) -> Evaluation:
    """Every protocol for the model, and the 1+99 and full-catalogue protocols for each baseline.

    ``runtime`` sizes the batches (and the served batch recorded in the settings); ``layout`` resolves
    the caches the baselines keep. ``ranker_dir``: a second trained model that ranks what the first
    retrieves (the two-stage system); by default the one model does both.
    """
    from unigrec.evaluate.generative import score_prompts
    from unigrec.evaluate.relevance import method_relevance, relevance_inputs, typed_set_summary
    from unigrec.inference.prompts import group_user_events, prompt_examples
    from unigrec.inference.retrieval import DecodeSettings
    from unigrec.model.card import load_model

    check_settings(cfg)
    events, items, query_table = data.events, data.items, data.query_table
    cases = held_out_cases(events, SPLIT)
    if not cases:
        raise ContractViolation(f"the events table has no {SPLIT} events to evaluate")
    lists = candidate_lists(cases, data.candidates)
    rows = _stream_rows(cases)
    targets = [c.target for c in cases]
    seen = [{e.item_id for e in c.context.history} for c in cases]
    list_length = max(cfg.full_hr_cutoffs + cfg.full_ndcg_cutoffs + (cfg.curve_max_k,))
    masks = case_slices(cfg, cases, events, items)
    seconds: dict[str, float] = {}

    # ---------------------------------------------------------------- the generative model
    started = time.perf_counter()
    model = load_model(model_dir)
    ranker = load_model(ranker_dir) if ranker_dir is not None else None
    grouped = group_user_events(events, model.items, data.query_texts)
    index = model.items.index()
    settings = DecodeSettings(cfg.beam_size, runtime.batch_sizes.evaluation_prompts, cfg.pipeline_k,
                              lexical=lexical_settings(cfg), cached_histories=runtime.cached_histories)
    lexical = lexical_index(settings, model, items)
    valid = score_validation(model, grouped, events, query_table, settings, ranker, lexical)
    fusion = tune_fusion_weights(cfg, settings, valid)
    settings = dataclasses.replace(
        settings,
        fusion_weights={kind: f["weight"] for kind, f in fusion.items()},
        lexical_weights={kind: f["lexical_weight"] for kind, f in fusion.items() if f["lexical_weight"] > 0.0},
        coverage_weights={kind: f["coverage_weight"] for kind, f in fusion.items() if f["coverage_weight"] > 0.0},
    )
    examples = prompt_examples(grouped, model.serialiser, SPLIT)
    _check_aligned(cases, examples, model.items.item_ids)
    scores = score_prompts(
        model,
        examples,
        np.array([model.items.indices_of(c) for c in lists]),
        seen_item_indices(cases, index),
        query_table,
        settings,
        ranker,
        lexical if settings.lexical_for("search").active else None,
        [c.context.query for c in cases],
    )
    full_lists = drop_seen(scores.retrieved, seen, list_length)
    # Relevance: the served search list (retrieve, re-rank with the validation weights) on the test
    # searches and on the typed-query set, judged from item metadata.
    relevance = relevance_inputs(cfg.relevance, items, events)
    search = rows["search"]
    served = scores.reranked(search, settings.weight("search"), settings.lexical_for("search"))
    typed_lists = _typed_query_lists(model, grouped, relevance, data, runtime, layout, settings, ranker, lexical)
    model_ranks = MethodRanks(
        rows=rows,
        sampled={s: sampled_ranks(scores.sampled_retrieval[r]) for s, r in rows.items()},
        full={s: list_ranks([full_lists[i] for i in r], [targets[i] for i in r]) for s, r in rows.items()},
        relevance=method_relevance(
            relevance, served, [cases[i].context.query or "" for i in search], [seen[i] for i in search], typed_lists
        ),
    )
    seconds[MODEL] = time.perf_counter() - started
    log.info("evaluate: %s scored %d cases and %d typed queries in %.1fs", MODEL, len(cases),
             len(relevance.requests), seconds[MODEL])

    test = method_metrics(model_ranks, masks, cfg)
    started = time.perf_counter()
    valid_metrics = validation_metrics(cfg, valid)
    # the gate's figures: the validation decode (shared with the weight tuning) and their metrics
    seconds["validation"] = valid.seconds + time.perf_counter() - started
    rec = rows["rec"]
    labels = np.array([cases[i].label for i in rec], dtype=np.int64)
    test["ranking"] = ranking_metrics(labels, scores.sampled_ranking[rec, 0], scores.sampled_ranking[rec])
    k = cfg.pipeline_ndcg_cutoff

    def pipeline_ranks(stream_rows: np.ndarray, weight: float, lexical: Any = None) -> np.ndarray:
        """Target ranks in the re-ranked pool; ``lexical`` (LexicalWeights) None = no lexical term."""
        chosen = scores.reranked(stream_rows, weight) if lexical is None else scores.reranked(stream_rows, weight, lexical)
        return list_ranks(chosen, [targets[i] for i in stream_rows])

    def pipeline_ndcg(stream_rows: np.ndarray, weight: float) -> float:
        return ndcg_at_k(pipeline_ranks(stream_rows, weight), k)

    served_ranks = {s: pipeline_ranks(r, settings.weight(s), settings.lexical_for(s)) for s, r in rows.items()}

    def served_and_without_lexical(s: str, r: np.ndarray) -> dict[str, float]:
        """The served list's NDCG/HR@k, and the pipeline's without a lexical term (w chosen at λ = μ = 0)."""
        plain_ranks = pipeline_ranks(r, fusion[s]["weight_without_lexical"])
        return {
            f"ndcg@{k}": ndcg_at_k(served_ranks[s], k), f"hr@{k}": hr_at_k(served_ranks[s], k),
            f"without_lexical_ndcg@{k}": ndcg_at_k(plain_ranks, k), f"without_lexical_hr@{k}": hr_at_k(plain_ranks, k),
        }

    def served_slices(s: str, r: np.ndarray) -> dict[str, dict[str, float]]:
        """The served list's NDCG/HR@k on each slice of the stream, beside every method's in the report."""
        return {
            name: {"n": int(mask[r].sum()), f"ndcg@{k}": ndcg_at_k(served_ranks[s][mask[r]], k),
                   f"hr@{k}": hr_at_k(served_ranks[s][mask[r]], k)}
            for name, mask in masks.items() if s in SLICE_STREAMS[name]
        }

    test["pipeline"] = {
        s: {
            "n": int(r.size),
            "fusion_weight": settings.weight(s),
            "lexical_weight": settings.lexical_for(s).bm25,
            "coverage_weight": settings.lexical_for(s).coverage,
            **served_and_without_lexical(s, r),
            f"retrieval_only_ndcg@{k}": pipeline_ndcg(r, 0.0),
            f"ranking_only_ndcg@{k}": pipeline_ndcg(r, 1.0),
            "validation": fusion[s],
            "slices": served_slices(s, r),
        }
        for s, r in rows.items()
    }
    methods = {MODEL: model_ranks}

    # ---------------------------------------------------------------- baselines, same cases
    baseline_metrics: dict[str, Any] = {}
    if cfg.baselines:
        if baselines_cfg is None:
            raise ContractViolation("params.evaluate.baselines names baselines but no baselines section was given")
        baseline_ranks = score_baselines(
            cfg, baselines_cfg, runtime, layout, events, items, cases, lists, seconds, relevance, valid.cases
        )
        methods.update(baseline_ranks)
        baseline_metrics = {name: method_metrics(ranks, masks, cfg) for name, ranks in baseline_ranks.items()}

    curves = {
        stream: {name: hit_rate_curve(m.full[stream], cfg.curve_max_k) for name, m in methods.items() if stream in m.rows}
        for stream in KINDS
    }
    metrics: dict[str, Any] = {
        SPLIT: test, TUNING_SPLIT: valid_metrics, "typed_queries": typed_set_summary(relevance.requests)
    }
    if baseline_metrics:
        metrics["baselines"] = baseline_metrics
    return Evaluation(
        metrics, curves, methods, seconds, {s: int(r.size) for s, r in rows.items()}, len(lists[0]) - 1, settings
    )


def _typed_query_lists(
    model: Any,
    grouped: Sequence[Any],
    relevance: RelevanceInputs,
    data: TestInputs,
    runtime: RuntimeConfig,
    layout: Layout,
    settings: Any,
    ranker: Any = None,
    lexical: Any = None,
) -> list[list[str]]:
    """The model's served list for each typed request: the events a test event may see
    (``HISTORY_SPLITS``) as the prompt's history (the baselines' history too), the typed text's MiniLM
    vector (and, with lexical weights, its lexical features) as its query, seen items out."""
    from unigrec.evaluate.generative import score_prompts
    from unigrec.evaluate.relevance import HISTORY_SPLITS
    from unigrec.inference.prompts import PromptExample
    from unigrec.text_encoder import embed_texts

    requests = relevance.requests
    if not requests:
        return []
    texts = sorted({r.query for r in requests})
    vectors = embed_texts(texts, batch_size=runtime.batch_sizes.text_encoding,
                          cache_dir=layout.resolve(runtime.cache_dir), show_progress=False)
    table = np.concatenate([data.query_table, np.asarray(vectors, dtype=data.query_table.dtype)])
    lookup = {text: len(data.query_texts) + j for j, text in enumerate(texts)}
    users = {u.user_id: u for u in grouped}
    allowed = np.array(HISTORY_SPLITS, dtype=object)
    examples = []
    for request in requests:
        user = users[request.user_id]
        history = user.events.take(np.flatnonzero(np.isin(user.splits, allowed)))
        prompt = model.serialiser.prompt(history, True, lookup[request.query])
        examples.append(PromptExample(request.user_id, True, -1, 1, prompt, np.unique(history.items)))
    no_lists = np.zeros((len(examples), 0), dtype=np.int64)
    lexical_weights = settings.lexical_for("search")
    scores = score_prompts(
        model, examples, no_lists, [e.seen.tolist() for e in examples], table, settings, ranker,
        lexical if lexical_weights.active else None, [r.query for r in requests],
    )
    return scores.reranked(np.arange(len(examples)), settings.weight("search"), lexical_weights)


def tune_fusion_weights(cfg: EvaluateConfig, settings: Any, valid: ValidationPass) -> dict[str, dict[str, Any]]:
    """Per request kind, the re-ranking weight w of ``cfg.fusion_weights`` and, for search, the lexical
    weights λ of ``cfg.lexical.weights`` and μ of ``cfg.lexical.coverage_weights`` with the best NDCG@k of
    the re-ranked pool on the VALIDATION split (test data never chooses anything), chosen jointly by
    :func:`choose_weights`.

    Returns ``{kind: {"weight": w, "lexical_weight": λ, "coverage_weight": μ, "weight_without_lexical": w at
    λ = μ = 0, "n": cases, "ndcg@k_by_weight": [[w, ndcg at λ, μ], ...], "ndcg@k_by_lexical_weight":
    [[λ, ndcg at w, μ], ...], "ndcg@k_by_coverage_weight": [[μ, ndcg at w, λ], ...]}}``; a kind without
    validation cases keeps the retrieval order (w = λ = μ = 0). ``valid``: the one validation
    decode (:func:`score_validation`, also the gate's figures), scored with the lexical index whenever
    ``settings.lexical`` is set, or λ would have nothing to act on.
    """
    k = cfg.pipeline_ndcg_cutoff
    lexical_grid = {kind: lexical_grid_of(cfg, settings, kind) for kind in KINDS}
    if len(cfg.fusion_weights) == 1 and all(len(lam) * len(mu) == 1 for lam, mu in lexical_grid.values()):
        only = float(cfg.fusion_weights[0])  # nothing to choose
        return {
            kind: {"weight": only, "lexical_weight": lam[0], "coverage_weight": mu[0], "weight_without_lexical": only,
                   "n": 0, f"ndcg@{k}_by_weight": [], f"ndcg@{k}_by_lexical_weight": [],
                   f"ndcg@{k}_by_coverage_weight": []}
            for kind, (lam, mu) in lexical_grid.items()
        }
    cases, scores = valid.cases, valid.scores
    targets = [c.target for c in cases]
    out: dict[str, dict[str, Any]] = {}
    for kind, rows in _stream_rows(cases).items():
        out[kind] = choose_weights(scores, rows, targets, cfg.fusion_weights, *lexical_grid[kind], k=k)
        log.info(
            "evaluate: %s re-ranking weight %.2f, lexical weights λ=%g μ=%g on %d validation cases (NDCG@%d %s)",
            kind, out[kind]["weight"], out[kind]["lexical_weight"], out[kind]["coverage_weight"], rows.size, k,
            ", ".join(f"w={w:g}: {q:.4f}" for w, q in out[kind][f"ndcg@{k}_by_weight"]),
        )
    return out


def choose_weights(
    scores: Any,
    rows: np.ndarray,
    targets: Sequence[str],
    weights: Sequence[float],
    lexical_weights: Sequence[float],
    coverage_weights: Sequence[float] = (0.0,),
    *,
    k: int,
) -> dict[str, Any]:
    """The (w, λ, μ) of the three grids whose re-ranked pool (:meth:`GenerativeScores.reranked`, the
    served path) has the best NDCG@k on ``rows`` of ``scores``; ties go to the smaller λ, then the smaller
    μ, then the smaller w (:func:`best_weight` over ((λ, μ), w)), so a lexical term is kept only when it
    measures better.

    Jointly, not w first and λ, μ after: the BM25 candidates that join the pool were not found by the beam,
    so their log P(item) is low and how much the ranking head may lift them (w) interacts with how much
    their words do (λ, μ); every triple re-ranks the same decoded scores, so the grid costs no model pass.
    """
    from unigrec.inference.retrieval import LexicalWeights

    wanted = [targets[i] for i in rows]
    quality = {
        ((lam, mu), w): (
            ndcg_at_k(list_ranks(scores.reranked(rows, w, LexicalWeights(lam, mu)), wanted), k)
            if rows.size else float("nan")
        )
        for lam in lexical_weights
        for mu in coverage_weights
        for w in weights
    }
    (lexical_weight, coverage_weight), weight = best_weight(quality) if rows.size else ((0.0, 0.0), 0.0)
    without = {w: q for (lexical, w), q in quality.items() if lexical == (0.0, 0.0)}
    chosen = (lexical_weight, coverage_weight)
    nan = float("nan")
    return {
        "weight": weight,
        "lexical_weight": lexical_weight,
        "coverage_weight": coverage_weight,
        "weight_without_lexical": (best_weight(without) if rows.size else 0.0) if without else weight,
        "n": int(rows.size),
        f"ndcg@{k}_by_weight": [[w, quality.get((chosen, w), nan)] for w in weights],
        f"ndcg@{k}_by_lexical_weight": [
            [lam, quality.get(((lam, coverage_weight), weight), nan)] for lam in lexical_weights
        ],
        f"ndcg@{k}_by_coverage_weight": [
            [mu, quality.get(((lexical_weight, mu), weight), nan)] for mu in coverage_weights
        ],
    }


def lexical_grid_of(cfg: EvaluateConfig, settings: Any, kind: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The λ and μ grids a kind chooses from: ``cfg.lexical.weights`` and ``cfg.lexical.coverage_weights``
    for search when the pipeline has a BM25 index, else only 0 (a recommendation has no query to match)."""
    if kind == "search" and settings.lexical is not None:
        return tuple(float(lam) for lam in cfg.lexical.weights), tuple(float(mu) for mu in cfg.lexical.coverage_weights)
    return (0.0,), (0.0,)


def lexical_settings(cfg: EvaluateConfig) -> Any:
    """The pipeline's BM25 settings (served as they are) when some λ or μ of the grids is above 0, else None."""
    from unigrec.inference.retrieval import LexicalSettings

    if not any(lam > 0.0 for lam in (*cfg.lexical.weights, *cfg.lexical.coverage_weights)):
        return None
    reading = dataclasses.asdict(cfg.relevance.reading) if cfg.lexical.normalise_queries else None
    return LexicalSettings(cfg.lexical.candidates, cfg.lexical.k1, cfg.lexical.b, reading)


def lexical_index(settings: Any, model: Any, items: pd.DataFrame) -> Any:
    """The BM25 index over the items table's text, in the model's item order (None without ``settings.lexical``)."""
    from unigrec.inference.lexical import catalogue_index

    if settings.lexical is None:
        return None
    return catalogue_index(model.items.item_ids, items, settings.lexical)


def _check_aligned(cases: Sequence[HeldOutCase], examples: Sequence[Any], item_ids: Sequence[str]) -> None:
    """Model prompts and baseline cases must be the same events in the same order."""
    if len(cases) != len(examples):
        raise ContractViolation(f"{len(cases)} held-out cases but {len(examples)} model prompts")
    for case, example in zip(cases, examples):
        same = (
            case.context.user_id == example.user_id
            and case.target == item_ids[example.target]
            and (case.context.kind == "search") == example.is_search
        )
        if not same:
            raise ContractViolation(
                f"held-out case of user {case.context.user_id} ({case.target}) does not match the model's "
                f"prompt ({example.user_id}, {item_ids[example.target]})"
            )
