"""Tiny split/ids files of exactly the shapes the train stage reads, with learnable structure.

Items fall into clusters; each user mostly stays in one cluster, so the next item is predictable from
the history (a model that learns anything beats popularity); a search query names the target's cluster.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from unigrec.config import RetrievalLossConfig

# Retrieval softmaxes of the tiny nets: the full one (params.yaml's default; l2_normalise and temperature
# shape the sampled one only), and the atomic sampled softmax as ``train.model.atomic_negatives: 16`` trained
# it before train.retrieval_loss existed (raw dot products, temperature 1).
FULL_SOFTMAX = RetrievalLossConfig(softmax="full", negatives=128, draw="position", l2_normalise=True,
                                   temperature=0.05, product_columns=16384)
OLD_ATOMIC_SAMPLED = RetrievalLossConfig(softmax="sampled", negatives=16, draw="batch", l2_normalise=False,
                                         temperature=1.0, product_columns=16384)

N_CLUSTERS = 4
PER_CLUSTER = 10
CODEBOOKS = {
    "mode": "dual",
    "semantic_levels": [{"name": "shared_0", "size": N_CLUSTERS}, {"name": "sem_1", "size": 12}, {"name": "sem_dedup", "size": 2}],
    "collaborative_levels": [{"name": "shared_0", "size": N_CLUSTERS}, {"name": "col_1", "size": 12}, {"name": "col_dedup", "size": 2}],
}


def item_ids() -> list[str]:
    return [f"m{i:03d}" for i in range(N_CLUSTERS * PER_CLUSTER)]


def ids_frame(seed: int = 0) -> pd.DataFrame:
    """Unique codes per kind; level 0 = the item's cluster (the shared prefix)."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind in ("semantic", "collaborative"):
        codes = []
        for cluster in range(N_CLUSTERS):
            pairs = rng.permutation([(a, b) for a in range(12) for b in range(2)])[:PER_CLUSTER]
            codes.extend([[cluster, int(a), int(b)] for a, b in pairs])
        rows.append(codes)
    return pd.DataFrame({"item_id": item_ids(), "semantic_id": rows[0], "collaborative_id": rows[1]})


def events_frame(n_users: int = 24, min_events: int = 14, max_events: int = 22, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = item_ids()
    rows = []
    for u in range(n_users):
        home = u % N_CLUSTERS
        n = int(rng.integers(min_events, max_events + 1))
        ts = 1_000_000 + u * 10_000
        for order in range(n):
            cluster = home if rng.random() < 0.85 else int(rng.integers(N_CLUSTERS))
            item = ids[cluster * PER_CLUSTER + int(rng.integers(PER_CLUSTER))]
            search = rng.random() < 0.3
            ts += int(rng.integers(1, 100))
            rows.append({
                "user_id": f"u{u:03d}", "item_id": item, "timestamp": ts, "kind": "search" if search else "rec",
                "query": f"genre{cluster} film" if search else None,
                "label": int(search or rng.random() < 0.7), "rating": float("nan"), "order": order,
            })
    frame = pd.DataFrame(rows)
    frame["label"] = frame["label"].astype("int8")
    frame["split"] = "train"
    for (_, kind), group in frame.groupby(["user_id", "kind"]):
        if len(group) >= 3:
            frame.loc[group.index[-1], "split"] = "test"
            frame.loc[group.index[-2], "split"] = "valid"
    return frame


def write_project(root: Path, seed: int = 0) -> None:
    """data/split/events.parquet, data/canonical/items.parquet, data/ids/{ids.parquet,codebooks.json}."""
    (root / "data" / "split").mkdir(parents=True, exist_ok=True)
    (root / "data" / "canonical").mkdir(parents=True, exist_ok=True)
    (root / "data" / "ids").mkdir(parents=True, exist_ok=True)
    events_frame(seed=seed + 1).to_parquet(root / "data" / "split" / "events.parquet", index=False)
    ids = item_ids()
    # the category names the cluster as the search queries do ("genre2 film"), so relevance is judgeable
    category = [f"genre{i // PER_CLUSTER}|film" for i in range(len(ids))]
    pd.DataFrame({"item_id": ids, "title": ids, "text": ids, "category": category}).to_parquet(
        root / "data" / "canonical" / "items.parquet", index=False
    )
    ids_frame(seed).to_parquet(root / "data" / "ids" / "ids.parquet", index=False)
    (root / "data" / "ids" / "codebooks.json").write_text(json.dumps(CODEBOOKS))
