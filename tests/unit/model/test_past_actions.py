"""train.model.past_action_input: an event's action enters the input at the token after its last code, and
every way the model is run (one pass, a prompt then its candidates, a kept history then a request) reads it
there and nowhere earlier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support import synthetic_train_data as syn
from support.tiny_net import tiny_network

from unigrec.inference.retrieval import id_spaces
from unigrec.model.batch import collate_sequences
from unigrec.model.decoding import score_candidates
from unigrec.model.item_codes import item_codes_from_frame
from unigrec.model.tokenizer import EventSeq
from unigrec.model.transformer import past_actions
from unigrec.model.vocabulary import PAD, Vocabulary

ITEMS = item_codes_from_frame(syn.ids_frame(3))
VOCAB = Vocabulary.from_codebooks(syn.CODEBOOKS)
TABLE = np.zeros((4, 16), dtype=np.float32)


def _events(labels: list[int]) -> EventSeq:
    n = len(labels)
    return EventSeq(np.arange(n, dtype=np.int64) % ITEMS.n_items, np.zeros(n, bool), np.asarray(labels, np.int64),
                    np.full(n, -1, np.int64))


def _batch(seqs):
    return collate_sequences(seqs, TABLE, 2, VOCAB.token(PAD))


def test_each_token_reads_the_action_before_it():
    actions = torch.tensor([[-1, -1, 1, -1, 0], [-1, 0, -1, -1, -1]])
    assert past_actions(actions).tolist() == [[-1, -1, -1, 1, -1], [-1, -1, 0, -1, -1]]


@pytest.mark.parametrize("layout", ["item", "behaviour_item"])
def test_an_action_reaches_later_tokens_and_never_its_own_event(layout):
    net, ser = tiny_network(VOCAB, ITEMS, seed=3, event_layout=layout, past_action_input=True)
    liked, disliked = (ser.training_sequence(_events([1, label, 1])) for label in (1, 0))
    (last_codes,) = np.nonzero(liked.actions >= 0)
    with torch.no_grad():
        hidden, _ = net.encode_batch(_batch([liked, disliked]))
    same, differs = hidden[:, : last_codes[1] + 1], hidden[:, last_codes[1] + 1 :]
    torch.testing.assert_close(same[0], same[1], msg="the second event's own ranking state reads no action of its")
    assert not torch.allclose(differs[0], differs[1]), "the tokens after it read it"


def test_without_the_setting_the_actions_change_nothing():
    net, ser = tiny_network(VOCAB, ITEMS, seed=3, event_layout="item")
    liked, disliked = (ser.training_sequence(_events([1, label, 1])) for label in (1, 0))
    with torch.no_grad():
        hidden, _ = net.encode_batch(_batch([liked, disliked]))
    torch.testing.assert_close(hidden[0], hidden[1])


def test_candidates_scored_after_a_prompt_read_its_last_action_as_one_pass_does():
    # in the `item` layout a recommendation prompt ends at the last event's last code: the candidate's first
    # code is the next token, so it reads that event's action, whether run in one pass or after the cache
    net, ser = tiny_network(VOCAB, ITEMS, seed=3, event_layout="item", past_action_input=True)
    space = id_spaces(VOCAB, ITEMS)[False]
    assert space.depth > 1, "later codes of the candidate must read the action too"
    candidate = torch.tensor([[3 % ITEMS.n_items]])
    scored = []
    for label in (0, 1):
        prompts = _batch([ser.prompt(_events([1, 0, label]), is_search=False)])
        retrieval, ranking = score_candidates(net, prompts, candidate, space)
        with torch.no_grad():
            hidden, _ = net.encode_batch(_batch([ser.context_tokens(_events([1, 0, label, 1]))]))
        torch.testing.assert_close(ranking[0, 0], torch.sigmoid(net.ranking_logit(hidden[0, -1])))
        scored.append((retrieval, ranking))
    assert not torch.allclose(scored[0][0], scored[1][0]) and not torch.allclose(scored[0][1], scored[1][1])
