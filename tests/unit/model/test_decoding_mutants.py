"""Decoding: cases tests/unit/model/test_model_decoding.py left open, found by mutation testing
(tools/mutation.py; docs/experiments/2026-12-03-mutation-testing.md names the mutants each test kills)."""

from __future__ import annotations

import numpy as np
import torch
from support import synthetic_train_data as syn
from support.tiny_net import tiny_network

from unigrec.inference.retrieval import id_spaces
from unigrec.model.batch import collate_sequences
from unigrec.model.decoding import beam_search, build_id_space, level_log_probs
from unigrec.model.item_codes import ItemCodes, item_codes_from_frame
from unigrec.model.tokenizer import EventSeq
from unigrec.model.vocabulary import PAD, Vocabulary


def _net_and_prompts(vocab: Vocabulary, items: ItemCodes, n_prompts: int = 3, seed: int = 3):
    net, serialiser = tiny_network(vocab, items, seed)
    rng = np.random.default_rng(seed)
    prompts = [serialiser.prompt(EventSeq(rng.integers(items.n_items, size=n), np.zeros(n, bool), np.ones(n, int),
                                          np.full(n, -1)), False) for n in range(2, 2 + n_prompts)]
    return net, collate_sequences(prompts, rng.normal(size=(1, 16)).astype(np.float32), 2, vocab.token(PAD))


def _wide_levels():
    """Two items, one level of 5 codes of which only 0 and 2 are used: the trie must still be 5 wide."""
    codebooks = {"mode": "dual", "semantic_levels": [{"name": "s0", "size": 5}],
                 "collaborative_levels": [{"name": "c0", "size": 5}]}
    codes = np.array([[0], [2]], dtype=np.int64)
    return Vocabulary.from_codebooks(codebooks), ItemCodes(item_ids=("a", "b"), codes={"semantic": codes,
                                                                                       "collaborative": codes})


def test_the_trie_is_as_wide_as_the_widest_level_not_the_largest_used_code():
    vocab, items = _wide_levels()
    space = build_id_space(vocab, items, "semantic")
    assert space.trie.width == 5 and space.codes.dtype == torch.long


def test_level_log_probs_pad_narrower_levels_with_minus_infinity():
    vocab = Vocabulary.from_codebooks(syn.CODEBOOKS)  # levels of 4, 12 and 2 codes: the trie is 12 wide
    items = item_codes_from_frame(syn.ids_frame(3))
    space = id_spaces(vocab, items)[True]
    net, _ = _net_and_prompts(vocab, items)
    logp = level_log_probs(net, torch.randn(2, 32), space, 0)
    assert logp.shape == (2, 12)
    assert torch.isinf(logp[:, 4:]).all() and (logp[:, 4:] < 0).all()
    assert torch.allclose(logp[:, :4].exp().sum(1), torch.ones(2))


def test_moving_an_id_space_keeps_every_field():
    vocab = Vocabulary.from_codebooks(syn.CODEBOOKS)
    space = id_spaces(vocab, item_codes_from_frame(syn.ids_frame(3)))[False]
    moved = space.to("cpu")
    assert moved.offsets == space.offsets and moved.sizes == space.sizes
    assert torch.equal(moved.codes, space.codes) and torch.equal(moved.trie.edge_keys, space.trie.edge_keys)
    assert moved.trie.depth == space.trie.depth == moved.depth


def test_beam_slots_without_an_item_stay_empty_at_every_level():
    # all but two items excluded: a beam of 6 holds the two and four empty slots (-1, -inf), never an
    # item reached from a dead slot
    vocab = Vocabulary.from_codebooks(syn.CODEBOOKS)
    items = item_codes_from_frame(syn.ids_frame(3))
    space = id_spaces(vocab, items)[False]
    net, batch = _net_and_prompts(vocab, items)
    exclude = torch.ones(len(batch), items.n_items, dtype=torch.bool)
    exclude[:, [5, 17]] = False
    found, scores = beam_search(net, batch, space, 6, exclude=exclude)
    for row in range(len(batch)):
        assert sorted(found[row, :2].tolist()) == [5, 17]
        assert found[row, 2:].tolist() == [-1] * 4
        assert torch.isinf(scores[row, 2:]).all() and torch.isfinite(scores[row, :2]).all()
