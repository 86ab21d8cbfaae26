"""Pad a list of token sequences into one tensor batch.

Prompts are left-padded: every sequence's last token sits at the same index (-1), which is where
retrieval reads the distribution of the target's first code, and decoding appends tokens to all rows in
lockstep. Training sequences are right-padded: every target is read where it is, and attention needs
no padding mask then (the transformer takes the faster plain-causal kernel).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from unigrec.model.tokenizer import IGNORE, NO_GROUP, TokenSequence


@dataclasses.dataclass
class SequenceBatch:
    tokens: torch.Tensor  # (B, T) int64
    valid: torch.Tensor  # (B, T) bool, False at padding
    targets: torch.Tensor  # (B, T) int64, IGNORE where nothing is predicted
    slots: torch.Tensor  # (B, T) int64
    groups: torch.Tensor  # (B, T) int64
    query_refs: torch.Tensor  # (B, T) int64 row of the flattened soft-token table, -1 elsewhere
    item_refs: torch.Tensor  # (B, T) int64 catalogue index at each event's last code, -1 elsewhere
    # (B, T) int64 action at each event's last code, -1 elsewhere (TokenSequence.actions): what the ranking
    # loss reads in training batches, and the past action the next token reads (train.model.past_action_input)
    actions: torch.Tensor
    query_vectors: torch.Tensor  # (Q, query_dim) float32, Q >= 1

    def to(self, device: torch.device | str) -> SequenceBatch:
        return SequenceBatch(**{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)})

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


def collate_sequences(
    sequences: Sequence[TokenSequence],
    query_table: np.ndarray,
    n_query_tokens: int,
    pad_token: int,
    pad_left: bool = True,
) -> SequenceBatch:
    """Pad ``sequences`` (left, or right for training); gather only the query vectors the batch uses."""
    n = len(sequences)
    t = max(len(s) for s in sequences)
    tokens = np.full((n, t), pad_token, dtype=np.int64)
    valid = np.zeros((n, t), dtype=bool)
    targets = np.full((n, t), IGNORE, dtype=np.int64)
    slots = np.full((n, t), -1, dtype=np.int64)
    groups = np.full((n, t), NO_GROUP, dtype=np.int64)
    qids = np.full((n, t), -1, dtype=np.int64)
    qparts = np.full((n, t), -1, dtype=np.int64)
    item_refs = np.full((n, t), -1, dtype=np.int64)
    actions = np.full((n, t), -1, dtype=np.int64)
    for row, seq in enumerate(sequences):
        at = slice(t - len(seq), t) if pad_left else slice(0, len(seq))
        tokens[row, at] = seq.tokens
        valid[row, at] = True
        targets[row, at] = seq.targets
        slots[row, at] = seq.slots
        groups[row, at] = seq.groups
        qids[row, at] = seq.query_ids
        qparts[row, at] = seq.query_parts
        item_refs[row, at] = seq.item_refs
        actions[row, at] = seq.actions
    used = np.unique(qids[qids >= 0])
    local = np.full(int(qids.max()) + 2 if used.size else 1, -1, dtype=np.int64)
    local[used] = np.arange(used.size)
    query_refs = np.where(qids >= 0, local[qids.clip(min=0)] * n_query_tokens + qparts, -1)
    # At least one row so the query projection always runs (see GenerativeTransformer._embed).
    vectors = query_table[used] if used.size else np.zeros((1, query_table.shape[1]), dtype=np.float32)
    return SequenceBatch(
        tokens=torch.from_numpy(tokens),
        valid=torch.from_numpy(valid),
        targets=torch.from_numpy(targets),
        slots=torch.from_numpy(slots),
        groups=torch.from_numpy(groups),
        query_refs=torch.from_numpy(query_refs),
        item_refs=torch.from_numpy(item_refs),
        actions=torch.from_numpy(actions),
        query_vectors=torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)),
    )
