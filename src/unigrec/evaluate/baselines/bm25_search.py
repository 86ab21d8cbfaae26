"""BM25 search baselines: lexical match of the request's query against item text (``bm25s``).

``bm25`` reads the query's raw words, as BM25 is usually run. ``bm25_read`` first reads a typed query as
the served pipeline's lexical component does (``evaluate.lexical.normalise_queries``: catalogue spellings,
"90s" as 1990s, one-edit typos; :func:`~unigrec.data.relevance.lexical_words`), so the comparison with the
pipeline does not credit the model for a query reader BM25 could use just as well."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Self

import numpy as np
import pandas as pd

from unigrec.config import BM25SearchConfig, QueryReadingConfig
from unigrec.data.negatives import BM25Negatives
from unigrec.evaluate.baselines.base import CatalogueScorer
from unigrec.evaluate.baselines.context import EvalContext
from unigrec.inference.lexical import LexicalIndex, catalogue_index
from unigrec.inference.retrieval import LexicalSettings


class BM25Search(CatalogueScorer):
    """Non-personalised: the score of an item is its BM25 relevance to the query, history is ignored.

    ``reading``: read typed queries first (the ``bm25_read`` baseline); None: raw words (``bm25``)."""

    tasks = ("search",)

    def __init__(self, cfg: BM25SearchConfig, score_batch_size: int, reading: QueryReadingConfig | None = None) -> None:
        super().__init__(score_batch_size)
        self.cfg = cfg
        self.reading = reading
        self.name = "bm25" if reading is None else "bm25_read"
        self._bm25: BM25Negatives | None = None
        self._read_index: LexicalIndex | None = None

    def fit(self, train_events: pd.DataFrame, items: pd.DataFrame) -> Self:
        """Index the catalogue's text; the training events are not needed by a lexical method."""
        self._set_catalogue(items)
        if self.reading is not None:
            # the served pipeline's own index (same reader, same k1 / b): its scores are BM25 over the
            # query's best, which ranks items exactly as the raw scores do
            settings = LexicalSettings(0, self.cfg.k1, self.cfg.b, dataclasses.asdict(self.reading))
            self._read_index = catalogue_index(list(self.item_ids), items, settings)
            return self
        # The split stage's BM25 index (same package, same tokenisation), so the search baseline and
        # the hard negatives of the 1+99 search lists see identical term statistics.
        self._bm25 = BM25Negatives(
            list(self.item_ids), items["text"].astype(str).tolist(), self.cfg.k1, self.cfg.b
        )
        return self

    def _score_batch(self, contexts: Sequence[EvalContext]) -> np.ndarray:
        if self._read_index is not None:
            return self._read_index.scores([c.query or "" for c in contexts]).astype(np.float32)
        if self._bm25 is None:
            raise RuntimeError("bm25: fit() did not finish; nothing to score with")
        out = np.zeros((len(contexts), len(self.item_ids)), dtype=np.float32)
        for row, query_tokens in enumerate(self._bm25.tokenize([c.query or "" for c in contexts])):
            out[row] = self._bm25.catalogue_scores(query_tokens)
        return out
