"""SASRec's network (Kang & McAuley, ICDM 2018): causal self-attention over a user's item sequence.

Plain torch, no training logic. Index 0 is padding; items are 1..n_items. Sequences are LEFT-padded so
the latest item is always the last position, whose hidden state predicts the next item.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SASRecNet(nn.Module):
    def __init__(self, n_items: int, max_len: int, hidden: int, n_blocks: int, n_heads: int, dropout: float):
        super().__init__()
        self.hidden = hidden
        self.item_embedding = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        self.position_embedding = nn.Embedding(max_len, hidden)
        self.dropout = nn.Dropout(dropout)
        # Pre-norm blocks with a ReLU point-wise feed-forward of the same width, as in the paper.
        block = nn.TransformerEncoderLayer(
            hidden, n_heads, dim_feedforward=hidden, dropout=dropout, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(block, n_blocks, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(hidden)
        # Embeddings with std 1/sqrt(hidden): scaled by sqrt(hidden) on input they enter at unit variance,
        # and dot products with the layer-normed states start as unit-variance logits (torch's N(0, 1)
        # default would start every logit at a magnitude of ~sqrt(hidden) and saturate the BCE).
        nn.init.normal_(self.item_embedding.weight, std=hidden**-0.5)
        nn.init.normal_(self.position_embedding.weight, std=hidden**-0.5)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        """(B, L) item indices -> (B, L, hidden) states; state t summarises items 0..t."""
        length = sequences.shape[1]
        positions = torch.arange(length, device=sequences.device)
        x = self.item_embedding(sequences) * math.sqrt(self.hidden) + self.position_embedding(positions)
        # Padding is zeroed rather than masked as keys: a left-padded row's first real item would
        # otherwise have no key left to attend to (an all-masked softmax gives NaN).
        real = (sequences != 0).unsqueeze(-1)
        x = self.dropout(x) * real
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=sequences.device)
        return self.final_norm(self.blocks(x, mask=causal, is_causal=True)) * real

    def item_logits(self, states: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Dot product of each state with the embedding of the item at the same position."""
        return (states * self.item_embedding(items)).sum(-1)

    def catalogue_logits(self, last_states: torch.Tensor) -> torch.Tensor:
        """(B, hidden) -> (B, n_items) scores of every real item (padding column dropped)."""
        return last_states @ self.item_embedding.weight[1:].T
