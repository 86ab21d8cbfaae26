"""The generative model as an evaluated method: every protocol's model side over the held-out cases.

Decoding goes through :mod:`unigrec.inference.retrieval`, the path the served model takes too, so the
pipeline that is measured is the pipeline that is served.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np
import torch

from unigrec.inference.lexical import BM25_FEATURE, N_FEATURES, LexicalIndex, top_unseen
from unigrec.inference.prompts import PromptExample
from unigrec.inference.retrieval import (
    NO_LEXICAL,
    DecodeSettings,
    LexicalWeights,
    decode_batch,
    fuse_and_rerank,
    id_spaces,
    join_candidates,
    seen_mask,
    stream_batches,
)
from unigrec.logs import progress
from unigrec.model.batch import collate_sequences
from unigrec.model.card import LoadedModel
from unigrec.model.vocabulary import PAD

log = logging.getLogger(__name__)


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
    # the lexical side (search rows, when scored with a LexicalIndex; m = 0 otherwise)
    pool_lexical: np.ndarray  # (n, pipeline_k, 2) lexical features of each pool item (BM25, term coverage)
    extra_items: np.ndarray  # (n, m) item ids of BM25's best unseen items ("" = none)
    extra_retrieval: np.ndarray  # (n, m) their log P(item)
    extra_ranking: np.ndarray  # (n, m) their P(<pos>)
    extra_lexical: np.ndarray  # (n, m, 2) their lexical features

    def reranked(self, rows: np.ndarray, weight: float, lexical: LexicalWeights = NO_LEXICAL) -> list[list[str]]:
        """The pool of ``rows`` re-ordered by the fused score with ``weight`` (0 = retrieval order); with
        ``lexical`` active, joined by BM25's candidates and λ·BM25/max BM25 + μ·coverage added
        (:meth:`~unigrec.inference.retrieval.DecodedBatch.reranked_pool`, the served path)."""
        pool = self.pool_items[rows], self.pool_retrieval[rows], self.pool_ranking[rows], self.pool_valid[rows]
        if not lexical.active:
            items, _, valid = fuse_and_rerank(*pool, weight)
        else:
            extra_items = self.extra_items[rows]
            extra = extra_items, self.extra_retrieval[rows], self.extra_ranking[rows], extra_items != ""
            joined = join_candidates(pool, extra)
            features = np.concatenate([self.pool_lexical[rows], self.extra_lexical[rows]], axis=1)
            items, _, valid = fuse_and_rerank(*joined, weight, features, lexical)
        return [row[keep].tolist() for row, keep in zip(items, valid)]


def score_prompts(
    model: LoadedModel,
    examples: Sequence[PromptExample],
    candidates: np.ndarray,
    histories: Sequence[Sequence[int]],
    query_table: np.ndarray,
    settings: DecodeSettings,
    ranker: LoadedModel | None = None,
    lexical: LexicalIndex | None = None,
    queries: Sequence[str | None] | None = None,
) -> GenerativeScores:
    """Run every protocol's model side over ``examples`` (one prompt per case).

    ``candidates`` is (n, C) dense item indices (the 1+99 lists, target first; C may be 0); ``histories``
    the dense indices each case's history holds (dropped from the retrieved lists). One encoding per
    batch serves both the candidate list and the scoring of the retrieved pool.

    ``ranker``: a second model (same identifiers) whose P(<pos>) replaces the first one's, i.e. the
    two-stage system the unified model is compared with; None = the one model does both jobs.

    ``lexical`` and ``queries`` (one text per example): each search prompt's lexical features and its
    ``settings.lexical.candidates`` best unseen items by BM25, scored by the model too, so that
    :meth:`GenerativeScores.reranked` can fuse them with any λ and μ.
    """
    if ranker is not None and ranker.items.item_ids != model.items.item_ids:
        raise ValueError("the ranker was trained on different item identifiers than the retriever")
    if lexical is not None and (queries is None or len(queries) != len(examples) or settings.lexical is None):
        raise ValueError("lexical scoring needs one query per example and settings.lexical")
    n, c = candidates.shape
    k = settings.pipeline_k
    m = settings.lexical.candidates if lexical is not None and settings.lexical is not None else 0
    pool_lexical = np.zeros((n, k, N_FEATURES))
    extra_items = np.full((n, m), "", dtype=object)
    extra_retrieval = np.full((n, m), -np.inf)
    extra_ranking = np.zeros((n, m))
    extra_lexical = np.zeros((n, m, N_FEATURES))
    sampled_retrieval = np.zeros((n, c), dtype=np.float64)
    sampled_ranking = np.zeros((n, c), dtype=np.float64)
    retrieved: list[list[str]] = [[] for _ in range(n)]
    pool_items = np.full((n, k), "", dtype=object)
    pool_retrieval = np.full((n, k), -np.inf)
    pool_ranking = np.zeros((n, k))
    pool_valid = np.zeros((n, k), dtype=bool)
    item_ids = np.asarray(model.items.item_ids, dtype=object)
    pad = model.vocab.token(PAD)
    batches = stream_batches([e.is_search for e in examples], settings.batch_size)
    spaces = id_spaces(model.vocab, model.items)
    for is_search, rows in progress(batches, desc="generative model", unit="batch", leave=False):
        prompts = collate_sequences(
            [examples[i].prompt for i in rows], query_table, model.serialiser.n_query_tokens, pad
        )
        seen = seen_mask([histories[i] for i in rows], model.items.n_items)
        features = extra = None
        if m and is_search and lexical is not None and queries is not None:
            features = lexical.features([queries[i] or "" for i in rows])
            extra = top_unseen(features[..., BM25_FEATURE], seen.numpy(), m)
        decoded = decode_batch(
            model.net, prompts, spaces[is_search], seen, settings.beam_size, k,
            candidates=torch.as_tensor(candidates[rows], dtype=torch.long),
            ranker=ranker.net if ranker is not None else None,
            extra=None if extra is None else torch.as_tensor(extra),
        )
        sampled_retrieval[rows] = decoded.candidate_retrieval
        sampled_ranking[rows] = decoded.candidate_ranking
        pool = decoded.items[:, :k]
        pool_valid[rows] = decoded.valid[:, :k]
        pool_items[rows] = item_ids[np.clip(pool, 0, None)]
        pool_retrieval[rows] = decoded.retrieval[:, :k]
        pool_ranking[rows] = decoded.pool_ranking
        if features is not None and extra is not None:
            pool_lexical[rows] = np.take_along_axis(features, np.clip(pool, 0, None)[:, :, None], axis=1)
            extra_items[rows] = np.where(extra >= 0, item_ids[np.clip(extra, 0, None)], "")
            extra_retrieval[rows] = decoded.extra_retrieval
            extra_ranking[rows] = decoded.extra_ranking
            extra_lexical[rows] = np.take_along_axis(features, np.clip(extra, 0, None)[:, :, None], axis=1)
        for j, row in enumerate(rows):
            retrieved[row] = item_ids[decoded.items[j][decoded.valid[j]]].tolist()
    return GenerativeScores(
        sampled_retrieval, sampled_ranking, retrieved, pool_items, pool_retrieval, pool_ranking, pool_valid,
        pool_lexical, extra_items, extra_retrieval, extra_ranking, extra_lexical,
    )
