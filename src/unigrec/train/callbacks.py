"""Lightning callbacks of the training loop that belong to no model: throughput of the training batches, one
log line per epoch, and the weight average validation and checkpoints use (``train.optim.ema_epochs``)."""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L
import torch

from unigrec.averaging import ParameterAverage, ema_decay

log = logging.getLogger(__name__)


class ThroughputMeter(L.Callback):
    """Sequences per second over training batches (validation and checkpointing time excluded), and the
    fit's wall time. Both ride in the checkpoint, so a resumed run reports the whole run's figures."""

    def __init__(self) -> None:
        self.sequences = 0
        self.seconds = 0.0
        self._started: float | None = None
        self._earlier_wall = 0.0  # wall seconds of the parts before a resume, up to their checkpoint
        self._fit_started: float | None = None

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._fit_started = time.perf_counter()

    @property
    def wall_seconds(self) -> float:
        now = time.perf_counter() - self._fit_started if self._fit_started is not None else 0.0
        return self._earlier_wall + now

    def state_dict(self) -> dict[str, Any]:
        return {"sequences": self.sequences, "seconds": self.seconds, "wall_seconds": self.wall_seconds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.sequences = int(state_dict["sequences"])
        self.seconds = float(state_dict["seconds"])
        # restored after on_fit_start: this part's clock keeps running from its own start
        self._earlier_wall = float(state_dict["wall_seconds"])

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            # user sequences: the catalogue's one-event alignment searches (a dict batch) are not counted
            self.sequences += len(batch["users"]) if isinstance(batch, dict) else len(batch)
            self._started = None

    @property
    def sequences_per_second(self) -> float:
        return self.sequences / self.seconds if self.seconds > 0 else 0.0


class EpochLog(L.Callback):
    """One INFO line per training epoch: its mean training loss, the validation figures when validation ran,
    throughput and elapsed time.

    The progress bar is hidden outside a terminal (nohup, CI, a Prefect worker), and a CPU run of ML-1M
    spends hours in ``fit``; without these lines its log would be silent from the first epoch to the end.
    """

    def __init__(self, meter: ThroughputMeter) -> None:
        self.meter = meter
        self._validated: dict[str, float] | None = None

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # runs after the module's on_validation_epoch_end, so this epoch's figures are in callback_metrics
        if not trainer.sanity_checking:
            self._validated = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        validated, self._validated = self._validated, None
        if not trainer.is_global_zero:
            return
        loss = trainer.callback_metrics.get("train/loss_epoch")
        parts = [f"train loss {float(loss):.4f}" if loss is not None else "train loss -"]
        if validated:
            parts.append(" ".join(f"{k.removeprefix('val/')}={v:.4f}" for k, v in sorted(validated.items())))
        parts.append(f"{self.meter.sequences_per_second:.1f} seq/s, {self.meter.wall_seconds / 60:.1f} min so far")
        log.info("epoch %d/%d: %s", trainer.current_epoch + 1, trainer.max_epochs, "; ".join(parts))


# checkpoint key of the optimiser's own weights while ``state_dict`` holds the average (a resumed run
# continues from them, not from the average)
TRAINING_WEIGHTS = "ema_training_weights"


class WeightEMA(L.Callback):
    """An exponential moving average of the network's weights (``train.optim.ema_epochs``, see
    ``unigrec/averaging.py`` for why) swapped in for validation and written into checkpoints.

    Validation (hence the checkpoint choice and early stopping) scores the average; every checkpoint's
    ``state_dict`` is the average, so the best checkpoint, which the train stage loads, ships it; the
    optimiser's weights ride in the checkpoint under :data:`TRAINING_WEIGHTS` so a resumed run continues
    training them and its average.
    """

    def __init__(self, time_constant_epochs: float, attribute: str = "net") -> None:
        self.time_constant_epochs = time_constant_epochs
        self.attribute = attribute  # the module's network: only its parameters are averaged and checkpointed
        self.average: ParameterAverage | None = None
        self._updates = 0  # a resumed run's count, until the average exists
        self._restored: dict[str, torch.Tensor] | None = None  # a resumed run's training weights, until applied
        self._swapped = False

    def _params(self, module: L.LightningModule) -> dict[str, torch.Tensor]:
        return dict(getattr(module, self.attribute).named_parameters())

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # Here, not in setup: the weights are on their device and a resumed run's checkpoint is loaded
        # (into the module: the checkpoint's state_dict, i.e. the average).
        params = self._params(module)
        decay = ema_decay(self.time_constant_epochs, int(trainer.num_training_batches))
        self.average = ParameterAverage(params, decay, self._updates)
        if self._restored is not None:
            with torch.no_grad():
                for name, p in params.items():
                    p.copy_(self._restored[name].to(p.device))
            self._restored = None

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        if self.average is not None:
            self.average.update(self._params(module))

    def on_validation_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.average is not None:  # None in the sanity check, before training starts
            self.average.swap(self._params(module))
            self._swapped = True

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self._swapped and self.average is not None:
            self.average.swap(self._params(module))
            self._swapped = False

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # the network leaves fit holding the average, as a checkpoint of this epoch would
        if self.average is not None:
            self.average.copy_to(self._params(module))

    def on_save_checkpoint(self, trainer: L.Trainer, module: L.LightningModule, checkpoint: dict) -> None:
        if self.average is None:
            return
        prefix = f"{self.attribute}."
        state = checkpoint["state_dict"]
        if self._swapped:  # saved mid-validation: the module holds the average, the store the training weights
            checkpoint[TRAINING_WEIGHTS] = {name: held.clone() for name, held in self.average.values.items()}
            return
        checkpoint[TRAINING_WEIGHTS] = {name: state[prefix + name].clone() for name in self.average.values}
        for name, average in self.average.values.items():
            state[prefix + name] = average.clone()

    def on_load_checkpoint(self, trainer: L.Trainer, module: L.LightningModule, checkpoint: dict) -> None:
        # A checkpoint written without the average (the key absent) resumes with the average started afresh.
        self._restored = checkpoint.get(TRAINING_WEIGHTS)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.average.updates if self.average is not None else self._updates}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._updates = int(state_dict["updates"])
