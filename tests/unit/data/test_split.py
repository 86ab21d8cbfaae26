"""Leave-one-out splitting, event ordering and the no-leakage rule."""

from __future__ import annotations

import pytest
from support.events import interactions_frame, searches_frame

from unigrec.data.split import assign_leave_one_out, merge_streams


def test_merge_orders_by_time_then_stream_then_row():
    inter = interactions_frame([
        ("u", "b", 20, 5.0, 1),
        ("u", "a", 10, 3.0, 0),
        ("u", "c", 20, 4.0, 1),  # same second as "b": file order decides
    ])
    srch = searches_frame([("u", "drama", "d", 20), ("u", "war", "e", 5)])
    ev = merge_streams(inter, srch)
    assert ev["item_id"].tolist() == ["e", "a", "b", "c", "d"]
    assert ev["order"].tolist() == [0, 1, 2, 3, 4]
    assert ev.loc[ev["kind"] == "search", "label"].tolist() == [1, 1]
    assert ev.loc[ev["kind"] == "rec", "query"].isna().all()


def test_merge_is_reproducible_under_input_shuffles_of_other_users():
    inter = interactions_frame([("u1", "a", 1, 5.0, 1), ("u2", "b", 1, 5.0, 1), ("u1", "c", 1, 5.0, 1)])
    one = merge_streams(inter, searches_frame([]))
    two = merge_streams(inter.iloc[[1, 0, 2]].reset_index(drop=True), searches_frame([]))
    assert one[one.user_id == "u1"]["item_id"].tolist() == two[two.user_id == "u1"]["item_id"].tolist()


def test_leave_one_out_per_stream():
    inter = interactions_frame([("u", f"i{k}", k, 5.0, 1) for k in range(5)] + [("v", "x", 1, 5.0, 1)])
    srch = searches_frame([("u", "q", f"s{k}", 10 + k) for k in range(3)])
    ev = assign_leave_one_out(merge_streams(inter, srch), min_events=3)
    u = ev[ev.user_id == "u"]
    rec, src = u[u.kind == "rec"], u[u.kind == "search"]
    assert rec["split"].tolist() == ["train", "train", "train", "valid", "test"]
    assert src["split"].tolist() == ["train", "valid", "test"]
    # too short to hold anything out
    assert ev[ev.user_id == "v"]["split"].tolist() == ["train"]


def test_min_events_below_three_is_rejected():
    ev = merge_streams(interactions_frame([("u", "a", 1, 5.0, 1)]), searches_frame([]))
    with pytest.raises(ValueError):
        assign_leave_one_out(ev, min_events=2)
