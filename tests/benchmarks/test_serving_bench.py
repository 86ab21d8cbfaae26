"""The serving benchmark's training-FLOP count against a hand-computed case, and its batch reader."""

from __future__ import annotations

import types

import numpy as np
import pytest

from benchmarks.serving_bench import BatchShape, batch_shape, forward_flops, training_flops_per_sequence

# d=4, one layer, d_ff=8, V=10, q=6, two soft tokens per query
DIMS = types.SimpleNamespace(d_model=4, n_layers=1, d_ff=8, vocab_size=10, query_dim=6, n_query_tokens=2)
# two rows of 3 and 2 real tokens, left-padded to 3; 2 retrieval and 1 ranking target; 1 query vector
SHAPE = BatchShape(padded_length=3, lengths=(3, 2), retrieval_targets=2, ranking_targets=1, query_vectors=1)


def test_forward_flops_padded_counts_every_position_and_the_full_attention_matrix():
    # MACs: linears 6 tokens x (4*16 + 2*4*8 = 128) = 768; attention 2 matmuls x 4 x 18 pairs (2 rows x 3x3) = 144;
    # head 4 x (10*2 + 2*1) = 88; query projection 6*2*4 x 1 = 48 -> 1048 MACs = 2096 FLOPs
    assert forward_flops(DIMS, SHAPE, padded=True) == 2096


def test_forward_flops_real_counts_real_tokens_and_the_causal_triangle():
    # linears 5 x 128 = 640; attention 2 x 4 x (6 + 3) = 72; head 88; query 48 -> 848 MACs
    assert forward_flops(DIMS, SHAPE, padded=False) == 1696


def test_training_flops_are_three_forwards_per_row():
    assert training_flops_per_sequence(DIMS, [SHAPE, SHAPE], padded=True) == pytest.approx(2096 * 3 / 2)


def test_batch_shape_reads_a_collated_batch():
    from unigrec.model.batch import collate_sequences
    from unigrec.model.tokenizer import IGNORE, NO_GROUP, RANKING, RETRIEVAL_REC, TokenSequence

    def sequence(n: int, groups: list[int]) -> TokenSequence:
        none = np.full(n, -1, dtype=np.int64)
        return TokenSequence(
            np.arange(n, dtype=np.int64) + 1,
            np.full(n, IGNORE, dtype=np.int64),
            none,
            np.asarray(groups, dtype=np.int64),
            none,
            none,
        )

    batch = collate_sequences(
        [sequence(3, [RETRIEVAL_REC, RANKING, NO_GROUP]), sequence(2, [RETRIEVAL_REC, NO_GROUP])],
        np.zeros((1, 6), dtype=np.float32),
        2,
        0,
    )
    assert batch_shape(batch) == BatchShape(
        padded_length=3, lengths=(3, 2), retrieval_targets=2, ranking_targets=1, query_vectors=1
    )
