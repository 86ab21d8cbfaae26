"""The adaptive task weighter: each rule moves weights the way its paper says, and the scale never drifts."""

from __future__ import annotations

import pytest
import torch

from unigrec.config import WeighterConfig
from unigrec.train.weighter import (
    TaskWeighter,
    dwa_weights,
    gradnorm_targets,
    gradnorm_weight_gradient,
    renormalise,
)


def _cfg(mode: str, **over) -> WeighterConfig:
    values = {"mode": mode, "tasks": "three", "temperature": 2.0, "update_every": 1, "baseline_updates": 0, "loss_smoothing": 0.0, "gradnorm_alpha": 1.5,
              "lr": 0.05, "min_weight": 0.05, "log_grad_norms": False}
    values.update(over)
    return WeighterConfig(**values)


def test_renormalise_sums_to_active_tasks_and_keeps_inactive_at_zero():
    active = torch.tensor([True, False, True])
    w = renormalise(torch.tensor([3.0, 5.0, 1.0]), active)
    assert w.sum().item() == pytest.approx(2.0)
    assert w[1] == 0 and w[0] / w[2] == pytest.approx(3.0)


def test_dwa_rule_gives_the_slower_task_more_weight():
    active = torch.tensor([True, True])
    w = dwa_weights(torch.tensor([0.5, 0.9]), temperature=2.0, active=active)
    assert w.sum().item() == pytest.approx(2.0)
    assert w[1] > w[0]
    # equal ratios -> equal weights
    assert torch.allclose(dwa_weights(torch.tensor([0.7, 0.7]), 2.0, active), torch.ones(2, dtype=torch.float32))


def test_dwa_weighter_on_a_toy_two_task_problem():
    """Task A's loss halves every step, task B's barely falls: B's weight must rise above A's."""
    weighter = TaskWeighter(_cfg("dwa"), [1.0, 1.0])
    for step in range(6):
        weighter.update(torch.tensor([1.0 * 0.5**step, 1.0 * 0.95**step]))
    w = weighter.weights
    assert w[1] > 1.0 > w[0]
    assert w.sum().item() == pytest.approx(2.0)


def test_gradnorm_targets_and_weight_gradient_point_the_right_way():
    active = torch.tensor([True, True])
    weights = torch.ones(2, dtype=torch.float64)
    raw = torch.tensor([1.0, 0.1], dtype=torch.float64)  # task 1's gradient is ten times smaller
    targets = gradnorm_targets(weights * raw, torch.ones(2, dtype=torch.float64), alpha=1.5, active=active)
    assert torch.allclose(targets, torch.full((2,), 0.55, dtype=torch.float64))
    grad = gradnorm_weight_gradient(weights, raw, targets, active)
    assert grad[0] > 0 > grad[1]  # descent lowers task 0's weight and raises task 1's


def test_gradnorm_weighter_on_a_toy_two_task_problem():
    """Shared linear layer, two regression heads; task 1's targets are 10x smaller, so its gradient is too.

    Trained with the weighter in the loop, task 1's weight must grow past task 0's, the sum stay 2.
    """
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y0, y1 = x @ torch.randn(8, 1), 0.1 * (x @ torch.randn(8, 1))
    shared = torch.nn.Linear(8, 8)
    heads = torch.nn.ModuleList([torch.nn.Linear(8, 1), torch.nn.Linear(8, 1)])
    opt = torch.optim.SGD([*shared.parameters(), *heads.parameters()], lr=0.01)
    weighter = TaskWeighter(_cfg("gradnorm", loss_smoothing=0.5), [1.0, 1.0])
    for _ in range(60):
        h = shared(x)
        losses = torch.stack([torch.nn.functional.mse_loss(heads[i](h), y) for i, y in enumerate((y0, y1))])
        norms = torch.stack([torch.autograd.grad(losses[i], shared.weight, retain_graph=True)[0].norm()
                             for i in range(2)])
        total = (weighter.weights.float() * losses).sum()
        opt.zero_grad()
        total.backward()
        opt.step()
        weighter.update(losses, norms)
        assert weighter.weights.sum().item() == pytest.approx(2.0)
    assert weighter.weights[1] > weighter.weights[0]
    assert weighter.weights.min() >= 0.05 - 1e-9


def test_gradnorm_raises_the_slower_task_when_gradients_are_equal():
    weighter = TaskWeighter(_cfg("gradnorm"), [1.0, 1.0])
    equal = torch.tensor([1.0, 1.0])
    weighter.update(torch.tensor([1.0, 1.0]), equal)
    for _ in range(10):
        weighter.update(torch.tensor([0.3, 0.9]), equal)  # task 1 has trained less (rate 0.9 vs 0.3)
    assert weighter.weights[1] > 1.0 > weighter.weights[0]


def test_uncertainty_weighs_tasks_inversely_to_their_loss():
    weighter = TaskWeighter(_cfg("uncertainty", lr=0.1), [1.0, 1.0, 1.0])
    for _ in range(200):
        weighter.update(torch.tensor([0.5, 2.0, 1.0]))
    w = weighter.weights
    assert w.sum().item() == pytest.approx(3.0)
    assert w[0] > w[2] > w[1]


@pytest.mark.parametrize("mode", ["fixed", "dwa", "gradnorm", "uncertainty"])
def test_an_inactive_task_stays_off_in_every_mode(mode):
    weighter = TaskWeighter(_cfg(mode), [1.0, 0.0, 2.0])
    for step in range(5):
        weighter.update(torch.tensor([1.0 / (step + 1), 0.0, 1.0]), torch.tensor([1.0, 0.0, 0.3]))
    assert weighter.weights[1] == 0
    assert weighter.weights.sum().item() == pytest.approx(2.0)


def test_fixed_mode_keeps_the_configured_weights():
    weighter = TaskWeighter(_cfg("fixed"), [1.0, 1.0, 1.0])
    weighter.update(torch.tensor([3.0, 0.1, 1.0]))
    assert torch.equal(weighter.weights, torch.ones(3, dtype=torch.float64))
    assert not weighter.needs_grad_norms


def test_bad_configurations_fail_loudly():
    with pytest.raises(ValueError):
        TaskWeighter(_cfg("fixed"), [0.0, 0.0])
    with pytest.raises(ValueError):
        TaskWeighter(_cfg("gradnorm"), [1.0, 1.0]).update(torch.ones(2))
