"""The evaluation protocols as pure functions: from scores or ranked lists to target ranks to metrics.

Every method (the generative model and each baseline) is graded by these same functions on the same
held-out cases, so a difference in a table is a difference between methods, never between code paths.

Rules applied to every method alike:
- 1+99 lists: the target's rank counts the candidates scoring *at least* as high as it (ties go against
  the target), so a method that gives everything the same score ranks last, not first.
- Full catalogue: items already in the request's history are dropped from every method's list before it
  is cut to k. In the MovieLens data a user never rates a movie twice, so a seen item can never be the
  held-out target: keeping them would only measure how often a method repeats the history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from unigrec.evaluate.metrics import auc, gauc, hr_at_k, logloss, mrr, ndcg_at_k, rank_of_target


def sampled_ranks(scores: np.ndarray, target_column: int = 0) -> np.ndarray:
    """0-based rank of each row's target among its candidate list; ties count against the target.

    ``scores`` is (n, C) with the target's own score in ``target_column``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError("scores must be (requests, candidates)")
    target = scores[:, [target_column]]
    others = np.delete(scores, target_column, axis=1)
    return (others >= target).sum(axis=1).astype(np.float64)


def list_ranks(ranked: Sequence[Sequence[str]], targets: Sequence[str]) -> np.ndarray:
    """0-based position of each target in its ranked list; ``inf`` when it is not there."""
    if len(ranked) != len(targets):
        raise ValueError("one ranked list per target is needed")
    return np.array([rank_of_target(np.asarray(row, dtype=object), t) for row, t in zip(ranked, targets)])


def drop_seen(ranked: Sequence[Sequence[str]], seen: Sequence[Iterable[str]], k: int) -> list[list[str]]:
    """Each list without the items in its request's history, cut to ``k`` (the full-catalogue rule)."""
    out = []
    for row, history in zip(ranked, seen, strict=True):
        history = set(history)
        out.append([item for item in row if item and item not in history][:k])
    return out


def retrieval_metrics(ranks: np.ndarray, hr_cutoffs: Sequence[int], ndcg_cutoffs: Sequence[int], with_mrr: bool) -> dict:
    """``{"hr@k": ..., "ndcg@k": ..., "mrr": ...}`` of one set of target ranks."""
    out = {f"hr@{k}": hr_at_k(ranks, k) for k in hr_cutoffs}
    out.update({f"ndcg@{k}": ndcg_at_k(ranks, k) for k in ndcg_cutoffs})
    if with_mrr:
        out["mrr"] = mrr(ranks)
    return out


def hit_rate_curve(ranks: np.ndarray, max_k: int) -> np.ndarray:
    """HR@1..max_k of one set of ranks (the curve of the plots)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if not ranks.size:
        return np.zeros(max_k)
    return np.array([float(np.mean(ranks < k)) for k in range(1, max_k + 1)])


def best_weight(quality_by_weight: Mapping[Any, float]) -> Any:
    """The fusion weight (or tuple of weights, compared in order) with the best validation quality; ties
    go to the smaller weight (less change to the retrieval order), and undefined (NaN) qualities never win."""
    if not quality_by_weight:
        raise ValueError("no fusion weights to choose from")
    scored = [(w, q) for w, q in quality_by_weight.items() if np.isfinite(q)]
    if not scored:
        return min(quality_by_weight)
    return min(scored, key=lambda wq: (-wq[1], wq[0]))[0]


def ranking_metrics(
    labels: np.ndarray, target_probs: np.ndarray, list_probs: np.ndarray
) -> dict[str, float | int]:
    """Ranking head quality on labelled test interactions.

    - ``auc`` / ``logloss``: P(<pos>) of each test interaction against its label (UniGRF's AUC).
    - ``gauc``: per-request AUC of P(<pos>) with the liked test item as the positive and its 99 sampled
      unseen items (the 1+99 list, ``list_probs`` column 0 = the target) as negatives, weighted by list
      size. Leave-one-out leaves one labelled test event per user, so a per-user AUC over test
      interactions alone is undefined; the sampled list is what gives each user a group.
    """
    labels = np.asarray(labels, dtype=np.int64)
    list_probs = np.asarray(list_probs, dtype=np.float64)
    liked = labels == 1
    n, c = list_probs.shape if list_probs.ndim == 2 else (0, 0)
    group_labels = np.zeros((n, c), dtype=np.int64)
    if n:
        group_labels[:, 0] = labels
    groups = np.repeat(np.arange(n), c)
    return {
        "n": int(labels.size),
        "positive_rate": float(labels.mean()) if labels.size else float("nan"),
        "auc": auc(labels, target_probs),
        "logloss": logloss(labels, target_probs),
        "gauc": gauc(groups[np.repeat(liked, c)], group_labels[liked].ravel(), list_probs[liked].ravel()),
        "gauc_groups": int(liked.sum()),
    }
