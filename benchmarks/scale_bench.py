"""Scale benchmark (issue #8): the identifiers stage and ONE training epoch on synthetic catalogues of
100k and 1M items, with wall time, CPU time and peak memory per step. Writes
benchmarks/results/scale_bench.json and the ``scale`` block of BENCHMARKS.md.

Per catalogue size N, each step runs in its own child process; the parent reaps it with ``os.wait4``, so
the peak RSS reported is that process's own (imports included), and a watchdog kills a child whose
resident set passes ``--memory-limit-gb`` (the machine is shared: a step that does not fit must fail
alone, not take other jobs down with it). Steps:
  generate     synthetic catalogue (items with text, users with a few favoured topics, Zipf popularity
               inside a topic), events split leave-one-out, and the text/query embedding caches pre-filled
               with random topic-clustered vectors (so no text encoder runs: see --help of identifiers_bench);
  identifiers  ``unigrec.stages.identifiers.run`` (via identifiers_bench.run_case) with every codebook
               level sized ``--codebook-size`` and, optionally, fewer BPR-MF epochs;
  train        ``unigrec.stages.train.run`` with ``max_epochs: 1`` and capped validation users, once per
               ``--representations`` entry (semantic_ids needs the identifiers step's outputs).

Examples:
    python benchmarks/scale_bench.py                                    # 100k and 1M items
    python benchmarks/scale_bench.py --items 5000 --users 500 --representations semantic_ids --dry-markdown
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.host import command_line, machine, machine_line
from benchmarks.identifiers_bench import run_case
from benchmarks.markdown_block import write_block

BLOCK = "scale"  # its block in BENCHMARKS.md
REPRESENTATIONS = ("semantic_ids", "atomic")
WATCHDOG_POLL_S = 0.5  # how often the parent samples a child's resident set
LOG_TAIL_LINES = 15  # lines of a failed child's log kept in the results
MB = 1024 * 1024
# Fixed shape of the synthetic catalogue beyond the CLI's sizes (identifiers_bench uses the same values).
TOPICS_PER_USER, WORDS_PER_TOPIC, SEARCH_SHARE, POSITIVE_SHARE, NOISE = 3, 50, 0.25, 0.6, 0.8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", nargs="+", type=int, default=[100_000, 1_000_000], help="catalogue sizes")
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--events-per-user", type=int, default=50)
    p.add_argument("--topics", type=int, default=500, help="clusters of items (and distinct search queries)")
    p.add_argument("--zipf-exponent", type=float, default=1.0,
                   help="popularity inside a topic: P(rank r) ~ (r+1)**-s")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--codebook-size", type=int, default=256,
                   help="codes per RQ-VAE level (64-code levels collide heavily at 100k: identifiers block)")
    p.add_argument("--no-identifiers", action="store_true",
                   help="skip the identifiers step (and so semantic_ids training): atomic-only checks")
    p.add_argument("--bpr-epochs", type=int, default=None,
                   help="BPR-MF epochs of the identifiers step (default: the params file's)")
    p.add_argument("--representations", nargs="*", choices=REPRESENTATIONS, default=list(REPRESENTATIONS),
                   help="train.model.item_representation values to train one epoch with (none: skip training)")
    p.add_argument("--train-users", type=int, default=None,
                   help="train steps see only the first M users' events (all users: identifiers step); "
                        "an epoch's time grows with sequences, so the full epoch is extrapolated from the rate")
    p.add_argument("--epoch-users", type=int, default=200,
                   help="train.eval.epoch_users: validation users per stream scored after the epoch")
    p.add_argument("--final-users", type=int, default=500,
                   help="train.eval.final_users: validation users per stream in the stage's metrics file")
    p.add_argument("--memory-limit-gb", type=float, default=20.0,
                   help="kill a step whose resident set passes this (the machine has 23.5 GB, shared)")
    p.add_argument("--root", default=".", help="project root holding the params file")
    p.add_argument("--params", default="params.yaml", help="params file relative to --root")
    p.add_argument("--work", default="/tmp/unigrec-scale-bench", help="scratch folder (emptied per size)")
    p.add_argument("--keep", action="store_true", help="keep each size's scratch folder")
    p.add_argument("--results", default="benchmarks/results/scale_bench.json")
    p.add_argument("--markdown", default="BENCHMARKS.md")
    p.add_argument("--dry-markdown", action="store_true", help="print the block instead of writing files")
    p.add_argument("--render-only", action="store_true",
                   help="run nothing: rewrite the scale block from the results file")
    # internal: what a child process does
    p.add_argument("--child", choices=("generate", "identifiers", "train"), help=argparse.SUPPRESS)
    p.add_argument("--child-work", help=argparse.SUPPRESS)
    p.add_argument("--child-items", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-representation", help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- child side
def synthetic_spec(args: argparse.Namespace, n_items: int) -> Any:
    from unigrec.ids.synthetic import SyntheticSpec

    return SyntheticSpec(
        n_items=n_items, n_users=args.users, events_per_user=args.events_per_user, n_topics=args.topics,
        topics_per_user=TOPICS_PER_USER, words_per_topic=WORDS_PER_TOPIC, search_share=SEARCH_SHARE,
        positive_share=POSITIVE_SHARE, popularity_skew=2.0, noise=NOISE, seed=args.seed,
        zipf_exponent=args.zipf_exponent,
    )


def generate(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Items, events and pre-filled embedding caches (item texts and search queries) under ``work``."""
    import numpy as np

    from unigrec.ids.build import item_texts
    from unigrec.ids.embeddings import embedding_cache_file
    from unigrec.ids.synthetic import (
        synthetic_query_vectors,
        synthetic_semantic_vectors,
        write_synthetic_project,
    )
    from unigrec.paths import Layout
    from unigrec.train.examples import query_table_texts

    spec = synthetic_spec(args, args.child_items)
    items, events = write_synthetic_project(Layout(work), spec)
    cache = work / "text-cache"
    cache.mkdir(parents=True, exist_ok=True)
    np.save(embedding_cache_file(item_texts(items), cache), synthetic_semantic_vectors(spec, items))
    queries = list(query_table_texts(events))
    np.save(embedding_cache_file(queries, cache), synthetic_query_vectors(spec, queries))
    counts = events["item_id"].value_counts()
    return {
        "items": len(items),
        "events": len(events),
        "train_events": int((events["split"] == "train").sum()),
        "items_with_events": len(counts),
        "top_1pct_items_share_of_events": round(float(counts.iloc[: max(1, len(items) // 100)].sum()
                                                      / len(events)), 3),
        "distinct_queries": len(queries),
    }


def identifiers(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The identifiers stage through identifiers_bench's measured runner, on this size's params file."""
    case_args = argparse.Namespace(root=str(work), params="bench-params.yaml", child_case="synthetic",
                                   child_work=str(work), child_codebook_size=None, random_semantic=True)
    return run_case(case_args)


def train(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One epoch of the train stage (fit + its epoch validation + final validation report + model save)."""
    from unigrec.config import load_section
    from unigrec.paths import Layout
    from unigrec.stages.train import run

    layout = Layout(work)
    cfg = load_section("train", work / "bench-params.yaml")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model,
                                                             item_representation=args.child_representation))
    started = time.perf_counter()
    run(cfg, layout)
    stage_s = time.perf_counter() - started
    metrics = json.loads(layout.train_metrics.read_text())
    training, validation = metrics["training"], metrics["validation"]
    return {
        "tries": trie_sizes(cfg.model.item_representation, layout),
        "stage_seconds": round(stage_s, 1),
        "fit_seconds": training["seconds"],  # Lightning fit: the epoch + its capped validation
        "epochs": training["epochs"],
        "train_sequences": training["train_sequences"],
        "train_sequences_per_second": training["train_sequences_per_second"],
        "parameters": training["parameters"],
        "validation": {s: {k: v for k, v in validation[s].items() if k.startswith(("n", "hr", "ndcg", "pop"))}
                       for s in ("rec", "search")},
    }


def trie_sizes(representation: str, layout: Any) -> dict[str, dict[str, float]]:
    """Per decoding ID space: trie nodes and width, the sparse trie's bytes, and what the former dense
    (n_nodes, width) int64 table would have needed (measured after the stage, outside its figures)."""
    import pandas as pd

    from unigrec.model.item_codes import atomic_item_codes, load_item_codes
    from unigrec.model.vocabulary import Vocabulary
    from unigrec.train.fit import id_spaces

    if representation == "atomic":
        ids = pd.read_parquet(layout.items, columns=["item_id"])["item_id"].astype(str).tolist()
        items, codebooks = atomic_item_codes(ids)
    else:
        items, codebooks = load_item_codes(layout.ids_table, layout.codebooks)
    out = {}
    for is_search, space in id_spaces(Vocabulary.from_codebooks(codebooks), items).items():
        trie = space.trie
        out["search" if is_search else "rec"] = {
            "nodes": trie.n_nodes, "width": trie.width,
            "sparse_mb": round(trie.nbytes / MB, 1),
            "dense_table_gib": round(trie.n_nodes * trie.width * 8 / 1024**3, 2),
        }
    return out


def child_main(args: argparse.Namespace) -> None:
    from unigrec.logs import setup_logging

    setup_logging("INFO")  # timestamps per phase in the child's log; identifiers_bench asks for WARNING later
    work = Path(args.child_work)
    steps = {"generate": generate, "identifiers": identifiers, "train": train}
    result = steps[args.child](args, work)
    Path(args.child_out).write_text(json.dumps(result, indent=2) + "\n")


# ----------------------------------------------------------------------------- parent side
def rss_mb(pid: int) -> float:
    """Current resident set of ``pid`` in MB (0 when it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return kb / 1024


def measured_child(argv: list[str], extra: list[str], log_file: Path, limit_mb: float) -> dict[str, Any]:
    """Run one step in a child; wall/CPU/peak RSS from ``os.wait4``; killed past ``limit_mb``."""
    out = log_file.with_suffix(".json")
    cmd = [sys.executable, __file__, *argv, *extra, "--child-out", str(out)]
    load = os.getloadavg()[0]
    started = time.perf_counter()
    killed = False
    with log_file.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if not killed and rss_mb(proc.pid) > limit_mb:
                proc.kill()
                killed = True
            time.sleep(WATCHDOG_POLL_S)
    proc.returncode = os.waitstatus_to_exitcode(status)
    measured: dict[str, Any] = {
        "ok": proc.returncode == 0,
        "process_wall_seconds": round(time.perf_counter() - started, 1),
        "process_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "load_average_1m": {"start": round(load, 1), "end": round(os.getloadavg()[0], 1)},
    }
    if proc.returncode == 0:
        return json.loads(out.read_text()) | measured  # the process-level figures are the reported ones
    tail = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]
    reason = f"killed by the watchdog above {limit_mb / 1024:.0f} GB" if killed else f"exit {proc.returncode}"
    return measured | {"error": reason, "log_tail": tail}


def bench_params(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The project's params with this benchmark's overrides; written to ``work/bench-params.yaml``."""
    params = yaml.safe_load((Path(args.root) / args.params).read_text(encoding="utf-8"))
    ids, tr = params["identifiers"], params["train"]
    ids["rqvae"]["shared_codebook_size"] = ids["rqvae"]["specific_codebook_size"] = args.codebook_size
    if args.bpr_epochs is not None:
        ids["collaborative"]["epochs"] = args.bpr_epochs
    ids["cache_dir"] = tr["query_cache_dir"] = str((work / "text-cache").resolve())
    tr["trainer"].update(max_epochs=1, progress_bar=False, logger="csv")
    tr["eval"].update(epoch_users=args.epoch_users, final_users=args.final_users)
    (work / "bench-params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return {"identifiers.rqvae.codebook_size (every level)": args.codebook_size,
            "identifiers.collaborative.epochs": ids["collaborative"]["epochs"],
            "train.trainer.max_epochs": 1, "train.eval.epoch_users": args.epoch_users,
            "train.eval.final_users": args.final_users}


def run_size(args: argparse.Namespace, argv: list[str], n_items: int) -> dict[str, Any]:
    """Every step for one catalogue size; a failed step is recorded and the steps needing it skipped."""
    work = Path(args.work) / f"items-{n_items}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    limit_mb = args.memory_limit_gb * 1024
    common = ["--child-work", str(work), "--child-items", str(n_items)]
    entry: dict[str, Any] = {"items": n_items, "overrides": bench_params(args, work), "steps": {}}
    steps = entry["steps"]

    def step(name: str, *extra: str) -> dict[str, Any]:
        print(f"scale benchmark: {n_items:,} items, {name} ...", file=sys.stderr, flush=True)
        steps[name] = measured_child(argv, [*common, *extra], work / f"{name}.log", limit_mb)
        print(json.dumps({name: steps[name]}), file=sys.stderr, flush=True)
        return steps[name]

    if step("generate", "--child", "generate")["ok"]:
        ids_ok = not args.no_identifiers and step("identifiers", "--child", "identifiers")["ok"]
        if args.train_users is not None and args.representations:
            entry["train_users"] = restrict_events(work, args.train_users)
        for rep in args.representations:
            if rep == "semantic_ids" and not ids_ok:
                why = "not run (--no-identifiers)" if args.no_identifiers else "the identifiers step failed"
                steps[f"train ({rep})"] = {"ok": False, "error": f"skipped: {why}"}
                continue
            step(f"train ({rep})", "--child", "train", "--child-representation", rep)
    if not args.keep:
        logs = work.with_name(f"{work.name}-logs")  # the steps' logs (phase timestamps) outlive the data
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir()
        for log in work.glob("*.log"):
            shutil.copy2(log, logs / log.name)
        shutil.rmtree(work, ignore_errors=True)
    return entry


def restrict_events(work: Path, n_users: int) -> dict[str, int]:
    """Keep the first ``n_users`` users' events for the train steps (the full file is kept beside it)."""
    import pandas as pd

    from unigrec.paths import Layout

    path = Layout(work).events
    events = pd.read_parquet(path)
    shutil.copy2(path, path.with_name("events-all-users.parquet"))
    keep = sorted(events["user_id"].unique())[:n_users]
    events[events["user_id"].isin(keep)].to_parquet(path)
    return {"train_users": len(keep), "all_users": int(events["user_id"].nunique())}


def _step_cells(s: dict[str, Any]) -> str:
    if "process_wall_seconds" not in s:
        return f"| - | - | - | {s['error']} |"
    note = "ok" if s["ok"] else f"FAILED: {s['error']}"
    return f"| {s['process_wall_seconds']} | {s['process_cpu_seconds']} | {s['peak_rss_mb']:,} | {note} |"


def _step_detail(name: str, s: dict[str, Any], entry: dict[str, Any]) -> str:
    if not s.get("ok"):
        return ""
    if name == "generate":
        return (f"{s['events']:,} events ({s['train_events']:,} train), {s['items_with_events']:,} items with "
                f"events, top 1% of items = {s['top_1pct_items_share_of_events']:.0%} of events")
    if name == "identifiers":
        col = s["collaborative_model"]
        hr = next((f"BPR valid HR@10 {v:.3f}" for k, v in col.items() if k.startswith("bpr_valid_hr")), "")
        return (f"stage {s['stage_seconds']} s; collisions before Sinkhorn sem/col "
                f"{s['collision_rate_before']['semantic']:.1%} / {s['collision_rate_before']['collaborative']:.1%}"
                f", final {s['collision_rate_final']['semantic']:.0%} / "
                f"{s['collision_rate_final']['collaborative']:.0%}; {hr}")
    v = s["validation"]
    text = (f"stage {s['stage_seconds']} s, fit {s['fit_seconds']} s ({s['train_sequences']:,} sequences, "
            f"{s['train_sequences_per_second']} seq/s, {s['parameters']:,} parameters); "
            f"rec HR@10 {v['rec'].get('hr@10', float('nan')):.4f} (popularity "
            f"{v['rec'].get('popularity_hr@10', float('nan')):.4f}), search HR@10 "
            f"{v['search'].get('hr@10', float('nan')):.4f}")
    rec = s["tries"]["rec"]
    text += (f"; rec trie {rec['nodes']:,} nodes x {rec['width']:,} codes: {rec['sparse_mb']} MB sparse, "
             f"{rec['dense_table_gib']} GiB as the former dense table")
    users = entry.get("train_users")
    if users and s["train_sequences_per_second"] > 0:
        full = s["train_sequences"] * users["all_users"] / users["train_users"]
        text += (f"; trained on {users['train_users']:,} of {users['all_users']:,} users: a full epoch "
                 f"(~{full:,.0f} sequences) ~ {full / s['train_sequences_per_second']:,.0f} s of training "
                 "steps at this rate (extrapolated, not run)")
    return text


def render_block(sizes: list[dict[str, Any]]) -> str:
    """The ``scale`` block: one table over every size in the results file, each size's run described."""
    rows = ["| items | step | wall (s) | CPU (s) | peak RSS (MB) | status | details |",
            "|---:|---|---:|---:|---:|---|---|"]
    runs = []
    for entry in sizes:
        for name, s in entry["steps"].items():
            rows.append(f"| {entry['items']:,} | {name} {_step_cells(s)[:-1]}| {_step_detail(name, s, entry)} |")
        runs.append(_run_description(entry))
    return "\n".join([
        "## Scale: identifiers + one training epoch on synthetic catalogues (`benchmarks/scale_bench.py`)",
        "",
        *runs,
        *rows,
        "",
        ("Each step is its own process (`os.wait4`): wall, CPU and peak RSS include Python/torch imports and "
         "reading the step's inputs. identifiers = `unigrec.stages.identifiers.run` (BPR-MF, RQ-VAE, "
         "Sinkhorn, dedup, writing); train = `unigrec.stages.train.run` with one epoch (fit + its capped "
         "validation + final validation report on the capped users + saving the model). Synthetic data: "
         f"users favour {TOPICS_PER_USER} of the topics each, Zipf popularity inside a topic, "
         f"{SEARCH_SHARE:.0%} search events (query = the topic), leave-one-out split. Text and query "
         "embeddings are random topic-clustered vectors pre-filled into the caches: no text encoder ran "
         "(MiniLM would add its encoding time: identifiers block, project-cold row). What did not fit: "
         "the decoding trie was a dense (n_nodes, width) int64 table, so atomic IDs failed at once from "
         "100k items (a width-100k table; see 'as the former dense table' above) and 256-code semantic IDs "
         "at 1M cost GiBs per ID space; `unigrec.model.trie` now stores it sparsely (CSR), which these "
         "rows ran with."),
    ])


def _run_description(entry: dict[str, Any]) -> str:
    run, a = entry["run"], entry["run"]["args"]
    host = run["machine"]
    loads = "; ".join(f"{name} {s['load_average_1m']['start']} -> {s['load_average_1m']['end']}"
                      for name, s in entry["steps"].items() if "load_average_1m" in s)
    return "\n".join([
        f"**{entry['items']:,} items**: `{run['command']}`  ",
        f"Machine: {machine_line(host)}; date {run['date']}  ",
        (f"Data: {a['users']:,} users x {a['events_per_user']} events, {a['topics']} topics, Zipf s = "
         f"{a['zipf_exponent']}. Overrides of params.yaml: "
         f"{', '.join(f'`{k}: {v}`' for k, v in entry['overrides'].items())}  "),
        *_train_users_line(entry),
        ("1-minute load average at the start -> end of each step (shared 2-core machine: wall well above "
         f"CPU is waiting for a core): {loads}"),
        "",
    ])


def _train_users_line(entry: dict[str, Any]) -> list[str]:
    users = entry.get("train_users")
    if not users:
        return []
    line = (f"Train steps: the events of the first {users['train_users']:,} of {users['all_users']:,} users "
            "(`--train-users`; the identifiers step used all of them)  ")
    return [line]


def merged_sizes(results: Path, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sizes already in the results file, replaced by this run's where they overlap, smallest first."""
    old = json.loads(results.read_text(encoding="utf-8"))["sizes"] if results.exists() else []
    by_items = {e["items"]: e for e in old} | {e["items"]: e for e in new}
    return [by_items[n] for n in sorted(by_items)]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return 0
    if args.render_only:
        write_block(Path(args.markdown), BLOCK, render_block(merged_sizes(Path(args.results), [])))
        return 0
    run = {
        "command": command_line("benchmarks/scale_bench.py", argv),  # with nice -n N if deprioritised
        "machine": machine(),
        "args": {k: v for k, v in vars(args).items() if not k.startswith("child")},
    }
    sizes = []
    for n in args.items:
        entry = run_size(args, argv, n)
        sizes.append(entry | {"run": run | {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}})
    if args.dry_markdown:
        print(render_block(sizes))
        return 0
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    sizes = merged_sizes(results, sizes)
    results.write_text(json.dumps({"sizes": sizes}, indent=2) + "\n", encoding="utf-8")
    write_block(Path(args.markdown), BLOCK, render_block(sizes))
    print(f"wrote {results} and the scale block of {args.markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
