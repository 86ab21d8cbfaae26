"""Evaluation protocols, slices and the comparison table against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from unigrec.evaluate.comparison import MODEL_LABEL, protocol_table
from unigrec.evaluate.protocols import (
    best_weight,
    drop_seen,
    hit_rate_curve,
    list_ranks,
    ranking_metrics,
    retrieval_metrics,
    sampled_ranks,
)
from unigrec.evaluate.slices import (
    SEARCH_SLICE_NAMES,
    SLICE_NAMES,
    SLICE_STREAMS,
    popularity_threshold,
    search_slice_masks,
    slice_masks,
    train_counts,
)


def test_sampled_ranks_count_ties_against_the_target():
    scores = np.array([[0.5, 0.9, 0.5, 0.1], [0.7, 0.1, 0.2, 0.3], [1.0, 1.0, 1.0, 1.0]])
    assert sampled_ranks(scores).tolist() == [2.0, 0.0, 3.0]
    # the target may sit in any column
    assert sampled_ranks(np.array([[0.1, 0.9, 0.5]]), target_column=2).tolist() == [1.0]


def test_list_ranks_and_seen_items_dropped_before_the_cut():
    assert list_ranks([["a", "b", "c"], ["x"]], ["c", "y"]).tolist() == [2.0, math.inf]
    lists = drop_seen([["a", "b", "c", "d"], ["b", "a"]], [{"b"}, set()], k=2)
    assert lists == [["a", "c"], ["b", "a"]]
    # the target moves up once a seen item before it is gone
    assert list_ranks(drop_seen([["s", "t"]], [{"s"}], 2), ["t"]).tolist() == [0.0]


def test_retrieval_metrics_by_hand():
    ranks = np.array([0.0, 2.0, math.inf])
    got = retrieval_metrics(ranks, hr_cutoffs=(1, 3), ndcg_cutoffs=(3,), with_mrr=True)
    assert got["hr@1"] == pytest.approx(1 / 3)
    assert got["hr@3"] == pytest.approx(2 / 3)
    assert got["ndcg@3"] == pytest.approx((1.0 + 1.0 / math.log2(4)) / 3)  # (1 + 0.5) / 3
    assert got["mrr"] == pytest.approx((1.0 + 1 / 3 + 0.0) / 3)
    assert set(retrieval_metrics(ranks, (1,), (), False)) == {"hr@1"}
    assert hit_rate_curve(ranks, 3).tolist() == pytest.approx([1 / 3, 1 / 3, 2 / 3])


def test_ranking_metrics_by_hand():
    labels = np.array([1, 0, 1])
    target = np.array([0.9, 0.8, 0.3])
    lists = np.array([[0.9, 0.1, 0.95], [0.8, 0.5, 0.5], [0.3, 0.2, 0.1]])
    got = ranking_metrics(labels, target, lists)
    # AUC: positives 0.9 and 0.3 against the negative 0.8 -> one pair of two won
    assert got["auc"] == pytest.approx(0.5)
    # GAUC over the two liked rows: row 0 beats 1 of 2 negatives, row 2 both -> (0.5*3 + 1.0*3) / 6
    assert got["gauc"] == pytest.approx(0.75) and got["gauc_groups"] == 2
    expected = -np.mean([math.log(0.9), math.log(0.2), math.log(0.3)])
    assert got["logloss"] == pytest.approx(expected)
    assert got["n"] == 3 and got["positive_rate"] == pytest.approx(2 / 3)


def _events() -> pd.DataFrame:
    rows = []
    # user a: 3 train events, user b: 1; item x is trained 3 times, y once, z never
    for user, item in [("a", "x"), ("a", "x"), ("a", "y"), ("b", "x")]:
        rows.append({"user_id": user, "item_id": item, "kind": "rec", "query": None, "split": "train"})
    rows.append({"user_id": "a", "item_id": "z", "kind": "rec", "query": None, "split": "test"})
    return pd.DataFrame(rows)


def test_slices_use_train_counts_only():
    events = _events()
    assert train_counts(events, "item_id").to_dict() == {"x": 3, "y": 1}
    # catalogue counts x=3, y=1, z=0, w=0 -> the 0.5 quantile is 0.5
    assert popularity_threshold(train_counts(events, "item_id"), ["x", "y", "z", "w"], 0.5) == pytest.approx(0.5)
    masks = slice_masks(["a", "b", "c"], ["x", "y", "z"], [None] * 3, events, ["x", "y", "z", "w"], 2, 0.5)
    assert masks["cold_users"].tolist() == [False, True, True]  # a has 3 > 2; c has none
    assert masks["warm_users"].tolist() == [True, False, False]
    assert masks["popular_items"].tolist() == [True, True, False]
    assert masks["long_tail_items"].tolist() == [False, False, True]
    assert set(masks) == set(SLICE_NAMES)
    for name in SEARCH_SLICE_NAMES:  # recommendation cases (no query) are in no search slice
        assert not masks[name].any()
    with pytest.raises(ValueError, match="quantile"):
        popularity_threshold(train_counts(events, "item_id"), ["x"], 1.0)
    with pytest.raises(ValueError, match="one user, target and query"):
        slice_masks(["a"], ["x"], [], events, ["x"], 2, 0.5)


def test_search_slices_are_measured_on_training_searches_only():
    rows = [
        ("u1", "x", "search", "crime", "train"),  # x: searched for "crime" in training
        ("u1", "y", "rec", None, "train"),  # y: trained on, never as a search target
        ("u2", "z", "search", "drama", "valid"),  # z and "drama": searched, but never in training
        ("u2", "w", "search", "western", "gap"),  # w and "western": held back from training
        ("u3", "v", "rec", None, "test"),
    ]
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "kind", "query", "split"])
    queries = ["crime", "crime", "drama", "Crime", "western", "crime", None]
    targets = ["x", "y", "z", "x", "w", "v", "v"]
    masks = search_slice_masks(queries, targets, events)
    assert masks["unseen_query"].tolist() == [False, False, True, True, True, False, False]  # exact string
    assert masks["target_never_searched"].tolist() == [False, True, True, False, True, True, False]
    assert SLICE_STREAMS["unseen_query"] == ("search",) and SLICE_STREAMS["cold_users"] == ("rec", "search")
    # cold items (no training event in either stream) are a slice of both streams: the rec case of v too
    users = ["u1"] * len(targets)
    cold = slice_masks(users, targets, queries, events, ["x", "y", "z", "w", "v"], 2, 0.5)["target_no_train_events"]
    assert cold.tolist() == [False, False, True, False, True, True, True]
    # a target with no training event was never a training search target either
    assert not (cold & np.array([q is not None for q in queries]) & ~masks["target_never_searched"]).any()
    assert SLICE_STREAMS["target_no_train_events"] == ("rec", "search")


def test_comparison_table_rows_and_best_values():
    block = lambda v: {"n": 2, "sampled": {"hr@1": v}, "full": {"ndcg@10": v / 2}}
    metrics = {
        "test": {"rec": block(0.4), "search": block(0.2)},
        "baselines": {"popularity": {"rec": block(0.1), "search": block(0.3)}, "bm25": {"search": block(0.25)}},
    }
    table = protocol_table(metrics, "sampled").splitlines()
    assert table[0].startswith("| stream | method | n | HR@1")
    assert f"| rec | {MODEL_LABEL} | 2 | **0.4000** |" in table
    assert "| search | popularity | 2 | **0.3000** |" in table
    assert not any("| rec | bm25" in line for line in table)  # bm25 serves search only
    assert len(table) == 2 + 2 + 3


def test_best_weight_prefers_quality_then_the_smaller_weight_and_ignores_nan():
    assert best_weight({0.0: 0.10, 0.5: 0.12, 1.0: 0.05}) == 0.5
    assert best_weight({0.0: 0.10, 0.3: 0.10, 1.0: 0.02}) == 0.0
    assert best_weight({0.0: float("nan"), 0.2: 0.01}) == 0.2
    assert best_weight({0.4: float("nan"), 0.2: float("nan")}) == 0.2
    with pytest.raises(ValueError):
        best_weight({})


def test_protocol_table_orders_columns_by_metric_then_cutoff():
    block = {"n": 1, "full": {"hr@10": 0.1, "hr@5": 0.05, "mrr": 0.2, "ndcg@10": 0.3, "ndcg@5": 0.25}}
    header = protocol_table({"test": {"rec": block}}, "full").splitlines()[0]
    assert header == "| stream | method | n | HR@5 | HR@10 | NDCG@5 | NDCG@10 | MRR |"
