"""Prefix trie: cases tests/unit/model/test_model_trie.py left open, found by mutation testing
(tools/mutation.py; docs/experiments/2026-12-03-mutation-testing.md names the mutants each test kills)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from unigrec.model.trie import build_prefix_trie

CODES = np.array([[0, 1, 0], [0, 1, 1], [0, 2, 0], [3, 0, 0]])


def test_layout_shapes_and_types_are_as_documented():
    trie = build_prefix_trie(CODES)
    assert trie.width == 4  # the largest code + 1 when no width is given
    assert trie.child_start.shape == (trie.n_nodes + 1,)
    for name in ("edge_keys", "edge_child", "child_start", "leaf_item", "item_path", "leaf_count"):
        assert getattr(trie, name).dtype == torch.int64, name
    assert trie.leaf_count[0].item() == 4 and trie.leaf_count[trie.item_path[:, -1]].tolist() == [1, 1, 1, 1]


def test_an_empty_catalogue_gives_a_trie_that_finds_nothing():
    trie = build_prefix_trie(np.zeros((0, 2), dtype=np.int64))
    assert trie.width == 1 and trie.n_nodes == 1
    moved = trie.step(torch.zeros(2, 1, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))
    assert moved.shape == (2, 3) and moved.dtype == torch.long
    assert moved.tolist() == [[-1, -1, -1], [-1, -1, -1]]
    assert trie.lookup(torch.zeros(2, 2, dtype=torch.long)).tolist() == [-1, -1]


def test_codes_outside_the_width_never_step_to_a_child():
    trie = build_prefix_trie(CODES, width=4)
    root = torch.zeros(3, dtype=torch.long)
    # code -1 would be clamped onto code 0 and code 4 onto code 3: both are real edges of the root
    assert trie.step(root, torch.tensor([-1, 4, 5])).tolist() == [-1, -1, -1]


def test_bad_codes_are_refused_with_their_reason():
    with pytest.raises(ValueError, match=r"^codes must be \(n_items, depth\) with depth >= 1$"):
        build_prefix_trie(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"^codes must be \(n_items, depth\) with depth >= 1$"):
        build_prefix_trie(np.zeros((3, 0), dtype=np.int64))
    with pytest.raises(ValueError, match="^codes must be non-negative$"):
        build_prefix_trie(np.array([[0, -1]]))
    with pytest.raises(ValueError, match="^code 3 does not fit width 3$"):
        build_prefix_trie(np.array([[0, 3]]), width=3)


def test_a_duplicate_id_names_both_items_and_the_id():
    # sorted: [0 0 0] (item 2), [0 0 1] (item 1: shares a 2-code prefix, not the ID), [1 1 0] twice (0, 3)
    codes = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0], [1, 1, 0]])
    with pytest.raises(ValueError, match=r"^items 0 and 3 share the ID \[1, 1, 0\]$"):
        build_prefix_trie(codes)


def test_moving_a_trie_keeps_every_field():
    trie = build_prefix_trie(CODES, width=5)
    moved = trie.to("cpu")
    for field in dataclasses.fields(trie):
        a, b = getattr(trie, field.name), getattr(moved, field.name)
        assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b, field.name
    assert moved.lookup(torch.as_tensor(CODES)).tolist() == [0, 1, 2, 3]


def test_nbytes_is_the_bytes_of_the_tries_tensors():
    trie = build_prefix_trie(np.array([[0, 1], [1, 0], [1, 1]]), width=2)
    tensors = (trie.edge_keys, trie.edge_child, trie.child_start, trie.leaf_item, trie.item_path, trie.leaf_count)
    assert trie.nbytes == sum(t.nbytes for t in tensors) > 0  # torch's own count of each tensor's bytes
