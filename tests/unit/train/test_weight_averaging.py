"""The weight EMA (unigrec/averaging.py): its decay, and that validation, checkpoints and a resumed run see the
weights they should, replayed step by step beside a real Lightning fit on a toy regression."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch

from unigrec.averaging import ema_decay, ema_step_decay
from unigrec.train.callbacks import TRAINING_WEIGHTS, WeightEMA


def test_the_decay_forgets_to_one_over_e_after_the_time_constant():
    assert ema_decay(2.0, 50) ** 100 == pytest.approx(math.exp(-1))
    assert ema_decay(1.0, 1000) > ema_decay(1.0, 10)  # more steps an epoch: each step counts less
    with pytest.raises(ValueError, match="positive"):
        ema_decay(0.0, 10)


def test_the_bias_corrected_average_weighs_every_step_by_the_decay_alone():
    decay = ema_decay(1.0, 100)
    assert ema_step_decay(decay, 0) == 0.0  # the first update takes the weights whole
    steps = [ema_step_decay(decay, s) for s in range(3000)]
    assert steps == sorted(steps) and steps[-1] == pytest.approx(decay)
    # replayed: the average of a stream is its exponentially weighted mean, normalised, whatever came first
    xs = torch.randn(50)
    average = None
    for t, x in enumerate(xs):
        average = x.clone() if average is None else average + (1 - ema_step_decay(0.9, t)) * (x - average)
    weights = 0.9 ** torch.arange(49, -1, -1, dtype=torch.float32)
    assert average == pytest.approx(float((weights * xs).sum() / weights.sum()), abs=1e-5)


class Toy(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(3, 1)
        self.validated: list[torch.Tensor] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        return ((self.net(x) - y) ** 2).mean()

    def validation_step(self, batch, batch_idx):
        x, y = batch
        if batch_idx == 0:
            self.validated.append(self.net.weight.detach().clone())
        self.log("val", -((self.net(x) - y) ** 2).mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.net.parameters(), lr=0.2)


class Recorder(L.Callback):
    """The optimiser's weights at every batch's start and end."""

    def __init__(self) -> None:
        self.starts: list[torch.Tensor] = []
        self.ends: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.starts.append(module.net.weight.detach().clone())

    def on_train_batch_end(self, trainer, module, *args):
        self.ends.append(module.net.weight.detach().clone())


def _loader(n: int = 12) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3 * torch.randn(n, 1, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)


def _fit(tmp_path, epochs: int, ckpt_path=None):
    from lightning.pytorch.callbacks import ModelCheckpoint

    module, ema, recorder = Toy(), WeightEMA(time_constant_epochs=1.0), Recorder()
    last = ModelCheckpoint(dirpath=tmp_path, filename="last", monitor=None, save_top_k=1, every_n_epochs=1,
                           enable_version_counter=False)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[last, ema, recorder])
    trainer.fit(module, train_dataloaders=_loader(), val_dataloaders=_loader(), ckpt_path=ckpt_path,
                weights_only=False)
    return module, ema, recorder


def _replay(ends: list[torch.Tensor], decay: float, start: torch.Tensor | None = None, first: int = 0):
    average, averages = start, []
    for step, weights in enumerate(ends, start=first):
        w = 1.0 - ema_step_decay(decay, step)
        average = weights.clone() if average is None else average + w * (weights - average)
        averages.append(average)
    return averages


def test_validation_and_checkpoints_hold_the_average_and_training_continues_from_its_own_weights(tmp_path):
    module, ema, recorder = _fit(tmp_path, epochs=2)
    steps = 3  # 12 examples, batches of 4
    assert ema.average.decay == pytest.approx(ema_decay(1.0, steps))
    # the first update takes the weights whole: the initial ones count for nothing
    averages = _replay(recorder.ends, ema.average.decay, start=recorder.starts[0])
    assert len(module.validated) == 2
    for epoch, seen in enumerate(module.validated):
        assert torch.allclose(seen, averages[(epoch + 1) * steps - 1], atol=1e-6)
        assert not torch.allclose(seen, recorder.ends[(epoch + 1) * steps - 1])  # not the optimiser's weights
    # after validation the optimiser carries on from its own weights, not the average
    assert torch.equal(recorder.starts[steps], recorder.ends[steps - 1])

    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert torch.allclose(ckpt["state_dict"]["net.weight"], averages[-1], atol=1e-6)
    assert torch.equal(ckpt[TRAINING_WEIGHTS]["weight"], recorder.ends[-1])
    assert torch.allclose(module.net.weight, averages[-1], atol=1e-6)  # fit ends holding the average

    resumed, resumed_ema, resumed_recorder = _fit(tmp_path, epochs=3, ckpt_path=tmp_path / "last.ckpt")
    assert resumed_ema.average.updates == 3 * steps
    assert torch.equal(resumed_recorder.starts[0], recorder.ends[-1])  # training resumes from its own weights
    expected = _replay(resumed_recorder.ends, resumed_ema.average.decay, start=averages[-1], first=2 * steps)
    assert torch.allclose(resumed.validated[-1], expected[-1], atol=1e-6)  # and the average from the average
