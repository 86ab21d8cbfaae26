"""Small pure metric functions shared by training's quick evaluation and the evaluation stage.

Retrieval metrics take the 0-based rank of each request's target in the returned list, with
``math.inf`` (or any value >= the list length) when the target was not retrieved at all: one number per
request keeps beam search, 1+99 candidate lists and baselines on the same code path.
"""

from __future__ import annotations

import numpy as np


def _ranks(ranks: np.ndarray | list[float]) -> np.ndarray:
    arr = np.asarray(ranks, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError("ranks must be one-dimensional (one target per request)")
    return arr


def hr_at_k(ranks: np.ndarray | list[float], k: int) -> float:
    """Hit rate: share of requests whose target is in the top ``k`` (rank < k)."""
    arr = _ranks(ranks)
    return float(np.mean(arr < k)) if arr.size else 0.0


def ndcg_at_k(ranks: np.ndarray | list[float], k: int) -> float:
    """NDCG@k with one relevant item per request: 1/log2(rank + 2) if rank < k, else 0."""
    arr = _ranks(ranks)
    if not arr.size:
        return 0.0
    hit = arr < k
    gains = np.zeros_like(arr)
    gains[hit] = 1.0 / np.log2(arr[hit] + 2.0)
    return float(gains.mean())


def mrr(ranks: np.ndarray | list[float]) -> float:
    """Mean reciprocal rank; a target that was not retrieved contributes 0."""
    arr = _ranks(ranks)
    return float(np.mean(1.0 / (arr + 1.0))) if arr.size else 0.0


def rank_of_target(ranked: np.ndarray | list, target: object) -> float:
    """0-based position of ``target`` in ``ranked``; ``inf`` when absent."""
    hits = np.flatnonzero(np.asarray(ranked) == target)
    return float(hits[0]) if hits.size else float("inf")


def auc(labels: np.ndarray | list[int], scores: np.ndarray | list[float]) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted as one half.

    Returns ``nan`` when only one class is present: AUC is undefined there, and a silent 0.5 would
    look like a (useless) measurement.
    """
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty_like(sorted_s)
    # Average ranks over ties (1-based), so tied positive/negative pairs count one half.
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    for start, count in zip(first, counts):
        ranks[start : start + count] = start + (count + 1) / 2.0
    pos_rank_sum = ranks[y[order]].sum()
    return float((pos_rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def gauc(groups: np.ndarray | list, labels: np.ndarray | list[int], scores: np.ndarray | list[float]) -> float:
    """Group AUC: per-group AUC weighted by group size, over groups holding both classes."""
    g = np.asarray(groups)
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    total, weight = 0.0, 0
    for key in np.unique(g):
        mask = g == key
        value = auc(y[mask], s[mask])
        if not np.isnan(value):
            total += value * int(mask.sum())
            weight += int(mask.sum())
    return total / weight if weight else float("nan")


def logloss(labels: np.ndarray | list[int], probs: np.ndarray | list[float], eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of predicted P(positive); ``eps`` keeps log finite at 0 and 1."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1.0 - eps)
    if not y.size:
        return float("nan")
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)))


# ------------------------------------------------------------------ relevance of a ranked list
# Graded judgments (data/relevance.py): 2 = fully relevant, 1 = partly, 0 = not. These metrics ask whether
# the LIST fits the query, whatever item the user engaged with: what a search user judges first.
FULLY_RELEVANT = 2


def precision_fully_relevant(list_grades: np.ndarray | list[int], k: int) -> float:
    """P@k: the share of the top ``k`` that is fully relevant. A list shorter than ``k`` counts its
    missing places as not relevant (a method that returns nothing does not score by returning little)."""
    grades = np.asarray(list_grades, dtype=np.int64)[:k]
    return float(np.sum(grades == FULLY_RELEVANT) / k)


def graded_ndcg_at_k(list_grades: np.ndarray | list[int], ideal_grades: np.ndarray | list[int], k: int) -> float:
    """NDCG@k with graded gains 2^grade - 1 (Järvelin & Kekäläinen; as in TREC): DCG of the list over
    the DCG of the best possible list, the ``ideal_grades`` of every item the method could have returned
    sorted best first. 0 when no such item is relevant at all (nothing to find: nothing missed either way,
    but an undefined 0/0 would drop the request)."""
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    gains = np.exp2(np.asarray(list_grades, dtype=np.float64)[:k]) - 1.0
    ideal = np.sort(np.asarray(ideal_grades, dtype=np.float64))[::-1][:k]
    best = float(np.sum((np.exp2(ideal) - 1.0) * discounts[: ideal.size]))
    if best <= 0.0:
        return 0.0
    return float(np.sum(gains * discounts[: gains.size]) / best)
