"""The one leak-free context rule, through both paths that use it: the model's prompts and the baselines'
held-out contexts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support.events import interactions_frame, searches_frame

from unigrec.data.split import assign_leave_one_out, merge_streams
from unigrec.evaluate.baselines.context import held_out_cases
from unigrec.inference.prompts import context_positions, group_user_events, prompt_examples, query_table_texts
from unigrec.model.item_codes import atomic_item_codes
from unigrec.model.tokenizer import SequenceSerialiser
from unigrec.model.vocabulary import Vocabulary


def _prompts(events: pd.DataFrame, split: str):
    """The model's prompts of ``split`` events, on atomic IDs of every item the events name."""
    items, codebooks = atomic_item_codes(sorted(set(events["item_id"].astype(str))))
    serialiser = SequenceSerialiser(Vocabulary.from_codebooks(codebooks), items, n_query_tokens=1, max_events=50)
    users = group_user_events(events, items, query_table_texts(events))
    return items, prompt_examples(users, serialiser, split)


def test_a_same_second_twin_logged_before_the_target_is_left_out_of_both_contexts():
    # The search for "x" at t=7 is the held-out test search; the rec stream logged the same engagement at the
    # same second, and rec sorts before search at equal timestamps, so the twin sits EARLIER in order: only
    # the same-engagement clause (not the ordering) keeps it out.
    inter = interactions_frame([("u", "a", 1, 5.0, 1), ("u", "x", 7, 5.0, 1), ("u", "b", 9, 5.0, 1)])
    srch = searches_frame([("u", "q1", "s1", 2), ("u", "q2", "s2", 3), ("u", "q", "x", 7)])
    events = assign_leave_one_out(merge_streams(inter, srch), min_events=3)
    target = events[(events.kind == "search") & (events.split == "test")]
    twin = events[(events.kind == "rec") & (events.item_id == "x")]
    assert target.item_id.tolist() == ["x"] and int(twin.order.iloc[0]) < int(target.order.iloc[0])
    assert twin.split.iloc[0] == "valid"  # a split the test context may see: the rule must drop it

    case = next(c for c in held_out_cases(events, "test") if c.context.kind == "search")
    assert [e.item_id for e in case.context.history] == ["a", "s1", "s2"]
    items, examples = _prompts(events, "test")
    search = next(e for e in examples if e.is_search)
    assert sorted(items.item_ids[i] for i in search.seen) == ["a", "s1", "s2"]


def test_context_positions_by_hand():
    splits = np.array(["train", "train", "valid", "train", "test", "train"], dtype=object)
    orders = np.arange(6)
    items = np.array(["a", "b", "c", "d", "d", "e"], dtype=object)
    timestamps = np.array([1, 2, 3, 4, 4, 9])
    # test event 4 sees train+valid before it, minus its twin (3: same item, same second)
    assert context_positions(splits, orders, items, timestamps, 4, "test").tolist() == [0, 1, 2]
    # the valid event 2 sees train events before it only
    assert context_positions(splits, orders, items, timestamps, 2, "valid").tolist() == [0, 1]
    with pytest.raises(ValueError, match="split must be one of"):
        context_positions(splits, orders, items, timestamps, 4, "train")


@pytest.mark.parametrize("split", ["valid", "test"])
def test_prompts_and_baseline_contexts_see_the_same_history_on_random_data(split):
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{rng.integers(30)}", int(rng.integers(5)), 5.0, 1) for u in range(20) for _ in range(8)]
    srows = [(f"u{u}", f"q{rng.integers(3)}", f"i{rng.integers(30)}", int(rng.integers(5)))
             for u in range(20) for _ in range(4)]
    events = assign_leave_one_out(merge_streams(interactions_frame(rows), searches_frame(srows)), min_events=3)
    cases = held_out_cases(events, split)
    items, examples = _prompts(events, split)
    assert len(cases) == len(examples) > 0
    allowed = {"valid": {"train"}, "test": {"train", "valid"}}[split]
    by_user = {u: g for u, g in events.groupby("user_id")}
    for case, example in zip(cases, examples, strict=True):
        assert case.context.user_id == example.user_id
        assert {e.item_id for e in case.context.history} == {items.item_ids[i] for i in example.seen}
        user = by_user[case.context.user_id]
        target = user[(user.split == split) & (user.kind == case.context.kind)].iloc[0]
        earlier = user[user.order < target.order]
        visible = earlier[earlier.split.isin(allowed)
                          & ~((earlier.item_id == target.item_id) & (earlier.timestamp == target.timestamp))]
        assert [e.item_id for e in case.context.history] == visible.item_id.tolist()
