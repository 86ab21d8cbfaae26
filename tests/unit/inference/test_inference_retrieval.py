"""The shared retrieve / rank / fuse path (unigrec.inference.retrieval) on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from unigrec.inference.retrieval import fuse_and_rerank, fused_scores


def test_rerank_orders_valid_items_by_score_and_keeps_ties_stable():
    items, scores, valid = fuse_and_rerank(
        np.array([["a", "b", "c", "d"]]), np.array([[0.1, 0.9, 0.95, 0.1]]), None,
        np.array([[True, True, False, True]]), 0.0,
    )
    assert items.tolist() == [["b", "a", "d", "c"]]  # c is invalid: last whatever its score
    assert valid.tolist() == [[True, True, True, False]]
    assert scores.tolist() == [[0.9, 0.1, 0.1, 0.95]]
    same, _, _ = fuse_and_rerank(np.array([["a", "b", "c"]]), np.zeros((1, 3)), None, np.ones((1, 3), dtype=bool), 0.0)
    assert same.tolist() == [["a", "b", "c"]]


def test_fused_scores_mix_log_probabilities_by_weight():
    logp = np.array([[-1.0, -2.0, -np.inf]])
    prob = np.array([[0.5, 0.25, 0.0]])
    assert fused_scores(logp, prob, 0.0).tolist() == logp.tolist()  # retrieval order, padding stays -inf
    assert fused_scores(logp, prob, 1.0)[0, :2] == pytest.approx(np.log([0.5, 0.25]))
    assert fused_scores(logp, prob, 1.0)[0, 2] < -700  # P = 0 is clipped, not -inf * weight = nan
    mixed = fused_scores(logp, prob, 0.25)
    assert mixed[0, :2] == pytest.approx([0.75 * -1.0 + 0.25 * np.log(0.5), 0.75 * -2.0 + 0.25 * np.log(0.25)])
    with pytest.raises(ValueError, match="fusion weight"):
        fused_scores(logp, prob, 1.5)
    with pytest.raises(ValueError, match="needs the ranking head"):
        fused_scores(logp, None, 0.25)


def test_fused_scores_can_reverse_the_retrieval_order_only_with_enough_weight():
    logp = np.array([[-1.0, -1.2]])  # retrieval prefers a
    prob = np.array([[0.2, 0.8]])  # the ranker prefers b
    valid = np.ones((1, 2), dtype=bool)
    order = lambda w: fuse_and_rerank(np.array([["a", "b"]]), logp, prob, valid, w)[0].tolist()
    assert order(0.0) == [["a", "b"]]
    assert order(0.1) == [["a", "b"]]  # -1.061 vs -1.102: the retrieval gap still wins
    assert order(0.5) == [["b", "a"]]
