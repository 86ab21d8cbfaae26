"""Dense search baseline: MiniLM sentence vectors of query and item text, exact inner-product ranking."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd

from unigrec.evaluate.baselines.base import CatalogueScorer
from unigrec.evaluate.baselines.context import EvalContext
from unigrec.text_encoder import embed_texts

log = logging.getLogger(__name__)


class DenseSearch(CatalogueScorer):
    """Non-personalised: cosine similarity of the query's and each item's L2-normalised MiniLM vector.

    Exact scoring of the whole catalogue is one matrix product — at tens of thousands of items it
    costs less than building an approximate index would save.
    """

    name = "dense"
    tasks = ("search",)

    def __init__(self, score_batch_size: int, encode_batch_size: int, cache_dir: Path | None) -> None:
        super().__init__(score_batch_size)
        self.encode_batch_size = encode_batch_size
        self.cache_dir = cache_dir
        self._item_vectors: np.ndarray | None = None
        self._query_vectors: dict[str, np.ndarray] = {}

    def fit(self, train_events: pd.DataFrame, items: pd.DataFrame) -> Self:
        """Embed the catalogue's text; the training events are not needed by a zero-shot encoder."""
        self._set_catalogue(items)
        self._item_vectors = embed_texts(
            items["text"].astype(str).tolist(),
            batch_size=self.encode_batch_size,
            cache_dir=self.cache_dir,
            show_progress=False,
        )
        return self

    def _score_batch(self, contexts: Sequence[EvalContext]) -> np.ndarray:
        if self._item_vectors is None:
            raise RuntimeError("dense: fit() did not finish; nothing to score with")
        queries = [c.query or "" for c in contexts]
        # Genre queries repeat a lot: encode each distinct query once per run.
        new = sorted({q for q in queries if q not in self._query_vectors})
        if new:
            vectors = embed_texts(
                new, batch_size=self.encode_batch_size, cache_dir=None, show_progress=False
            )
            self._query_vectors.update(zip(new, vectors))
        return np.stack([self._query_vectors[q] for q in queries]) @ self._item_vectors.T
