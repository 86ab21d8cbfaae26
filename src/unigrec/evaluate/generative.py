"""The generative model as an evaluated (and served) method: retrieve unseen items by constrained beam
search, re-rank them by a mix of their retrieval and ranking-head scores, and score fixed candidate lists.

Serving (``unigrec.model.serving``) calls the same :func:`retrieve_unseen` and :func:`ranking_probs`,
so the pipeline that is measured is the pipeline that is served.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np
import torch

from unigrec.evaluate.protocols import fused_scores, rerank
from unigrec.logs import progress
from unigrec.model.batch import SequenceBatch, collate_sequences
from unigrec.model.card import LoadedModel
from unigrec.model.decoding import IdSpace, beam_search, build_id_space, score_candidates
from unigrec.model.transformer import GenerativeTransformer
from unigrec.model.vocabulary import PAD
from unigrec.train.examples import PromptExample

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DecodeSettings:
    beam_size: int  # constrained beam width
    batch_size: int  # prompts decoded at once
    pipeline_k: int  # items retrieved before they are re-ranked
    # request kind ("rec", "search") -> w of the re-ranking score (1-w)*log P(item) + w*log P(<pos>),
    # chosen on validation data by the evaluate stage; a kind not named keeps the retrieval order
    fusion_weights: dict[str, float] = dataclasses.field(default_factory=dict)

    def weight(self, kind: str) -> float:
        return float(self.fusion_weights.get(kind, 0.0))


def id_space_of(model: LoadedModel, is_search: bool) -> IdSpace:
    """Search targets are decoded as semantic IDs, recommendation targets as collaborative IDs."""
    return build_id_space(model.vocab, model.items, model.serialiser.target_kind(is_search))


def seen_mask(histories: Sequence[Sequence[int]], n_items: int) -> torch.Tensor:
    """(B, n_items) bool: the dense item indices already in each request's history."""
    mask = torch.zeros(len(histories), n_items, dtype=torch.bool)
    for row, items in enumerate(histories):
        if len(items):
            mask[row, torch.as_tensor(list(items), dtype=torch.long)] = True
    return mask


@torch.no_grad()
def retrieve_unseen(
    net: GenerativeTransformer, prompts: SequenceBatch, space: IdSpace, seen: torch.Tensor, beam_size: int, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``k`` best items of a ``beam_size`` beam that are not in ``seen``: items (B, k) (-1 where the
    beam held fewer), their summed code log-probs, and a validity mask. Seen items are kept out of the
    beam itself (see :func:`beam_search`), so they never crowd unseen ones out of it."""
    items, scores = beam_search(net, prompts, space, beam_size, exclude=seen)
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
class GenerativeScores:
    """What the evaluation needs from the model, one row per held-out case (in the cases' order)."""

    sampled_retrieval: np.ndarray  # (n, C) summed code log-probs of each case's candidate list
    sampled_ranking: np.ndarray  # (n, C) P(<pos>) of the same candidates
    retrieved: list[list[str]]  # unseen items by beam score, best first (up to beam_size)
    pool_items: np.ndarray  # (n, pipeline_k) item ids of the first retrieved unseen items ("" = none)
    pool_retrieval: np.ndarray  # (n, pipeline_k) their summed code log-probs (beam order)
    pool_ranking: np.ndarray  # (n, pipeline_k) their P(<pos>)
    pool_valid: np.ndarray  # (n, pipeline_k) bool: a real, unseen item

    def reranked(self, rows: np.ndarray, weight: float) -> list[list[str]]:
        """The pool of ``rows`` re-ordered by the fused score with ``weight`` (0 = retrieval order)."""
        fused = fused_scores(self.pool_retrieval[rows], self.pool_ranking[rows], weight)
        items, valid = rerank(self.pool_items[rows], fused, self.pool_valid[rows])
        return [row[keep].tolist() for row, keep in zip(items, valid)]


def score_prompts(
    model: LoadedModel,
    examples: Sequence[PromptExample],
    candidates: np.ndarray,
    histories: Sequence[Sequence[int]],
    query_table: np.ndarray,
    settings: DecodeSettings,
    ranker: LoadedModel | None = None,
) -> GenerativeScores:
    """Run every protocol's model side over ``examples`` (one prompt per case).

    ``candidates`` is (n, C) dense item indices (the 1+99 lists, target first; C may be 0); ``histories``
    the dense indices each case's history holds (dropped from the retrieved lists). One encoding per
    batch serves both the candidate list and the scoring of the retrieved pool.

    ``ranker``: a second model (same identifiers) whose P(<pos>) replaces the first one's, i.e. the
    two-stage system the unified model is compared with; None = the one model does both jobs.
    """
    if ranker is not None and ranker.items.item_ids != model.items.item_ids:
        raise ValueError("the ranker was trained on different item identifiers than the retriever")
    n, c = candidates.shape
    k = settings.pipeline_k
    sampled_retrieval = np.zeros((n, c), dtype=np.float64)
    sampled_ranking = np.zeros((n, c), dtype=np.float64)
    retrieved: list[list[str]] = [[] for _ in range(n)]
    pool_items = np.full((n, k), "", dtype=object)
    pool_retrieval = np.full((n, k), -np.inf)
    pool_ranking = np.zeros((n, k))
    pool_valid = np.zeros((n, k), dtype=bool)
    item_ids = np.asarray(model.items.item_ids, dtype=object)
    pad = model.vocab.token(PAD)
    batches = []
    for is_search in (False, True):
        rows = [i for i, e in enumerate(examples) if e.is_search == is_search]
        batches += [(is_search, rows[s : s + settings.batch_size]) for s in range(0, len(rows), settings.batch_size)]
    spaces = {s: id_space_of(model, s) for s in (False, True)}
    for is_search, rows in progress(batches, desc="generative model", unit="batch", leave=False):
        space = spaces[is_search]
        prompts = collate_sequences(
            [examples[i].prompt for i in rows], query_table, model.serialiser.n_query_tokens, pad
        )
        seen = seen_mask([histories[i] for i in rows], model.items.n_items)
        beam = max(settings.beam_size, k)
        items, beam_scores, valid = retrieve_unseen(model.net, prompts, space, seen, beam, beam)
        pool = items[:, :k]
        both = torch.cat([torch.as_tensor(candidates[rows], dtype=torch.long), pool], dim=1)
        retrieval, probs = ranking_probs(model.net, prompts, space, both)
        if ranker is not None:
            _, probs = ranking_probs(ranker.net, prompts, space, both)
        sampled_retrieval[rows] = retrieval[:, :c].numpy()
        sampled_ranking[rows] = probs[:, :c].numpy()
        pool_valid[rows] = valid[:, :k].numpy()
        pool_items[rows] = item_ids[pool.clamp(min=0).numpy()]
        pool_retrieval[rows] = beam_scores[:, :k].numpy()
        pool_ranking[rows] = probs[:, c:].numpy()
        for j, row in enumerate(rows):
            retrieved[row] = item_ids[items[j][valid[j]].numpy()].tolist()
    return GenerativeScores(
        sampled_retrieval, sampled_ranking, retrieved, pool_items, pool_retrieval, pool_ranking, pool_valid
    )
