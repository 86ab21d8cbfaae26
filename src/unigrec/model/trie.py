"""Prefix trie over valid item IDs, as sparse (CSR) tensors so beam search can step a whole batch at once.

Node 0 is the root; nodes are numbered level by level. Every edge (parent, code) -> child is one entry of
``edge_keys`` (``parent * width + code``, sorted) and ``edge_child``; ``child_start[node]`` is where the
node's edges begin. ``leaf_item[node]`` is the item index a complete ID ends at (-1 for inner nodes);
``item_path[item, l]`` is the node an item's ID reaches after ``l + 1`` codes and ``leaf_count[node]`` how
many items lie under a node, so decoding can tell when every item below a prefix is excluded.
Storage is O(n_items * depth), independent of the codebook width: the former dense (n_nodes, width)
int64 table needed 74.5 GiB for 100k atomic items (width 100k) and 3.2 GiB per ID kind for 1M items with
256-code levels; this layout takes 3 MB and 51 MB there (BENCHMARKS.md, scale block), plus
``item_path`` and ``leaf_count`` (8 bytes per item and level, and per node).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch


@dataclasses.dataclass(frozen=True)
class PrefixTrie:
    edge_keys: torch.Tensor  # (n_edges,) int64, parent * width + code, ascending
    edge_child: torch.Tensor  # (n_edges,) int64
    child_start: torch.Tensor  # (n_nodes + 1,) int64: node v's edges are [child_start[v], child_start[v + 1])
    leaf_item: torch.Tensor  # (n_nodes,) int64
    item_path: torch.Tensor  # (n_items, depth) int64: node of each item's ID prefix of length l + 1
    leaf_count: torch.Tensor  # (n_nodes,) int64: items under each node (1 at a leaf)
    depth: int  # codes per ID
    width: int  # codes per level (the widest level)

    @property
    def n_nodes(self) -> int:
        return int(self.leaf_item.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory the trie's tensors take (what the scale benchmark reports)."""
        tensors = (self.edge_keys, self.edge_child, self.child_start, self.leaf_item, self.item_path,
                   self.leaf_count)
        return sum(t.numel() * t.element_size() for t in tensors)

    def to(self, device: torch.device | str) -> PrefixTrie:
        return PrefixTrie(self.edge_keys.to(device), self.edge_child.to(device), self.child_start.to(device),
                          self.leaf_item.to(device), self.item_path.to(device), self.leaf_count.to(device),
                          self.depth, self.width)

    def allowed(self, nodes: torch.Tensor) -> torch.Tensor:
        """(..., width) bool: codes that extend each node's prefix towards a real ID (none for -1).

        The mask is built once per distinct node and then indexed, so a batch whose prompts all sit at
        the root of a very wide level (atomic IDs) gathers the root's children once, not once per row.
        """
        distinct, inverse = torch.unique(nodes.reshape(-1), return_inverse=True)
        safe = distinct.clamp(min=0)
        first = self.child_start[safe]
        counts = torch.where(distinct >= 0, self.child_start[safe + 1] - first, torch.zeros_like(first))
        rows = torch.repeat_interleave(torch.arange(len(distinct), device=nodes.device), counts)
        run_start = torch.cumsum(counts, 0) - counts
        edges = torch.arange(int(counts.sum()), device=nodes.device) - run_start[rows] + first[rows]
        mask = torch.zeros(len(distinct), self.width, dtype=torch.bool, device=nodes.device)
        mask[rows, self.edge_keys[edges] % self.width] = True
        return mask[inverse].reshape(*nodes.shape, self.width)

    def step(self, nodes: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Child node of each (node, code); -1 where the move is illegal or the node already is -1."""
        illegal = (nodes < 0) | (codes < 0) | (codes >= self.width)
        if self.edge_keys.numel() == 0:
            return torch.full(torch.broadcast_shapes(nodes.shape, codes.shape), -1, dtype=torch.long,
                              device=nodes.device)
        keys = nodes.clamp(min=0) * self.width + codes.clamp(min=0, max=self.width - 1)
        pos = torch.searchsorted(self.edge_keys, keys).clamp(max=self.edge_keys.numel() - 1)
        found = (self.edge_keys[pos] == keys) & ~illegal
        return torch.where(found, self.edge_child[pos], torch.full_like(keys, -1))

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Item index of each complete ID in ``codes`` (..., depth); -1 for IDs that are not real."""
        nodes = torch.zeros(codes.shape[:-1], dtype=torch.long, device=codes.device)
        for level in range(self.depth):
            nodes = self.step(nodes, codes[..., level])
        return torch.where(nodes >= 0, self.leaf_item[nodes.clamp(min=0)], torch.full_like(nodes, -1))


def build_prefix_trie(codes: np.ndarray, width: int | None = None) -> PrefixTrie:
    """Trie over the rows of ``codes`` (n_items, depth); row i is the ID of item i.

    Duplicate IDs are refused: the identifiers stage guarantees one item per ID, and a trie that
    silently kept one of two items would make the other unreachable. Built without a Python loop over
    items: rows are sorted, and a row opens a new node at level l where its first l codes differ from
    the previous row's.
    """
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2 or codes.shape[1] == 0:
        raise ValueError("codes must be (n_items, depth) with depth >= 1")
    if (codes < 0).any():
        raise ValueError("codes must be non-negative")
    width = (int(codes.max()) + 1 if codes.size else 1) if width is None else int(width)
    if codes.size and codes.max() >= width:
        raise ValueError(f"code {int(codes.max())} does not fit width {width}")
    n, depth = codes.shape
    order = np.lexsort(codes.T[::-1])  # rows in lexicographic order of their codes
    ranked = codes[order]
    differs = np.ones((n, depth), dtype=bool)
    differs[1:] = ranked[1:] != ranked[:-1]
    opens = np.logical_or.accumulate(differs, axis=1)  # row starts a new prefix of length l + 1
    if n > 1 and not opens[1:, -1].all():
        dup = int(np.flatnonzero(~opens[1:, -1])[0]) + 1
        first, second = sorted((int(order[dup - 1]), int(order[dup])))
        raise ValueError(f"items {first} and {second} share the ID {codes[second].tolist()}")
    parent = np.zeros(n, dtype=np.int64)  # node of each row's prefix at the previous level (root first)
    next_id = 1
    keys, children = [], []
    item_path = np.empty((n, depth), dtype=np.int64)
    for level in range(depth):
        node = next_id - 1 + np.cumsum(opens[:, level])
        new = opens[:, level]
        keys.append(parent[new] * width + ranked[new, level])
        children.append(node[new])
        item_path[order, level] = node
        next_id += int(new.sum())
        parent = node
    edge_keys = np.concatenate(keys)
    edge_child = np.concatenate(children)
    sort = np.argsort(edge_keys, kind="stable")  # already sorted by construction; cheap insurance
    edge_keys, edge_child = edge_keys[sort], edge_child[sort]
    child_start = np.searchsorted(edge_keys, np.arange(next_id + 1, dtype=np.int64) * width)
    leaf_item = np.full(next_id, -1, dtype=np.int64)
    leaf_item[parent] = order
    leaf_count = np.bincount(item_path.ravel(), minlength=next_id).astype(np.int64)
    leaf_count[0] = n
    return PrefixTrie(torch.from_numpy(edge_keys), torch.from_numpy(edge_child),
                      torch.from_numpy(child_start.astype(np.int64)), torch.from_numpy(leaf_item),
                      torch.from_numpy(item_path), torch.from_numpy(leaf_count), depth=depth, width=width)
