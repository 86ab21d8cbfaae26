"""Metric functions against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unigrec.evaluate.metrics import auc, gauc, hr_at_k, logloss, mrr, ndcg_at_k, rank_of_target

RANKS = [0, 2, math.inf, 9, 10]


def test_hit_rate_counts_ranks_below_k():
    assert hr_at_k(RANKS, 10) == pytest.approx(3 / 5)
    assert hr_at_k(RANKS, 1) == pytest.approx(1 / 5)
    assert hr_at_k([], 10) == 0.0


def test_ndcg_uses_log2_of_rank_plus_two():
    expected = (1.0 + 1.0 / math.log2(4) + 1.0 / math.log2(11)) / 5
    assert ndcg_at_k(RANKS, 10) == pytest.approx(expected)
    assert ndcg_at_k(RANKS, 3) == pytest.approx((1.0 + 0.5) / 5)


def test_mrr_gives_zero_to_missing_targets():
    assert mrr(RANKS) == pytest.approx((1 + 1 / 3 + 0 + 1 / 10 + 1 / 11) / 5)


def test_rank_of_target():
    assert rank_of_target(np.array([5, 7, 9]), 9) == 2.0
    assert rank_of_target(np.array([5, 7, 9]), 4) == math.inf


def test_auc_counts_pairs_and_half_ties():
    assert auc([1, 0, 1, 0], [0.9, 0.3, 0.4, 0.5]) == pytest.approx(0.75)
    assert auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert auc([1, 1, 0], [0.2, 0.3, 0.1]) == pytest.approx(1.0)
    assert math.isnan(auc([1, 1], [0.2, 0.3]))


def test_auc_matches_brute_force_pair_count():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = rng.integers(0, 10, 200).astype(float)  # many ties on purpose
    pos, neg = s[y == 1], s[y == 0]
    brute = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (pos.size * neg.size)
    assert auc(y, s) == pytest.approx(brute)


def test_gauc_weights_groups_by_size_and_skips_single_class_groups():
    groups = ["a", "a", "b", "b", "b", "c", "c"]
    labels = [1, 0, 1, 0, 0, 1, 1]
    scores = [0.8, 0.2, 0.1, 0.5, 0.05, 0.3, 0.4]
    assert gauc(groups, labels, scores) == pytest.approx((1.0 * 2 + 0.5 * 3) / 5)


def test_logloss():
    assert logloss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert math.isfinite(logloss([1, 0], [0.0, 1.0]))
