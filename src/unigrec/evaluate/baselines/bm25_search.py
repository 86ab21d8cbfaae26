"""BM25 search baseline: lexical match of the request's query against item text (``bm25s``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import pandas as pd

from unigrec.config import BM25SearchConfig
from unigrec.data.negatives import BM25Negatives
from unigrec.evaluate.baselines.base import CatalogueScorer
from unigrec.evaluate.baselines.context import EvalContext


class BM25Search(CatalogueScorer):
    """Non-personalised: the score of an item is its BM25 relevance to the query, history is ignored."""

    name = "bm25"
    tasks = ("search",)

    def __init__(self, cfg: BM25SearchConfig, score_batch_size: int) -> None:
        super().__init__(score_batch_size)
        self.cfg = cfg
        self._bm25: BM25Negatives | None = None

    def fit(self, train_events: pd.DataFrame, items: pd.DataFrame) -> Self:
        """Index the catalogue's text; the training events are not needed by a lexical method."""
        self._set_catalogue(items)
        # The split stage's BM25 index (same package, same tokenisation), so the search baseline and
        # the hard negatives of the 1+99 search lists see identical term statistics.
        self._bm25 = BM25Negatives(
            list(self.item_ids), items["text"].astype(str).tolist(), self.cfg.k1, self.cfg.b
        )
        return self

    def _score_batch(self, contexts: Sequence[EvalContext]) -> np.ndarray:
        if self._bm25 is None:
            raise RuntimeError("bm25: fit() did not finish; nothing to score with")
        out = np.zeros((len(contexts), len(self.item_ids)), dtype=np.float32)
        for row, query_tokens in enumerate(self._bm25.tokenize([c.query or "" for c in contexts])):
            out[row] = self._bm25.catalogue_scores(query_tokens)
        return out
