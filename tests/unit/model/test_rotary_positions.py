"""train.model.positions: rotary (RoPE) attention, in one pass and through every cached-extension path."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from unigrec.model.transformer import GenerativeTransformer, RotaryPositions, TransformerDims

VOCAB = 60


def _net(positions: str = "rotary", seed: int = 0) -> GenerativeTransformer:
    torch.manual_seed(seed)
    dims = TransformerDims(vocab_size=VOCAB, max_positions=24, d_model=32, n_layers=2, n_heads=4, d_ff=64,
                           dropout=0.0, query_dim=8, n_query_tokens=2, pos_token=1, neg_token=2,
                           ranking_head=True, positions=positions)
    net = GenerativeTransformer(dims).eval()
    for p in net.parameters():  # spread-out weights: outputs that differ when positions are mixed up
        torch.nn.init.normal_(p, std=0.3)
    return net


def _one_pass(net: GenerativeTransformer, tokens: torch.Tensor) -> torch.Tensor:
    return net.encode(tokens, torch.ones_like(tokens, dtype=torch.bool))[0]


def test_a_query_key_score_depends_on_the_distance_alone() -> None:
    rotary = RotaryPositions(head_dim=8, max_positions=40)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(at_q: int, at_k: int) -> float:
        rq = rotary(q, torch.tensor([[at_q]]))
        rk = rotary(k, torch.tensor([[at_k]]))
        return float((rq * rk).sum())

    assert score(10, 7) == pytest.approx(score(33, 30), abs=1e-5)
    assert score(10, 7) != pytest.approx(score(10, 3), abs=1e-3)
    # a rotation: position 0 leaves the vector as it is, any position keeps its norm
    torch.testing.assert_close(rotary(q, torch.tensor([[0]])), q)
    assert float(rotary(q, torch.tensor([[17]])).norm()) == pytest.approx(float(q.norm()), rel=1e-5)


def test_rotary_has_no_position_table_and_sees_order() -> None:
    net = _net()
    assert net.position_embedding is None
    assert not any("position_embedding" in name for name, _ in net.named_parameters())
    forward, backward = torch.tensor([[5, 9, 14, 22]]), torch.tensor([[22, 14, 9, 5]])
    # the same tokens in another order: the last state must differ (attention alone is order-blind)
    assert not torch.allclose(_one_pass(net, forward)[0, -1], _one_pass(net, backward)[0, -1], atol=1e-3)


def test_one_continuation_extension_matches_one_pass() -> None:
    net = _net()
    tokens = torch.tensor([[5, 17, 42, 9, 11, 3], [7, 8, 20, 30, 40, 50]])
    full = _one_pass(net, tokens)
    _, cache = net.encode(tokens[:, :4], torch.ones(2, 4, dtype=torch.bool))
    tail, tail_cache = net.extend(tokens[:, 4:5], cache)
    torch.testing.assert_close(tail, full[:, 4:5], rtol=1e-4, atol=1e-5)
    tail2, _ = net.extend(tokens[:, 5:], cache, tail_cache)
    torch.testing.assert_close(tail2, full[:, 5:], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n_new", [1, 2])
def test_grouped_continuations_match_one_pass_each(n_new: int) -> None:
    """g continuations per prefix (candidate items: one token; beams: several) through the shared cache."""
    net = _net()
    prefix = torch.tensor([[5, 17, 42, 9]])
    continuations = torch.tensor([[11, 3], [30, 12], [44, 45]])[:, :n_new]
    _, cache = net.encode(prefix, torch.ones_like(prefix, dtype=torch.bool))
    tail, _ = net.extend(continuations, cache)
    for row, continuation in enumerate(continuations):
        full = _one_pass(net, torch.cat([prefix[0], continuation]).unsqueeze(0))
        torch.testing.assert_close(tail[row], full[0, 4:], rtol=1e-4, atol=1e-5)


def test_a_left_padded_prompt_reads_as_the_unpadded_one() -> None:
    net = _net()
    tokens = torch.tensor([[0, 0, 5, 17, 42]])
    valid = torch.tensor([[False, False, True, True, True]])
    padded, _ = net.encode(tokens, valid)
    torch.testing.assert_close(padded[0, -1], _one_pass(net, tokens[:, 2:])[0, -1], rtol=1e-4, atol=1e-5)


def test_cards_written_before_the_field_load_with_learned_positions() -> None:
    card_dims = {f.name: getattr(_net("learned").dims, f.name) for f in dataclasses.fields(TransformerDims)}
    del card_dims["positions"]
    dims = TransformerDims(**card_dims)
    assert dims.positions == "learned"
    assert GenerativeTransformer(dims).position_embedding is not None
    with pytest.raises(ValueError, match="positions"):
        GenerativeTransformer(dataclasses.replace(dims, positions="alibi"))
    with pytest.raises(ValueError, match="even head width"):
        RotaryPositions(head_dim=7, max_positions=8)
