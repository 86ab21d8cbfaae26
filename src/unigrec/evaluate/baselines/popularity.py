"""Most-popular baseline: every user gets the items most often engaged in training, per stream."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import pandas as pd

from unigrec.evaluate.baselines.base import CatalogueScorer
from unigrec.evaluate.baselines.context import KINDS, EvalContext
from unigrec.evaluate.popularity import popularity_scores


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
