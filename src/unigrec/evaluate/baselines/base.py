"""Common shape of every baseline: score the whole catalogue for a batch of contexts, then serve both
evaluation protocols from that one matrix (gather for 1+99 lists, sort for full-catalogue top-k)."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from unigrec.evaluate.baselines.context import EvalContext, HeldOutCase
from unigrec.logs import progress


class CatalogueScorer(abc.ABC):
    """A fitted method that gives every catalogue item a score (higher = better) for a context."""

    name: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]]  # context kinds the method can serve ("rec", "search")

    def __init__(self, score_batch_size: int) -> None:
        self.score_batch_size = score_batch_size
        self.item_ids: np.ndarray = np.empty(0, dtype=object)
        self._index: dict[str, int] = {}

    # ------------------------------------------------------------------ to implement
    @abc.abstractmethod
    def fit(self, train_events: pd.DataFrame, items: pd.DataFrame) -> Self:
        """Learn from the TRAIN events only; ``items`` (item_id, title, text) is the catalogue."""

    @abc.abstractmethod
    def _score_batch(self, contexts: Sequence[EvalContext]) -> np.ndarray:
        """(len(contexts), n_items) scores, columns in :attr:`item_ids` order."""

    def use_validation(self, cases: Sequence[HeldOutCase]) -> Self:
        """Hand the method the validation cases, before :meth:`fit`, to choose its epoch by (never test
        cases). Methods with nothing to choose ignore them."""
        del cases
        return self

    def training(self) -> dict[str, Any] | None:
        """How :meth:`fit` went, for a method that trains with a stopping rule (epochs run, the epoch kept and
        its validation figure), so a report can say how far the baseline was taken; None for the rest."""
        return None

    # ------------------------------------------------------------------ shared
    def _set_catalogue(self, items: pd.DataFrame) -> None:
        self.item_ids = items["item_id"].astype(str).to_numpy(dtype=object)
        self._index = {item: i for i, item in enumerate(self.item_ids)}
        if len(self._index) != len(self.item_ids):
            raise ValueError(f"{self.name}: item ids in the catalogue are not unique")

    def _batches(self, contexts: Sequence[EvalContext]) -> Iterator[tuple[slice, np.ndarray]]:
        """(rows, catalogue scores of those rows), one batch at a time, so memory stays bounded."""
        self._check(contexts)
        steps = range(0, len(contexts), self.score_batch_size)
        for start in progress(steps, show=len(steps) > 1, desc=f"{self.name} scoring", leave=False):
            rows = slice(start, start + self.score_batch_size)
            yield rows, self._score_batch(contexts[rows])

    def catalogue_scores(self, contexts: Sequence[EvalContext]) -> np.ndarray:
        """(len(contexts), n_items) scores of every catalogue item, columns in :attr:`item_ids` order."""
        parts = [full for _, full in self._batches(contexts)]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.item_ids)), dtype=np.float32)

    def score(
        self, contexts: Sequence[EvalContext], candidate_item_ids: Sequence[Sequence[str]]
    ) -> np.ndarray:
        """(len(contexts), n_candidates) scores of each context's own candidate list (1+99 protocol)."""
        if len(contexts) != len(candidate_item_ids):
            raise ValueError("one candidate list per context is needed")
        if len({len(c) for c in candidate_item_ids}) > 1:
            raise ValueError("candidate lists must all have the same length")
        columns = np.array([[self._column(i) for i in row] for row in candidate_item_ids], dtype=np.int64)
        parts = [np.take_along_axis(full, columns[rows], axis=1) for rows, full in self._batches(contexts)]
        return np.concatenate(parts) if parts else np.zeros((0, columns.shape[-1]), dtype=np.float32)

    def top_k(self, contexts: Sequence[EvalContext], k: int, exclude_history: bool = False) -> np.ndarray:
        """(len(contexts), k) item ids, best first, over the whole catalogue.

        ``exclude_history`` drops the items already in each context's history, the usual full-ranking
        rule for methods trained, like SASRec, with negatives drawn outside the user's own items (they
        never learn not to repeat one). It is a protocol choice: apply it to every compared method or
        to none. Ties keep catalogue order (stable sort), so a run is reproducible on any platform.
        """
        k = min(k, len(self.item_ids))
        parts = []
        for rows, full in self._batches(contexts):
            if exclude_history:
                for row, context in enumerate(contexts[rows]):
                    full[
                        row, [self._index[e.item_id] for e in context.history if e.item_id in self._index]
                    ] = -np.inf
            parts.append(self.item_ids[np.argsort(-full, axis=1, kind="stable")[:, :k]])
        return np.concatenate(parts) if parts else np.empty((0, k), dtype=object)

    def _column(self, item_id: str) -> int:
        try:
            return self._index[item_id]
        except KeyError:
            raise KeyError(
                f"{self.name}: item {item_id!r} is not in the catalogue it was fitted on"
            ) from None

    def _check(self, contexts: Sequence[EvalContext]) -> None:
        if not self._index:
            raise RuntimeError(f"{self.name}: call fit() before scoring")
        wrong = {c.kind for c in contexts} - set(self.tasks)
        if wrong:
            raise ValueError(f"{self.name} serves {'/'.join(self.tasks)} requests only, got {sorted(wrong)}")
