"""Small pure pieces of the identifiers stage: quality figures, ridge map, level naming, synthetic data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from unigrec.ids.artefacts import CodeLayout, build_code_layout, quantised_level_names
from unigrec.ids.quality import squared_error_sum, total_variance, usage_stats
from unigrec.ids.ridge import fit_ridge
from unigrec.ids.synthetic import (
    SyntheticSpec,
    synthetic_events,
    synthetic_items,
    synthetic_query_vectors,
    synthetic_semantic_vectors,
)


def test_usage_stats_by_hand():
    even = usage_stats(np.array([0, 1, 2, 3]), size=4)
    assert even == {"utilisation": 1.0, "perplexity": pytest.approx(4.0), "codes_used": 4}
    skewed = usage_stats(np.array([0, 0, 0, 0]), size=4)
    assert skewed == {"utilisation": 0.25, "perplexity": pytest.approx(1.0), "codes_used": 1}
    half = usage_stats(np.array([0, 0, 1, 1]), size=8)
    assert half["perplexity"] == pytest.approx(2.0) and half["utilisation"] == 0.25


def test_reconstruction_error_terms_by_hand():
    x = np.array([[0.0, 1.0], [2.0, 1.0]], dtype=np.float32)  # mean row (1, 1): total variance 2
    assert total_variance(x) == pytest.approx(2.0)
    assert squared_error_sum(x, x) == 0.0
    assert squared_error_sum(x, np.array([[1.0, 1.0], [1.0, 1.0]])) == pytest.approx(2.0)  # the mean
    assert squared_error_sum(x, np.array([[0.0, 1.0], [1.0, 1.0]])) / total_variance(x) == pytest.approx(0.5)


def test_ridge_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 5))
    w, b = rng.standard_normal((5, 3)), np.array([1.0, -2.0, 0.5])
    fitted = fit_ridge(x, x @ w + b, lam=1e-8)
    assert np.allclose(fitted.weight, w, atol=1e-4)
    assert np.allclose(fitted.bias, b, atol=1e-4)
    shrunk = fit_ridge(x, x @ w + b, lam=1e6)  # heavy penalty: predicts (nearly) the mean
    assert np.abs(shrunk.weight).max() < 1e-2


def test_level_names_and_codebooks_json_round_trip():
    names = quantised_level_names("dual", 2, 1)
    assert names == {"semantic": ["shared_0", "shared_1", "sem_0"],
                     "collaborative": ["shared_0", "shared_1", "col_0"]}
    assert quantised_level_names("collaborative_only", 2, 1)["semantic"] == ["col_0", "col_1", "col_2"]
    sizes = {"shared_0": 64, "shared_1": 64, "sem_0": 32, "col_0": 32}
    layout = build_code_layout("dual", sizes, 8, 2, 1)
    assert [(lv.name, lv.size) for lv in layout.collaborative_levels] == [
        ("shared_0", 64), ("shared_1", 64), ("col_0", 32), ("col_dedup", 8)]
    assert CodeLayout.from_json(layout.to_json()) == layout


# A small catalogue; each test changes what it is about.
SMALL_SPEC = SyntheticSpec(n_items=50, n_users=10, events_per_user=8, n_topics=3, topics_per_user=1,
                           words_per_topic=4, search_share=0.3, positive_share=0.5, popularity_skew=2.0,
                           noise=0.5, seed=0)


def test_synthetic_events_follow_the_split_contract():
    spec = SMALL_SPEC
    items = synthetic_items(spec)
    events = synthetic_events(spec, items)
    assert list(events.columns) == ["user_id", "item_id", "timestamp", "kind", "query", "label", "rating",
                                    "order", "split"]
    assert set(events["item_id"]) <= set(items["item_id"])
    last = events.groupby(["user_id", "kind"]).tail(1)
    assert (last["split"] == "test").all()  # the last event of every stream is the test event
    assert events.loc[events["kind"] == "search", "query"].notna().all()
    assert events.loc[events["kind"] == "rec", "query"].isna().all()


def test_synthetic_zipf_popularity_follows_the_rank_law():
    # One topic, so an item's rank in its topic is its catalogue index; s = 1: P(rank r) ~ 1/(r+1).
    spec = dataclasses.replace(SMALL_SPEC, n_items=40, n_users=2000, events_per_user=50, n_topics=1,
                               search_share=0.0, seed=1, zipf_exponent=1.0)
    items = synthetic_items(spec)
    counts = synthetic_events(spec, items)["item_id"].str.removeprefix("s").astype(int).value_counts()
    counts = counts.reindex(range(40), fill_value=0).to_numpy()
    expected = 1.0 / np.arange(1, 41)
    expected = expected / expected.sum() * counts.sum()
    assert np.all(np.diff(counts[:5]) < 0)  # the head decreases strictly
    np.testing.assert_allclose(counts[[0, 1, 3, 9]], expected[[0, 1, 3, 9]], rtol=0.05)


def test_synthetic_query_vectors_are_the_topic_centres_of_the_item_vectors():
    spec = dataclasses.replace(SMALL_SPEC, n_items=600, n_users=5, events_per_user=4, search_share=0.5,
                               noise=0.3, seed=2)
    items = synthetic_items(spec)
    vectors = synthetic_semantic_vectors(spec, items)
    queries = synthetic_query_vectors(spec, ["topic2", "topic0"])
    assert queries.shape == (2, vectors.shape[1]) and queries.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, rtol=1e-5)
    for query, topic in zip(queries, ("topic2", "topic0")):
        mean = vectors[(items["category"] == topic).to_numpy()].mean(axis=0)
        assert query @ mean / np.linalg.norm(mean) > 0.99  # the centre of its topic's items ...
        other = vectors[(items["category"] == "topic1").to_numpy()].mean(axis=0)
        assert query @ other / np.linalg.norm(other) < 0.5  # ... not of another topic's


def test_torch_threads_is_scoped_and_restored_on_error():
    import torch

    from unigrec.threads import torch_threads

    before = torch.get_num_threads()
    with torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(before + 1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
