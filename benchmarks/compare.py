"""The baseline comparison table: the trained generative model against every baseline, both protocols,
on the project's TEST split, written into BENCHMARKS.md between the ``compare`` markers.

Usage (after `dvc repro train`, so data/split and models/generative exist):

    python benchmarks/compare.py [--root .] [--baselines popularity sasrec bm25 dense]

It runs the evaluate stage's own evaluation code (same cases, same rules) with the baseline list given
here instead of params' default, and leaves the stage's outputs untouched.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import os
import platform
import re
import sys
import time
from pathlib import Path

import pandas as pd

from unigrec.config import PARAMS_FILE, load_section
from unigrec.evaluate.baselines import BASELINE_NAMES
from unigrec.evaluate.comparison import comparison_markdown
from unigrec.evaluate.evaluation import evaluate_test_split
from unigrec.ids.embeddings import embed_texts
from unigrec.logs import setup_logging
from unigrec.paths import Layout
from unigrec.train.examples import query_table_texts

START, END = "<!-- compare:start -->", "<!-- compare:end -->"
log = logging.getLogger("benchmarks.compare")


def machine() -> str:
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads); 1-minute load average at start {load:.1f}"
    )


def replace_block(text: str, block: str) -> str:
    """``text`` with the marked block replaced (or appended when the markers are absent)."""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    wrapped = f"{START}\n{block.rstrip()}\n{END}"
    return pattern.sub(lambda _: wrapped, text) if pattern.search(text) else text.rstrip() + "\n\n" + wrapped + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=".", help="project root (params.yaml, data/, models/)")
    parser.add_argument("--baselines", nargs="*", default=list(BASELINE_NAMES), choices=BASELINE_NAMES)
    parser.add_argument("--benchmarks-file", default="BENCHMARKS.md", help="file holding the marked block")
    parser.add_argument("--results", default="benchmarks/results/compare.json", help="raw metrics (JSON)")
    args = parser.parse_args(argv)
    setup_logging(None)

    root = Path(args.root)
    layout = Layout(root)
    cfg = dataclasses.replace(load_section("evaluate", root / PARAMS_FILE), baselines=tuple(args.baselines))
    baselines_cfg = load_section("baselines", root / PARAMS_FILE)
    started_at = dt.datetime.now(dt.UTC)
    host = machine()
    events = pd.read_parquet(layout.events)
    texts = query_table_texts(events)
    table = embed_texts(list(texts), batch_size=cfg.query_batch_size, cache_dir=root / cfg.query_cache_dir,
                        show_progress=False)
    started = time.perf_counter()
    result = evaluate_test_split(
        cfg, layout.model_dir, events, pd.read_parquet(layout.candidates), pd.read_parquet(layout.items),
        table, texts, baselines_cfg, root,
    )
    wall = time.perf_counter() - started
    from unigrec.stages.evaluate import finite_or_none

    metrics = finite_or_none(result.metrics)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    card = json.loads((layout.model_dir / "model.json").read_text(encoding="utf-8"))
    command = "python benchmarks/compare.py " + " ".join(sys.argv[1:] if argv is None else argv)
    block = "\n".join(
        [
            "## Model vs baselines on the test split (`benchmarks/compare.py`)",
            "",
            f"Command: `{command.strip()}`  ",
            f"Machine: {host}  ",
            f"Date: {started_at:%Y-%m-%d %H:%M} UTC  ",
            (f"Model: `{layout.model_dir.relative_to(root)}` ({card['item_representation']}, d_model {card['dims']['d_model']}, "
            f"{card['dims']['n_layers']} layers); test events: {result.n_cases['rec']} rec, "
            f"{result.n_cases['search']} search; beam {cfg.beam_size}."),
            "",
            ("Same cases and the same code for every method (`unigrec.evaluate`): each test event's history holds "
            "only earlier train/valid events; full-catalogue lists drop the items already in that history for "
            "every method; 1+N ties count against the target. BM25 and dense (MiniLM) search serve search "
            "requests only; popularity and SASRec answer both (SASRec ignores the query)."),
            "",
            comparison_markdown(metrics, result.n_negatives),
            "Wall seconds (baselines include fitting): "
            + ", ".join(f"{m} {s:.1f}" for m, s in result.seconds.items())
            + f"; total {wall:.1f}. Raw numbers: `{args.results}`.",
        ]
    )
    path = Path(args.benchmarks_file)
    path.write_text(replace_block(path.read_text(encoding="utf-8") if path.exists() else "", block), encoding="utf-8")
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
