"""The shared retrieve / rank / fuse path (unigrec.inference.retrieval) on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from unigrec.inference.retrieval import fuse_and_rerank, fused_scores


def test_rerank_orders_valid_items_by_score_and_keeps_ties_stable():
    items, scores, valid = fuse_and_rerank(
        np.array([["a", "b", "c", "d"]]), np.array([[0.1, 0.9, 0.95, 0.1]]), None,
        np.array([[True, True, False, True]]), 0.0,
    )
    assert items.tolist() == [["b", "a", "d", "c"]]  # c is invalid: last whatever its score
    assert valid.tolist() == [[True, True, True, False]]
    assert scores.tolist() == [[0.9, 0.1, 0.1, 0.95]]
    same, _, _ = fuse_and_rerank(np.array([["a", "b", "c"]]), np.zeros((1, 3)), None, np.ones((1, 3), dtype=bool), 0.0)
    assert same.tolist() == [["a", "b", "c"]]


def test_fused_scores_mix_log_probabilities_by_weight():
    logp = np.array([[-1.0, -2.0, -np.inf]])
    prob = np.array([[0.5, 0.25, 0.0]])
    assert fused_scores(logp, prob, 0.0).tolist() == logp.tolist()  # retrieval order, padding stays -inf
    assert fused_scores(logp, prob, 1.0)[0, :2] == pytest.approx(np.log([0.5, 0.25]))
    assert fused_scores(logp, prob, 1.0)[0, 2] < -700  # P = 0 is clipped, not -inf * weight = nan
    mixed = fused_scores(logp, prob, 0.25)
    assert mixed[0, :2] == pytest.approx([0.75 * -1.0 + 0.25 * np.log(0.5), 0.75 * -2.0 + 0.25 * np.log(0.25)])
    with pytest.raises(ValueError, match="fusion weight"):
        fused_scores(logp, prob, 1.5)
    with pytest.raises(ValueError, match="needs the ranking head"):
        fused_scores(logp, None, 0.25)


def test_fused_scores_can_reverse_the_retrieval_order_only_with_enough_weight():
    logp = np.array([[-1.0, -1.2]])  # retrieval prefers a
    prob = np.array([[0.2, 0.8]])  # the ranker prefers b
    valid = np.ones((1, 2), dtype=bool)
    order = lambda w: fuse_and_rerank(np.array([["a", "b"]]), logp, prob, valid, w)[0].tolist()
    assert order(0.0) == [["a", "b"]]
    assert order(0.1) == [["a", "b"]]  # -1.061 vs -1.102: the retrieval gap still wins
    assert order(0.5) == [["b", "a"]]


def _heavy_users(atomic: bool):
    """A random model over the synthetic catalogue and four prompts whose users have seen the items the
    model likes best: a beam narrower than the seen set fills with seen items unless they are kept out of
    it, not only dropped after it."""
    import torch
    from support import synthetic_train_data as syn
    from support.tiny_net import tiny_network

    from unigrec.inference.retrieval import id_spaces
    from unigrec.model.batch import collate_sequences
    from unigrec.model.decoding import score_candidates
    from unigrec.model.item_codes import atomic_item_codes, item_codes_from_frame
    from unigrec.model.tokenizer import EventSeq
    from unigrec.model.vocabulary import PAD, Vocabulary

    if atomic:
        items, codebooks = atomic_item_codes(syn.item_ids())
    else:
        items, codebooks = item_codes_from_frame(syn.ids_frame(3)), syn.CODEBOOKS
    vocab = Vocabulary.from_codebooks(codebooks)
    net, serialiser = tiny_network(vocab, items, seed=3, ranking_head=atomic)
    rng = np.random.default_rng(3)
    prompts = [serialiser.prompt(EventSeq(rng.integers(items.n_items, size=n), np.zeros(n, bool), np.ones(n, int),
                                          np.full(n, -1)), False) for n in (2, 5, 8, 11)]
    batch = collate_sequences(prompts, rng.normal(size=(1, 16)).astype(np.float32), 2, vocab.token(PAD))
    space = id_spaces(vocab, items)[False]
    everything = torch.arange(items.n_items).expand(len(prompts), -1)
    logp, _ = score_candidates(net, batch, everything, space)
    seen = torch.zeros(len(prompts), items.n_items, dtype=torch.bool)
    seen.scatter_(1, logp.topk(12, dim=1).indices, True)  # the 12 best items: more than the beam below
    return net, batch, space, seen, logp


@pytest.mark.parametrize("atomic", [True, False])
def test_retrieval_fills_the_list_with_unseen_items_when_the_seen_set_outnumbers_the_beam(atomic):
    import torch

    from unigrec.inference.retrieval import rank_prompts, retrieve_unseen

    net, batch, space, seen, logp = _heavy_users(atomic)
    items, scores, valid = retrieve_unseen(net, batch, space, seen, beam_size=6, k=6)
    assert valid.all(), "a beam of 6 must hold 6 unseen items however many seen items outscore them"
    assert not seen.gather(1, items).any()
    assert torch.isfinite(scores).all()
    # the monitor decodes the same way: the best unseen item is each prompt's first, never crowded out
    best_unseen = logp.masked_fill(seen, float("-inf")).argmax(dim=1)
    ranks = rank_prompts(net, batch, best_unseen, torch.zeros(len(best_unseen), dtype=torch.bool),
                         {False: space}, beam_size=6, seen=seen)
    if atomic:  # one level: the beam is exact
        assert ranks.tolist() == [0.0] * len(ranks)
    else:
        assert torch.isfinite(ranks).all()
