"""The identifiers stage's wall time, CPU time, peak memory and collision figures on a project's data (cold
and warm text cache) and on a synthetic catalogue. Each measured run is its own child process on copies of
the inputs in a temporary root, so its peak RSS is the stage's own and the project is never touched.
Writes benchmarks/results/identifiers_*.json and the ``identifiers`` block of BENCHMARKS.md.

    python benchmarks/identifiers_bench.py --random-semantic [--synthetic-codebook-sizes 64 256]
    python benchmarks/identifiers_bench.py --render    # only re-write the block from the results files
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the benchmarks package, when run as a script

from benchmarks.host import command_line, machine, machine_id, portable
from benchmarks.markdown_block import write_block

CASES = ("project-cold", "project-warm", "synthetic")
NOTES = "docs/experiments/2026-11-25-identifiers-stage.md"
VECTORS = {"MiniLM (real)": "MiniLM", "random topic-clustered (encoder skipped)": "random, no encoder"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=".", help="project root after `dvc repro split`")
    p.add_argument("--params", default="params.yaml", help="params file relative to --root")
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES),
                   help="project-cold: empty text cache; project-warm: the project's; synthetic: generated")
    p.add_argument("--synthetic-items", type=int, default=100_000)
    p.add_argument("--synthetic-users", type=int, default=20_000)
    p.add_argument("--events-per-user", type=int, default=50)
    p.add_argument("--topics", type=int, default=500, help="synthetic topics (clusters of items)")
    p.add_argument("--random-semantic", action="store_true",
                   help="synthetic case: random topic-clustered item vectors instead of MiniLM's")
    p.add_argument("--synthetic-codebook-sizes", nargs="+", type=int, default=None, metavar="K",
                   help="synthetic case: one run per K with every level's codebook size K (default: params')")
    p.add_argument("--seed", type=int, default=0, help="synthetic catalogue seed")
    p.add_argument("--results-dir", default="benchmarks/results")
    p.add_argument("--markdown", default="BENCHMARKS.md")
    p.add_argument("--render", action="store_true", help="only re-write the block from the results files")
    p.add_argument("--child-generate", metavar="DIR", help=argparse.SUPPRESS)
    p.add_argument("--child-case", help=argparse.SUPPRESS)
    p.add_argument("--child-work", help=argparse.SUPPRESS)
    p.add_argument("--child-codebook-size", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- child side
def synthetic_project(work: Path, n_items: int, n_users: int, events_per_user: int, n_topics: int, seed: int,
                      zipf_exponent: float | None = None, random_vectors: bool = True,
                      query_vectors: bool = False) -> dict[str, Any]:
    """A synthetic project in ``work`` (items with topic text, users with 3 favoured topics, leave-one-out
    events) and, with ``random_vectors``, its text cache pre-filled with random topic-clustered item (and
    query) vectors, so no text encoder runs. Returns what the catalogue looks like."""
    import numpy as np

    from unigrec.ids.build import item_texts
    from unigrec.ids.synthetic import (
        SyntheticSpec,
        synthetic_query_vectors,
        synthetic_semantic_vectors,
        write_synthetic_project,
    )
    from unigrec.inference.prompts import query_table_texts
    from unigrec.paths import Layout
    from unigrec.text_encoder import embedding_cache_file

    spec = SyntheticSpec(n_items=n_items, n_users=n_users, events_per_user=events_per_user, n_topics=n_topics,
                         topics_per_user=3, words_per_topic=50, search_share=0.25, positive_share=0.6,
                         popularity_skew=2.0, noise=0.8, seed=seed, zipf_exponent=zipf_exponent)
    items, events = write_synthetic_project(Layout(work), spec)
    cache, queries = work / "text-cache", list(query_table_texts(events))
    cache.mkdir(parents=True, exist_ok=True)
    if random_vectors:
        np.save(embedding_cache_file(item_texts(items), cache), synthetic_semantic_vectors(spec, items))
    if query_vectors:
        np.save(embedding_cache_file(queries, cache), synthetic_query_vectors(spec, queries))
    counts = events["item_id"].value_counts()
    return {"items": len(items), "events": len(events), "train_events": int((events["split"] == "train").sum()),
            "items_with_events": len(counts), "distinct_queries": len(queries),
            "top_1pct_items_share_of_events": round(float(counts.iloc[: max(1, len(items) // 100)].sum()
                                                          / len(events)), 3)}


def run_case(args: argparse.Namespace) -> dict[str, Any]:
    """Run the stage once in this process on the prepared ``--child-work`` root; return measurements."""
    import pandas as pd

    from unigrec.config import load_section
    from unigrec.logs import setup_logging
    from unigrec.paths import Layout
    from unigrec.stages.identifiers import run

    setup_logging("WARNING")
    case, work, project = args.child_case, Path(args.child_work), Layout(Path(args.root))
    cfg = load_section("identifiers", project.root / args.params)
    runtime = load_section("runtime", project.root / args.params)
    if args.child_codebook_size:
        k = args.child_codebook_size
        cfg = dataclasses.replace(cfg, rqvae=dataclasses.replace(cfg.rqvae, shared_codebook_size=k,
                                                                 specific_codebook_size=k))
    cache = project.resolve(runtime.cache_dir) if case == "project-warm" else work / "text-cache"
    layout = Layout(work)
    if case != "synthetic":
        for name in ("items", "events"):
            if not getattr(project, name).exists():
                raise SystemExit(f"{getattr(project, name)} missing: run `dvc repro split` in {args.root} first")
            getattr(layout, name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(getattr(project, name), getattr(layout, name))
    n_events = int((pd.read_parquet(layout.events, columns=["split"])["split"] == "train").sum())
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    summary = run(cfg, layout, dataclasses.replace(runtime, cache_dir=str(cache.resolve())))
    stage_s = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    metrics = json.loads(layout.identifiers_metrics.read_text())
    kinds = {"semantic": "semantic_id", "collaborative": "collaborative_id"}
    return {
        "case": case if not args.child_codebook_size else f"{case}, {args.child_codebook_size}-code levels",
        "items": summary["items"],
        "train_events": n_events,
        "stage_seconds": round(stage_s, 1),
        # CPU seconds are less distorted than wall time when other jobs share the cores
        "stage_cpu_seconds": round((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 1),
        "peak_rss_mb": round(after.ru_maxrss / 1024, 1),
        **{key: {kind: metrics[m][key] for kind, m in kinds.items()}
           for key in ("collision_rate_before", "collision_rate_after_sinkhorn", "collision_rate_final",
                       "max_dedup_token")},
        "fraction_unexplained": {s: round(v["fraction_unexplained"], 3)
                                 for s, v in metrics["reconstruction_final_ids"].items()},
        "collaborative_model": metrics["collaborative_model"],
        "semantic_vectors": ("random topic-clustered (encoder skipped)"
                             if case == "synthetic" and args.random_semantic else "MiniLM (real)"),
        "text_cache": {"project-cold": "cold", "project-warm": "warm"}.get(
            case, "pre-filled" if args.random_semantic else "cold"),
    }


# ----------------------------------------------------------------------------- parent side
def child(argv: list[str], *extra: str) -> str:
    return subprocess.run([sys.executable, __file__, *argv, *extra], check=True, stdout=subprocess.PIPE,
                          text=True).stdout


def measure(argv: list[str], case: str, work: Path, codebook_size: int | None) -> dict[str, Any]:
    load = os.getloadavg()[0]
    extra = ["--child-case", case, "--child-work", str(work)]
    extra += ["--child-codebook-size", str(codebook_size)] if codebook_size else []
    result = json.loads(child(argv, *extra).strip().splitlines()[-1])
    result["load_average_1m"] = {"start": round(load, 1), "end": round(os.getloadavg()[0], 1)}
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


def render_block(results: list[dict[str, Any]]) -> str:
    def pair(r: dict[str, Any], key: str, fmt: str) -> str:
        return f"{r[key]['semantic']:{fmt}} / {r[key]['collaborative']:{fmt}}"

    runs = dict.fromkeys((portable(r["command"]), machine_id(r["machine"]), r["date"]) for r in results)
    lines = ["## identifiers stage: time, memory and collisions (`benchmarks/identifiers_bench.py`)", ""]
    lines += [f"Command: `{command}`  \nMachine {mid}, {date}; [notes]({NOTES})" for command, mid, date in runs]
    lines += ["", ("| case | items | train events | item text vectors | stage wall s | stage CPU s | peak RSS MB "
              "| collisions before Sinkhorn, sem / col | after Sinkhorn | final | largest dedup token "
              "| variance unexplained, sem / col |"), "|---|---:|---:|---|---:|---:|---:|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r['case']} | {r['items']:,} | {r['train_events']:,} | {VECTORS.get(r['semantic_vectors'], r['semantic_vectors'])}"
            f", {r['text_cache']} cache | {r['stage_seconds']} | {r['stage_cpu_seconds']} | {r['peak_rss_mb']:,.0f} "
            f"| {pair(r, 'collision_rate_before', '.1%')} | {pair(r, 'collision_rate_after_sinkhorn', '.1%')} "
            f"| {pair(r, 'collision_rate_final', '.0%')} | {pair(r, 'max_dedup_token', 'd')} "
            f"| {pair(r, 'fraction_unexplained', '.2f')} |")
    return "\n".join(lines) + "\n"


def stored_results(results_dir: Path) -> list[dict[str, Any]]:
    """Every stored case, in case order (synthetic ones by codebook size)."""
    found = [json.loads(p.read_text()) for p in results_dir.glob("identifiers_*.json")]
    return sorted(found, key=lambda r: (CASES.index(r["case"].split(",")[0]),
                                        int("".join(filter(str.isdigit, r["case"])) or 0)))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.child_generate:
        synthetic_project(Path(args.child_generate), args.synthetic_items, args.synthetic_users,
                          args.events_per_user, args.topics, args.seed, random_vectors=args.random_semantic)
        return 0
    if args.child_case:
        print(json.dumps(run_case(args)))
        return 0
    out_dir = Path(args.results_dir)
    if not args.render:
        run = {"command": command_line("benchmarks/identifiers_bench.py", argv), "machine": machine(),
               "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}
        for case in args.cases:
            with tempfile.TemporaryDirectory(prefix="ids-bench-") as tmp:
                results = []
                if case != "synthetic":
                    results.append(measure(argv, case, Path(tmp) / "work", None))
                else:
                    child(argv, "--child-generate", str(Path(tmp) / "data"))
                    for k in args.synthetic_codebook_sizes or [None]:
                        shutil.copytree(Path(tmp) / "data", Path(tmp) / f"work-{k}")
                        results.append(measure(argv, case, Path(tmp) / f"work-{k}", k))
            for r in results:
                name = r["case"].replace(", ", "_").replace(" ", "_")
                (out_dir / f"identifiers_{name}.json").write_text(json.dumps(r | run, indent=2) + "\n")
    write_block(Path(args.markdown), "identifiers", render_block(stored_results(out_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
