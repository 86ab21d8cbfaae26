"""The retrieve / rank / fuse path: cases the suite left open, found by mutation testing (tools/mutation.py;
docs/experiments/2026-12-03-mutation-testing.md names the mutants each test kills)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support import synthetic_train_data as syn
from support.tiny_net import tiny_network

from unigrec.inference.retrieval import (
    DecodeSettings,
    decode_batch,
    fuse_and_rerank,
    fused_scores,
    id_spaces,
    positive_probability,
    rank_prompts,
    ranking_probs,
    rerank_order,
    seen_mask,
    select_rows,
    stream_batches,
    target_ranks,
)
from unigrec.model.batch import collate_sequences
from unigrec.model.decoding import score_candidates
from unigrec.model.item_codes import item_codes_from_frame
from unigrec.model.tokenizer import EventSeq, SequenceSerialiser
from unigrec.model.transformer import GenerativeTransformer, TransformerDims
from unigrec.model.vocabulary import NEG, PAD, POS, Vocabulary


def _setup(seed: int = 3):
    items = item_codes_from_frame(syn.ids_frame(3))
    vocab = Vocabulary.from_codebooks(syn.CODEBOOKS)
    net, serialiser = tiny_network(vocab, items, seed)
    rng = np.random.default_rng(seed)
    prompts = [serialiser.prompt(EventSeq(rng.integers(items.n_items, size=n), np.zeros(n, bool), np.ones(n, int),
                                          np.full(n, -1)), False) for n in (2, 5, 8)]
    batch = collate_sequences(prompts, rng.normal(size=(1, 16)).astype(np.float32), 2, vocab.token(PAD))
    return net, batch, id_spaces(vocab, items), items


def test_each_stream_decodes_in_its_own_id_kind():
    _, _, spaces, items = _setup()
    assert torch.equal(spaces[True].codes, torch.as_tensor(items.codes["semantic"]))
    assert torch.equal(spaces[False].codes, torch.as_tensor(items.codes["collaborative"]))


def test_decode_batch_scores_the_given_candidates_and_the_pool():
    net, batch, spaces, items = _setup()
    space = spaces[False]
    seen = torch.zeros(len(batch), items.n_items, dtype=torch.bool)
    candidates = torch.tensor([[0, 5], [7, 1], [2, 3]])
    out = decode_batch(net, batch, space, seen, beam_size=4, pool_k=3, candidates=candidates)
    logp, probs = score_candidates(net, batch, candidates, space)
    assert out.candidate_retrieval == pytest.approx(logp.numpy(), abs=1e-5)
    assert out.candidate_ranking == pytest.approx(probs.numpy(), abs=1e-5)
    _, pool_probs = score_candidates(net, batch, torch.as_tensor(out.items[:, :3]), space)
    assert out.pool_ranking == pytest.approx(pool_probs.numpy(), abs=1e-5)
    assert out.items.shape == (3, 4) and out.pool_k == 3


def test_decode_batch_without_candidates_or_pool_ranking():
    net, batch, spaces, items = _setup()
    seen = torch.zeros(len(batch), items.n_items, dtype=torch.bool)
    out = decode_batch(net, batch, spaces[False], seen, beam_size=4, pool_k=2, rank_pool=False)
    assert out.pool_ranking is None
    assert out.candidate_retrieval.shape == out.candidate_ranking.shape == (3, 0)
    out = decode_batch(net, batch, spaces[False], seen, beam_size=4, pool_k=2)
    assert out.candidate_ranking.shape == (3, 0) and out.pool_ranking.shape == (3, 2)


def test_a_separate_ranker_gives_the_ranking_scores_and_the_net_the_retrieval_scores():
    net, batch, spaces, items = _setup(3)
    ranker, _, _, _ = _setup(4)
    space = spaces[False]
    seen = torch.zeros(len(batch), items.n_items, dtype=torch.bool)
    candidates = torch.tensor([[0, 5], [7, 1], [2, 3]])
    out = decode_batch(net, batch, space, seen, beam_size=4, pool_k=3, candidates=candidates, ranker=ranker)
    own_logp, _ = score_candidates(net, batch, candidates, space)
    _, ranker_probs = score_candidates(ranker, batch, candidates, space)
    assert out.candidate_retrieval == pytest.approx(own_logp.numpy(), abs=1e-5)
    assert out.candidate_ranking == pytest.approx(ranker_probs.numpy(), abs=1e-5)
    _, pool_probs = score_candidates(ranker, batch, torch.as_tensor(out.items[:, :3]), space)
    assert out.pool_ranking == pytest.approx(pool_probs.numpy(), abs=1e-5)


def test_positive_probability_is_each_targets_own_ranking_score_in_its_stream():
    net, batch, spaces, _ = _setup()
    targets = torch.tensor([4, 9, 2])
    is_search = torch.tensor([False, True, False])
    probs = positive_probability(net, batch, targets, is_search, spaces)
    for row, search in enumerate(is_search.tolist()):
        one = select_rows(batch, torch.tensor([row]))
        _, p = ranking_probs(net, one, spaces[search], targets[row].reshape(1, 1))
        assert probs[row].item() == pytest.approx(p.item(), abs=1e-5)


def test_a_seen_target_is_never_found_even_when_the_beam_runs_out_of_items():
    net, batch, spaces, items = _setup()
    # every item but 3 seen: the beam of 4 holds one real item and padding; target 1 is seen
    seen = torch.ones(len(batch), items.n_items, dtype=torch.bool)
    seen[:, 3] = False
    targets = torch.tensor([1, 3, 1])
    ranks = rank_prompts(net, batch, targets, torch.zeros(3, dtype=torch.bool), {False: spaces[False]}, 4, seen)
    assert ranks.tolist() == [float("inf"), 0.0, float("inf")]


def test_target_ranks_per_row():
    retrieved = torch.tensor([[5, 2, 7], [2, 5, 9], [1, 1, 1]])
    assert target_ranks(retrieved, torch.tensor([7, 5, 4])).tolist() == [2.0, 1.0, float("inf")]


def test_select_rows_takes_every_per_row_field_and_keeps_the_query_table():
    _, batch, _, _ = _setup()
    rows = torch.tensor([2, 0])
    sub = select_rows(batch, rows)
    for name in ("tokens", "valid", "targets", "slots", "groups", "query_refs"):
        assert torch.equal(getattr(sub, name), getattr(batch, name)[rows]), name
    assert sub.query_vectors is batch.query_vectors


def test_stream_batches_group_rec_first_then_search_in_batches():
    flags = [False, True, False, True, True, False, False]
    assert stream_batches(flags, 2) == [(False, [0, 2]), (False, [5, 6]), (True, [1, 3]), (True, [4])]


def test_seen_mask_marks_each_history():
    mask = seen_mask([[1, 3], [], [0]], 4)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[False, True, False, True], [False] * 4, [True, False, False, False]]


def test_decode_settings_weight_defaults_to_zero():
    settings = DecodeSettings(beam_size=10, batch_size=8, pipeline_k=20, fusion_weights={"search": 0.3})
    assert settings.weight("search") == 0.3
    assert settings.weight("rec") == 0.0


def test_a_ranking_probability_of_zero_is_clipped_not_minus_infinity():
    fused = fused_scores(np.array([[-1.0]]), np.array([[0.0]]), 0.5)
    assert np.isfinite(fused).all()


def test_tied_scores_keep_the_retrieval_order_in_a_long_list():
    # numpy's default sort is not stable on long lists with ties: equal fused scores would be shuffled
    scores = np.random.default_rng(0).integers(0, 3, size=(2, 200)).astype(float)
    order = rerank_order(scores, np.ones((2, 200), dtype=bool))
    for row in range(2):
        keyed = [(-scores[row, j], j) for j in range(200)]
        assert order[row].tolist() == [j for _, j in sorted(keyed)]


def test_rerank_orders_each_row_on_its_own():
    items = np.array([["a", "b"], ["c", "d"]])
    out, _, _ = fuse_and_rerank(items, np.array([[-2.0, -1.0], [-1.0, -2.0]]), None, np.ones((2, 2), bool), 0.0)
    assert out.tolist() == [["b", "a"], ["c", "d"]]


def test_retrieve_unseen_keeps_a_wide_beams_order():
    # a torch sort that is not stable reorders equal keys from ~50 entries up: the kept items must stay
    # in beam order (best first)
    from unigrec.inference.retrieval import retrieve_unseen
    from unigrec.model.decoding import beam_search
    from unigrec.model.item_codes import atomic_item_codes

    items, codebooks = atomic_item_codes([f"i{k}" for k in range(120)])
    vocab = Vocabulary.from_codebooks(codebooks)
    serialiser = SequenceSerialiser(vocab, items, n_query_tokens=2, max_events=6)
    torch.manual_seed(0)
    dims = TransformerDims(vocab.size, serialiser.max_length, 16, 1, 2, 32, 0.0, 16, 2, vocab.token(POS),
                           vocab.token(NEG), ranking_head=False)
    net = GenerativeTransformer(dims).eval()
    prompts = [serialiser.prompt(EventSeq(np.array([1, 2]), np.zeros(2, bool), np.ones(2, int), np.full(2, -1)), False)]
    batch = collate_sequences(prompts, np.zeros((1, 16), np.float32), 2, vocab.token(PAD))
    space = id_spaces(vocab, items)[False]
    seen = torch.zeros(1, items.n_items, dtype=torch.bool)
    seen[0, [1, 2]] = True
    got, scores, valid = retrieve_unseen(net, batch, space, seen, beam_size=90, k=90)
    beam, beam_scores = beam_search(net, batch, space, 90, exclude=seen)
    assert torch.equal(got, beam) and torch.equal(scores, beam_scores) and valid.all()


def test_a_catalogue_smaller_than_k_is_padded_with_empty_slots():
    from unigrec.inference.retrieval import retrieve_unseen

    net, batch, spaces, items = _setup()  # 40 items
    seen = torch.zeros(len(batch), items.n_items, dtype=torch.bool)
    got, scores, valid = retrieve_unseen(net, batch, spaces[False], seen, beam_size=60, k=50)
    assert got.shape == scores.shape == valid.shape == (3, 50)
    assert (got[:, 40:] == -1).all() and torch.isinf(scores[:, 40:]).all() and (scores[:, 40:] < 0).all()
    assert not valid[:, 40:].any() and valid[:, :40].all()


def test_slots_past_what_the_beam_can_hold_are_padded_with_minus_infinity():
    # A k above every width the beam reaches (40 items): the slots past the beam are padding, scored -inf
    # (not 0, which would out-score every real item's negative log-probability), and invalid.
    from unigrec.inference.retrieval import retrieve_unseen

    net, batch, spaces, items = _setup()
    seen = torch.zeros(len(batch), items.n_items, dtype=torch.bool)
    got, scores, valid = retrieve_unseen(net, batch, spaces[False], seen, beam_size=10, k=500)
    assert got.shape == scores.shape == valid.shape == (3, 500)
    padded = got == -1
    assert padded[:, 40:].all()
    assert torch.equal(scores[padded], torch.full_like(scores[padded], float("-inf")))
    assert not valid[padded].any()


def test_decode_batch_reads_the_query_of_a_search_prompt():
    # decode_batch encodes the prompts itself: a search prompt's query (its reference into the batch's
    # query vectors) must reach that encoding, or search decodes as if nothing was typed. Same answer as
    # the beam search, which encodes on its own; and a different query gives a different answer.
    from unigrec.inference.retrieval import decode_batch, retrieve_unseen

    items = item_codes_from_frame(syn.ids_frame(3))
    vocab = Vocabulary.from_codebooks(syn.CODEBOOKS)
    net, serialiser = tiny_network(vocab, items, seed=4)
    rng = np.random.default_rng(4)
    history = EventSeq(rng.integers(items.n_items, size=4), np.zeros(4, bool), np.ones(4, int), np.full(4, -1))
    space = id_spaces(vocab, items)[True]
    seen = torch.zeros(2, items.n_items, dtype=torch.bool)
    vectors = rng.normal(size=(2, 16)).astype(np.float32) * 5
    batch = collate_sequences([serialiser.prompt(history, True, q) for q in (0, 1)], vectors, 2, vocab.token(PAD))
    decoded = decode_batch(net, batch, space, seen, 8, 4)
    got, scores, _ = retrieve_unseen(net, batch, space, seen, 8, 8)
    np.testing.assert_array_equal(decoded.items, got.numpy())
    np.testing.assert_array_equal(decoded.retrieval, scores.numpy().astype(np.float64))
    assert not np.array_equal(decoded.retrieval[0], decoded.retrieval[1])  # the two queries differ
