"""Property: training sequences are made of TRAIN events only, every one of them, in time order.

On random tiny event tables the sequences :func:`training_sequences` builds must equal the ones built from
each user's train events picked out by plain loops (tests/support/history_rule.py's rows): no valid or
test event ever reaches a teacher-forced sequence, whatever the window mode and size.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from support.history_rule import event_rows
from support.strategies import ITEMS, USERS, split_events

from unigrec.inference.prompts import group_user_events, query_table_texts
from unigrec.model.item_codes import atomic_item_codes
from unigrec.model.tokenizer import EventSeq, SequenceSerialiser
from unigrec.model.vocabulary import Vocabulary
from unigrec.train.sequences import training_sequences


def _event_seq(rows: list[dict], queries: list[str]) -> EventSeq:
    return EventSeq(
        np.array([ITEMS.index(r["item_id"]) for r in rows], dtype=np.int64),
        np.array([r["kind"] == "search" for r in rows], dtype=bool),
        np.array([int(r["label"]) for r in rows], dtype=np.int64),
        np.array([queries.index(r["query"]) if r["kind"] == "search" else -1 for r in rows], dtype=np.int64),
    )


@settings(max_examples=60, deadline=None)
@given(events=split_events(), windows=st.sampled_from(["latest", "all"]), max_events=st.integers(1, 6))
def test_training_sequences_hold_the_train_events_and_nothing_else(events, windows, max_events):
    items, codebooks = atomic_item_codes(list(ITEMS))
    serialiser = SequenceSerialiser(Vocabulary.from_codebooks(codebooks), items, n_query_tokens=1,
                                    max_events=max_events)
    queries = list(query_table_texts(events))
    got = training_sequences(group_user_events(events, items, queries), serialiser, windows)

    rows = event_rows(events)
    expected = []
    for user in USERS:
        train = [r for r in rows if r["user_id"] == user and r["split"] == "train"]
        if windows == "latest":
            chunks = [train[-max_events:]] if train else []
        else:  # consecutive windows counted back from the latest train event, all of them
            chunks = [train[max(end - max_events, 0):end] for end in range(len(train), 0, -max_events)]
        expected += [serialiser.training_sequence(_event_seq(chunk, queries)) for chunk in chunks]
    assert len(got) == len(expected)
    for seq, want in zip(got, expected, strict=True):
        for field in ("tokens", "targets", "query_ids"):
            np.testing.assert_array_equal(getattr(seq, field), getattr(want, field))
