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

    def tokenize(self, queries: list[str]) -> list[list[str]]:
        """Query terms as plain strings: ids from a separate tokenize() call would not match the corpus vocabulary."""
        return [list(t) for t in self._bm25s.tokenize(queries, stopwords="en", return_ids=False, show_progress=False)]

    def catalogue_scores(self, query_tokens: list[str]) -> np.ndarray:
        """BM25 score of every catalogue item for one tokenised query, in catalogue order (zeros without terms)."""
        if not query_tokens:  # bm25s rejects an empty token list; no terms = no evidence
            return np.zeros(len(self.item_ids), dtype=np.float32)
        return np.asarray(self.retriever.get_scores(query_tokens))

    def hard_negatives(
        self, queries: list[str], targets: list[str], n: int, pool: int, rng: np.random.Generator
    ) -> list[list[str]]:
        """For each query, ``n`` non-target items drawn best score first from its top ``pool`` by BM25.

        Genre queries tie on many items, so which items the "top ``pool``" holds and their order are
        decided by ties. Both are settled here, not by bm25s's top-k: its argpartition/argsort order
        ties differently with numpy's CPU-specific (AVX2 vs AVX-512) sort kernels, which gave every
        search list of ml-100k different negatives on another machine. So the pool is every item
        scoring at least the ``pool``-th best score (a value, the same on any CPU), taken in catalogue
        order, and ties are broken by a seeded random key, so they neither depend on the CPU nor all
        come from the start of the item table.
        """
        target_index = {item: i for i, item in enumerate(self.item_ids)}
        pool = max(pool, n)
        out: list[list[str]] = []
        for query_tokens, target in zip(self.tokenize(queries), targets, strict=True):
            scores = self.catalogue_scores(query_tokens)
            eligible = scores > 0
            if target in target_index:
                eligible[target_index[target]] = False
            if eligible.sum() > pool:
                eligible &= scores >= np.partition(scores[eligible], -pool)[-pool]
            members = np.flatnonzero(eligible)
            order = np.lexsort((rng.random(len(members)), -scores[members]))
            chosen = [str(x) for x in self.item_ids[members[order][:n]]]
            if len(chosen) < n:  # query matched too few items: top up with random non-target items
                rest = np.setdiff1d(self.item_ids, np.asarray(chosen + [target], dtype=object))
                extra = rng.choice(rest, size=n - len(chosen), replace=False)
                chosen.extend(str(x) for x in extra)
            out.append(chosen)
        return out
