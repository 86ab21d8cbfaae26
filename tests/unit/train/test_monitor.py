"""The validation monitor that picks the checkpoint and stops early: streams, prompts or rec alone."""

from __future__ import annotations

import pytest
import torch

from unigrec.inference.retrieval import STREAMS
from unigrec.train.lightning_module import monitor_value


def _sums(*streams: tuple[int, float]) -> torch.Tensor:
    """Rows of [prompts, hits, ndcg sum] from (prompts, mean ndcg) pairs; hits do not enter the monitor."""
    return torch.tensor([[n, 0.0, n * ndcg] for n, ndcg in streams], dtype=torch.float64)


def test_both_averages_agree_when_the_streams_are_the_same_size():
    sums = _sums((300, 0.2), (300, 0.4))
    assert monitor_value(sums, "streams").item() == pytest.approx(0.3)
    assert monitor_value(sums, "prompts").item() == pytest.approx(0.3)


def test_prompts_weigh_a_small_stream_by_its_size():
    # the ML-1M 1% searches case: 1,000 rec prompts, 465 searches with a much higher NDCG
    sums = _sums((1000, 0.17), (465, 0.43))
    assert monitor_value(sums, "streams").item() == pytest.approx(0.30)
    assert monitor_value(sums, "prompts").item() == pytest.approx((170 + 0.43 * 465) / 1465)


def test_a_search_swing_moves_prompts_less_than_streams():
    # the same rec figure, search noise of 0.05 either way: prompts moves by 465/1465 of it, streams by half
    low, high = _sums((1000, 0.17), (465, 0.38)), _sums((1000, 0.17), (465, 0.43))
    swing = {a: (monitor_value(high, a) - monitor_value(low, a)).item() for a in ("streams", "prompts")}
    assert swing["streams"] == pytest.approx(0.025)
    assert swing["prompts"] == pytest.approx(0.05 * 465 / 1465)


def test_streams_without_prompts_are_left_out():
    sums = _sums((0, 0.0), (200, 0.25))
    for average in ("streams", "prompts"):
        assert monitor_value(sums, average).item() == pytest.approx(0.25)
        assert monitor_value(_sums((0, 0.0), (0, 0.0)), average).item() == 0.0


def test_rec_reads_the_recommendation_stream_alone():
    # row 0 is the rec stream (inference.retrieval.STREAMS' order): search cannot move it either way
    assert next(iter(STREAMS.values())) == "rec"
    low, high = _sums((1000, 0.17), (465, 0.38)), _sums((1000, 0.17), (465, 0.43))
    assert monitor_value(low, "rec").item() == pytest.approx(0.17)
    assert monitor_value(high, "rec").item() == pytest.approx(0.17)
    assert monitor_value(_sums((0, 0.0), (200, 0.25)), "rec").item() == 0.0


def test_an_unknown_average_is_refused():
    with pytest.raises(ValueError, match="streams"):
        monitor_value(_sums((10, 0.1)), "users")
