"""Served requests run after users' stored encoded histories (unigrec.inference.user_states, issue 40):
the same hidden states, keys/values and decoded lists as one pass over the whole prompts; what is kept is
bounded and never grows with made-up users."""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

TOL = {"rtol": 1e-5, "atol": 1e-5}


def _net_and_histories(ranking_head: bool = True):
    """A tiny network (semantic IDs: three code levels, so beam search extends the stored history), and
    histories of different lengths with searches among them (query soft tokens in the history)."""
    from support import synthetic_train_data as syn
    from support.tiny_net import tiny_network

    from unigrec.model.item_codes import item_codes_from_frame
    from unigrec.model.tokenizer import EventSeq
    from unigrec.model.vocabulary import Vocabulary

    items = item_codes_from_frame(syn.ids_frame(3))
    net, serialiser = tiny_network(Vocabulary.from_codebooks(syn.CODEBOOKS), items, seed=7, ranking_head=ranking_head)
    rng = np.random.default_rng(7)
    histories = []
    for n in (1, 5, 11):
        is_search = rng.random(n) < 0.4
        queries = np.where(is_search, rng.integers(3, size=n), -1)
        histories.append(EventSeq(rng.integers(items.n_items, size=n), is_search, rng.integers(2, size=n), queries))
    table = rng.normal(size=(4, 16)).astype(np.float32)  # 3 history queries + 1 request query
    return net, serialiser, items, histories, table


def _collate(serialiser, sequences, table):
    from unigrec.model.batch import collate_sequences
    from unigrec.model.vocabulary import PAD

    return collate_sequences(sequences, table, serialiser.n_query_tokens, serialiser.vocab.token(PAD))


@pytest.mark.parametrize("is_search", [False, True])
def test_encoding_after_stored_histories_equals_one_pass_over_the_whole_prompts(is_search):
    from unigrec.inference.user_states import encode_after, encode_keeping_histories

    net, serialiser, _, histories, table = _net_and_histories()
    query = 3 if is_search else -1
    contexts = [serialiser.context_tokens(h) for h in histories]
    whole = _collate(serialiser, [serialiser.prompt_after(c, is_search, query) for c in contexts], table)
    hidden, cache = net.encode(whole.tokens, whole.valid, whole.query_refs, whole.query_vectors, whole.item_refs)

    # kept from a first request of the other kind (another query, or none): the history part only
    first = _collate(serialiser, [serialiser.prompt_after(c, not is_search, 0 if not is_search else -1)
                                  for c in contexts], table)
    _, _, states = encode_keeping_histories(net, first, [len(c) for c in contexts])
    assert [s.length for s in states] == [len(c) for c in contexts]
    # and the history alone, encoded by itself, has the same keys (causal attention: nothing after it counts)
    _, alone = net.encode(*(getattr(_collate(serialiser, contexts[:1], table), f)
                            for f in ("tokens", "valid", "query_refs", "query_vectors", "item_refs")))
    torch.testing.assert_close(states[0].keys[0], alone.keys[0][0], **TOL)
    tails = _collate(serialiser, [serialiser.behaviour_tokens(is_search, query) for _ in contexts], table)
    last, merged = encode_after(net, states, tails)

    torch.testing.assert_close(last, hidden[:, -1], **TOL)
    torch.testing.assert_close(merged.next_position, cache.next_position)
    # the same real tokens (padding may sit elsewhere: compare each row's real keys and values)
    for row in range(len(contexts)):
        for mine, theirs in ((merged.keys, cache.keys), (merged.values, cache.values)):
            for layer in range(len(theirs)):
                torch.testing.assert_close(mine[layer][row][:, merged.valid[row]],
                                           theirs[layer][row][:, cache.valid[row]], **TOL)


def test_decoding_after_stored_histories_gives_the_one_pass_lists():
    from unigrec.inference.retrieval import decode_batch, decode_encoded, id_spaces
    from unigrec.inference.user_states import encode_after, encode_keeping_histories

    net, serialiser, items, histories, table = _net_and_histories()
    space = id_spaces(serialiser.vocab, items)[False]
    contexts = [serialiser.context_tokens(h) for h in histories]
    whole = _collate(serialiser, [serialiser.prompt_after(c, False) for c in contexts], table)
    seen = torch.zeros(len(histories), items.n_items, dtype=torch.bool)
    for row, history in enumerate(histories):
        seen[row, torch.as_tensor(history.items)] = True
    extra = torch.tensor([[0, -1], [2, 3], [-1, -1]])
    expected = decode_batch(net, whole, space, seen, 6, 4, extra=extra)

    tails = _collate(serialiser, [serialiser.behaviour_tokens(False) for _ in contexts], table)
    _, _, states = encode_keeping_histories(net, whole, [len(c) for c in contexts])
    last, prefix = encode_after(net, states, tails)
    got = decode_encoded(net, last, prefix, space, seen, 6, 4, extra=extra)

    np.testing.assert_array_equal(got.items, expected.items)
    np.testing.assert_array_equal(got.valid, expected.valid)
    for field in ("retrieval", "pool_ranking", "extra_retrieval", "extra_ranking"):
        np.testing.assert_allclose(getattr(got, field), getattr(expected, field), rtol=1e-5, atol=1e-5)


def test_a_history_longer_than_its_prompt_is_refused():
    from unigrec.inference.user_states import encode_keeping_histories

    net, serialiser, _, histories, table = _net_and_histories()
    context = serialiser.context_tokens(histories[0])
    with pytest.raises(ValueError, match="a history of"):
        encode_keeping_histories(net, _collate(serialiser, [context], table), [len(context) + 1])


def test_requests_of_different_prefix_lengths_are_refused_together():
    from unigrec.inference.user_states import encode_after, encode_keeping_histories

    net, serialiser, _, histories, table = _net_and_histories()
    context = serialiser.context_tokens(histories[0])
    _, _, states = encode_keeping_histories(net, _collate(serialiser, [context] * 2, table), [len(context)] * 2)
    mixed = _collate(serialiser, [serialiser.behaviour_tokens(False), serialiser.behaviour_tokens(True, 3)], table)
    with pytest.raises(ValueError, match="differ in length"):
        encode_after(net, states, mixed)


def test_the_store_keeps_the_most_recently_used_up_to_its_capacity():
    from unigrec.inference.user_states import ContextStates, EncodedContext

    def state(n):
        return EncodedContext((torch.zeros(1, n, 2),), (torch.zeros(1, n, 2),))

    store = ContextStates(2)
    store.put("a", state(1))
    store.put("b", state(2))
    assert store.get("a").length == 1  # "a" now the most recent
    store.put("c", state(3))
    assert len(store) == 2 and store.get("b") is None and store.get("a") is not None and store.get("c") is not None
    assert state(3).nbytes == 2 * 3 * 2 * 4
    none = ContextStates(0)
    none.put("a", state(1))
    assert len(none) == 0 and none.get("a") is None
    with pytest.raises(ValueError, match=">= 0"):
        ContextStates(-1)


def _recommender(folder: Path, cached: int, event_layout: str | None = None, past_action_input: bool = False):
    from support import synthetic_train_data as syn
    from support.tiny_net import tiny_network

    from unigrec.inference.prompts import query_table_texts
    from unigrec.inference.retrieval import DecodeSettings
    from unigrec.inference.serving import Recommender, write_serving_bundle
    from unigrec.model.item_codes import item_codes_from_frame
    from unigrec.model.vocabulary import Vocabulary

    items = item_codes_from_frame(syn.ids_frame(3))
    net, serialiser = tiny_network(Vocabulary.from_codebooks(syn.CODEBOOKS), items, seed=5, event_layout=event_layout,
                                   past_action_input=past_action_input)
    events = syn.events_frame(n_users=6)
    texts = list(query_table_texts(events))
    catalogue = pd.DataFrame({"item_id": syn.item_ids(), "title": syn.item_ids()})
    settings = DecodeSettings(beam_size=8, batch_size=3, pipeline_k=8, fusion_weights={"rec": 0.3, "search": 0.3},
                              cached_histories=cached)
    vectors = np.random.default_rng(0).normal(size=(len(texts), 16)).astype(np.float32)
    write_serving_bundle(folder, events, catalogue, texts, vectors, settings)
    model = types.SimpleNamespace(vocab=serialiser.vocab, items=items, serialiser=serialiser, net=net)
    return Recommender(model, folder), texts


def test_a_server_keeps_at_most_cached_histories_users_and_no_stranger(tmp_path):
    recommender, texts = _recommender(tmp_path / "kept", cached=2)
    users = ["u000", "u001", "u002", "u003", "made-up", "also-made-up"]
    requests = pd.DataFrame({"user_id": users, "kind": ["rec", "search"] * 3,
                             "query": [None, texts[0], None, texts[1], None, texts[0]]})
    net = recommender.model.net
    passes = []
    original = net.encode
    net.encode = lambda *args, **kwargs: passes.append(args[0].shape) or original(*args, **kwargs)
    first = recommender.predict(requests, k=5)
    assert len(recommender._states) == 2  # the capacity, whatever the users served
    assert recommender._stranger is not None and all(u not in recommender._states._states for u in users[4:])
    assert len(passes) == 2, "first requests: one pass over the whole prompts per batch (rec, search)"
    # users kept, and strangers: no pass over a whole prompt, only their own tokens after the kept history
    again = requests[requests["user_id"].isin(["u001", "u003", "made-up"])]  # the two last kept
    passes.clear()
    recommender.predict(again, k=5)
    assert passes == []
    # answers do not depend on what is kept: a store of none, and a second call served from the store
    pd.testing.assert_frame_equal(recommender.predict(requests, k=5), first)
    none, _ = _recommender(tmp_path / "none", cached=0)
    served = none.predict(requests, k=5)
    assert len(none._states) == 0
    assert served[["request", "rank", "item_id"]].equals(first[["request", "rank", "item_id"]])
    np.testing.assert_allclose(served["score"], first["score"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("past_action_input", [False, True])
def test_item_layout_recommendations_have_no_tokens_of_their_own_and_decode_from_the_kept_state(
    tmp_path, past_action_input
):
    # the last item predicts the next: a rec request appends nothing to the kept history, so it runs whole.
    # With past actions, a search's first token after a kept history reads the history's last action from the
    # kept state, and a recommendation's first candidate code from the whole pass's cache
    kept, texts = _recommender(tmp_path / "kept", cached=4, event_layout="item", past_action_input=past_action_input)
    none, _ = _recommender(tmp_path / "none", cached=0, event_layout="item", past_action_input=past_action_input)
    assert len(kept.model.serialiser.behaviour_tokens(False)) == 0
    requests = pd.DataFrame({"user_id": ["u000", "u001", "u000", "made-up"], "kind": ["rec", "search", "rec", "rec"],
                             "query": [None, texts[0], None, None]})
    first = kept.predict(requests, k=5)
    assert len(kept._states) == 2 and (first.groupby("request").size() == 5).all()
    passes = []
    original = kept.model.net.encode
    kept.model.net.encode = lambda *args, **kwargs: passes.append(args[0].shape) or original(*args, **kwargs)
    # histories kept now: searches run their own tokens after them, recommendations decode from the kept state
    again = kept.predict(requests, k=5)
    assert passes == [], "no whole prompt runs again"
    for served in (again, none.predict(requests, k=5)):
        assert served[["request", "rank", "item_id"]].equals(first[["request", "rank", "item_id"]])
        np.testing.assert_allclose(served["score"], first["score"], rtol=1e-5, atol=1e-5)


def test_bundles_written_before_the_setting_keep_no_history_and_the_param_is_checked(tmp_path):
    from unigrec.config import ConfigError, RuntimeConfig, build_section
    from unigrec.inference.retrieval import DecodeSettings

    settings = DecodeSettings(beam_size=8, batch_size=3, pipeline_k=8)
    old = {k: v for k, v in dataclasses.asdict(settings).items() if k != "cached_histories"}
    assert DecodeSettings.from_dict(old).cached_histories == 0
    import yaml

    runtime = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))["runtime"]
    assert build_section(RuntimeConfig, runtime, "runtime").cached_histories >= 0
    with pytest.raises(ConfigError, match="cached_histories: must be >= 0"):
        build_section(RuntimeConfig, {**runtime, "cached_histories": -1}, "runtime")
