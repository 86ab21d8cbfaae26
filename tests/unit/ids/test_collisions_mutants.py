"""Collision handling: cases tests/unit/ids/test_ids_collisions.py left open, found by mutation testing
(tools/mutation.py; docs/experiments/2026-12-03-mutation-testing.md names the mutants each test kills)."""

from __future__ import annotations

import numpy as np
import pytest

from unigrec.ids.collisions import (
    DedupExhausted,
    collision_rate,
    dedup_tokens,
    free_dedup_tokens,
    group_ids,
    rebalance_last_level,
)


def test_no_items_no_collisions():
    assert collision_rate(np.zeros((0, 2), dtype=np.int64)) == 0.0


def test_zero_code_levels_put_every_item_in_one_group():
    # rebalance_last_level groups one-level IDs by their empty prefix
    groups = group_ids(np.zeros((3, 0), dtype=np.int64))
    assert groups.tolist() == [0, 0, 0] and groups.dtype == np.int64


def test_dedup_tokens_number_each_ids_items_in_row_order_on_a_large_catalogue():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 3, size=(300, 2))  # 9 distinct IDs, ~33 items each: a non-stable sort shuffles them
    tokens = dedup_tokens(codes)
    assert tokens.dtype == np.int64
    seen: dict[tuple[int, ...], int] = {}
    for row, token in zip(codes, tokens, strict=True):
        key = tuple(row.tolist())
        assert token == seen.get(key, 0)
        seen[key] = token + 1


def test_free_dedup_tokens_are_int64_and_exhaustion_says_what_to_do():
    tokens = free_dedup_tokens(np.zeros((0, 3), dtype=np.int64), np.array([[1, 2]]), dedup_size=2)
    assert tokens.dtype == np.int64 and tokens.tolist() == [0]
    with pytest.raises(DedupExhausted, match=r"raise identifiers.collisions.dedup_size and re-run the identifiers stage$"):
        free_dedup_tokens(np.array([[1, 2, 0], [1, 2, 1]]), np.array([[1, 2]]), dedup_size=2)


def test_rebalance_moves_the_last_level_of_deeper_ids_within_their_full_prefix():
    # three levels: items 0-2 share the prefix (0, 1) and collide; item 3 shares only the first code
    codes = np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 2, 0]])
    cost = np.array([[0.0, 0.1, 0.9], [0.0, 0.9, 0.1], [0.0, 0.5, 0.5], [0.0, 0.3, 0.3]])
    out = rebalance_last_level(codes, cost, epsilon=0.05, iters=100, show_progress=False)
    assert out[:, :2].tolist() == codes[:, :2].tolist()  # prefixes never change
    assert sorted(out[:3, 2].tolist()) == [0, 1, 2]  # the clash is resolved on the LAST level
    assert out[3].tolist() == [0, 2, 0]  # no clash: untouched
    assert collision_rate(out) == 0.0


def test_identical_items_of_a_clash_get_the_free_codes_in_row_order():
    # 200 items, two prefixes interleaved, all on one last code, all equally far from every codeword: the
    # Sinkhorn plan ties everywhere and balanced_assign breaks ties by member order, so the members must
    # be in row order (a non-stable sort of the prefixes would give the same items other IDs on another CPU)
    codes = np.zeros((200, 2), dtype=np.int64)
    codes[:, 0] = np.arange(200) % 2
    out = rebalance_last_level(codes, np.zeros((200, 100)), epsilon=0.05, iters=20, show_progress=False)
    assert out[0::2, 1].tolist() == list(range(100)) and out[1::2, 1].tolist() == list(range(100))
