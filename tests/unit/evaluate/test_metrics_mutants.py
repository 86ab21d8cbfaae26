"""Metrics and protocols: cases the hand-computed tests left open, found by mutation testing
(tools/mutation.py; docs/experiments/2026-12-03-mutation-testing.md names the mutants each test kills)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from unigrec.evaluate.metrics import auc, gauc, hr_at_k, logloss, mrr, ndcg_at_k
from unigrec.evaluate.protocols import (
    best_weight,
    drop_seen,
    hit_rate_curve,
    list_ranks,
    ranking_metrics,
    sampled_ranks,
)


def test_integer_ranks_give_the_same_metrics_as_float_ranks():
    # rank_of_target gives floats, but a caller may pass ints: NDCG's gains must not be truncated to 0/1
    ints, floats = [0, 1, 3, 12], [0.0, 1.0, 3.0, 12.0]
    assert ndcg_at_k(ints, 10) == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(5)) / 4)
    assert ndcg_at_k(ints, 10) == ndcg_at_k(floats, 10)
    assert mrr(ints) == mrr(floats)
    assert hr_at_k(ints, 2) == 0.5


def test_no_requests_score_zero_not_one():
    assert ndcg_at_k([], 10) == 0.0
    assert mrr([]) == 0.0


def test_ranks_must_be_one_per_request():
    with pytest.raises(ValueError, match="^ranks must be one-dimensional"):
        hr_at_k([[0, 1]], 10)


def test_auc_with_tied_integer_scores_counts_ties_as_half():
    # integer scores (e.g. counts): the averaged tie ranks are x.5 and must not be truncated
    assert auc([1, 0, 1, 0], [1, 1, 2, 0]) == pytest.approx(0.875)
    assert auc([1, 0], [3, 3]) == pytest.approx(0.5)


def test_auc_of_one_class_is_nan_without_a_numpy_warning():
    # gauc calls auc on every single-class group: they must be skipped quietly
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(auc([1, 1], [0.2, 0.3]))
        assert math.isnan(auc([0, 0, 0], [0.2, 0.3, 0.1]))


def test_gauc_without_any_two_class_group_is_nan():
    assert math.isnan(gauc(["a", "a", "b"], [1, 1, 0], [0.3, 0.2, 0.1]))
    assert math.isnan(gauc([], [], []))


def test_logloss_of_nothing_is_nan():
    assert math.isnan(logloss([], []))


def test_sampled_ranks_needs_a_matrix():
    with pytest.raises(ValueError, match="^scores must be \\(requests, candidates\\)$"):
        sampled_ranks(np.zeros(3))


def test_list_ranks_needs_one_list_per_target():
    with pytest.raises(ValueError, match="^one ranked list per target is needed$"):
        list_ranks([["a"]], ["a", "b"])


def test_drop_seen_refuses_histories_that_do_not_match_the_lists():
    # zip would otherwise drop the last requests silently and the metrics would average fewer of them
    with pytest.raises(ValueError):
        drop_seen([["a"], ["b"]], [[]], k=1)


def test_hit_rate_curve_of_no_requests_is_max_k_zeros():
    curve = hit_rate_curve([], 3)
    assert curve.shape == (3,)
    assert not curve.any()


def test_best_weight_tie_goes_to_the_smaller_weight_whatever_the_order():
    assert best_weight({0.5: 0.3, 0.1: 0.3, 0.9: 0.2}) == 0.1
    with pytest.raises(ValueError, match="^no fusion weights to choose from$"):
        best_weight({})


def test_ranking_metrics_of_an_empty_test_set():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice": the nan is the function's own answer
        out = ranking_metrics(np.array([]), np.array([]), np.array([]))
    assert out["n"] == 0 and out["gauc_groups"] == 0
    assert all(math.isnan(out[key]) for key in ("positive_rate", "auc", "logloss", "gauc"))


def test_logloss_clips_float32_probabilities_in_float64():
    # The model hands over float32 probabilities. Clipped in float32, 1 - 1e-7 rounds to 1 - 2**-23 and a
    # confident miss would cost -log(1.19e-7) = 15.94 instead of -log(1e-7) = 16.12.
    assert logloss([0], np.array([1.0], dtype=np.float32)) == pytest.approx(-math.log(1e-7), rel=1e-9)
