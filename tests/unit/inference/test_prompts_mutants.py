"""Prompts: cases tests/unit/inference/test_inference_prompts.py left open, found by mutation testing
(tools/mutation.py; docs/experiments/2026-12-03-mutation-testing.md names the mutants each test kills)."""

from __future__ import annotations

import numpy as np
import pytest
from support.events import interactions_frame, searches_frame

from unigrec.data.split import assign_leave_one_out, merge_streams
from unigrec.errors import ContractViolation
from unigrec.inference.prompts import (
    PromptExample,
    cap_per_stream,
    group_user_events,
    prompt_examples,
    query_table_texts,
)
from unigrec.model.item_codes import atomic_item_codes
from unigrec.model.tokenizer import SequenceSerialiser
from unigrec.model.vocabulary import Vocabulary


def _events():
    inter = interactions_frame([("u", "a", 1, 5.0, 1), ("u", "b", 2, 2.0, 0), ("u", "c", 3, 5.0, 1),
                                ("v", "a", 1, 5.0, 1)])
    srch = searches_frame([("u", "war", "c", 4), ("u", "drama", "b", 5), ("u", "war", "a", 6)])
    return assign_leave_one_out(merge_streams(inter, srch), min_events=3)


def test_user_arrays_are_int64_with_minus_one_as_the_query_of_rec_events():
    events = _events()
    queries = query_table_texts(events)
    items, _ = atomic_item_codes(["a", "b", "c"])
    users = group_user_events(events, items, queries)
    assert [u.user_id for u in users] == ["u", "v"]
    u = users[0]
    assert u.events.queries.tolist() == [-1, -1, -1, queries.index("war"), queries.index("drama"),
                                         queries.index("war")]
    assert u.events.labels.tolist() == [1, 0, 1, 1, 1, 1]
    assert u.timestamps.tolist() == [1, 2, 3, 4, 5, 6] and u.orders.tolist() == [0, 1, 2, 3, 4, 5]
    for array in (u.events.items, u.events.labels, u.events.queries, u.timestamps, u.orders):
        assert array.dtype == np.int64


def test_a_missing_events_column_is_a_contract_violation_naming_it():
    items, _ = atomic_item_codes(["a", "b", "c"])
    with pytest.raises(ContractViolation, match=r"events table lacks column\(s\) \['split'\]"):
        group_user_events(_events().drop(columns=["split"]), items, ())


def test_prompt_examples_reject_a_split_without_a_context_rule():
    items, codebooks = atomic_item_codes(["a", "b", "c"])
    serialiser = SequenceSerialiser(Vocabulary.from_codebooks(codebooks), items, n_query_tokens=1, max_events=50)
    with pytest.raises(ValueError, match=r"^split must be one of \['test', 'valid'\], not 'train'$"):
        prompt_examples([], serialiser, "train")


def _example(k: int, is_search: bool) -> PromptExample:
    return PromptExample(user_id=f"u{k}", is_search=is_search, target=k, label=1, prompt=None, seen=np.array([]))


def test_cap_per_stream_keeps_a_fixed_subset_of_each_stream_in_order():
    examples = [_example(k, is_search=k % 3 == 0) for k in range(90)]  # 30 search, 60 rec
    capped = cap_per_stream(examples, 20, seed=5)
    rec, search = [e for e in capped if not e.is_search], [e for e in capped if e.is_search]
    assert len(rec) == len(search) == 20
    assert capped == rec + search  # rec stream first, then search
    for stream in (rec, search):
        ks = [e.target for e in stream]
        assert ks == sorted(set(ks))  # distinct, in input order
    assert cap_per_stream(examples, 20, seed=5) == capped  # same every epoch
    assert cap_per_stream(examples, 20, seed=6) != capped


def test_cap_per_stream_keeps_short_streams_whole_and_none_keeps_all():
    examples = [_example(k, is_search=k < 3) for k in range(10)]  # 3 search, 7 rec
    assert cap_per_stream(examples, 3, seed=0)[3:] == examples[:3]  # a stream at the cap is kept whole
    assert len(cap_per_stream(examples, 3, seed=0)) == 6
    assert cap_per_stream(examples, None, seed=0) == examples
