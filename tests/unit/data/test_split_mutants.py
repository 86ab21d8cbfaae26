"""Merge and leave-one-out split: cases tests/unit/data/test_split.py left open, found by mutation testing
(tools/mutation.py; docs/experiments/2026-12-03-mutation-testing.md names the mutants each test kills)."""

from __future__ import annotations

import pandas as pd
import pytest
from support.events import interactions_frame, searches_frame

from unigrec.data.split import EVENT_COLUMNS, assign_leave_one_out, merge_streams


def _events() -> pd.DataFrame:
    inter = interactions_frame([("u", f"i{k}", k, 4.0, 1) for k in range(4)] + [("v", "x", 1, 2.0, 0)])
    srch = searches_frame([("u", "war", "s1", 10), ("u", "war", "s2", 11), ("u", "war", "s3", 12)])
    return merge_streams(inter, srch)


def test_merged_events_have_the_written_columns_and_types():
    # the events table is written to parquet and hashed by DVC: its schema is part of the contract
    ev = _events()
    assert list(ev.columns) == ["user_id", "item_id", "timestamp", "rating", "label", "kind", "query", "order"]
    assert ev.index.equals(pd.RangeIndex(len(ev)))
    assert {c: str(t) for c, t in ev.dtypes.items()} == {
        "user_id": "string", "item_id": "string", "timestamp": "int64", "rating": "float64", "label": "int8",
        "kind": "string", "query": "string", "order": "int64",
    }
    out = assign_leave_one_out(ev, min_events=3)
    assert list(out.columns) == EVENT_COLUMNS
    assert str(out["split"].dtype) == "string"


def test_split_follows_the_rows_whatever_the_index():
    # a filtered frame keeps its index labels (rows still in merge order): the split must land on the
    # right rows, not on whatever rows carry the labels 0..n-1
    ev = _events()
    expected = assign_leave_one_out(ev, min_events=3)
    relabelled = ev.set_axis(ev.index[::-1] + 100)
    got = assign_leave_one_out(relabelled, min_events=3)
    assert got["split"].tolist() == expected["split"].tolist()
    assert got.loc[got.item_id == "s3", "split"].item() == "test"
    assert got.loc[got.item_id == "i2", "split"].item() == "valid"


def test_min_events_error_says_what_a_held_out_event_needs():
    with pytest.raises(ValueError, match=r"^min_events must be >= 3 \(one train, one valid and one test event\)$"):
        assign_leave_one_out(_events(), min_events=2)
