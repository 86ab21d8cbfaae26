"""decode_batch encodes its prompts once for the beam search and the ranking scores, and returns exactly
what the two separate passes (retrieve_unseen, then ranking_probs) return (issue 40, serving speed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def _model_and_prompts():
    from support import synthetic_train_data as syn
    from support.tiny_net import tiny_network

    from unigrec.inference.retrieval import id_spaces
    from unigrec.model.batch import collate_sequences
    from unigrec.model.item_codes import item_codes_from_frame
    from unigrec.model.tokenizer import EventSeq
    from unigrec.model.vocabulary import PAD, Vocabulary

    items, codebooks = item_codes_from_frame(syn.ids_frame(3)), syn.CODEBOOKS
    vocab = Vocabulary.from_codebooks(codebooks)
    net, serialiser = tiny_network(vocab, items, seed=5, ranking_head=False)
    rng = np.random.default_rng(5)
    histories = [rng.integers(items.n_items, size=n) for n in (1, 4, 9)]
    prompts = [serialiser.prompt(EventSeq(h, np.zeros(len(h), bool), np.ones(len(h), int), np.full(len(h), -1)), False)
               for h in histories]
    batch = collate_sequences(prompts, rng.normal(size=(1, 16)).astype(np.float32), 2, vocab.token(PAD))
    seen = torch.zeros(len(prompts), items.n_items, dtype=torch.bool)
    for row, h in enumerate(histories):
        seen[row, torch.as_tensor(h)] = True
    return net, batch, id_spaces(vocab, items)[False], seen, items.n_items


@pytest.mark.parametrize("with_candidates", [False, True])
def test_decode_batch_encodes_once_and_matches_the_separate_passes(with_candidates):
    from unigrec.inference.retrieval import decode_batch, ranking_probs, retrieve_unseen

    net, batch, space, seen, n_items = _model_and_prompts()
    beam, pool_k = 6, 4
    candidates = torch.tensor([[0, 3], [1, n_items - 1], [2, 5]]) if with_candidates else None
    encodes = []
    original = net.encode

    def counting(*args, **kwargs):
        encodes.append(1)
        return original(*args, **kwargs)

    net.encode = counting
    decoded = decode_batch(net, batch, space, seen, beam, pool_k, candidates=candidates)
    assert len(encodes) == 1, "the prompts are encoded once for retrieval and ranking"
    net.encode = original

    items, scores, valid = retrieve_unseen(net, batch, space, seen, beam, beam)
    given = candidates if candidates is not None else torch.zeros((len(seen), 0), dtype=torch.long)
    logp, probs = ranking_probs(net, batch, space, torch.cat([given, items[:, :pool_k]], dim=1))
    n_given = given.shape[1]
    np.testing.assert_array_equal(decoded.items, items.numpy())
    np.testing.assert_array_equal(decoded.retrieval, scores.numpy().astype(np.float64))
    np.testing.assert_array_equal(decoded.valid, valid.numpy())
    np.testing.assert_array_equal(decoded.pool_ranking, probs[:, n_given:].numpy().astype(np.float64))
    np.testing.assert_array_equal(decoded.candidate_retrieval, logp[:, :n_given].numpy().astype(np.float64))
    np.testing.assert_array_equal(decoded.candidate_ranking, probs[:, :n_given].numpy().astype(np.float64))
    assert decoded.valid[:, :pool_k].any()
