"""Popularity and BM25 negatives: cases tests/unit/data/test_negatives.py left open, found by mutation testing
(tools/mutation.py; docs/experiments/2026-12-03-mutation-testing.md names the mutants each test kills)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from unigrec.data.negatives import BM25Negatives, popularity_weights, sample_popularity_negatives


def test_popularity_weights_are_smoothed_counts_normalised():
    items = pd.Index(["a", "b", "c"])
    weights = popularity_weights(pd.Series({"a": 3, "b": 1}), items, smoothing=0.5)
    assert weights == pytest.approx(np.array([3.5, 1.5, 0.5]) / 5.5)  # "c" never seen: smoothing only


def test_a_pool_of_exactly_n_items_is_drawn_whole():
    items = np.array(["a", "b", "c", "d"], dtype=object)
    probs = popularity_weights(pd.Series(dtype=int), pd.Index(items), smoothing=1.0)
    drawn = sample_popularity_negatives(items, probs, {"a"}, 3, np.random.default_rng(0))
    assert sorted(drawn) == ["b", "c", "d"]


def _tf_scores(index: BM25Negatives, query: str) -> np.ndarray:
    return index.catalogue_scores(index.tokenize([query])[0])


def test_bm25_uses_the_configured_k1_and_b():
    texts = ["war drama", "war war drama", "war drama drama drama"]
    # b = 0: no length normalisation; the tf saturation of lucene BM25 is tf / (tf + k1), so the ratio of
    # tf 2 to tf 1 is 2 (1 + k1) / (2 + k1): 1.2 at k1 = 0.5 (bm25s's default 1.5 would give 1.43)
    scores = _tf_scores(BM25Negatives(["a", "b", "c"], texts, k1=0.5, b=0.0), "war")
    assert scores[1] / scores[0] == pytest.approx(1.2, rel=1e-5)
    assert scores[2] == pytest.approx(scores[0], rel=1e-6)  # b = 0: a longer document is not penalised
    scores = _tf_scores(BM25Negatives(["a", "b", "c"], texts, k1=0.5, b=1.0), "war")
    assert scores[2] < scores[0]


def test_stopwords_count_neither_in_the_index_nor_in_queries():
    index = BM25Negatives(["a", "b"], ["war drama", "war the of the drama"], k1=0.5, b=1.0)
    scores = _tf_scores(index, "war")
    assert scores[0] == pytest.approx(scores[1], rel=1e-6)  # same length once "the of the" is dropped
    assert index.tokenize(["the war", "of the"]) == [["war"], []]


def test_a_query_without_terms_still_gets_n_random_non_target_negatives():
    index = BM25Negatives(["a", "b", "c", "d"], ["war", "drama", "comedy", "western"], k1=1.2, b=0.75)
    negs = index.hard_negatives(["the of"], ["a"], n=3, pool=3, rng=np.random.default_rng(0))[0]
    assert sorted(negs) == ["b", "c", "d"]


def test_hard_negatives_are_the_best_scoring_items_best_first():
    # item k says "war" k times: distinct scores that grow with k; the target (m59) is left out
    ids = [f"m{k}" for k in range(1, 60)]
    texts = [" ".join(["war"] * k + ["drama"]) for k in range(1, 60)]
    index = BM25Negatives(ids, texts, k1=1.2, b=0.0)
    negs = index.hard_negatives(["war"], ["m59"], n=10, pool=10, rng=np.random.default_rng(0))[0]
    assert negs == [f"m{k}" for k in range(58, 48, -1)]
    negs = index.hard_negatives(["war"], ["m59"], n=5, pool=40, rng=np.random.default_rng(0))[0]
    assert negs == [f"m{k}" for k in range(58, 53, -1)]


def test_hard_negatives_need_one_target_per_query():
    index = BM25Negatives(["a", "b"], ["war", "drama"], k1=1.2, b=0.75)
    with pytest.raises(ValueError):
        index.hard_negatives(["war", "drama"], ["a"], n=1, pool=1, rng=np.random.default_rng(0))


def test_the_pool_threshold_holds_on_a_large_shuffled_catalogue():
    # numpy's partition only places the requested element: reading any other position (a wrong kth) gives
    # a threshold that happens to be right on small or sorted inputs; with numpy's baseline (introselect)
    # kernel not on this one (279 items). The AVX-512 kernel happens to get it right here too.
    tf = np.random.default_rng(143).permutation(np.arange(1, 280))
    ids = [f"m{k}" for k in range(len(tf))]
    index = BM25Negatives(ids, [" ".join(["war"] * int(t) + ["drama"]) for t in tf], k1=1.2, b=0.0)
    negs = index.hard_negatives(["war"], ["not-in-the-catalogue"], n=10, pool=10, rng=np.random.default_rng(0))[0]
    assert negs == [ids[i] for i in np.argsort(-tf)[:10]]


def test_building_the_index_and_drawing_negatives_print_nothing(capfd):
    # bm25s draws a tqdm bar per call unless told not to; built once per stage and called per query batch,
    # those bars would bury the stage's own progress and log lines
    index = BM25Negatives(["a", "b", "c"], ["war drama", "war", "comedy"], k1=1.2, b=0.75)
    index.hard_negatives(["war"], ["a"], n=2, pool=2, rng=np.random.default_rng(0))
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_the_pool_threshold_is_the_pool_th_best_score_when_fewer_than_twice_the_pool_match():
    # 15 matching items with distinct scores, pool = n = 10: the threshold must be the 10th best score.
    # Any position past the 6th of a partition around the 10th best holds a better score, whatever the
    # kernel: a threshold read there keeps fewer than n items and tops the list up at random.
    ids = [f"m{k}" for k in range(1, 16)]
    index = BM25Negatives(ids, [" ".join(["war"] * k + ["drama"]) for k in range(1, 16)], k1=1.2, b=0.0)
    negs = index.hard_negatives(["war"], ["none"], n=10, pool=10, rng=np.random.default_rng(0))[0]
    assert negs == [f"m{k}" for k in range(15, 5, -1)]
