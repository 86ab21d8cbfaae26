"""Prefix trie over valid item IDs, as dense tensors so beam search can step a whole batch at once.

Node 0 is the root. ``next_node[node, code]`` is the child reached by emitting ``code`` (-1 when that code
would leave the set of real IDs) and ``leaf_item[node]`` is the item index a complete ID ends at (-1 for
inner nodes). A dense (n_nodes, width) table costs n_items * n_levels * width ints: a few MB for
catalogues of thousands of items; a catalogue of millions would want a sparse (CSR) layout instead.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch


@dataclasses.dataclass(frozen=True)
class PrefixTrie:
    next_node: torch.Tensor  # (n_nodes, width) int64
    leaf_item: torch.Tensor  # (n_nodes,) int64
    depth: int  # codes per ID

    @property
    def n_nodes(self) -> int:
        return int(self.next_node.shape[0])

    @property
    def width(self) -> int:
        return int(self.next_node.shape[1])

    def to(self, device: torch.device | str) -> PrefixTrie:
        return PrefixTrie(self.next_node.to(device), self.leaf_item.to(device), self.depth)

    def allowed(self, nodes: torch.Tensor) -> torch.Tensor:
        """(..., width) bool: codes that extend each node's prefix towards a real ID (none for -1)."""
        safe = nodes.clamp(min=0)
        return (self.next_node[safe] >= 0) & (nodes >= 0).unsqueeze(-1)

    def step(self, nodes: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Child node of each (node, code); -1 where the move is illegal or the node already is -1."""
        child = self.next_node[nodes.clamp(min=0), codes.clamp(min=0, max=self.width - 1)]
        illegal = (nodes < 0) | (codes < 0) | (codes >= self.width)
        return torch.where(illegal, torch.full_like(child, -1), child)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Item index of each complete ID in ``codes`` (..., depth); -1 for IDs that are not real."""
        nodes = torch.zeros(codes.shape[:-1], dtype=torch.long, device=codes.device)
        for level in range(self.depth):
            nodes = self.step(nodes, codes[..., level])
        return torch.where(nodes >= 0, self.leaf_item[nodes.clamp(min=0)], torch.full_like(nodes, -1))


def build_prefix_trie(codes: np.ndarray, width: int | None = None) -> PrefixTrie:
    """Trie over the rows of ``codes`` (n_items, depth); row i is the ID of item i.

    Duplicate IDs are refused: the identifiers stage guarantees one item per ID, and a trie that
    silently kept one of two items would make the other unreachable.
    """
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2 or codes.shape[1] == 0:
        raise ValueError("codes must be (n_items, depth) with depth >= 1")
    if (codes < 0).any():
        raise ValueError("codes must be non-negative")
    width = int(codes.max()) + 1 if width is None else int(width)
    if codes.size and codes.max() >= width:
        raise ValueError(f"code {int(codes.max())} does not fit width {width}")
    children: list[dict[int, int]] = [{}]
    leaf: dict[int, int] = {}
    for item, row in enumerate(codes.tolist()):
        node = 0
        for code in row:
            nxt = children[node].get(code)
            if nxt is None:
                nxt = len(children)
                children[node][code] = nxt
                children.append({})
            node = nxt
        if node in leaf:
            raise ValueError(f"items {leaf[node]} and {item} share the ID {row}")
        leaf[node] = item
    next_node = np.full((len(children), width), -1, dtype=np.int64)
    for node, kids in enumerate(children):
        for code, child in kids.items():
            next_node[node, code] = child
    leaf_item = np.full(len(children), -1, dtype=np.int64)
    for node, item in leaf.items():
        leaf_item[node] = item
    return PrefixTrie(torch.from_numpy(next_node), torch.from_numpy(leaf_item), depth=codes.shape[1])
