"""``split`` stage: leave-one-out timelines (``split.protocol``) and 1+99 candidate lists, from validated
canonical tables."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unigrec.atomic import stage_outputs, write_json
from unigrec.config import RuntimeConfig, SplitConfig
from unigrec.data.negatives import BM25Negatives, popularity_weights, sample_popularity_negatives
from unigrec.data.queries import query_overlap
from unigrec.data.split import HELD_OUT_SPLITS, KINDS, assign_split, make_items_cold, merge_streams
from unigrec.data.split_card import render_split_card
from unigrec.errors import UnigrecError
from unigrec.logs import progress
from unigrec.paths import Layout

log = logging.getLogger(__name__)


def require_valid_data(layout: Layout) -> None:
    """Refuse to split tables that did not pass the contracts (belt and braces beside DVC's order)."""
    report = layout.validation_json
    if not report.exists():
        raise UnigrecError(f"{report} not found: run the validate stage first")
    if not json.loads(report.read_text(encoding="utf-8")).get("success", False):
        raise UnigrecError(f"{report} records contract violations: fix the data before splitting")


def build_candidates(events: pd.DataFrame, items: pd.DataFrame, cfg: SplitConfig) -> pd.DataFrame:
    """One candidate list per held-out (valid or test) event: the target plus ``n_negatives`` negatives.

    Gap events (time-consistent split) get none: they are never evaluated. Negatives never include an
    item of the user's whole timeline, gap events included (``seen``)."""
    rng = np.random.default_rng(cfg.seed)
    held_out = events[events["split"].isin(HELD_OUT_SPLITS)]
    item_ids = items["item_id"].astype(str).to_numpy(dtype=object)
    train_counts = events.loc[events["split"] == "train", "item_id"].value_counts()
    probs = popularity_weights(train_counts, pd.Index(item_ids), cfg.popularity_smoothing)
    seen = events.groupby("user_id")["item_id"].agg(set)

    rows: list[dict[str, Any]] = []
    rec = held_out[held_out["kind"] == "rec"]
    for ev in progress(rec.itertuples(index=False), total=len(rec), desc="rec negatives", leave=False):
        negs = sample_popularity_negatives(item_ids, probs, seen[ev.user_id], cfg.n_negatives, rng)
        rows.append({"user_id": ev.user_id, "kind": "rec", "split": ev.split, "item_id": ev.item_id,
                     "negatives": negs})

    search = held_out[held_out["kind"] == "search"]
    if len(search):
        index = BM25Negatives(list(item_ids), items["text"].astype(str).tolist(), cfg.bm25.k1, cfg.bm25.b)
        negs_all = index.hard_negatives(
            search["query"].astype(str).tolist(), search["item_id"].astype(str).tolist(),
            cfg.n_negatives, cfg.bm25.pool, rng,
        )
        for ev, negs in zip(search.itertuples(index=False), negs_all, strict=True):
            rows.append({"user_id": ev.user_id, "kind": "search", "split": ev.split, "item_id": ev.item_id,
                         "negatives": negs})
    frame = pd.DataFrame(rows, columns=["user_id", "kind", "split", "item_id", "negatives"])
    for col in ("user_id", "kind", "split", "item_id"):
        frame[col] = frame[col].astype("string")
    return frame


def split_summary(
    events: pd.DataFrame, candidates: pd.DataFrame, cold_items: list[str] | None = None
) -> dict[str, Any]:
    """Counts per stream and split, the events lost to the gap (neither trained on nor evaluated),
    per stream the share of users with a held-out pair (what the time-consistent window costs), and the
    items made cold on purpose (``split.cold_items``) with the test cases that target one."""
    counts = events.groupby(["kind", "split"]).size()
    users = events["user_id"].nunique()
    held = events[events["split"] == "test"]
    cold = set(cold_items or ())
    targets_cold = held["item_id"].astype(str).isin(cold)
    return {
        "events": len(events),
        "users": int(users),
        "events_by_stream_split": {f"{k}/{s}": int(n) for (k, s), n in counts.items()},
        "gap_events": int((events["split"] == "gap").sum()),
        "users_with_held_out": {
            kind: round(float(held.loc[held["kind"] == kind, "user_id"].nunique() / users), 4) if users else None
            for kind in KINDS
        },
        "candidate_lists": len(candidates),
        "queries": query_overlap(events),  # held-out query strings seen in training (issue 35, split card)
        "cold_items": {
            "items": len(cold),
            "test_cases": {kind: int((targets_cold & (held["kind"] == kind)).sum()) for kind in KINDS},
        },
    }


def run(cfg: SplitConfig, layout: Layout, runtime: RuntimeConfig | None = None) -> dict[str, Any]:
    require_valid_data(layout)
    items = pd.read_parquet(layout.items)
    interactions = pd.read_parquet(layout.interactions)
    searches = pd.read_parquet(layout.searches)
    log.info("split: %d interactions, %d searches, %d items", len(interactions), len(searches), len(items))

    events = assign_split(merge_streams(interactions, searches), cfg.min_events, cfg.protocol, cfg.holdout_window)
    events, cold = make_items_cold(events, cfg.cold_items, cfg.seed)
    if cold:
        log.info("split: %d items made cold (split.cold_items %.3g): their training events removed", len(cold),
                 cfg.cold_items)
    candidates = build_candidates(events, items, cfg)
    summary = split_summary(events, candidates, cold)

    with stage_outputs(layout.root, "split", dirs=[layout.split_dir], files=[layout.split_metrics]) as out:
        tmp = out[layout.split_dir]
        events.to_parquet(Path(tmp) / layout.events.name, index=False)
        candidates.to_parquet(Path(tmp) / layout.candidates.name, index=False)
        write_json(out[layout.split_metrics], summary)
        (Path(tmp) / layout.split_card.name).write_text(render_split_card(summary), encoding="utf-8")
    return summary
