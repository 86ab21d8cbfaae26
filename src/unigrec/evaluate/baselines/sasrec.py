"""SASRec baseline: the ID-based next-item model of :mod:`unigrec.sasrec`, trained here on the TRAIN split
(``baselines.sasrec``: the paper's sampled BCE or SASRec+'s full-catalogue softmax) and scoring the whole
catalogue from a context's history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import pandas as pd
import torch

from unigrec.config import SASRecConfig
from unigrec.errors import UnigrecError
from unigrec.evaluate.baselines.base import CatalogueScorer
from unigrec.evaluate.baselines.context import KINDS, EvalContext, HeldOutCase
from unigrec.evaluate.metrics import ndcg_at_k
from unigrec.evaluate.protocols import list_ranks
from unigrec.sasrec.net import SASRecNet
from unigrec.sasrec.training import (
    TrainingRecord,
    catalogue_scores,
    torch_device,
    train_sasrec,
    user_item_sequences,
)


class SASRecBaseline(CatalogueScorer):
    name = "sasrec"
    tasks = KINDS  # ID-only: a search request is answered from the history, ignoring its query

    def __init__(self, cfg: SASRecConfig, score_batch_size: int) -> None:
        super().__init__(score_batch_size)
        self.cfg = cfg
        self.net: SASRecNet | None = None
        self.device = torch.device("cpu")
        self.validation: list[HeldOutCase] = []
        self.record: TrainingRecord | None = None

    def use_validation(self, cases: Sequence[HeldOutCase]) -> Self:
        """Recommendation cases among ``cases``: with ``patience`` set, each epoch's NDCG@monitor_k on them
        decides when training stops and which epoch's weights are kept."""
        self.validation = [c for c in cases if c.context.kind == "rec"]
        return self

    def fit(self, train_events: pd.DataFrame, items: pd.DataFrame) -> Self:
        self.device = torch_device(self.cfg.accelerator, "baselines.sasrec.accelerator")
        self._set_catalogue(items)
        sequences = list(user_item_sequences(train_events, self._index).values())
        monitor = None
        if self.cfg.patience is not None:
            if not self.validation:
                raise UnigrecError("baselines.sasrec.patience is set but there are no validation "
                                   "recommendation cases to stop on: set it to null")
            monitor = self._validation_ndcg
        self.net, self.record = train_sasrec(sequences, len(self.item_ids), self.cfg, self.device, monitor)
        return self

    def training(self) -> dict[str, Any] | None:
        """Epochs run and the epoch kept; with early stopping, that epoch's validation NDCG@monitor_k."""
        if self.record is None:
            return None
        out: dict[str, Any] = {"epochs": self.record.epochs_run, "best_epoch": self.record.best_epoch}
        if self.record.monitor:
            out[f"validation_ndcg@{self.cfg.monitor_k}"] = max(self.record.monitor)
        return out

    def _validation_ndcg(self, net: SASRecNet) -> float:
        """NDCG@monitor_k of ``net`` on the validation cases, by the evaluation's own full-catalogue rule."""
        self.net = net
        k = self.cfg.monitor_k
        lists = self.top_k([c.context for c in self.validation], k, exclude_history=True)
        return ndcg_at_k(list_ranks(lists, [c.target for c in self.validation]), k)

    def _score_batch(self, contexts: Sequence[EvalContext]) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("sasrec: fit() did not finish; nothing to score with")
        # History items outside the fitted catalogue carry no learnt embedding: they are skipped.
        histories = [
            [self._index[e.item_id] + 1 for e in c.history if e.item_id in self._index] for c in contexts
        ]
        return catalogue_scores(self.net, histories, self.cfg.max_len, self.device)
