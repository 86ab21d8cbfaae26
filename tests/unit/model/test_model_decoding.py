"""Constrained beam search, candidate scoring and the KV-cache path of the transformer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support import synthetic_train_data as syn

from unigrec.model.batch import collate_sequences
from unigrec.model.decoding import (
    beam_search,
    build_id_space,
    exhausted_nodes,
    open_codes,
    score_candidates,
    single_level_open,
)
from unigrec.model.item_codes import atomic_item_codes, item_codes_from_frame
from unigrec.model.tokenizer import EventSeq, SequenceSerialiser
from unigrec.model.transformer import GenerativeTransformer, TransformerDims
from unigrec.model.vocabulary import COLLABORATIVE, NEG, PAD, POS, SEMANTIC, Vocabulary

QUERY_DIM = 16


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _setup(seed: int, atomic: bool = False, d_model: int = 32):
    if atomic:
        items, codebooks = atomic_item_codes(syn.item_ids())
    else:
        items, codebooks = item_codes_from_frame(syn.ids_frame(seed)), syn.CODEBOOKS
    vocab = Vocabulary.from_codebooks(codebooks)
    ser = SequenceSerialiser(vocab, items, n_query_tokens=2, max_events=12)
    torch.manual_seed(seed)
    dims = TransformerDims(vocab.size, ser.max_length, d_model, 2, 4, 2 * d_model, 0.0, QUERY_DIM, 2,
                           vocab.token(POS), vocab.token(NEG), ranking_head=atomic)
    net = GenerativeTransformer(dims).eval()
    # random models spread mass everywhere, including code paths that are no item: what the trie is for
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.5)
    rng = np.random.default_rng(seed)
    prompts = []
    for n in (1, 4, 9, 12):
        search = rng.random(n) < 0.4
        ev = EventSeq(rng.integers(items.n_items, size=n), search, rng.integers(0, 2, n),
                      np.where(search, rng.integers(0, 3, n), -1))
        prompts.append(ser.prompt(ev, is_search=bool(rng.random() < 0.5), query=int(rng.integers(3))))
    table = rng.normal(size=(3, QUERY_DIM)).astype(np.float32)
    batch = collate_sequences(prompts, table, 2, vocab.token(PAD))
    return vocab, items, net, batch


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", [SEMANTIC, COLLABORATIVE])
def test_beam_search_emits_only_real_items(seed, kind):
    vocab, items, net, batch = _setup(seed)
    space = build_id_space(vocab, items, kind)
    found, scores = beam_search(net, batch, space, beam_size=15)
    assert found.shape == (len(batch), 15)
    assert (found >= 0).all() and (found < items.n_items).all()
    for row in found.tolist():
        assert len(set(row)) == len(row)
    assert (space.trie.lookup(space.codes[found]) == found).all()
    assert (scores[:, :-1] >= scores[:, 1:]).all(), "sorted best first"


def test_beam_scores_equal_candidate_scores_and_exhaustive_beam_is_exact():
    vocab, items, net, batch = _setup(3)
    space = build_id_space(vocab, items, SEMANTIC)
    found, scores = beam_search(net, batch, space, beam_size=items.n_items)
    retrieval, ranking = score_candidates(net, batch, found, space)
    torch.testing.assert_close(retrieval, scores, rtol=1e-4, atol=1e-4)
    assert ((ranking > 0) & (ranking < 1)).all()
    # a beam as wide as the catalogue explores every ID: the ranking must equal brute-force scoring
    everything = torch.arange(items.n_items).expand(len(batch), -1)
    brute, _ = score_candidates(net, batch, everything, space)
    torch.testing.assert_close(brute.sort(dim=1, descending=True).values, scores, rtol=1e-4, atol=1e-4)
    # and the probabilities over all real IDs sum to at most 1 (mass on non-items is masked, not renormalised)
    assert (brute.exp().sum(dim=1) <= 1.0 + 1e-4).all()


def test_beam_wider_than_catalogue_pads_with_missing_items():
    vocab, items, net, batch = _setup(4)
    space = build_id_space(vocab, items, COLLABORATIVE)
    found, scores = beam_search(net, batch, space, beam_size=items.n_items + 5)
    assert (found[:, : items.n_items] >= 0).all()
    assert (found[:, items.n_items :] == -1).all() and torch.isinf(scores[:, items.n_items :]).all()


def test_atomic_form_decodes_whole_items_in_one_step():
    vocab, items, net, batch = _setup(5, atomic=True)
    space = build_id_space(vocab, items, SEMANTIC)
    found, _scores = beam_search(net, batch, space, beam_size=10)
    brute, _ = score_candidates(net, batch, torch.arange(items.n_items).expand(len(batch), -1), space)
    assert (found == brute.topk(10, dim=1).indices).all()


def test_cached_extension_matches_a_full_forward_pass():
    vocab, items, net, batch = _setup(6)
    hidden, cache = net.encode(batch.tokens, batch.valid, batch.query_refs, batch.query_vectors)
    space = build_id_space(vocab, items, SEMANTIC)
    new = space.codes[:len(batch)] + torch.tensor(space.offsets)  # (B, 3) some items' code tokens
    first, tail = net.extend(new[:, :2], cache)
    second, _ = net.extend(new[:, 2:], cache, tail)
    full, _ = net.encode(
        torch.cat([batch.tokens, new], 1),
        torch.cat([batch.valid, torch.ones_like(new, dtype=torch.bool)], 1),
        torch.cat([batch.query_refs, torch.full_like(new, -1)], 1),
        batch.query_vectors,
    )
    torch.testing.assert_close(torch.cat([first, second], 1), full[:, -3:], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(hidden, full[:, :-3], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("atomic", [True, False])
def test_excluded_items_never_take_a_beam_slot(atomic):
    vocab, items, net, batch = _setup(7, atomic=atomic)
    space = build_id_space(vocab, items, SEMANTIC)
    everything = torch.arange(items.n_items).expand(len(batch), -1)
    brute, _ = score_candidates(net, batch, everything, space)
    # exclude each prompt's 5 best items: an exhaustive beam then returns exactly the rest, in order
    exclude = torch.zeros(len(batch), items.n_items, dtype=torch.bool)
    exclude.scatter_(1, brute.topk(5, dim=1).indices, True)
    found, scores = beam_search(net, batch, space, beam_size=items.n_items, exclude=exclude)
    kept = items.n_items - 5
    assert (found[:, kept:] == -1).all() and torch.isinf(scores[:, kept:]).all()
    assert not exclude.gather(1, found[:, :kept]).any()
    expected = brute.masked_fill(exclude, float("-inf")).topk(kept, dim=1)
    torch.testing.assert_close(scores[:, :kept], expected.values, rtol=1e-4, atol=1e-4)
    if atomic:  # one level: a narrow beam is exact too, and full of unseen items
        narrow, _ = beam_search(net, batch, space, beam_size=10, exclude=exclude)
        assert (narrow == expected.indices[:, :10]).all()


def test_prefixes_whose_items_are_all_excluded_never_take_a_beam_slot():
    """The 10 best items and every item sharing their first two codes are excluded, so whole prefixes
    die; masking only the last level would let them fill the beam and come back empty."""
    vocab, items, net, batch = _setup(9)
    space = build_id_space(vocab, items, SEMANTIC)
    everything = torch.arange(items.n_items).expand(len(batch), -1)
    brute, _ = score_candidates(net, batch, everything, space)
    prefix = space.codes[:, :2]  # (N, 2)
    top = prefix[brute.topk(10, dim=1).indices]  # (B, 10, 2)
    exclude = (prefix[None, None] == top[:, :, None]).all(-1).any(1)  # (B, N)
    found, scores = beam_search(net, batch, space, beam_size=10, exclude=exclude)
    assert (found >= 0).all() and torch.isfinite(scores).all(), "every slot holds an item"
    assert not exclude.gather(1, found).any()


def test_exhausted_nodes_are_the_prefixes_with_every_item_excluded():
    vocab, items, _, _ = _setup(10)
    trie = build_id_space(vocab, items, SEMANTIC).trie
    rng = np.random.default_rng(10)
    exclude = torch.as_tensor(rng.random((3, items.n_items)) < 0.7)
    exclude[2] = True  # everything excluded
    keys = set(exhausted_nodes(trie, exclude).tolist())
    for row in range(3):
        for node in range(1, trie.n_nodes):  # the root is never a child, so never asked about
            under = (trie.item_path == node).any(1)
            assert ((row * trie.n_nodes + node) in keys) == bool(exclude[row, under].all()), (row, node)
    assert exhausted_nodes(trie, torch.zeros_like(exclude)).numel() == 0


def test_a_one_level_trie_opens_exactly_the_codes_of_unexcluded_items():
    """The atomic form's shortcut gives the general exhaustion mask's answer at the root."""
    vocab, items, _, _ = _setup(11, atomic=True)
    trie = build_id_space(vocab, items, SEMANTIC).trie
    exclude = torch.as_tensor(np.random.default_rng(11).random((4, items.n_items)) < 0.5)
    exclude[3] = True
    root = torch.zeros(4, 1, dtype=torch.long)
    general = open_codes(trie, root, exhausted_nodes(trie, exclude))[:, 0]
    assert (single_level_open(trie, exclude) == general).all()
    assert not single_level_open(trie, exclude)[3].any()


def test_right_padded_batch_matches_left_padded_one():
    """Training batches are right-padded (plain causal attention, no mask): same states as left padding."""
    vocab, items, net, _ = _setup(8)
    rng = np.random.default_rng(8)
    ser = SequenceSerialiser(vocab, items, n_query_tokens=2, max_events=12)
    seqs = []
    for n in (2, 7, 12):
        search = rng.random(n) < 0.4
        ev = EventSeq(rng.integers(items.n_items, size=n), search, rng.integers(0, 2, n),
                      np.where(search, rng.integers(0, 3, n), -1))
        seqs.append(ser.training_sequence(ev))
    table = rng.normal(size=(3, QUERY_DIM)).astype(np.float32)
    left = collate_sequences(seqs, table, 2, vocab.token(PAD))
    right = collate_sequences(seqs, table, 2, vocab.token(PAD), pad_left=False)
    h_left, _ = net.encode(left.tokens, left.valid, left.query_refs, left.query_vectors)
    h_right, _ = net.encode(right.tokens, right.valid, right.query_refs, right.query_vectors)
    torch.testing.assert_close(h_right[right.valid], h_left[left.valid], rtol=1e-4, atol=1e-4)
    assert (right.targets[right.valid] == left.targets[left.valid]).all()


@pytest.mark.parametrize(("group", "n_new", "with_tail"), [(1, 1, False), (1, 2, False), (4, 1, False), (4, 2, False),
                                                           (4, 1, True), (1, 1, True)])
def test_every_extension_path_matches_full_forward_passes(group, n_new, with_tail):
    """extend has a fused path for one continuation per prefix and one for single new tokens of several
    (candidate items, a first beam level), beside the general one: each continuation's hidden states must
    be those of one full pass over its whole sequence (left-padded prompts of different lengths)."""
    vocab, items, net, batch = _setup(8)
    _, cache = net.encode(batch.tokens, batch.valid, batch.query_refs, batch.query_vectors)
    space = build_id_space(vocab, items, SEMANTIC)
    b = len(batch)
    picked = torch.randint(items.n_items, (b * group,), generator=torch.Generator().manual_seed(8))
    codes = space.codes[picked] + torch.tensor(space.offsets)  # (B*g, 3) each continuation's code tokens
    done = 1 if with_tail else 0  # tokens already appended (the tail cache) before the new ones
    tail = net.extend(codes[:, :done], cache)[1] if with_tail else None
    got, _ = net.extend(codes[:, done:done + n_new], cache, tail)

    appended = codes[:, :done + n_new]
    full, _ = net.encode(
        torch.cat([batch.tokens.repeat_interleave(group, 0), appended], 1),
        torch.cat([batch.valid.repeat_interleave(group, 0), torch.ones_like(appended, dtype=torch.bool)], 1),
        torch.cat([batch.query_refs.repeat_interleave(group, 0), torch.full_like(appended, -1)], 1),
        batch.query_vectors,
    )
    torch.testing.assert_close(got, full[:, -n_new:], rtol=1e-4, atol=1e-4)
