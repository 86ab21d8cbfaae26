"""Property: every metric and protocol function equals a brute-force computation on random inputs.

The oracles below are the definitions written as plain loops (pairs of positives and negatives for AUC,
one request at a time for the rank metrics); inputs draw scores from a few values so ties — against the
target, between positives and negatives — are the common case, not the rare one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.strategies import ITEMS, labelled_scores, ranks, score_matrices, tied_scores

from unigrec.evaluate.metrics import auc, gauc, hr_at_k, logloss, mrr, ndcg_at_k, rank_of_target
from unigrec.evaluate.protocols import best_weight, drop_seen, hit_rate_curve, list_ranks, sampled_ranks

CUTOFFS = st.integers(1, 30)


def _same(got: float, want: float) -> bool:
    if math.isnan(want):
        return math.isnan(got)
    return got == pytest.approx(want, rel=1e-9, abs=1e-12)


# ------------------------------------------------------------------------------------------ rank metrics
@settings(max_examples=150, deadline=None)
@given(ranked=ranks(), k=CUTOFFS)
def test_rank_metrics_equal_their_definitions(ranked, k):
    n = len(ranked)
    hits = [1.0 if r < k else 0.0 for r in ranked]
    gains = [1.0 / math.log2(r + 2) if r < k else 0.0 for r in ranked]
    reciprocal = [0.0 if math.isinf(r) else 1.0 / (r + 1) for r in ranked]
    assert _same(hr_at_k(ranked, k), sum(hits) / n if n else 0.0)
    assert _same(ndcg_at_k(ranked, k), sum(gains) / n if n else 0.0)
    assert _same(mrr(ranked), sum(reciprocal) / n if n else 0.0)
    curve = hit_rate_curve(np.asarray(ranked), k)
    assert len(curve) == k
    for cutoff, value in enumerate(curve, start=1):
        assert _same(value, sum(r < cutoff for r in ranked) / n if n else 0.0)


@settings(max_examples=150, deadline=None)
@given(row=st.lists(st.sampled_from(ITEMS), max_size=8), target=st.sampled_from(ITEMS))
def test_rank_of_target_is_its_first_position(row, target):
    want = next((float(i) for i, item in enumerate(row) if item == target), math.inf)
    assert rank_of_target(row, target) == want
    assert list_ranks([row], [target]).tolist() == [want]


@settings(max_examples=150, deadline=None)
@given(scores=score_matrices(), data=st.data())
def test_sampled_ranks_count_every_candidate_scoring_at_least_the_target(scores, data):
    target = data.draw(st.integers(0, scores.shape[1] - 1), label="target column")
    want = [
        float(sum(1 for j, s in enumerate(row) if j != target and s >= row[target]))  # ties against the target
        for row in scores.tolist()
    ]
    assert sampled_ranks(scores, target).tolist() == want


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.tuples(st.lists(st.sampled_from([*ITEMS, ""]), max_size=8), st.sets(st.sampled_from(ITEMS))),
                  max_size=5),
    k=st.integers(1, 8),
)
def test_drop_seen_removes_history_and_padding_then_cuts_to_k(rows, k):
    ranked, seen = [r for r, _ in rows], [s for _, s in rows]
    want = []
    for row, history in rows:
        kept = []
        for item in row:
            if item and item not in history and len(kept) < k:
                kept.append(item)
        want.append(kept)
    assert drop_seen(ranked, seen, k) == want


# ------------------------------------------------------------------------------------------ AUC, logloss
def _pairwise_auc(labels: list[int], scores: list[float]) -> float:
    pos = [s for y, s in zip(labels, scores, strict=True) if y == 1]
    neg = [s for y, s in zip(labels, scores, strict=True) if y == 0]
    if not pos or not neg:
        return math.nan
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


@settings(max_examples=150, deadline=None)
@given(pairs=labelled_scores())
def test_auc_is_the_share_of_positive_negative_pairs_ordered_right(pairs):
    labels, scores = pairs
    assert _same(auc(labels, scores), _pairwise_auc(labels, scores))


@settings(max_examples=150, deadline=None)
@given(pairs=labelled_scores(), data=st.data())
def test_gauc_is_the_size_weighted_auc_of_the_groups_holding_both_classes(pairs, data):
    labels, scores = pairs
    groups = data.draw(st.lists(st.integers(0, 3), min_size=len(labels), max_size=len(labels)), label="groups")
    total, weight = 0.0, 0
    for g in sorted(set(groups)):
        members = [i for i, h in enumerate(groups) if h == g]
        value = _pairwise_auc([labels[i] for i in members], [scores[i] for i in members])
        if not math.isnan(value):
            total += value * len(members)
            weight += len(members)
    assert _same(gauc(groups, labels, scores), total / weight if weight else math.nan)


@settings(max_examples=150, deadline=None)
@given(pairs=labelled_scores(probabilities=True))
def test_logloss_is_the_mean_clipped_cross_entropy(pairs):
    labels, probs = pairs
    eps = 1e-7
    terms = []
    for y, p in zip(labels, probs, strict=True):
        p = min(max(p, eps), 1 - eps)
        terms.append(-math.log(p) if y == 1 else -math.log(1 - p))
    assert _same(logloss(labels, probs), sum(terms) / len(terms) if terms else math.nan)


# ------------------------------------------------------------------------------------------ fusion weight
@settings(max_examples=150, deadline=None)
@given(quality=st.dictionaries(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 1.0]),
                               st.one_of(tied_scores(), st.just(math.nan), st.just(math.inf), st.just(-math.inf)),
                               max_size=6))
def test_best_weight_is_the_smallest_weight_of_the_best_finite_quality(quality):
    if not quality:
        with pytest.raises(ValueError, match="no fusion weights"):
            best_weight(quality)
        return
    finite = {w: q for w, q in quality.items() if math.isfinite(q)}
    if not finite:
        want = min(quality)
    else:
        top = max(finite.values())
        want = min(w for w, q in finite.items() if q == top)
    assert best_weight(quality) == want
