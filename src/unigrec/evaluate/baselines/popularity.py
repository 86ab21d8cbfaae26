"""Most-popular baseline: every user gets the items most often engaged in training, per stream."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Self, TypeVar

import numpy as np
import pandas as pd

from unigrec.evaluate.baselines.base import CatalogueScorer
from unigrec.evaluate.baselines.context import KINDS, EvalContext

K = TypeVar("K", bound=Hashable)


def popularity_scores(counts: Mapping[K, np.ndarray]) -> dict[K, np.ndarray]:
    """Per stream, each item's TRAIN count in that stream, ties broken by its count over all streams.

    The overall count, scaled below 1, only orders items whose stream counts are equal: an item often
    recommended but rarely searched still outranks a never-seen one in search. Shared by this baseline
    and the training's validation report, so "popularity" is one list wherever it is quoted.
    """
    total = sum(np.asarray(c, dtype=np.float64) for c in counts.values())
    tie_break = total / (total.max(initial=0.0) + 1.0)
    return {key: np.asarray(c, dtype=np.float64) + tie_break for key, c in counts.items()}


class PopularityBaseline(CatalogueScorer):
    """Score = training count of the item in the request's stream; ties broken by its count over both.

    Counting per stream matters: what people search for and what they are recommended differ, and the
    generative model's own popularity check (train quick-eval) counts the same way.
    """

    name = "popularity"
    tasks = KINDS

    def fit(self, train_events: pd.DataFrame, items: pd.DataFrame) -> Self:
        self._set_catalogue(items)
        counts = {}
        for kind in KINDS:
            ids = train_events.loc[train_events["kind"] == kind, "item_id"].astype(str)
            counts[kind] = ids.value_counts().reindex(self.item_ids, fill_value=0).to_numpy(np.float64)
        self._scores = popularity_scores(counts)
        return self

    def _score_batch(self, contexts: Sequence[EvalContext]) -> np.ndarray:
        return np.stack([self._scores[c.kind] for c in contexts])
