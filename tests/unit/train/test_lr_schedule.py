"""The learning-rate multiplier: linear warm-up, then constant or cosine decay."""

from __future__ import annotations

import itertools
import math

import pytest

from unigrec.config import OptimConfig
from unigrec.train.lightning_module import lr_factor


def _cfg(schedule: str, warmup: int = 10, floor: float = 0.1) -> OptimConfig:
    return OptimConfig(lr=1e-3, weight_decay=0.0, warmup_steps=warmup, schedule=schedule, min_lr_ratio=floor,
                       gradient_clip=0.0)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_warm_up_is_linear_for_both_schedules(schedule):
    cfg = _cfg(schedule)
    assert [lr_factor(s, cfg, 110) for s in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert lr_factor(9, cfg, 110) == pytest.approx(1.0)


def test_constant_holds_after_warm_up():
    cfg = _cfg("constant")
    assert {lr_factor(s, cfg, 110) for s in (10, 50, 109, 500)} == {1.0}


def test_cosine_falls_from_one_to_the_floor_through_the_midpoint():
    cfg = _cfg("cosine", floor=0.2)
    values = [lr_factor(s, cfg, 110) for s in range(10, 111)]
    assert values[0] == pytest.approx(1.0)
    assert values[50] == pytest.approx(0.2 + 0.8 * 0.5)  # halfway: cos(pi / 2) = 0
    assert values[-1] == pytest.approx(0.2)
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert lr_factor(10 + 25, cfg, 110) == pytest.approx(0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(10_000, cfg, 110) == pytest.approx(0.2)  # past the end: stays at the floor


def test_cosine_without_a_known_length_holds_the_rate():
    assert lr_factor(500, _cfg("cosine"), 0) == 1.0
