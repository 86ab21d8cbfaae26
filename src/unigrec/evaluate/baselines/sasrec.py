"""SASRec baseline: the ID-based next-item model of :mod:`unigrec.sasrec`, trained here on the TRAIN split
(``baselines.sasrec``: the paper's sampled BCE or SASRec+'s full-catalogue softmax) and scoring the whole
catalogue from a context's history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import pandas as pd
import torch

from unigrec.config import SASRecConfig
from unigrec.evaluate.baselines.base import CatalogueScorer
from unigrec.evaluate.baselines.context import KINDS, EvalContext
from unigrec.sasrec.net import SASRecNet
from unigrec.sasrec.training import last_states, torch_device, train_sasrec, user_item_sequences


class SASRecBaseline(CatalogueScorer):
    name = "sasrec"
    tasks = KINDS  # ID-only: a search request is answered from the history, ignoring its query

    def __init__(self, cfg: SASRecConfig, score_batch_size: int) -> None:
        super().__init__(score_batch_size)
        self.cfg = cfg
        self.net: SASRecNet | None = None
        self.device = torch.device("cpu")

    def fit(self, train_events: pd.DataFrame, items: pd.DataFrame) -> Self:
        self.device = torch_device(self.cfg.accelerator, "baselines.sasrec.accelerator")
        self._set_catalogue(items)
        sequences = list(user_item_sequences(train_events, self._index).values())
        self.net = train_sasrec(sequences, len(self.item_ids), self.cfg, self.device)
        return self

    @torch.no_grad()
    def _score_batch(self, contexts: Sequence[EvalContext]) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("sasrec: fit() did not finish; nothing to score with")
        # History items outside the fitted catalogue carry no learnt embedding: they are skipped.
        histories = [
            [self._index[e.item_id] + 1 for e in c.history if e.item_id in self._index] for c in contexts
        ]
        states = last_states(self.net, histories, self.cfg.max_len, self.device)
        return self.net.catalogue_logits(states).cpu().numpy()
