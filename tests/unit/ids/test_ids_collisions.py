"""Sinkhorn balancing and the collision resolver on small hand-checkable cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support.ids_project import single_threaded_torch  # noqa: F401 (autouse fixture)

from unigrec.ids.collisions import (
    DedupExhausted,
    colliding_mask,
    collision_rate,
    dedup_tokens,
    free_dedup_tokens,
    group_ids,
    rebalance_last_level,
)
from unigrec.ids.sinkhorn import balanced_assign, sinkhorn_plan


def test_sinkhorn_plan_has_uniform_marginals():
    cost = torch.rand(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    plan = sinkhorn_plan(cost, epsilon=0.1, iters=200)
    assert torch.allclose(plan.sum(1), torch.full((5,), 1 / 5, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(plan.sum(0), torch.full((3,), 1 / 3, dtype=torch.float64), atol=1e-6)


def test_balanced_assign_spreads_items_that_all_prefer_one_code():
    # Three items all closest to code 0, but item 1 is second-closest to code 2, item 2 to code 1.
    cost = torch.tensor([[0.0, 1.0, 1.0, 5.0], [0.1, 3.0, 0.5, 5.0], [0.2, 0.4, 3.0, 5.0]])
    codes = balanced_assign(cost, epsilon=0.05, iters=100)
    assert sorted(codes.tolist()) == sorted(set(codes.tolist()))  # unique
    assert codes.tolist() == [0, 2, 1]  # each item gets the nearest code that is still free


def test_balanced_assign_caps_load_when_items_outnumber_codes():
    cost = torch.zeros(7, 3)
    cost[:, 1:] = 1.0  # everybody prefers code 0
    codes = balanced_assign(cost, epsilon=0.05, iters=100)
    assert np.bincount(codes.numpy(), minlength=3).max() <= 3  # ceil(7/3)


def test_balanced_assign_is_deterministic():
    cost = torch.rand(20, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(balanced_assign(cost, 0.05, 50), balanced_assign(cost, 0.05, 50))


def test_group_ids_and_collision_rate():
    codes = np.array([[1, 2], [0, 0], [1, 2], [3, 1]])
    assert group_ids(codes).tolist() == [0, 1, 0, 2]  # numbered by first appearance
    assert colliding_mask(codes).tolist() == [True, False, True, False]
    assert collision_rate(codes) == 0.5


def test_rebalance_only_touches_groups_with_a_collision():
    codes = np.array([[0, 1], [0, 1], [0, 1], [1, 0], [1, 2]])
    cost = np.array([
        [0.0, 0.1, 0.9, 0.8],
        [0.3, 0.0, 0.9, 0.8],
        [0.9, 0.0, 0.2, 0.8],
        [0.0, 0.5, 0.5, 0.5],  # unique IDs: must keep their codes even if another is cheaper
        [0.0, 0.5, 0.5, 0.5],
    ])
    out = rebalance_last_level(codes, cost, epsilon=0.05, iters=100, show_progress=False)
    assert out[3:].tolist() == [[1, 0], [1, 2]]
    assert out[:3, 0].tolist() == [0, 0, 0]  # the prefix never changes
    assert collision_rate(out) == 0.0
    assert out[:3, 1].tolist() == [0, 1, 2]


def test_dedup_tokens_count_within_identical_ids():
    codes = np.array([[1, 2], [1, 2], [0, 0], [1, 2], [0, 0]])
    tokens = dedup_tokens(codes)
    assert tokens.tolist() == [0, 1, 0, 2, 1]
    final = np.concatenate([codes, tokens[:, None]], axis=1)
    assert collision_rate(final) == 0.0


def test_free_dedup_tokens_avoid_existing_and_each_other():
    existing = np.array([[1, 2, 0], [1, 2, 1], [5, 5, 0]])
    new = np.array([[1, 2], [1, 2], [3, 3], [5, 5]])
    assert free_dedup_tokens(existing, new, dedup_size=4).tolist() == [2, 3, 0, 1]
    with pytest.raises(DedupExhausted, match="dedup_size"):
        free_dedup_tokens(existing, np.array([[1, 2], [1, 2], [1, 2]]), dedup_size=4)
