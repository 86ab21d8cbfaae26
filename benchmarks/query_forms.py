"""How much of the search task a string lookup answers, per query generator (no training run; issue 35).

For each dataset (ingest adapter + the semi-synthetic recast, as the ingest stage does) and each
``ingest.queries.generator``: the share of valid / test search events whose query string occurs among
training searches, distinct items per training query string and distinct training strings per item
(:func:`unigrec.data.queries.query_overlap`), and how many catalogue items a test query fully describes
(relevance grade 2), on the ``--protocol`` split: ``per_stream`` (default; the leave-one-out rule before
issue 35) or ``time_consistent`` (with params.yaml's ``split.holdout_window``). The table of
docs/experiments/2026-12-03-query-generator.md.

    python benchmarks/query_forms.py --data ../shared/data [--protocol time_consistent] [--examples 4]
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
from unigrec.data.queries import query_overlap, recast_as_searches
from unigrec.data.relevance import CatalogueJudge
from unigrec.data.schema import conform
from unigrec.data.sources import keep_first_users, load_source
from unigrec.data.split import PROTOCOLS, assign_split, merge_streams

# name: (ingest source, folder under --data, search_fraction or None = params.yaml's, max_users)
DATASETS = {
    "ml-100k": ("movielens-100k", "ml-100k", None, None),
    "ml-1m 1% searches": ("movielens-1m", "ml-1m", 0.01, None),
    "ml-1m 600 users": ("movielens-1m", "ml-1m", None, 600),
}
GENERATORS = ("category", "multi_form")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder with ml-100k/, ml-1m/")
    p.add_argument("--params", default=str(ROOT / "params.yaml"))
    p.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--protocol", default="per_stream", choices=PROTOCOLS, help="split rule to measure on")
    p.add_argument("--examples", type=int, default=0, help="print this many (item title, queries) examples")
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    return p.parse_args(argv)


def measure(name: str, generator: str, data: Path, params: Path, protocol: str, examples: int) -> dict[str, Any]:
    """One row: the overlap figures of ``name`` under ``generator``, other knobs from ``params``."""
    source, folder, fraction, max_users = DATASETS[name]
    cfg = load_section("ingest", params)
    queries = dataclasses.replace(cfg.queries, generator=generator,
                                  search_fraction=cfg.queries.search_fraction if fraction is None else fraction)
    cfg = dataclasses.replace(cfg, source=source, path=str(data / folder), queries=queries, max_users=max_users)
    tables = keep_first_users(load_source(cfg, Path(tempfile.gettempdir())), cfg.max_users)
    interactions, searches = recast_as_searches(tables.items, tables.interactions, cfg.queries)
    events = merge_streams(conform(interactions, "interactions"), conform(searches, "searches"))
    split_cfg = load_section("split", params)
    split = assign_split(events, split_cfg.min_events, protocol, split_cfg.holdout_window)
    row = {"dataset": name, "generator": generator, "protocol": protocol, "searches": len(searches), **query_overlap(split),
           **catalogue_matches(split, tables.items, params)}
    if examples:
        titles = tables.items.set_index(tables.items["item_id"].astype(str))["title"]
        busiest = searches["item_id"].astype(str).value_counts().index[:examples]
        row["examples"] = {titles[i]: sorted(set(searches.loc[searches["item_id"].astype(str) == i, "query"]))
                           for i in busiest}
    return row


def catalogue_matches(events: pd.DataFrame, items: pd.DataFrame, params: Path) -> dict[str, float]:
    """How many catalogue items each test query fully describes (relevance grade 2, data/relevance.py):
    the median over test searches and the share that name exactly one item."""
    judge = CatalogueJudge(items, load_section("evaluate", params).relevance.reading)
    test = events.loc[(events["kind"] == "search") & (events["split"] == "test"), "query"].astype(str)
    full = {q: int((judge.grades_of(q) == 2).sum()) for q in set(test)}
    counts = test.map(full)
    return {"test_catalogue_matches_median": float(counts.median()),
            "test_naming_one_item": round(float((counts == 1).mean()), 4)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = [measure(name, generator, Path(args.data), Path(args.params), args.protocol, args.examples)
            for name in args.datasets for generator in GENERATORS]
    for row in rows:
        print(json.dumps(row, ensure_ascii=False), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
