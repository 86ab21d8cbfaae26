"""Leave-one-out splitting, event ordering and the no-leakage rule."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from support.events import interactions_frame, searches_frame
from support.history_rule import event_rows, later_training_rows

from unigrec.config import load_section
from unigrec.data.split import assign_leave_one_out, assign_split, merge_streams

PARAMS = Path(__file__).resolve().parents[3] / "params.yaml"


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


def _early_last_search_user() -> pd.DataFrame:
    """One user whose three searches sit early in a timeline of 13 events, then eight more ratings."""
    inter = interactions_frame([("u", f"r{k}", t, 5.0, 1) for k, t in enumerate([0, 1, *range(5, 13)])])
    srch = searches_frame([("u", "q", f"s{k}", 2 + k) for k in range(3)])
    return merge_streams(inter, srch)


def test_the_per_stream_split_trains_on_events_after_a_held_out_one():
    # the problem issue 35 names: the search pair is held out early, the later ratings stay in train
    ev = assign_split(_early_last_search_user(), min_events=3, protocol="per_stream", holdout_window=None)
    assert [r["item_id"] for r in later_training_rows(event_rows(ev))] == [f"r{k}" for k in range(2, 8)]


@pytest.mark.parametrize("window", [2, 3, 4, 9, 10, None])
def test_no_training_event_comes_after_the_users_earliest_held_out_event(window):
    ev = assign_split(_early_last_search_user(), min_events=3, protocol="time_consistent", holdout_window=window)
    assert later_training_rows(event_rows(ev)) == []
    by_item = dict(zip(ev["item_id"], ev["split"], strict=True))
    # the ratings' own pair is among the last events whatever the window
    assert (by_item["r8"], by_item["r9"]) == ("valid", "test")
    # s1 (the search valid event) is the 10th event from the end: held out only if the window reaches it
    search_held = window is None or window >= 10
    assert [by_item[f"s{k}"] for k in range(3)] == (["train", "valid", "test"] if search_held else ["train"] * 3)
    # what lies between is neither trained on nor evaluated: the gap
    assert [by_item[f"r{k}"] for k in range(2, 8)] == (["gap"] * 6 if search_held else ["train"] * 6)
    assert (by_item["r0"], by_item["r1"]) == ("train", "train")


def test_the_time_consistent_split_keeps_the_per_stream_rule_inside_the_window():
    # both streams' pairs at the end of the timeline: the same held-out events as the per-stream split
    inter = interactions_frame([("u", f"r{k}", k, 5.0, 1) for k in range(5)])
    srch = searches_frame([("u", "q", f"s{k}", 3 + k) for k in range(3)])  # s1, s2 at t=4, 5: the very end
    ev = merge_streams(inter, srch)
    per_stream = assign_split(ev, min_events=3, protocol="per_stream", holdout_window=None)
    consistent = assign_split(ev, min_events=3, protocol="time_consistent", holdout_window=5)
    held = per_stream["split"].isin(["valid", "test"])
    assert consistent.loc[held, "split"].tolist() == per_stream.loc[held, "split"].tolist()
    # order r0 r1 r2 r3 s0 r4 s1 s2: r3 (rec valid) is 5th from the end, so s0 after it falls in the gap
    assert dict(zip(consistent["item_id"], consistent["split"], strict=True)) == {
        "r0": "train", "r1": "train", "r2": "train", "r3": "valid", "s0": "gap", "r4": "test",
        "s1": "valid", "s2": "test",
    }


def test_holdout_window_below_two_and_unknown_protocols_are_rejected():
    ev = _early_last_search_user()
    with pytest.raises(ValueError, match="holdout_window"):
        assign_split(ev, min_events=3, protocol="time_consistent", holdout_window=1)
    with pytest.raises(ValueError, match="protocol"):
        assign_split(ev, min_events=3, protocol="per_user", holdout_window=4)


def test_the_pipeline_default_is_the_time_consistent_split():
    cfg = load_section("split", PARAMS)
    assert cfg.protocol == "time_consistent"
    assert cfg.holdout_window is None or cfg.holdout_window >= 2


def test_candidate_lists_and_summary_follow_the_held_out_events_not_the_gap():
    from unigrec.config import BM25Config, SplitConfig
    from unigrec.stages.split import build_candidates, split_summary

    ev = assign_split(_early_last_search_user(), min_events=3, protocol="time_consistent", holdout_window=None)
    items = pd.DataFrame({"item_id": [*ev["item_id"], *(f"x{k}" for k in range(20))]})
    items["text"] = items["item_id"].map(lambda i: f"{i} q")
    cfg = SplitConfig(protocol="time_consistent", holdout_window=None, min_events=3, n_negatives=5,
                      popularity_smoothing=1.0, cold_items=0.0, seed=0, bm25=BM25Config(1.5, 0.75, 20))
    cands = build_candidates(ev, items, cfg)
    assert sorted(zip(cands["item_id"], cands["split"], strict=True)) == [
        ("r8", "valid"), ("r9", "test"), ("s1", "valid"), ("s2", "test")]
    for negatives in cands.loc[cands["kind"] == "rec", "negatives"]:  # never an item of the timeline, gap included
        assert not set(negatives) & set(ev["item_id"])
    summary = split_summary(ev, cands)
    assert summary["gap_events"] == 6 and summary["events_by_stream_split"]["rec/gap"] == 6
    assert summary["users_with_held_out"] == {"rec": 1.0, "search": 1.0}
    window = assign_split(_early_last_search_user(), min_events=3, protocol="time_consistent", holdout_window=4)
    assert split_summary(window, cands)["users_with_held_out"] == {"rec": 1.0, "search": 0.0}


def _shared_items_events() -> pd.DataFrame:
    """Ten users over twelve items, each item rated by several users: most items have a held-out event."""
    rows = [(f"u{u}", f"i{(u + k) % 12}", k, 5.0, 1) for u in range(10) for k in range(8)]
    return assign_split(merge_streams(interactions_frame(rows), searches_frame([])), min_events=3,
                        protocol="per_stream", holdout_window=None)


def test_cold_items_lose_their_training_events_and_nothing_else():
    from unigrec.data.split import HELD_OUT_SPLITS, make_items_cold

    ev = _shared_items_events()
    out, cold = make_items_cold(ev, 0.25, seed=3)
    held_items = set(ev.loc[ev["split"].isin(HELD_OUT_SPLITS), "item_id"])
    assert len(cold) == round(0.25 * len(held_items)) > 0 and set(cold) <= held_items
    assert not (out["item_id"].isin(cold) & (out["split"] == "train")).any()
    # every held-out event and every training event of a warm item is kept, in the same order per user
    kept = ev[~(ev["item_id"].isin(cold) & (ev["split"] == "train"))]
    assert out[["user_id", "item_id", "split"]].values.tolist() == kept[["user_id", "item_id", "split"]].values.tolist()
    assert (out.groupby("user_id")["order"].apply(lambda o: o.tolist() == list(range(len(o))))).all()
    assert make_items_cold(ev, 0.25, seed=3)[1] == cold  # seeded
    unchanged, none = make_items_cold(ev, 0.0, seed=3)
    assert unchanged is ev and none == []
    with pytest.raises(ValueError, match="cold_items"):
        make_items_cold(ev, 1.0, seed=3)


def test_split_summary_counts_the_test_cases_of_cold_items():
    from unigrec.data.split import make_items_cold
    from unigrec.stages.split import split_summary

    ev, cold = make_items_cold(_shared_items_events(), 0.25, seed=3)
    test = ev[ev["split"] == "test"]
    summary = split_summary(ev, pd.DataFrame(), cold)["cold_items"]
    assert summary["test_cases"]["rec"] > 0
    assert summary == {"items": len(cold), "test_cases": {"rec": int(test["item_id"].isin(cold).sum()), "search": 0}}
