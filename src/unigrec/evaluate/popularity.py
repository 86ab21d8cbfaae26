"""The popularity reference, scored one way wherever it is quoted: the evaluate stage's baseline and the
train stage's validation report both rank by :func:`popularity_scores` (kept out of ``baselines/`` so
training depends on this one function, not on every baseline)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)


def popularity_scores(counts: Mapping[K, np.ndarray]) -> dict[K, np.ndarray]:
    """Per stream, each item's TRAIN count in that stream, ties broken by its count over all streams.

    The overall count, scaled below 1, only orders items whose stream counts are equal: an item often
    recommended but rarely searched still outranks a never-seen one in search.
    """
    total = sum(np.asarray(c, dtype=np.float64) for c in counts.values())
    tie_break = total / (total.max(initial=0.0) + 1.0)
    return {key: np.asarray(c, dtype=np.float64) + tie_break for key, c in counts.items()}
