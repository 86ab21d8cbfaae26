"""Make every item's ID unique: Sinkhorn re-assignment of the last level, then a disambiguation token.

Codes are ``(n, L)`` integer arrays, one row per item. Two items collide when their rows are equal.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from unigrec.errors import UnigrecError
from unigrec.ids.sinkhorn import balanced_assign
from unigrec.logs import progress

log = logging.getLogger(__name__)


class DedupExhausted(UnigrecError):
    """More items share an ID prefix than the dedup level has tokens."""


def group_ids(codes: np.ndarray) -> np.ndarray:
    """Dense group number per row: rows with identical codes share a number (first-seen order)."""
    if codes.shape[1] == 0:
        return np.zeros(len(codes), dtype=np.int64)
    _, first, inverse = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    # np.unique numbers groups in sorted order; renumber by first appearance for stable output.
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.reshape(-1)]


def colliding_mask(codes: np.ndarray) -> np.ndarray:
    """True for every item whose full code tuple is shared with at least one other item."""
    groups = group_ids(codes)
    return np.bincount(groups)[groups] > 1


def collision_rate(codes: np.ndarray) -> float:
    """Share of items that are not uniquely identified by their codes."""
    return float(colliding_mask(codes).mean()) if len(codes) else 0.0


def rebalance_last_level(
    codes: np.ndarray, last_level_cost: np.ndarray, epsilon: float, iters: int, show_progress: bool = True
) -> np.ndarray:
    """Re-assign the last level within every prefix group that has a collision.

    A collision can only be fixed among items sharing the first ``L-1`` codes, so each such group is
    balanced over the last level's codebook by Sinkhorn, using the distances of the items' last-level
    residuals to the codewords as costs (items move to the nearest code that is free, not a random one).
    Groups without a collision keep their nearest codes.
    """
    out = codes.copy()
    prefix_groups = group_ids(codes[:, :-1])
    clashing_prefixes = np.unique(prefix_groups[colliding_mask(codes)])
    order = np.argsort(prefix_groups, kind="stable")
    bounds = np.searchsorted(prefix_groups[order], clashing_prefixes)
    ends = np.searchsorted(prefix_groups[order], clashing_prefixes, side="right")
    for start, end in progress(list(zip(bounds, ends)), show=show_progress, desc="sinkhorn re-assignment"):
        members = order[start:end]
        cost = torch.from_numpy(np.ascontiguousarray(last_level_cost[members]))
        out[members, -1] = balanced_assign(cost, epsilon, iters).numpy()
    return out


def dedup_tokens(codes: np.ndarray) -> np.ndarray:
    """0 for the first item of each distinct code tuple, 1 for the second, ... (row order)."""
    groups = group_ids(codes)
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    tokens = np.empty(len(codes), dtype=np.int64)
    tokens[order] = np.arange(len(order)) - run_start
    return tokens


def free_dedup_tokens(existing: np.ndarray, new_prefixes: np.ndarray, dedup_size: int) -> np.ndarray:
    """Smallest unused dedup token for each new prefix, given existing full IDs ``(m, L+1)``.

    New items are placed in row order, so two new items with the same prefix get different tokens.
    Raises :class:`DedupExhausted` when a prefix already holds ``dedup_size`` items: the model's
    vocabulary has no token left to tell another one apart.
    """
    taken: dict[tuple[int, ...], set[int]] = {}
    for row in existing:
        taken.setdefault(tuple(int(c) for c in row[:-1]), set()).add(int(row[-1]))
    tokens = np.empty(len(new_prefixes), dtype=np.int64)
    for i, prefix in enumerate(new_prefixes):
        key = tuple(int(c) for c in prefix)
        used = taken.setdefault(key, set())
        token = next((t for t in range(dedup_size) if t not in used), None)
        if token is None:
            raise DedupExhausted(
                f"ID prefix {key} already holds {dedup_size} items; raise identifiers.collisions.dedup_size "
                "and re-run the identifiers stage"
            )
        used.add(token)
        tokens[i] = token
    return tokens
