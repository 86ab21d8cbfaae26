"""Prefix trie over item IDs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unigrec.model.trie import build_prefix_trie

CODES = np.array([[0, 1, 0], [0, 1, 1], [0, 2, 0], [3, 0, 0]])


def test_lookup_finds_every_real_id_and_rejects_others():
    trie = build_prefix_trie(CODES, width=4)
    assert trie.lookup(torch.as_tensor(CODES)).tolist() == [0, 1, 2, 3]
    fake = torch.tensor([[0, 1, 2], [1, 0, 0], [3, 0, 1], [0, 3, 0]])
    assert trie.lookup(fake).tolist() == [-1, -1, -1, -1]


def test_allowed_children_follow_the_prefixes():
    trie = build_prefix_trie(CODES, width=4)
    root = torch.tensor([0])
    assert trie.allowed(root)[0].tolist() == [True, False, False, True]
    node_0 = trie.step(root, torch.tensor([0]))
    assert trie.allowed(node_0)[0].tolist() == [False, True, True, False]
    node_01 = trie.step(node_0, torch.tensor([1]))
    assert trie.allowed(node_01)[0].tolist() == [True, True, False, False]
    dead = trie.step(node_0, torch.tensor([3]))
    assert dead.item() == -1
    assert not trie.allowed(dead).any()
    assert trie.step(dead, torch.tensor([0])).item() == -1


def test_leaves_map_to_items_and_inner_nodes_to_none():
    trie = build_prefix_trie(CODES, width=4)
    node = torch.tensor([0])
    for code in CODES[2]:
        assert trie.leaf_item[node].item() == -1
        node = trie.step(node, torch.tensor([int(code)]))
    assert trie.leaf_item[node].item() == 2
    assert trie.n_nodes == 1 + 2 + 3 + 4  # root, 2 first codes, 3 two-code prefixes, 4 leaves


def test_duplicate_ids_and_bad_codes_are_refused():
    with pytest.raises(ValueError, match="share the ID"):
        build_prefix_trie(np.array([[0, 1], [0, 1]]))
    with pytest.raises(ValueError, match="does not fit"):
        build_prefix_trie(np.array([[0, 5]]), width=4)
    with pytest.raises(ValueError):
        build_prefix_trie(np.array([[0, -1]]))


def test_allowed_and_step_match_a_brute_force_trie_on_random_ids():
    rng = np.random.default_rng(0)
    codes = np.unique(rng.integers(0, 5, size=(300, 3)), axis=0)
    codes = codes[rng.permutation(len(codes))]
    trie = build_prefix_trie(codes, width=6)
    children: dict[tuple[int, ...], set[int]] = {}
    for row in codes.tolist():
        for level in range(3):
            children.setdefault(tuple(row[:level]), set()).add(row[level])
    assert trie.lookup(torch.as_tensor(codes)).tolist() == list(range(len(codes)))
    for prefix, kids in children.items():
        node = torch.tensor([0])
        for code in prefix:
            node = trie.step(node, torch.tensor([code]))
        mask = trie.allowed(node.expand(2))  # repeated nodes share one mask row internally
        assert mask.shape == (2, 6)
        assert set(torch.nonzero(mask[0]).flatten().tolist()) == kids and mask[1].equal(mask[0])


def test_wide_atomic_level_is_stored_sparsely():
    # 200k one-token IDs: a dense (n_nodes, width) table would be 200_001 x 200_000 int64 (~298 GiB).
    n = 200_000
    trie = build_prefix_trie(np.arange(n)[::-1, None].copy(), width=n)
    assert trie.nbytes < 64 * (n + 2)  # O(items), not O(items * width)
    assert trie.allowed(torch.zeros(4, dtype=torch.long)).all()
    leaves = trie.step(torch.zeros(3, dtype=torch.long), torch.tensor([0, 7, n - 1]))
    assert trie.leaf_item[leaves].tolist() == [n - 1, n - 8, 0]
    assert not trie.allowed(leaves).any()


def test_item_paths_and_leaf_counts_match_a_brute_force_trie():
    rng = np.random.default_rng(1)
    codes = np.unique(rng.integers(0, 4, size=(120, 3)), axis=0)
    codes = codes[rng.permutation(len(codes))]
    trie = build_prefix_trie(codes, width=4)
    below: dict[int, int] = {}
    for item, row in enumerate(codes.tolist()):
        node = torch.tensor([0])
        for level, code in enumerate(row):
            node = trie.step(node, torch.tensor([code]))
            assert trie.item_path[item, level].item() == node.item()
            below[node.item()] = below.get(node.item(), 0) + 1
    assert trie.leaf_count[0].item() == len(codes)
    assert {v: trie.leaf_count[v].item() for v in below} == below
    assert trie.leaf_count[trie.leaf_item >= 0].eq(1).all()
