"""Synthetic catalogues with topic structure, in the exact shape of items.parquet and events.parquet.

For scale benchmarks (identifiers stage and training, 100k-1M items) and for tests that need a
catalogue without the real data. Items belong to topics and have text that shares topic words; each
user's latent taste is a few favoured topics; item popularity inside a topic is a power law (Zipf);
so both the semantic and the collaborative signal have structure for the quantiser to find.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from unigrec.paths import Layout
from unigrec.text_encoder import EMBEDDING_DIM


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    n_items: int
    n_users: int
    events_per_user: int
    n_topics: int
    topics_per_user: int
    words_per_topic: int
    search_share: float  # share of events that are search events
    positive_share: float  # share of events labelled 1
    popularity_skew: float  # rank in topic = size * U**skew: a power law P(rank r) ~ r**-(1 - 1/skew)
    noise: float  # spread of an item's random semantic vector around its topic centre
    seed: int
    # When set, the rank in a topic follows a truncated Zipf law P(rank r) ~ (r+1)**-s instead (s >= 1 is
    # out of reach of the U**skew rule); popularity_skew is then unused.
    zipf_exponent: float | None = None


def synthetic_items(spec: SyntheticSpec) -> pd.DataFrame:
    """items.parquet-shaped frame: topic words + a per-item word in the text, topic as category."""
    rng = np.random.default_rng(spec.seed)
    topic = rng.integers(spec.n_topics, size=spec.n_items)
    words = np.array([f"w{t}x{k}" for t in range(spec.n_topics) for k in range(spec.words_per_topic)])
    words = words.reshape(spec.n_topics, spec.words_per_topic)
    picks = rng.integers(spec.words_per_topic, size=(spec.n_items, 2))
    ids = [f"s{i}" for i in range(spec.n_items)]
    titles = [f"item {i}" for i in range(spec.n_items)]
    texts = [f"{titles[i]} {words[t, a]} {words[t, b]} topic{t}"
             for i, (t, (a, b)) in enumerate(zip(topic, picks))]
    return pd.DataFrame({
        "item_id": pd.array(ids, dtype="string"),
        "title": pd.array(titles, dtype="string"),
        "text": pd.array(texts, dtype="string"),
        "category": pd.array([f"topic{t}" for t in topic], dtype="string"),
    })


def synthetic_events(spec: SyntheticSpec, items: pd.DataFrame) -> pd.DataFrame:
    """events.parquet-shaped frame: per user, ``events_per_user`` events from favoured topics.

    Popularity inside a topic is Zipf-like; the last event of each stream is test, the one before
    valid: the split stage's ``per_stream`` protocol (``ids`` may not import ``data``, and a scale
    fixture has no use for gap events), so no split value other than train/valid/test appears here.
    """
    rng = np.random.default_rng(spec.seed + 1)
    topic = items["category"].str.removeprefix("topic").astype(int).to_numpy()
    by_topic = [np.flatnonzero(topic == t) for t in range(spec.n_topics)]
    n, per = spec.n_users, spec.events_per_user
    fav = rng.integers(spec.n_topics, size=(n, spec.topics_per_user))
    chosen_topic = fav[np.arange(n)[:, None], rng.integers(spec.topics_per_user, size=(n, per))]
    u = rng.random((n, per))
    item_idx = np.empty((n, per), dtype=np.int64)
    for t in range(spec.n_topics):
        mask = chosen_topic == t
        pool = by_topic[t] if len(by_topic[t]) else np.arange(len(items))
        item_idx[mask] = pool[popularity_ranks(u[mask], len(pool), spec)]
    kind = np.where(rng.random((n, per)) < spec.search_share, "search", "rec")
    label = (rng.random((n, per)) < spec.positive_share).astype(np.int8)
    label[kind == "search"] = 1
    frame = pd.DataFrame({
        "user_id": np.repeat([f"u{i}" for i in range(n)], per),
        "item_id": items["item_id"].to_numpy()[item_idx.ravel()],
        "timestamp": np.tile(np.arange(per, dtype=np.int64), n) + 1_000_000_000,
        "kind": kind.ravel(),
        "label": label.ravel(),
        "order": np.tile(np.arange(per, dtype=np.int64), n),
    })
    frame["query"] = np.where(frame["kind"] == "search", items["category"].to_numpy()[item_idx.ravel()], None)
    frame["rating"] = np.where(frame["kind"] == "rec", np.where(frame["label"] == 1, 5.0, 2.0), np.nan)
    # Leave-one-out per (user, stream), the per_stream protocol: last event test, the one before valid.
    from_end = frame.groupby(["user_id", "kind"]).cumcount(ascending=False)
    frame["split"] = np.select([from_end == 0, from_end == 1], ["test", "valid"], "train")
    columns = ["user_id", "item_id", "timestamp", "kind", "query", "label", "rating", "order", "split"]
    return frame[columns].astype({"user_id": "string", "item_id": "string", "kind": "string",
                                  "query": "string", "split": "string"})


def popularity_ranks(uniform: np.ndarray, pool_size: int, spec: SyntheticSpec) -> np.ndarray:
    """Rank (0 = most popular) inside a topic of ``pool_size`` items for each uniform draw in [0, 1)."""
    if spec.zipf_exponent is None:
        return (uniform**spec.popularity_skew * pool_size).astype(np.int64)
    weights = np.arange(1, pool_size + 1, dtype=np.float64) ** -spec.zipf_exponent
    cdf = np.cumsum(weights)
    ranks = np.searchsorted(cdf, uniform * cdf[-1], side="right")
    return np.minimum(ranks, pool_size - 1).astype(np.int64)  # guards float round-off at the top


def write_synthetic_project(layout: Layout, spec: SyntheticSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write a synthetic catalogue and its events where the identifiers stage reads them; return both."""
    items = synthetic_items(spec)
    events = synthetic_events(spec, items)
    layout.items.parent.mkdir(parents=True, exist_ok=True)
    layout.events.parent.mkdir(parents=True, exist_ok=True)
    items.to_parquet(layout.items)
    events.to_parquet(layout.events)
    return items, events


def synthetic_semantic_vectors(spec: SyntheticSpec, items: pd.DataFrame) -> np.ndarray:
    """Unit vectors clustered by topic: a stand-in for text embeddings when encoding would take minutes."""
    rng = np.random.default_rng(spec.seed + 2)
    topic = items["category"].str.removeprefix("topic").astype(int).to_numpy()
    centres = _topic_centres(rng, spec)
    x = centres[topic] + spec.noise * rng.standard_normal((len(items), EMBEDDING_DIM))
    return _unit_rows(x)


def synthetic_query_vectors(spec: SyntheticSpec, queries: list[str]) -> np.ndarray:
    """Unit topic centres for the synthetic search queries (``topicN``): a stand-in for their MiniLM
    embeddings, in the same space as :func:`synthetic_semantic_vectors`, so the train stage can run
    with its query cache pre-filled instead of loading the encoder."""
    centres = _topic_centres(np.random.default_rng(spec.seed + 2), spec)
    topic = np.array([int(q.removeprefix("topic")) for q in queries], dtype=np.int64)
    return _unit_rows(centres[topic].reshape(len(queries), EMBEDDING_DIM))


def _topic_centres(rng: np.random.Generator, spec: SyntheticSpec) -> np.ndarray:
    # The first draw of the seed+2 stream: item vectors and query vectors share these centres.
    return rng.standard_normal((spec.n_topics, EMBEDDING_DIM))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
