"""Training-loop measurements that belong to no model: throughput of the training batches only."""

from __future__ import annotations

import time
from typing import Any

import lightning as L


class ThroughputMeter(L.Callback):
    """Sequences per second over training batches (validation and checkpointing time excluded)."""

    def __init__(self) -> None:
        self.sequences = 0
        self.seconds = 0.0
        self._started: float | None = None

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self.sequences += len(batch)
            self._started = None

    @property
    def sequences_per_second(self) -> float:
        return self.sequences / self.seconds if self.seconds > 0 else 0.0
