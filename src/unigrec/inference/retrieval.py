"""The one retrieve / rank / fuse / re-rank path of the generative model.

Training's validation monitor, the evaluate stage and the served model all decode through this module,
so the pipeline that is measured is the pipeline that is served, and a change to decoding is made here
once:

1. ``retrieve_unseen``: trie-constrained beam search in the request's ID space (semantic IDs for search,
   collaborative IDs for recommendation), the user's seen items kept out of the beam itself;
2. ``decode_batch``: that, plus P(<pos>) of the retrieved pool (and of any given candidate list) from
   the ranking head, in one encoding of the prompts;
3. ``fuse_and_rerank``: the re-ranking score ``(1 - w) * log P(item) + w * log P(<pos>)`` and the pool
   re-ordered by it; for a search request with a lexical weight λ > 0, the pool joined by BM25's best
   unseen items (:func:`join_candidates`, :mod:`unigrec.inference.lexical`) and ``λ * BM25 / max BM25 +
   μ * term coverage`` added to every candidate's score (:class:`LexicalWeights`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from unigrec.model.batch import SequenceBatch
from unigrec.model.decoding import (
    IdSpace,
    beam_search,
    beam_search_encoded,
    build_id_space,
    candidate_code_scores,
    score_candidates,
)
from unigrec.model.item_codes import ItemCodes
from unigrec.model.tokenizer import id_kind
from unigrec.model.transformer import GenerativeTransformer, PrefixCache
from unigrec.model.vocabulary import Vocabulary

STREAMS = {False: "rec", True: "search"}  # is_search -> request kind


@dataclasses.dataclass(frozen=True)
class LexicalSettings:
    """The BM25 signal of search re-ranking: its index is rebuilt from the catalogue text with these
    ``k1`` / ``b`` (the bm25 baseline's, params ``baselines.bm25``) wherever the pipeline runs."""

    candidates: int  # BM25's top-n unseen items that join a search request's re-ranked pool
    k1: float
    b: float
    # how a typed query is read before BM25 looks it up (QueryReadingConfig's fields, params
    # evaluate.relevance.reading) when evaluate.lexical.normalise_queries is on; None: the raw words
    reading: dict[str, int] | None = None


@dataclasses.dataclass(frozen=True)
class LexicalWeights:
    """How much a search candidate's words add to its fused score: ``bm25`` (λ) times its BM25 score over
    the query's best, plus ``coverage`` (μ) times its term coverage (:meth:`LexicalIndex.features
    <unigrec.inference.lexical.LexicalIndex.features>`). Both read as the log-probability a best match
    is worth against no match; all zero (the default) leaves the model's list exactly as it is."""

    bm25: float = 0.0
    coverage: float = 0.0

    def __post_init__(self) -> None:
        if self.bm25 < 0.0 or self.coverage < 0.0:
            raise ValueError(f"lexical weights must not be negative, not λ={self.bm25}, μ={self.coverage}")

    @property
    def active(self) -> bool:
        """Does the lexical signal take part (BM25's candidates join the pool, the term is added)?"""
        return self.bm25 > 0.0 or self.coverage > 0.0

    def term(self, features: np.ndarray) -> np.ndarray:
        """(..., 2) lexical features, BM25 then coverage (the order of ``LexicalIndex.features``, whose
        module this one does not import: training decodes through here without any BM25) -> (...) the term
        added to the fused score."""
        return np.asarray(features, dtype=np.float64) @ np.array([self.bm25, self.coverage])


NO_LEXICAL = LexicalWeights()


@dataclasses.dataclass(frozen=True)
class DecodeSettings:
    """How the unified pipeline decodes; the evaluate stage measures these and writes them for serving."""

    beam_size: int  # constrained beam width
    batch_size: int  # prompts decoded at once
    pipeline_k: int  # items retrieved before they are re-ranked
    # request kind ("rec", "search") -> w of the re-ranking score (1-w)*log P(item) + w*log P(<pos>),
    # chosen on validation data by the evaluate stage; a kind not named keeps the retrieval order
    fusion_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    # request kind -> λ of the lexical term λ * BM25 / max BM25 added to the fused score, chosen on
    # validation with w; a kind not named (or no ``lexical``) has no lexical signal
    lexical_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    # request kind -> μ of μ * term coverage, chosen with λ and w (absent in bundles written before it: 0)
    coverage_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    lexical: LexicalSettings | None = None  # the BM25 index and candidates; None in bundles written before it
    # users whose encoded history a server keeps (runtime.cached_histories; memory only, outputs unchanged);
    # bundles written before it keep none
    cached_histories: int = 0

    def weight(self, kind: str) -> float:
        return float(self.fusion_weights.get(kind, 0.0))

    def lexical_for(self, kind: str) -> LexicalWeights:
        """The lexical weights of a request kind (none without ``lexical``: no index to read words with)."""
        if self.lexical is None:
            return NO_LEXICAL
        return LexicalWeights(float(self.lexical_weights.get(kind, 0.0)), float(self.coverage_weights.get(kind, 0.0)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecodeSettings:
        """The settings as :func:`dataclasses.asdict` wrote them (the serving bundle's settings.json)."""
        lexical = data.get("lexical")
        return cls(**{**data, "lexical": LexicalSettings(**lexical) if lexical is not None else None})


# ---------------------------------------------------------------------------------------- ID spaces
def id_spaces(vocab: Vocabulary, items: ItemCodes) -> dict[bool, IdSpace]:
    """is_search -> the ID space its targets are decoded in (:func:`~unigrec.model.tokenizer.id_kind`)."""
    return {search: build_id_space(vocab, items, id_kind(search)) for search in STREAMS}


def stream_batches(is_search: Sequence[bool], batch_size: int) -> list[tuple[bool, list[int]]]:
    """Row indices grouped by stream (recommendation first) and cut into batches of ``batch_size``: a
    batch decodes in one ID space, so the two kinds of request never share one."""
    flags = list(is_search)
    out = []
    for search in STREAMS:
        rows = [i for i, s in enumerate(flags) if s == search]
        out += [(search, rows[start : start + batch_size]) for start in range(0, len(rows), batch_size)]
    return out


def seen_mask(histories: Sequence[Sequence[int]], n_items: int) -> torch.Tensor:
    """(B, n_items) bool: the dense item indices already in each request's history."""
    mask = torch.zeros(len(histories), n_items, dtype=torch.bool)
    for row, items in enumerate(histories):
        if len(items):
            mask[row, torch.as_tensor(np.asarray(items), dtype=torch.long)] = True
    return mask


def select_rows(batch: SequenceBatch, rows: torch.Tensor) -> SequenceBatch:
    """The prompts of ``rows`` only (query_vectors is indexed by query_refs, not by row: kept whole)."""
    return SequenceBatch(
        tokens=batch.tokens[rows],
        valid=batch.valid[rows],
        targets=batch.targets[rows],
        slots=batch.slots[rows],
        groups=batch.groups[rows],
        query_refs=batch.query_refs[rows],
        item_refs=batch.item_refs[rows],
        actions=batch.actions[rows],
        query_vectors=batch.query_vectors,
    )


# ---------------------------------------------------------------------------------------- retrieve, rank
@torch.no_grad()
def retrieve_unseen(
    net: GenerativeTransformer,
    prompts: SequenceBatch,
    space: IdSpace,
    seen: torch.Tensor,
    beam_size: int,
    k: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``k`` best items of a ``beam_size`` beam that are not in ``seen``: items (B, k) (-1 where the
    beam held fewer), their summed code log-probs, and a validity mask. Seen items are kept out of the
    beam itself (see :func:`beam_search`), so they never crowd unseen ones out of it."""
    items, scores = beam_search(net, prompts, space, beam_size, exclude=seen)
    return unseen_first(items, scores, seen, k)


def unseen_first(
    items: torch.Tensor, scores: torch.Tensor, seen: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A beam's (B, n) items and scores cut to the ``k`` first that are real and not in ``seen``, in beam
    order, padded with -1 / -inf / invalid (what :func:`retrieve_unseen` returns)."""
    valid = (items >= 0) & ~seen.gather(1, items.clamp(min=0))
    # stable: kept items stay in beam order, dropped ones move behind them
    order = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)[:, :k]
    if order.shape[1] < k:  # a catalogue smaller than k
        pad = k - order.shape[1]
        return (
            torch.nn.functional.pad(items.gather(1, order), (0, pad), value=-1),
            torch.nn.functional.pad(scores.gather(1, order), (0, pad), value=float("-inf")),
            torch.nn.functional.pad(valid.gather(1, order), (0, pad), value=False),
        )
    return items.gather(1, order), scores.gather(1, order), valid.gather(1, order)


@torch.no_grad()
def ranking_probs(
    net: GenerativeTransformer, prompts: SequenceBatch, space: IdSpace, items: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Retrieval log-prob and P(<pos>) of each (B, C) candidate; -1 entries are scored as item 0 and
    must be masked by the caller."""
    return score_candidates(net, prompts, items.clamp(min=0), space)


@dataclasses.dataclass(frozen=True)
class DecodedBatch:
    """One batch of prompts decoded: the unseen retrieved items in beam order and their scores."""

    items: np.ndarray  # (B, n) dense item indices, best first; -1 where the beam held fewer
    retrieval: np.ndarray  # (B, n) summed code log-probs
    valid: np.ndarray  # (B, n) bool: a real item the request has not seen
    pool_ranking: np.ndarray | None  # (B, pool_k) P(<pos>) of items[:, :pool_k]; None when not asked for
    candidate_retrieval: np.ndarray  # (B, C) log P(item) of the given candidates (C may be 0)
    candidate_ranking: np.ndarray  # (B, C) their P(<pos>)
    pool_k: int  # the first pool_k retrieved items are the pool that re-ranking orders
    extra_items: np.ndarray | None = None  # (B, m) lexical candidates (dense indices, -1 = none); None: not asked
    extra_retrieval: np.ndarray | None = None  # (B, m) their log P(item), teacher-forced over their codes
    extra_ranking: np.ndarray | None = None  # (B, m) their P(<pos>)

    def reranked_pool(
        self, weight: float, features: np.ndarray | None = None, lexical: LexicalWeights = NO_LEXICAL
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pool's items, fused scores and validity, best first by :func:`fuse_and_rerank`.

        ``features``: (B, n_items, 2) lexical features of the batch's queries
        (:meth:`~unigrec.inference.lexical.LexicalIndex.features`); with ``lexical`` active the pool is
        joined by ``extra_items`` and every candidate gains ``lexical.term`` of its features.
        """
        k = self.pool_k
        pool = self.items[:, :k], self.retrieval[:, :k], self.pool_ranking, self.valid[:, :k]
        if not lexical.active:
            return fuse_and_rerank(*pool, weight)
        if features is None or self.extra_items is None or self.extra_retrieval is None:
            raise ValueError(f"lexical weights {lexical} need the lexical features and candidates of the batch")
        extra = self.extra_items, self.extra_retrieval, self.extra_ranking, self.extra_items >= 0
        items, retrieval, ranking, valid = join_candidates(pool, extra)
        taken = np.clip(items, 0, None)[:, :, None]
        of_items = np.take_along_axis(np.asarray(features, dtype=np.float64), taken, axis=1)
        return fuse_and_rerank(items, retrieval, ranking, valid, weight, of_items, lexical)


@torch.no_grad()
def decode_batch(
    net: GenerativeTransformer,
    prompts: SequenceBatch,
    space: IdSpace,
    seen: torch.Tensor,
    beam_size: int,
    pool_k: int,
    candidates: torch.Tensor | None = None,
    rank_pool: bool = True,
    ranker: GenerativeTransformer | None = None,
    extra: torch.Tensor | None = None,
) -> DecodedBatch:
    """Retrieve with a beam of ``max(beam_size, pool_k)``, then score the first ``pool_k`` retrieved items
    (``rank_pool``) and any ``candidates`` (B, C) with the ranking head, in one pass over the prompts.

    ``extra`` (B, m): items that join the pool whether or not the beam found them (BM25's candidates of a
    search request; -1 = none); they get the same two scores as a given candidate list (log P(item) of
    their codes, teacher-forced, and P(<pos>)), so they fuse on the pool's scale.

    ``ranker``: a second network whose P(<pos>) replaces ``net``'s, i.e. the two-stage system the unified
    model is compared with; None = the one model does both jobs.
    """
    # one encoding of the prompts serves the beam search and the candidates' scores
    hidden, prefix = net.encode_batch(prompts)
    rank_with = None if ranker is None else (lambda scored: ranking_probs(ranker, prompts, space, scored)[1])
    return decode_encoded(net, hidden[:, -1], prefix, space, seen, beam_size, pool_k, candidates, rank_pool,
                          rank_with, extra)


@torch.no_grad()
def decode_encoded(
    net: GenerativeTransformer,
    last_hidden: torch.Tensor,
    prefix: PrefixCache,
    space: IdSpace,
    seen: torch.Tensor,
    beam_size: int,
    pool_k: int,
    candidates: torch.Tensor | None = None,
    rank_pool: bool = True,
    rank_with: Callable[[torch.Tensor], torch.Tensor] | None = None,
    extra: torch.Tensor | None = None,
) -> DecodedBatch:
    """:func:`decode_batch` after the prompts are encoded: ``last_hidden`` (B, d) and ``prefix`` are what
    ``net.encode`` gives for them, or what a server assembles from users' stored histories
    (:func:`~unigrec.inference.user_states.encode_after`). ``rank_with``: P(<pos>) of (B, C) items from
    another ranker (the two-stage system); None = ``net``'s own ranking head."""
    beam = max(beam_size, pool_k)
    beam_items, beam_scores = beam_search_encoded(net, last_hidden, prefix, space, beam, exclude=seen)
    items, scores, valid = unseen_first(beam_items, beam_scores, seen, beam)
    batch = items.shape[0]
    given = candidates if candidates is not None else torch.zeros((batch, 0), dtype=torch.long)
    given = given.to(items.device)
    n_given = given.shape[1]
    scored = torch.cat([given, items[:, :pool_k]], dim=1) if rank_pool else given
    n_extra = 0 if extra is None else extra.shape[1]
    if extra is not None:
        scored = torch.cat([scored, extra.to(items.device)], dim=1)
    logp = probs = torch.zeros(scored.shape, dtype=torch.float32)
    if scored.shape[1]:
        # ranking_probs / score_candidates on the encoding above (-1 entries scored as item 0, masked later)
        logp, logit = candidate_code_scores(net, last_hidden, prefix, scored.clamp(min=0), space)
        probs = torch.sigmoid(logit)
        if rank_with is not None:
            probs = rank_with(scored)
    end = scored.shape[1] - n_extra

    def as_numpy(t: torch.Tensor) -> np.ndarray:
        return t.cpu().numpy().astype(np.float64)

    return DecodedBatch(
        items=items.cpu().numpy(),
        retrieval=as_numpy(scores),
        valid=valid.cpu().numpy(),
        pool_ranking=as_numpy(probs[:, n_given:end]) if rank_pool else None,
        candidate_retrieval=as_numpy(logp[:, :n_given]),
        candidate_ranking=as_numpy(probs[:, :n_given]),
        pool_k=pool_k,
        extra_items=None if extra is None else extra.cpu().numpy(),
        extra_retrieval=None if extra is None else as_numpy(logp[:, end:]),
        extra_ranking=None if extra is None else as_numpy(probs[:, end:]),
    )


# ---------------------------------------------------------------------------------------- fuse, re-rank
def fused_scores(retrieval_logp: np.ndarray, positive_prob: np.ndarray | None, weight: float) -> np.ndarray:
    """The unified pipeline's re-ranking score: ``(1 - w) * log P(item | prompt) + w * log P(<pos>)``.

    The ranking head alone predicts "would like it" (rating >= threshold), not "comes next": re-ranking
    the retrieved pool by P(<pos>) alone hurt recommendation badly on ml-100k. Mixing both
    log-probabilities lets validation data decide how much the ranker may move the retrieval order;
    ``w = 0`` keeps it (and needs no ranking scores), ``w = 1`` is the ranker alone.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"fusion weight must lie in [0, 1], not {weight}")
    logp = np.asarray(retrieval_logp, dtype=np.float64)
    if weight == 0.0:  # avoid 0 * -inf where a padded entry has no retrieval score
        return logp
    if positive_prob is None:
        raise ValueError(f"fusion weight {weight} needs the ranking head's P(<pos>) of the pool")
    prob = np.clip(np.asarray(positive_prob, dtype=np.float64), np.finfo(np.float64).tiny, 1.0)
    if weight == 1.0:
        return np.log(prob)
    return (1.0 - weight) * logp + weight * np.log(prob)


def rerank_order(ranking_scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Column order putting each row's valid entries by ranking score, best first; invalid ones last.

    A stable sort keeps the retrieval order among equal ranking scores, so re-ranking by a constant
    score returns the retrieval list unchanged.
    """
    keyed = np.where(valid, -np.asarray(ranking_scores, dtype=np.float64), np.inf)
    return np.argsort(keyed, axis=1, kind="stable")


def fuse_and_rerank(
    items: np.ndarray,
    retrieval: np.ndarray,
    ranking: np.ndarray | None,
    valid: np.ndarray,
    weight: float,
    features: np.ndarray | None = None,
    lexical: LexicalWeights = NO_LEXICAL,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``items`` with their fused scores and ``valid`` mask, re-ordered by the fused score (best first).

    ``features``: (B, n, 2) each item's BM25 score over its query's best and its term coverage (both in
    [0, 1]); ``lexical`` adds ``λ * BM25 + μ * coverage`` to the fused score, so λ and μ read as the
    log-probability a best lexical match is worth against no match, on every query alike (raw BM25 scales
    with the query's length and term rarity). λ = μ = 0 leaves the score, and so the list, exactly as
    without them.
    """
    fused = fused_scores(retrieval, ranking, weight)
    if lexical.active:
        if features is None:
            raise ValueError(f"lexical weights {lexical} need the candidates' lexical features")
        fused = fused + lexical.term(features)
    order = rerank_order(fused, valid)
    items, fused, valid = (np.take_along_axis(np.asarray(a), order, axis=1) for a in (items, fused, valid))
    return items, fused, valid


def join_candidates(
    pool: tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray],
    extra: tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """The union of two candidate sets, each ``(items, log P(item), P(<pos>) or None, valid)`` of shape
    (B, ·): ``extra`` appended to ``pool``, an extra item the pool already holds marked invalid (it
    keeps the pool's, beam-found, entry). Ranking scores are joined only when both sides have them."""
    items, retrieval, ranking, valid = pool
    more_items, more_retrieval, more_ranking, more_valid = extra
    held = ((more_items[:, :, None] == items[:, None, :]) & valid[:, None, :]).any(axis=2)
    joined_ranking = None if ranking is None or more_ranking is None else np.concatenate([ranking, more_ranking], axis=1)
    return (
        np.concatenate([items, more_items], axis=1),
        np.concatenate([retrieval, more_retrieval], axis=1),
        joined_ranking,
        np.concatenate([valid, more_valid & ~held], axis=1),
    )


# ---------------------------------------------------------------------------------------- validation
def target_ranks(retrieved: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target in its retrieved row, ``inf`` if absent. (B, k), (B,) -> (B,)."""
    hit = retrieved == targets[:, None]
    first = hit.float().argmax(dim=1).float()
    return torch.where(hit.any(dim=1), first, torch.full_like(first, float("inf")))


def rank_prompts(
    net: GenerativeTransformer,
    prompts: SequenceBatch,
    targets: torch.Tensor,
    is_search: torch.Tensor,
    spaces: Mapping[bool, IdSpace],
    beam_size: int,
    seen: torch.Tensor,
) -> torch.Tensor:
    """Retrieve for each prompt of a mixed batch in its stream's ID space, seen items left out, and
    return the target ranks (B,) (the training monitor's and validation report's retrieval figure)."""
    ranks = torch.full(targets.shape, float("inf"), device=targets.device)
    for search, space in spaces.items():
        rows = torch.nonzero(is_search == search).flatten()
        if rows.numel():
            prompts_of_stream = select_rows(prompts, rows)
            items, _, valid = retrieve_unseen(net, prompts_of_stream, space, seen[rows], beam_size, beam_size)
            ranks[rows] = target_ranks(torch.where(valid, items, -1), targets[rows])
    return ranks


def positive_probability(
    net: GenerativeTransformer,
    prompts: SequenceBatch,
    targets: torch.Tensor,
    is_search: torch.Tensor,
    spaces: Mapping[bool, IdSpace],
) -> torch.Tensor:
    """P(<pos>) of each prompt's own target item (the ranking score), (B,)."""
    probs = torch.zeros(targets.shape, device=targets.device)
    for search, space in spaces.items():
        rows = torch.nonzero(is_search == search).flatten()
        if rows.numel():
            _, p = ranking_probs(net, select_rows(prompts, rows), space, targets[rows, None])
            probs[rows] = p[:, 0]
    return probs

