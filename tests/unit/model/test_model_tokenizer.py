"""Serialiser: token layout, targets, truncation, and prompts that never leak their target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support import synthetic_train_data as syn

from unigrec.inference.prompts import group_user_events, prompt_examples, query_table_texts
from unigrec.model.item_codes import item_codes_from_frame
from unigrec.model.tokenizer import (
    IGNORE,
    NO_GROUP,
    RANKING,
    RETRIEVAL_REC,
    RETRIEVAL_SEARCH,
    EventSeq,
    SequenceSerialiser,
)
from unigrec.model.vocabulary import COLLABORATIVE, SEMANTIC, Vocabulary

ITEMS = item_codes_from_frame(syn.ids_frame())
VOCAB = Vocabulary.from_codebooks(syn.CODEBOOKS)


def _events(items, search, labels, queries) -> EventSeq:
    return EventSeq(np.array(items), np.array(search, dtype=bool), np.array(labels), np.array(queries))


def test_shared_level_is_one_vocabulary_slice():
    assert VOCAB.level(SEMANTIC, 0) == VOCAB.level(COLLABORATIVE, 0)
    assert VOCAB.level(SEMANTIC, 1).offset != VOCAB.level(COLLABORATIVE, 1).offset
    assert VOCAB.size == 8 + 4 + 12 + 2 + 12 + 2


def test_event_layout_and_targets():
    ser = SequenceSerialiser(VOCAB, ITEMS, n_query_tokens=2, max_events=10)
    seq = ser.training_sequence(_events([3, 7], [False, True], [0, 1], [-1, 5]))
    rec = ITEMS.codes[COLLABORATIVE][3] + VOCAB.level_offsets(COLLABORATIVE)
    src = ITEMS.codes[SEMANTIC][7] + VOCAB.level_offsets(SEMANTIC)
    t = VOCAB.token
    expected = [t("<bos>"), t("<rec_item>"), *rec, t("<neg>"),
                t("<src_query>"), t("<query>"), t("<query>"), t("<src_item>"), *src, t("<pos>")]
    assert seq.tokens.tolist() == expected
    # retrieval: behaviour token -> first code, each code -> next code; last code -> action (ranking)
    assert seq.targets[1:6].tolist() == [*rec, t("<neg>"), IGNORE]
    assert seq.groups[1:6].tolist() == [RETRIEVAL_REC] * 3 + [RANKING, NO_GROUP]
    assert seq.targets[6:9].tolist() == [IGNORE] * 3  # <src_query> and the soft tokens predict nothing
    assert seq.targets[9:14].tolist() == [*src, t("<pos>"), IGNORE]
    assert seq.groups[9:14].tolist() == [RETRIEVAL_SEARCH] * 3 + [RANKING, NO_GROUP]
    assert seq.query_ids.tolist() == [-1] * 7 + [5, 5] + [-1] * 5
    assert seq.query_parts[7:9].tolist() == [0, 1]
    # the ranking label at each event's last code, the same positions and labels as the <pos|neg> targets
    assert np.flatnonzero(seq.actions >= 0).tolist() == np.flatnonzero(seq.groups == RANKING).tolist() == [4, 12]
    assert seq.actions[[4, 12]].tolist() == [0, 1]
    # a prompt keeps its history's actions (input for past_action_input), never one for the asked event
    prompt = ser.prompt(_events([3, 7], [False, True], [0, 1], [-1, 5]), is_search=False)
    assert prompt.actions.tolist() == seq.actions.tolist() + [-1]
    assert (prompt.targets == IGNORE).all() and (prompt.groups == NO_GROUP).all()
    legal = VOCAB.legal_mask()
    for pos in np.flatnonzero(seq.targets != IGNORE):
        assert legal[seq.slots[pos], seq.targets[pos]], "every target lies in its position's legal slice"
    assert len(seq) <= ser.max_length


def test_behaviour_item_layout_writes_no_action_token_and_keeps_every_target():
    full = SequenceSerialiser(VOCAB, ITEMS, n_query_tokens=2, max_events=10)
    short = SequenceSerialiser(VOCAB, ITEMS, n_query_tokens=2, max_events=10, layout="behaviour_item")
    events = _events([3, 7], [False, True], [0, 1], [-1, 5])
    a, b = full.training_sequence(events), short.training_sequence(events)
    kept = ~np.isin(a.tokens, [VOCAB.token("<pos>"), VOCAB.token("<neg>")])
    for field in ("tokens", "targets", "slots", "groups", "query_ids", "item_refs"):
        assert getattr(b, field).tolist() == getattr(a, field)[kept].tolist(), field
    assert short.event_length(False) == full.event_length(False) - 1
    assert len(b) <= short.max_length


def test_item_layout_makes_each_rec_items_last_code_predict_the_next_items_first_code():
    ser = SequenceSerialiser(VOCAB, ITEMS, n_query_tokens=2, max_events=10, layout="item")
    seq = ser.training_sequence(_events([3, 4], [False, False], [1, 0], [-1, -1]))
    first = ITEMS.codes[COLLABORATIVE][3] + VOCAB.level_offsets(COLLABORATIVE)
    second = ITEMS.codes[COLLABORATIVE][4] + VOCAB.level_offsets(COLLABORATIVE)
    assert seq.tokens.tolist() == [VOCAB.token("<bos>"), *first, *second], "no behaviour or action tokens"
    n = len(first)
    # <bos> -> first item's first code; its last code -> the second item's first code (not its own action)
    assert seq.targets[0] == first[0] and seq.targets[n] == second[0]
    assert seq.groups[0] == seq.groups[n] == RETRIEVAL_REC
    assert seq.targets[-1] == VOCAB.token("<neg>") and seq.groups[-1] == RANKING, "the last item keeps its action"
    # ... and every item's last code keeps its ranking label in its own channel, the first's too
    assert seq.actions.tolist() == [-1] * n + [1] + [-1] * (n - 1) + [0]
    prompt = ser.prompt(_events([3], [False], [1], [-1]), is_search=False)
    assert prompt.tokens.tolist() == [VOCAB.token("<bos>"), *first], "a rec prompt ends at the last item"


def test_unknown_event_layout_is_refused():
    with pytest.raises(ValueError, match="event layout"):
        SequenceSerialiser(VOCAB, ITEMS, n_query_tokens=2, max_events=10, layout="tokens")


def test_rec_targets_at_searches_put_the_searched_item_at_src_query_as_a_rec_target_and_nothing_else():
    ser = SequenceSerialiser(VOCAB, ITEMS, n_query_tokens=2, max_events=10)
    events = _events([3, 7], [False, True], [0, 1], [-1, 5])
    plain, extra = ser.training_sequence(events), ser.training_sequence(events, rec_at_searches=True)
    assert extra.tokens.tolist() == plain.tokens.tolist(), "the sequence the model reads is unchanged"
    at = 6  # <src_query>: after <bos> and the 5 tokens of the rec event
    assert extra.tokens[at] == VOCAB.token("<src_query>")
    first = ITEMS.codes[COLLABORATIVE][7][0] + VOCAB.level(COLLABORATIVE, 0).offset
    assert (extra.targets[at], extra.slots[at], extra.groups[at]) == (
        first, VOCAB.code_slot(COLLABORATIVE, 0), RETRIEVAL_REC), "the collaborative first code, as rec writes it"
    others = np.arange(len(plain)) != at
    for field in ("targets", "slots", "groups", "query_ids", "item_refs"):
        assert (getattr(extra, field)[others] == getattr(plain, field)[others]).all(), field
    assert VOCAB.legal_mask()[extra.slots[at], extra.targets[at]]
    rec_only = _events([3, 4], [False, False], [1, 1], [-1, -1])
    assert (ser.training_sequence(rec_only, rec_at_searches=True).targets
            == ser.training_sequence(rec_only).targets).all(), "rec events: nothing to add"


def test_truncation_keeps_the_most_recent_events():
    ser = SequenceSerialiser(VOCAB, ITEMS, n_query_tokens=2, max_events=3)
    seq = ser.training_sequence(_events([1, 2, 3, 4, 5], [False] * 5, [1] * 5, [-1] * 5))
    firsts = seq.tokens[seq.tokens == VOCAB.token("<rec_item>")]
    assert firsts.size == 3
    first_codes = seq.tokens[np.flatnonzero(seq.tokens == VOCAB.token("<rec_item>")) + 1]
    expected = ITEMS.codes[COLLABORATIVE][[3, 4, 5], 0] + VOCAB.level(COLLABORATIVE, 0).offset
    assert first_codes.tolist() == expected.tolist()
    prompt = ser.prompt(_events([1, 2, 3, 4, 5], [False] * 5, [1] * 5, [-1] * 5), is_search=False)
    assert (prompt.tokens == VOCAB.token("<rec_item>")).sum() == 3 + 1  # 3 context events + the target's


def test_prompt_ends_with_the_behaviour_prefix_and_has_no_targets():
    ser = SequenceSerialiser(VOCAB, ITEMS, n_query_tokens=3, max_events=10)
    prompt = ser.prompt(_events([1], [False], [1], [-1]), is_search=True, query=4)
    t = VOCAB.token
    assert prompt.tokens[-5:].tolist() == [t("<src_query>"), t("<query>"), t("<query>"), t("<query>"), t("<src_item>")]
    assert prompt.query_ids[-4:-1].tolist() == [4, 4, 4]
    assert (prompt.targets == IGNORE).all()


def test_prompts_never_contain_their_target_or_later_events():
    events = syn.events_frame(n_users=6)
    # a same-item same-timestamp twin of each valid event, in the training split, right before it
    twins = events[events["split"] == "valid"].copy()
    twins["split"] = "train"
    twins["order"] = twins["order"] - 0.5
    events = pd.concat([events, twins]).sort_values(["user_id", "order"]).reset_index(drop=True)
    events["order"] = events.groupby("user_id").cumcount()
    queries = query_table_texts(events)
    users = group_user_events(events, ITEMS, queries)
    ser = SequenceSerialiser(VOCAB, ITEMS, n_query_tokens=2, max_events=100)
    examples = prompt_examples(users, ser, "valid")
    assert examples
    by_user = {u.user_id: u for u in users}
    for ex in examples:
        kind = SEMANTIC if ex.is_search else COLLABORATIVE
        target_tokens = ITEMS.codes[kind][ex.target] + VOCAB.level_offsets(kind)
        toks = ex.prompt.tokens
        windows = np.lib.stride_tricks.sliding_window_view(toks, len(target_tokens))
        user = by_user[ex.user_id]
        # the twin (same item, same timestamp) is dropped; the only way the target's full ID may
        # appear is an earlier, genuinely different event of the same item
        t_row = np.flatnonzero((user.splits == "valid") & (user.events.items == ex.target)
                               & (user.events.is_search == ex.is_search))[0]
        earlier_same = ((user.events.items == ex.target) & (user.orders < user.orders[t_row])
                        & (user.timestamps != user.timestamps[t_row]) & (user.splits == "train")
                        & (user.events.is_search == ex.is_search))
        if not earlier_same.any():
            assert not (windows == target_tokens).all(axis=1).any()
        n_context = int(((user.splits == "train") & (user.orders < user.orders[t_row])
                         & ~((user.events.items == ex.target) & (user.timestamps == user.timestamps[t_row]))).sum())
        behaviour = np.isin(toks, [VOCAB.token("<rec_item>"), VOCAB.token("<src_item>")]).sum()
        assert behaviour == n_context + 1


def test_unknown_items_fail_clearly():
    events = syn.events_frame(n_users=2)
    events.loc[0, "item_id"] = "nope"
    with pytest.raises(Exception, match="no identifier"):
        group_user_events(events, ITEMS, query_table_texts(events))
