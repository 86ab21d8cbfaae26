"""What each split protocol holds out and what it costs training, on real sources (no training run).

For each dataset (ingest adapter + the semi-synthetic query recast, as the ingest stage does) and each
protocol / ``holdout_window``: users with a rec and a search test event, held-out events, training
events, events lost to the gap, and training events later than their user's earliest held-out event
(what the time-consistent rule forbids). The table of docs/experiments/2026-12-03-time-consistent-split.md.

    python benchmarks/split_protocols.py --data ../shared/data --windows 2 3 4 6 8 12 16 none
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

from unigrec.config import load_section
from unigrec.data.queries import recast_as_searches
from unigrec.data.schema import conform
from unigrec.data.sources import keep_first_users, load_source
from unigrec.data.split import HELD_OUT_SPLITS, assign_split, merge_streams

# name: (ingest source, folder under --data, search_fraction or None = params.yaml's, max_users)
DATASETS = {
    "ml-100k": ("movielens-100k", "ml-100k", None, None),
    "ml-1m": ("movielens-1m", "ml-1m", None, None),
    "ml-1m 1% searches": ("movielens-1m", "ml-1m", 0.01, None),
    "ml-1m 600 users": ("movielens-1m", "ml-1m", None, 600),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder with ml-100k/, ml-1m/")
    p.add_argument("--params", default=str(ROOT / "params.yaml"))
    p.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--windows", nargs="*", default=["2", "3", "4", "6", "8", "12", "16", "none"],
                   help="holdout_window values for the time-consistent rule ('none' = no window)")
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    return p.parse_args(argv)


def merged_events(name: str, data: Path, params: Path, cache: str) -> pd.DataFrame:
    """The merged timelines the split stage would split for ``name``."""
    source, folder, fraction, max_users = DATASETS[name]
    cfg = load_section("ingest", params)
    queries = cfg.queries if fraction is None else dataclasses.replace(cfg.queries, search_fraction=fraction)
    cfg = dataclasses.replace(cfg, source=source, path=str(data / folder), queries=queries, max_users=max_users)
    tables = keep_first_users(load_source(cfg, Path(cache)), cfg.max_users)  # cache: unused, path is given
    interactions, searches = recast_as_searches(tables.items, tables.interactions, cfg.queries)
    return merge_streams(conform(interactions, "interactions"), conform(searches, "searches"))


def protocol_row(events: pd.DataFrame) -> dict[str, Any]:
    """The counts of one split (see the module docstring)."""
    held = events[events["split"].isin(HELD_OUT_SPLITS)]
    first_held = held.groupby("user_id")["order"].min()
    train = events[events["split"] == "train"]
    later = train["order"].to_numpy() > train["user_id"].map(first_held).fillna(float("inf")).to_numpy()
    test = events[events["split"] == "test"]
    return {
        "users": int(events["user_id"].nunique()),
        "rec_test_users": int(test.loc[test["kind"] == "rec", "user_id"].nunique()),
        "search_test_users": int(test.loc[test["kind"] == "search", "user_id"].nunique()),
        "held_out": len(held),
        "train": len(train),
        "gap": int((events["split"] == "gap").sum()),
        "train_after_held_out": int(later.sum()),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    min_events = load_section("split", args.params).min_events
    rows = []
    for name in args.datasets:
        events = merged_events(name, Path(args.data), Path(args.params), tempfile.gettempdir())
        rules = [("per_stream", None)] + [("time_consistent", None if w == "none" else int(w)) for w in args.windows]
        for protocol, window in rules:
            split = assign_split(events, min_events, protocol, window)
            rows.append({"dataset": name, "protocol": protocol, "holdout_window": window, **protocol_row(split)})
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
