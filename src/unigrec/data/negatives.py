"""Negative candidates for GenSAR's 1+99 protocol: popularity-sampled for recommendation, BM25 hard
negatives over item text for search. Seeded so every run draws the same lists."""

from __future__ import annotations

import numpy as np
import pandas as pd


def popularity_weights(counts: pd.Series, items: pd.Index, smoothing: float) -> np.ndarray:
    """Sampling probability per item ∝ (training count + smoothing); unseen items keep a small chance."""
    raw = counts.reindex(items, fill_value=0).to_numpy(dtype=np.float64) + smoothing
    return raw / raw.sum()


def sample_popularity_negatives(
    item_ids: np.ndarray,
    probs: np.ndarray,
    excluded: set[str],
    n: int,
    rng: np.random.Generator,
) -> list[str]:
    """Draw ``n`` distinct items by popularity, never one in ``excluded`` (the user's history + target).

    Raises when the catalogue minus ``excluded`` has fewer than ``n`` items: a silently short list
    would inflate HR for that user.
    """
    keep = ~np.isin(item_ids, list(excluded))
    pool, p = item_ids[keep], probs[keep]
    if len(pool) < n:
        raise ValueError(f"only {len(pool)} items left after excluding the user's history; need {n}")
    chosen = rng.choice(len(pool), size=n, replace=False, p=p / p.sum())
    return [str(x) for x in pool[chosen]]


class BM25Negatives:
    """BM25 index over item text (the maintained ``bm25s`` package) that serves hard negatives."""

    def __init__(self, item_ids: list[str], texts: list[str], k1: float, b: float) -> None:
        import bm25s

        self._bm25s = bm25s
        self.item_ids = np.asarray(item_ids, dtype=object)
        self.retriever = bm25s.BM25(k1=k1, b=b)
        corpus_tokens = bm25s.tokenize(texts, stopwords="en", show_progress=False)
        self.retriever.index(corpus_tokens, show_progress=False)

    def top(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices into the catalogue and scores of the top-``k`` items per query."""
        k = min(k, len(self.item_ids))
        # Plain string tokens: ids from a separate tokenize() call would not match the corpus vocabulary.
        tokens = self._bm25s.tokenize(queries, stopwords="en", return_ids=False, show_progress=False)
        docs, scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
        return np.asarray(docs), np.asarray(scores)

    def hard_negatives(
        self, queries: list[str], targets: list[str], n: int, pool: int, rng: np.random.Generator
    ) -> list[list[str]]:
        """For each query, the ``n`` best-scoring non-target items among the top ``pool``.

        Genre queries tie on many items; ties are broken by a seeded random key, not by catalogue order,
        so the negatives do not all come from the start of the item table.
        """
        docs, scores = self.top(queries, max(pool, n + 1))
        out: list[list[str]] = []
        for row_docs, row_scores, target in zip(docs, scores, targets, strict=True):
            ids = self.item_ids[row_docs]
            keep = (ids != target) & (row_scores > 0)
            ids, sc = ids[keep], row_scores[keep]
            order = np.lexsort((rng.random(len(ids)), -sc))
            chosen = [str(x) for x in ids[order][:n]]
            if len(chosen) < n:  # query matched too few items: top up with random non-target items
                rest = np.setdiff1d(self.item_ids, np.asarray(chosen + [target], dtype=object))
                extra = rng.choice(rest, size=n - len(chosen), replace=False)
                chosen.extend(str(x) for x in extra)
            out.append(chosen)
        return out
