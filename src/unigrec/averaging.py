"""An exponential moving average (EMA) of the network's weights, validated, checkpointed and shipped in place
of the weights the optimiser last left.

Why: on a small catalogue the per-epoch validation monitor swings by more than the gains being chosen between
(ml-100k: rec NDCG@10 0.093-0.108 from one epoch to the next at a constant lr), so the checkpoint it picks
is partly the luckiest epoch, and test pays for that luck. An average over the last epochs' steps is a
smoother model to pick from, at no extra forward or backward pass.

The math is two pure functions (:func:`ema_decay`, :func:`ema_step_decay`) and :class:`ParameterAverage`, plain
torch, which the unified model's Lightning callback (``train/callbacks.py``, :class:`WeightEMA`) and SASRec+'s own
loop (``sasrec/training.py``) both drive, so a baseline gets the same averaging the model gets (hence the ground
floor: both packages may import it). Only parameters are averaged: buffers are constants or a module's own
validation sums.
"""

from __future__ import annotations

import math

import torch


def ema_decay(time_constant_epochs: float, steps_per_epoch: int) -> float:
    """Per-step decay whose average forgets a weight to 1/e after ``time_constant_epochs`` epochs.

    Given in epochs, not as a raw decay, so one value means the same window of training on ml-100k's 74
    steps an epoch and ML-1M's thousands."""
    if time_constant_epochs <= 0:
        raise ValueError(f"the EMA time constant must be positive, got {time_constant_epochs} epochs")
    return math.exp(-1.0 / (time_constant_epochs * max(steps_per_epoch, 1)))


def ema_step_decay(decay: float, step: int) -> float:
    """The decay of update ``step`` (0-based), bias-corrected: the average is the zero-started EMA divided by
    ``1 - decay ** (step + 1)``, so the first update takes the weights whole and every later one weighs the
    steps by ``decay`` alone: the time constant holds from the start, the random initialisation counts for
    nothing (a (1 + t) / (10 + t) ramp instead would cap the window at ~t/9 steps for thousands of steps)."""
    return 1.0 - (1.0 - decay) / (1.0 - decay ** (step + 1))


class ParameterAverage:
    """The average of named parameters, kept on their device beside them.

    ``swap`` exchanges it with the live weights (validation scores the average, then training carries on
    from its own weights), ``copy_to`` leaves the average in them (the model that ships)."""

    def __init__(self, params: dict[str, torch.Tensor], decay: float, updates: int = 0) -> None:
        self.decay = decay
        self.updates = updates  # counts the warm-up of :func:`ema_step_decay` across a resumed run
        self.values = {name: p.detach().clone() for name, p in params.items()}

    @torch.no_grad()
    def update(self, params: dict[str, torch.Tensor]) -> None:
        weight = 1.0 - ema_step_decay(self.decay, self.updates)
        for name, p in params.items():
            self.values[name].lerp_(p.detach(), weight)
        self.updates += 1

    @torch.no_grad()
    def swap(self, params: dict[str, torch.Tensor]) -> None:
        for name, p in params.items():
            held = p.detach().clone()
            p.copy_(self.values[name])
            self.values[name].copy_(held)

    @torch.no_grad()
    def copy_to(self, params: dict[str, torch.Tensor]) -> None:
        for name, p in params.items():
            p.copy_(self.values[name])
