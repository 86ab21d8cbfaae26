"""Per-slice views of the held-out cases: cold vs warm users, popular vs long-tail target items.

Both are measured on the TRAIN split only, so a slice never depends on the events being evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

SLICE_NAMES = ("cold_users", "warm_users", "popular_items", "long_tail_items")


def train_counts(events: pd.DataFrame, column: str) -> pd.Series:
    """Number of TRAIN events (both streams) per value of ``column`` (user_id or item_id)."""
    train = events[events["split"] == "train"]
    return train[column].astype(str).value_counts()


def popularity_threshold(item_counts: pd.Series, catalogue: Sequence[str], quantile: float) -> float:
    """Train count at ``quantile`` over the whole catalogue (never-trained items count as 0)."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"popularity quantile must be in (0, 1), not {quantile}")
    counts = item_counts.reindex(pd.Index(catalogue, dtype=object), fill_value=0).to_numpy(np.float64)
    return float(np.quantile(counts, quantile)) if counts.size else 0.0


def slice_masks(
    users: Sequence[str],
    targets: Sequence[str],
    events: pd.DataFrame,
    catalogue: Sequence[str],
    cold_user_max_events: int,
    popular_item_quantile: float,
) -> dict[str, np.ndarray]:
    """Boolean mask per slice over the cases (one entry per ``users[i]``, ``targets[i]``).

    Cold: the user has at most ``cold_user_max_events`` train events. Popular: the target's train count
    is above the ``popular_item_quantile`` of the catalogue's train counts; the rest is the long tail.
    """
    user_counts = train_counts(events, "user_id")
    item_counts = train_counts(events, "item_id")
    history = user_counts.reindex(pd.Index(list(users), dtype=object), fill_value=0).to_numpy()
    popularity = item_counts.reindex(pd.Index(list(targets), dtype=object), fill_value=0).to_numpy()
    threshold = popularity_threshold(item_counts, catalogue, popular_item_quantile)
    cold = history <= cold_user_max_events
    popular = popularity > threshold
    return {"cold_users": cold, "warm_users": ~cold, "popular_items": popular, "long_tail_items": ~popular}
