"""Per-slice views of the held-out cases: cold vs warm users, popular vs long-tail target items, targets
with no training event at all (cold items: only their text places them), and the search cases a memorised
table of training searches cannot answer.

Every slice is measured on the TRAIN split only, so a slice never depends on the events being evaluated
(nor on events held back from training for any other reason: only ``split == "train"`` counts).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from unigrec.evaluate.baselines.context import KINDS

TRAIN = "train"
# The search slices: the query string was never a training search; the target was never a training
# search target.
SEARCH_SLICE_NAMES = ("unseen_query", "target_never_searched")
# The target has no training event in either stream: a cold item, which a model can only place by its text
# (split.cold_items makes some on purpose). Reported for both streams.
COLD_ITEM_SLICE = "target_no_train_events"
SLICE_NAMES = ("cold_users", "warm_users", "popular_items", "long_tail_items", COLD_ITEM_SLICE, *SEARCH_SLICE_NAMES)
# The streams each slice is reported for: the search slices say nothing about a recommendation request.
SLICE_STREAMS: dict[str, tuple[str, ...]] = {
    name: ("search",) if name in SEARCH_SLICE_NAMES else KINDS for name in SLICE_NAMES
}


def train_counts(events: pd.DataFrame, column: str) -> pd.Series:
    """Number of TRAIN events (both streams) per value of ``column`` (user_id or item_id)."""
    train = events[events["split"] == TRAIN]
    return train[column].astype(str).value_counts()


def popularity_threshold(item_counts: pd.Series, catalogue: Sequence[str], quantile: float) -> float:
    """Train count at ``quantile`` over the whole catalogue (never-trained items count as 0)."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"popularity quantile must be in (0, 1), not {quantile}")
    counts = item_counts.reindex(pd.Index(catalogue, dtype=object), fill_value=0).to_numpy(np.float64)
    return float(np.quantile(counts, quantile)) if counts.size else 0.0


def search_slice_masks(
    queries: Sequence[str | None], targets: Sequence[str], events: pd.DataFrame
) -> dict[str, np.ndarray]:
    """Mask per search slice over the cases; a case without a query (a recommendation) is in none."""
    train = events[events["split"] == TRAIN]
    searches = train[train["kind"] == "search"]
    trained_queries = set(searches["query"].dropna().astype(str))
    searched = set(searches["item_id"].astype(str))
    is_search = np.array([q is not None for q in queries], dtype=bool)
    return {
        "unseen_query": is_search & np.array([q not in trained_queries for q in queries], dtype=bool),
        "target_never_searched": is_search & np.array([t not in searched for t in targets], dtype=bool),
    }


def slice_masks(
    users: Sequence[str],
    targets: Sequence[str],
    queries: Sequence[str | None],
    events: pd.DataFrame,
    catalogue: Sequence[str],
    cold_user_max_events: int,
    popular_item_quantile: float,
) -> dict[str, np.ndarray]:
    """Boolean mask per slice (:data:`SLICE_NAMES`) over the cases (one entry per ``users[i]``,
    ``targets[i]``, ``queries[i]``; the query is None for a recommendation case).

    Cold: the user has at most ``cold_user_max_events`` train events. Popular: the target's train count
    is above the ``popular_item_quantile`` of the catalogue's train counts; the rest is the long tail.
    Cold item: the target has no train event. The search slices: :func:`search_slice_masks`.
    """
    if not len(users) == len(targets) == len(queries):
        raise ValueError("one user, target and query (None for a recommendation) per case is needed")
    user_counts = train_counts(events, "user_id")
    item_counts = train_counts(events, "item_id")
    history = user_counts.reindex(pd.Index(list(users), dtype=object), fill_value=0).to_numpy()
    popularity = item_counts.reindex(pd.Index(list(targets), dtype=object), fill_value=0).to_numpy()
    threshold = popularity_threshold(item_counts, catalogue, popular_item_quantile)
    cold = history <= cold_user_max_events
    popular = popularity > threshold
    masks = {"cold_users": cold, "warm_users": ~cold, "popular_items": popular, "long_tail_items": ~popular,
             COLD_ITEM_SLICE: popularity == 0}
    masks.update(search_slice_masks(queries, targets, events))
    return masks
