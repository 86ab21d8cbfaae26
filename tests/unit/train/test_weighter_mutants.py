"""The task weighter on exact values: what tests/unit/train/test_weighter.py left open, found by mutation
testing (tools/mutation.py; docs/experiments/2026-12-03-mutation-testing.md names the mutants each test kills)."""

from __future__ import annotations

import math

import pytest
import torch

from unigrec.config import WeighterConfig
from unigrec.train.weighter import (
    TaskWeighter,
    dwa_weights,
    gradnorm_targets,
    gradnorm_weight_gradient,
    renormalise,
    uncertainty_log_var_gradient,
)

BOTH = torch.tensor([True, True])


def _cfg(mode: str, **over) -> WeighterConfig:
    values = {"mode": mode, "tasks": "three", "temperature": 2.0, "update_every": 1, "baseline_updates": 0, "loss_smoothing": 0.0, "gradnorm_alpha": 1.5,
              "lr": 0.1, "min_weight": 0.05, "log_grad_norms": False}
    values.update(over)
    return WeighterConfig(**values)


def _f64(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_renormalise_scales_small_weights_up_and_all_zero_weights_to_ones():
    assert renormalise(_f64(0.2, 0.6), BOTH).tolist() == pytest.approx([0.5, 1.5])
    ones = renormalise(_f64(0.0, 0.0), BOTH)
    assert ones.dtype == torch.float64 and ones.tolist() == [1.0, 1.0]


def test_dwa_divides_the_ratios_by_the_temperature():
    w = dwa_weights(_f64(0.5, 0.9), temperature=2.0, active=BOTH)
    expected = 2 * torch.softmax(_f64(0.25, 0.45), dim=0)
    assert torch.allclose(w, expected, rtol=1e-12)


def test_gradnorm_targets_by_hand():
    active = torch.tensor([True, True, False])
    targets = gradnorm_targets(_f64(1.0, 3.0, 5.0), _f64(1.0, 2.0, 9.0), alpha=1.5, active=active)
    # mean norm over active tasks 2, mean rate 1.5: 2 * (r / 1.5) ** 1.5, 0 for the inactive task
    assert targets.tolist() == pytest.approx([2 * (1 / 1.5) ** 1.5, 2 * (2 / 1.5) ** 1.5, 0.0])


def test_gradnorm_targets_stay_finite_when_every_loss_fell_to_zero():
    # rates (0 + eps) / (L0 + eps) are ~1e-9: the guard must not turn the mean rate negative
    targets = gradnorm_targets(_f64(1.0, 1.0), _f64(1e-9, 1e-9), alpha=1.5, active=BOTH)
    assert torch.isfinite(targets).all()


def test_gradnorm_weight_gradient_is_sign_times_raw_norm():
    grad = gradnorm_weight_gradient(_f64(1.0, 1.0), _f64(2.0, 0.5), _f64(3.0, 0.1), BOTH)
    assert grad.tolist() == [-2.0, 0.5]


def test_uncertainty_gradient_by_hand():
    assert uncertainty_log_var_gradient(_f64(0.0, math.log(2.0)), _f64(3.0, 4.0)).tolist() == pytest.approx([-2.0, -1.0])


def test_configuration_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="^unknown weighter mode 'magic'$"):
        TaskWeighter(_cfg("magic"), [1.0])
    with pytest.raises(ValueError, match="^base task weights must be >= 0$"):
        TaskWeighter(_cfg("fixed"), [1.0, -1.0])
    with pytest.raises(ValueError, match=r"^at least one task needs a base weight > 0$"):
        TaskWeighter(_cfg("fixed"), [0.0, 0.0])
    with pytest.raises(ValueError, match="^gradnorm mode needs the per-task gradient norms$"):
        TaskWeighter(_cfg("gradnorm"), [1.0, 1.0]).update(_f64(1.0, 1.0))


def test_properties_and_rates_before_any_step():
    w = TaskWeighter(_cfg("gradnorm"), [1.0, 1.0, 0.0])
    assert w.n_tasks == 3 and w.needs_grad_norms
    assert not TaskWeighter(_cfg("dwa"), [1.0]).needs_grad_norms
    assert w.rates().tolist() == [1.0, 1.0, 1.0]


def test_dwa_updates_every_n_steps_from_the_loss_ratios():
    w = TaskWeighter(_cfg("dwa", update_every=2), [1.0, 1.0])
    assert w.update(_f64(2.0, 4.0)).tolist() == [1.0, 1.0]  # step 1: not an update step
    assert w.steps == 1
    weights = w.update(_f64(1.0, 3.0))  # step 2: ratios to the last update's losses, 0.5 and 0.75
    assert w.steps == 2
    assert torch.allclose(weights, 2 * torch.softmax(_f64(0.25, 0.375), dim=0), rtol=1e-6)
    w.update(_f64(1.0, 3.0))
    assert w.steps == 3


def test_an_absent_task_neither_gains_nor_loses_dwa_weight():
    w = TaskWeighter(_cfg("dwa"), [1.0, 1.0])
    w.update(_f64(0.0, 1.0))
    assert w.update(_f64(0.0, 1.0)).tolist() == pytest.approx([1.0, 1.0])  # ratios 1 and 1


def test_smoothed_losses_give_the_rates():
    w = TaskWeighter(_cfg("dwa", loss_smoothing=0.5), [1.0, 1.0, 1.0])
    w.update(_f64(2.0, 4.0, 0.0))
    w.update(_f64(4.0, 8.0, 0.0))
    # ema 0.5 * first + 0.5 * second = (3, 6, 0): rates 1.5, 1.5, and 1 for a task at 0 throughout
    assert w.rates().tolist() == pytest.approx([1.5, 1.5, 1.0])


def test_gradnorm_starts_from_the_base_weights_and_moves_by_the_learning_rate():
    w = TaskWeighter(_cfg("gradnorm", lr=0.1), [1.0, 1.0])
    # equal losses: targets are the mean weighted norm 2.5; task 0 (norm 1) is below it, task 1 (norm 4)
    # above, and Adam's first step moves each weight by lr against the sign of its gradient
    weights = w.update(_f64(1.0, 1.0), grad_norms=torch.tensor([1.0, 4.0]))
    assert weights.tolist() == pytest.approx([1.1, 0.9], rel=1e-6)
    assert weights.dtype == torch.float64 and not weights.requires_grad
    w = TaskWeighter(_cfg("gradnorm", lr=1e-6), [1.0, 3.0])
    assert w.update(_f64(1.0, 1.0), grad_norms=_f64(1.0, 1.0)).tolist() == pytest.approx([0.5, 1.5], rel=1e-4)


def test_uncertainty_starts_from_unit_variances_and_steps_by_the_learning_rate():
    w = TaskWeighter(_cfg("uncertainty", lr=1e-6), [1.0, 3.0])
    assert w.update(_f64(1.0, 1.0)).tolist() == pytest.approx([1.0, 1.0], rel=1e-4)  # not the base weights
    w = TaskWeighter(_cfg("uncertainty", lr=0.5), [1.0, 1.0])
    weights = w.update(torch.tensor([3.0, 0.5]))  # log-variance gradients -2 and 0.5: steps +0.5 and -0.5
    expected = renormalise(torch.exp(_f64(-0.5, 0.5)), BOTH)
    assert torch.allclose(weights, expected, rtol=1e-6)
    assert weights.dtype == torch.float64 and not weights.requires_grad


def test_weights_stay_float64_whatever_the_loss_dtype():
    w = TaskWeighter(_cfg("dwa"), [1.0, 1.0])
    w.update(torch.tensor([2.0, 4.0]))
    assert w.update(torch.tensor([1.0, 3.0])).dtype == torch.float64
