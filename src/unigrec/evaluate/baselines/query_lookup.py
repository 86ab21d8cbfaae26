"""Query-lookup search baseline: answer a query with the items searched in training with exactly that string.

A probe for memorisation, not a method to serve: when one query string nearly names one item, looking
it up in the training searches scores well without understanding anything, and a learnt search model
that does no better than this has only learnt the table. On a query string never searched in training it
falls back to popularity, which is what the unseen-query slice then shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import pandas as pd

from unigrec.evaluate.baselines.context import EvalContext
from unigrec.evaluate.baselines.popularity import PopularityBaseline


class QueryLookup(PopularityBaseline):
    """Score = (training searches of the item with this exact query) · M + the item's search popularity.

    M is larger than any popularity score, so the looked-up items come first, by how often they were
    searched with the query, ties (and every other item) by popularity as the popularity baseline ranks
    search requests (search count, then count over both streams).
    """

    name = "query_lookup"
    tasks = ("search",)

    def __init__(self, score_batch_size: int) -> None:
        super().__init__(score_batch_size)
        self._popularity = np.empty(0, dtype=np.float64)
        self._scale = 1.0
        self._lookup: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # query -> (columns, counts)

    def fit(self, train_events: pd.DataFrame, items: pd.DataFrame) -> Self:
        """Count (query, item) pairs of the training searches; the caller passes TRAIN events only."""
        super().fit(train_events, items)
        self._popularity = self._scores["search"]
        self._scale = float(self._popularity.max(initial=0.0)) + 1.0
        searches = train_events[(train_events["kind"] == "search") & train_events["query"].notna()]
        searches = searches[searches["item_id"].astype(str).isin(self._index)]
        pairs = pd.DataFrame(
            {"query": searches["query"].astype(str), "item_id": searches["item_id"].astype(str)}
        ).value_counts()
        self._lookup = {}
        for query, part in pairs.groupby(level="query", sort=False):
            columns = np.array([self._index[i] for i in part.index.get_level_values("item_id")], dtype=np.int64)
            self._lookup[str(query)] = (columns, part.to_numpy(np.float64))
        return self

    def _score_batch(self, contexts: Sequence[EvalContext]) -> np.ndarray:
        out = np.tile(self._popularity, (len(contexts), 1))
        for row, context in enumerate(contexts):
            hit = self._lookup.get(context.query or "")
            if hit is not None:
                columns, counts = hit
                out[row, columns] += counts * self._scale
        return out
