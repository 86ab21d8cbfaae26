"""train.model.embedding_init: GPT-2's small embeddings, or the scaled ones SASRec (and Vaswani et al.) use."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from unigrec.model.transformer import GenerativeTransformer, TransformerDims

D_MODEL = 64


def _dims(embedding_init: str) -> TransformerDims:
    return TransformerDims(vocab_size=400, max_positions=32, d_model=D_MODEL, n_layers=2, n_heads=2, d_ff=64,
                           dropout=0.0, query_dim=8, n_query_tokens=2, pos_token=1, neg_token=2,
                           ranking_head=True, embedding_init=embedding_init)


def _net(embedding_init: str, seed: int = 0) -> GenerativeTransformer:
    torch.manual_seed(seed)
    return GenerativeTransformer(_dims(embedding_init)).eval()


@pytest.mark.parametrize(("embedding_init", "std"), [("gpt2", 0.02), ("scaled", D_MODEL**-0.5)])
def test_embedding_tables_start_at_their_scheme_s_scale(embedding_init: str, std: float) -> None:
    net = _net(embedding_init)
    for table in (net.token_embedding.weight, net.position_embedding.weight):
        assert table.std().item() == pytest.approx(std, rel=0.1)
    # the blocks keep GPT-2's init either way: only the embeddings change
    assert net.blocks[0].mlp[0].weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_scaled_tokens_enter_at_unit_variance_and_logits_at_unit_scale() -> None:
    net = _net("scaled")
    tokens = torch.arange(3, 400).view(1, -1)[:, :30]
    positions = torch.arange(30).view(1, -1)
    x = net._embed(tokens, positions, None, None)
    expected = net.token_embedding(tokens) * math.sqrt(D_MODEL) + net.position_embedding(positions)
    torch.testing.assert_close(x, expected)
    assert net.token_embedding(torch.arange(3, 400)).mul(math.sqrt(D_MODEL)).var().item() == pytest.approx(1.0, rel=0.1)
    hidden, _ = net.encode(tokens, torch.ones_like(tokens, dtype=torch.bool))
    # layer-normed states against N(0, 1/d) rows: logits of unit variance, where GPT-2's start near 0.02 * 8
    assert net.token_logits(hidden).std().item() == pytest.approx(1.0, rel=0.25)
    assert _net("gpt2").token_logits(hidden).std().item() < 0.3


def test_scaled_queries_enter_at_the_items_unit_variance() -> None:
    # L2-normalised sentence vectors, as the query table holds them
    vectors = torch.nn.functional.normalize(torch.randn(200, 8), dim=-1)
    faint, matched = (_net(init).query_projection(vectors) for init in ("scaled", "scaled_queries"))
    assert matched.var().item() == pytest.approx(1.0, rel=0.2)
    assert faint.std().item() < 0.2, "under scaled a query starts far fainter than an item"
    torch.testing.assert_close(_net("scaled_queries").token_embedding.weight, _net("scaled").token_embedding.weight)


def test_scaled_cached_extension_matches_one_pass() -> None:
    """Decoding extends a cached prefix: it must read new tokens at the same scale as the prefix."""
    net = _net("scaled")
    tokens = torch.tensor([[5, 17, 42, 9, 11]])
    full, _ = net.encode(tokens, torch.ones_like(tokens, dtype=torch.bool))
    prefix_tokens = tokens[:, :3]
    _, cache = net.encode(prefix_tokens, torch.ones_like(prefix_tokens, dtype=torch.bool))
    tail, _ = net.extend(tokens[:, 3:], cache)
    torch.testing.assert_close(tail, full[:, 3:], rtol=1e-4, atol=1e-5)


def test_cards_written_before_the_field_load_as_gpt2_and_a_bad_name_is_refused() -> None:
    card_dims = {f.name: getattr(_dims("gpt2"), f.name) for f in dataclasses.fields(TransformerDims)}
    del card_dims["embedding_init"]
    assert TransformerDims(**card_dims).embedding_init == "gpt2"
    with pytest.raises(ValueError, match="embedding_init"):
        GenerativeTransformer(_dims("xavier"))
