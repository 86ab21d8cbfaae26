"""Relevance metrics on hand-computed lists, and the typed-query set (evaluate/relevance.py): only forms with
enough fully relevant items, every variant read back as its form, the same set for the same seed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from unigrec.config import QueryReadingConfig, RelevanceConfig, TypedQueriesConfig
from unigrec.data.queries import build_query
from unigrec.data.relevance import CatalogueJudge, item_years
from unigrec.evaluate.baselines.context import HistoryEvent
from unigrec.evaluate.metrics import graded_ndcg_at_k, precision_fully_relevant
from unigrec.evaluate.relevance import (
    VARIANTS,
    catalogue_query_forms,
    reading_check,
    relevance_block,
    request_histories,
    typed_block,
    typed_query_requests,
    typed_variants,
)

READING = QueryReadingConfig(max_edit_distance=1, min_typo_length=5, two_digit_decade_pivot=30)


# ------------------------------------------------------------------ metrics, by hand
def test_precision_counts_only_fully_relevant_and_divides_by_k():
    assert precision_fully_relevant([2, 1, 2, 0], 4) == 0.5
    assert precision_fully_relevant([2, 1, 2], 10) == 0.2  # a short list: missing places are not relevant
    assert precision_fully_relevant([2, 2, 0, 2], 2) == 1.0  # only the top k count
    assert precision_fully_relevant([], 10) == 0.0


def test_graded_ndcg_by_hand():
    # DCG = (2^2-1)/log2(2) + 0 + (2^1-1)/log2(4) = 3 + 0.5; ideal [2, 2, 1]: 3 + 3/log2(3) + 0.5
    expected = 3.5 / (3.0 + 3.0 / math.log2(3.0) + 0.5)
    assert graded_ndcg_at_k([2, 0, 1], [0, 2, 1, 2], 3) == pytest.approx(expected)
    assert expected == pytest.approx(0.649015, abs=1e-6)
    assert graded_ndcg_at_k([2, 2, 1], [1, 2, 2, 0], 3) == pytest.approx(1.0)  # the ideal order
    assert graded_ndcg_at_k([1, 2], [2, 1], 2) < 1.0  # right items, wrong order
    assert graded_ndcg_at_k([0, 0], [0, 0, 0], 2) == 0.0  # nothing relevant to find
    assert graded_ndcg_at_k([2], [2, 2], 2) == pytest.approx(3.0 / (3.0 + 3.0 / math.log2(3.0)))


def test_relevance_block_leaves_seen_items_out_of_the_ideal_list():
    index = {"a": 0, "b": 1, "c": 2, "d": 3}
    grades = np.array([2, 2, 1, 0], dtype=np.int8)
    block = relevance_block([["b", "d"]], [grades], [{"a"}], index, 2)
    # list grades [2, 0]; the best list the user could get leaves out the seen "a": [2, 1]
    assert block[f"ndcg@{2}"] == pytest.approx(3.0 / (3.0 + 1.0 / math.log2(3.0)))
    assert block["p@2"] == 0.5 and block["n"] == 1
    unseen = relevance_block([["b", "d"]], [grades], [set()], index, 2)
    assert unseen["ndcg@2"] == pytest.approx(3.0 / (3.0 + 3.0 / math.log2(3.0)))
    empty = relevance_block([], [], [], index, 2)
    assert empty["n"] == 0 and math.isnan(empty["p@2"])


def test_relevance_block_averages_requests():
    index = {"a": 0, "b": 1}
    block = relevance_block([["a", "b"], ["b", "a"]], [np.array([2, 0]), np.array([2, 2])], [set(), set()], index, 2)
    assert block["p@2"] == pytest.approx((0.5 + 1.0) / 2)
    assert block["ndcg@2"] == pytest.approx(1.0)


# ------------------------------------------------------------------ the typed-query set
def _catalogue() -> pd.DataFrame:
    """Genre combinations x decades with known counts: 'action 1990s' has 4 items, 'comedy 1990s' 3,
    'drama 1980s' 1; one sci-fi action film from 1995 also makes 'action sci-fi 1990s' a form."""
    rows = []
    specs = [("Action", 1991, 3), ("Action|Sci-Fi", 1995, 1), ("Comedy", 1993, 3), ("Drama", 1985, 1)]
    for category, year, count in specs:
        for j in range(count):
            n = len(rows)
            rows.append({"item_id": str(n), "title": f"Film {chr(65 + n)}",
                         "text": f"Film {chr(65 + n)} ({year + j}). Genres: {category}.", "category": category})
    return pd.DataFrame(rows)


def _events(items: pd.DataFrame, n_users: int = 5) -> pd.DataFrame:
    rows = []
    for u in range(n_users):
        for order, item in enumerate(items["item_id"][u : u + 3]):
            kind = "search" if order == 0 else "rec"
            rows.append({"user_id": f"u{u}", "item_id": item, "timestamp": 100 + order, "kind": kind,
                         "query": "comedy 1990s" if kind == "search" else None, "label": 1, "order": order,
                         "split": "train" if order < 2 else "valid"})
    return pd.DataFrame(rows)


def _cfg(min_relevant: int = 3, max_queries: int | None = None, users: int = 2, seed: int = 5) -> RelevanceConfig:
    return RelevanceConfig(10, READING, TypedQueriesConfig(min_relevant, max_queries, users, seed))


def test_forms_are_the_generators_with_enough_fully_relevant_items():
    items = _catalogue()
    judge = CatalogueJudge(items, READING)
    # 'action 1990s' is satisfied by the three action films and the sci-fi action one: 4 >= 3
    assert catalogue_query_forms(items, judge, 3) == ["action 1990s", "comedy 1990s"]
    assert catalogue_query_forms(items, judge, 4) == ["action 1990s"]
    assert catalogue_query_forms(items, judge, 1) == ["action 1990s", "action sci-fi 1990s", "comedy 1990s",
                                                      "drama 1980s"]
    # every form is one the generator makes from some item
    made = {build_query(c, y, True) for c, y in zip(items["category"], item_years(items), strict=True)}
    assert set(catalogue_query_forms(items, judge, 1)) == made


def test_typed_query_set_is_deterministic_by_seed_and_reads_back():
    items, events = _catalogue(), _events(_catalogue())
    judge = CatalogueJudge(items, READING)
    first = typed_query_requests(_cfg(), items, events, judge)
    again = typed_query_requests(_cfg(), items, events, judge)
    other = typed_query_requests(_cfg(seed=6), items, events, judge)
    assert first == again
    assert first != other
    assert {r.form for r in first} == {"action 1990s", "comedy 1990s"}
    # each form: the same 2 users for each of its variants
    for form in ("action 1990s", "comedy 1990s"):
        mine = [r for r in first if r.form == form]
        users = {r.user_id for r in mine}
        assert len(users) == 2
        assert sorted(r.variant for r in mine) == sorted(
            [v for v in VARIANTS if v in {r.variant for r in mine}] * 2
        )
    # every way of typing a form reads back into the form's terms
    assert reading_check(judge, first) == 1.0
    # 'comedy 1990s' was a training search; 'action 1990s' never was
    assert {r.form: r.unseen_form for r in first} == {"action 1990s": True, "comedy 1990s": False}


def test_max_queries_samples_forms():
    items, events = _catalogue(), _events(_catalogue())
    judge = CatalogueJudge(items, READING)
    sampled = typed_query_requests(_cfg(min_relevant=1, max_queries=2), items, events, judge)
    assert len({r.form for r in sampled}) == 2


def test_typed_variants_differ_from_the_form_as_named():
    rng = np.random.default_rng(0)
    variants = typed_variants("sci-fi action 1990s", rng, READING)
    assert set(variants) == set(VARIANTS)
    assert variants["as_generated"] == "sci-fi action 1990s"
    assert sorted(variants["reordered"].split()) == ["1990s", "action", "sci-fi"]
    assert variants["reordered"] != "sci-fi action 1990s"
    assert variants["cased"].lower() == "sci-fi action 1990s" and variants["cased"] != "sci-fi action 1990s"
    assert variants["spelled"] != "sci-fi action 1990s"
    typo = variants["misspelled"].split()
    assert typo[0] == "sci-fi" and typo[2] == "1990s" and sorted(typo[1]) == sorted("action") and typo[1] != "action"
    # one short word: nothing to reorder, spell otherwise or misspell
    assert set(typed_variants("war", rng, READING)) == {"as_generated", "cased"}
    # the 1920s keep four digits ("20s" and "twenties" would read as the 2020s); the 1990s may lose them
    for seed in range(20):
        assert typed_variants("drama 1920s", np.random.default_rng(seed), READING)["spelled"] == "drama 1920's"
    nineties = {typed_variants("drama 1990s", np.random.default_rng(s), READING)["spelled"] for s in range(40)}
    assert nineties == {"drama 1990's", "drama 90s", "drama '90s", "drama nineties"}


def test_typed_block_judges_each_request_by_its_form():
    items, events = _catalogue(), _events(_catalogue())
    judge = CatalogueJudge(items, READING)
    requests = typed_query_requests(_cfg(), items, events, judge)
    histories = request_histories(events, sorted({r.user_id for r in requests}))
    # the ideal method: the FORM's unseen items by grade (the typed text is never what judges)
    grades = {f: judge.grades_of(f) for f in {r.form for r in requests}}
    lists, full = [], []
    for r in requests:
        seen = {e.item_id for e in histories[r.user_id]}
        ranked = sorted((i for i in judge.item_ids if i not in seen),
                        key=lambda i: -int(grades[r.form][judge.item_ids.index(i)]))
        lists.append(ranked)
        full.append(sum(int(grades[r.form][judge.item_ids.index(i)]) == 2 for i in ranked[:10]))
    block = typed_block(lists, requests, judge, histories, 10)
    assert block["all"]["ndcg@10"] == pytest.approx(1.0)
    assert block["all"]["n"] == len(requests)
    assert sum(v["n"] for v in block["by_variant"].values()) == len(requests)
    assert block["unseen_forms"]["n"] == sum(r.unseen_form for r in requests)
    # P@10 = (fully relevant unseen items in the top 10) / 10, request by request
    assert block["all"]["p@10"] == pytest.approx(np.mean(full) / 10)
    assert 0.0 < block["all"]["p@10"] < 1.0
    # the same lists in reverse: the same items in the top 10 (8 items in all), in a worse order
    worse = typed_block([x[::-1] for x in lists], requests, judge, histories, 10)
    assert worse["all"]["ndcg@10"] < 0.9 and worse["all"]["p@10"] == block["all"]["p@10"]


def test_request_histories_hold_train_and_valid_events_in_order():
    events = _events(_catalogue())
    test_row = events.iloc[[0]].assign(split="test", order=99, item_id="7")
    histories = request_histories(pd.concat([events, test_row]), ["u0", "nobody"])
    assert [e.item_id for e in histories["u0"]] == ["0", "1", "2"]  # the test event is not history
    assert histories["u0"][0] == HistoryEvent("0", "search", "comedy 1990s", 1)
    assert histories["nobody"] == ()
