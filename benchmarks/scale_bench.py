"""The identifiers stage and ONE training epoch on synthetic catalogues (default 100k and 1M items): wall
time, CPU time and peak memory per step. Each step runs in its own child process, reaped with ``os.wait4``
(so peak RSS is the step's own) and killed by a watchdog past ``--memory-limit-gb``. Steps: ``generate``
(items with topic text, users with a few favoured topics, Zipf popularity inside a topic, leave-one-out
events, text/query caches pre-filled with random topic-clustered vectors, so no text encoder runs),
``identifiers`` (the stage, every codebook level ``--codebook-size``), ``train`` (the stage with one epoch,
once per ``--representations``). Writes benchmarks/results/scale_bench.json and the ``scale`` block.

    python benchmarks/scale_bench.py --items 100000 1000000 [--train-users 2000]
    python benchmarks/scale_bench.py --render    # only re-write the block from the results file
"""

from __future__ import annotations

import argparse
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

from benchmarks.host import add_block_arguments, command_line, machine, machine_id, portable
from benchmarks.identifiers_bench import run_case, synthetic_project
from benchmarks.markdown_block import write_block

NOTES = "docs/experiments/2026-11-25-scale.md"
REPRESENTATIONS = ("semantic_ids", "atomic")
MB = 1024 * 1024


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", nargs="+", type=int, default=[100_000, 1_000_000], help="catalogue sizes")
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--events-per-user", type=int, default=50)
    p.add_argument("--topics", type=int, default=500, help="clusters of items (and distinct search queries)")
    p.add_argument("--zipf-exponent", type=float, default=1.0, help="popularity inside a topic ~ (rank+1)**-s")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--codebook-size", type=int, default=256, help="codes per RQ-VAE level")
    p.add_argument("--bpr-epochs", type=int, default=None, help="BPR-MF epochs (default: the params file's)")
    p.add_argument("--representations", nargs="*", choices=REPRESENTATIONS, default=list(REPRESENTATIONS),
                   help="item representations to train one epoch with (none: no training)")
    p.add_argument("--train-users", type=int, default=None,
                   help="train steps see only the first M users' events (identifiers: all users)")
    p.add_argument("--epoch-users", type=int, default=200, help="train.eval.epoch_users")
    p.add_argument("--final-users", type=int, default=500, help="train.eval.final_users")
    p.add_argument("--memory-limit-gb", type=float, default=20.0, help="kill a step whose resident set passes this")
    p.add_argument("--root", default=".", help="project root holding the params file")
    p.add_argument("--params", default="params.yaml", help="params file relative to --root")
    p.add_argument("--work", default="/tmp/unigrec-scale-bench", help="scratch folder (emptied per size)")
    add_block_arguments(p, "benchmarks/results/scale_bench.json")
    p.add_argument("--child", choices=("generate", "identifiers", "train"), help=argparse.SUPPRESS)
    p.add_argument("--child-work", help=argparse.SUPPRESS)
    p.add_argument("--child-items", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-representation", help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- child side
def generate(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Items, events and pre-filled embedding caches (item texts and search queries) under ``work``."""
    return synthetic_project(work, args.child_items, args.users, args.events_per_user, args.topics, args.seed,
                             zipf_exponent=args.zipf_exponent, query_vectors=True)


def identifiers(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The identifiers stage through identifiers_bench's measured runner, on this size's params file."""
    return run_case(argparse.Namespace(root=str(work), params="bench-params.yaml", child_case="synthetic",
                                       child_work=str(work), child_codebook_size=None, random_semantic=True))


def train(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One epoch of the train stage (fit + its epoch validation + final validation report + model save)."""
    import dataclasses

    from unigrec.config import load_section
    from unigrec.paths import Layout
    from unigrec.stages.train import run

    layout = Layout(work)
    cfg = load_section("train", work / "bench-params.yaml")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, item_representation=args.child_representation))
    started = time.perf_counter()
    run(cfg, layout, load_section("runtime", work / "bench-params.yaml"))
    stage_s = time.perf_counter() - started
    metrics = json.loads(layout.train_metrics.read_text())
    training, validation = metrics["training"], metrics["validation"]
    return {"tries": trie_sizes(cfg.model.item_representation, layout), "stage_seconds": round(stage_s, 1),
            "fit_seconds": training["seconds"], "epochs": training["epochs"],
            "train_sequences": training["train_sequences"], "parameters": training["parameters"],
            "train_sequences_per_second": training["train_sequences_per_second"],
            "validation": {s: {k: v for k, v in validation[s].items() if k.startswith(("n", "hr", "ndcg", "pop"))}
                           for s in ("rec", "search")}}


def trie_sizes(representation: str, layout: Any) -> dict[str, dict[str, float]]:
    """Per decoding ID space: trie nodes and width, the sparse trie's bytes, and what the former dense
    (n_nodes, width) int64 table would have needed."""
    import pandas as pd

    from unigrec.inference.retrieval import id_spaces
    from unigrec.model.item_codes import atomic_item_codes, load_item_codes
    from unigrec.model.vocabulary import Vocabulary

    if representation == "atomic":
        items, codebooks = atomic_item_codes(pd.read_parquet(layout.items)["item_id"].astype(str).tolist())
    else:
        items, codebooks = load_item_codes(layout.ids_table, layout.codebooks)
    return {"search" if is_search else "rec": {
        "nodes": s.trie.n_nodes, "width": s.trie.width, "sparse_mb": round(s.trie.nbytes / MB, 1),
        "dense_table_gib": round(s.trie.n_nodes * s.trie.width * 8 / 1024**3, 2)}
        for is_search, s in id_spaces(Vocabulary.from_codebooks(codebooks), items).items()}


# ----------------------------------------------------------------------------- parent side
def rss_mb(pid: int) -> float:
    """Current resident set of ``pid`` in MB (0 when it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0) / 1024


def measured_child(argv: list[str], extra: list[str], log_file: Path, limit_mb: float) -> dict[str, Any]:
    """Run one step in a child; wall/CPU/peak RSS from ``os.wait4``; killed past ``limit_mb``."""
    out = log_file.with_suffix(".json")
    load, started, killed = os.getloadavg()[0], time.perf_counter(), False
    with log_file.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen([sys.executable, __file__, *argv, *extra, "--child-out", str(out)],
                                stdout=log, stderr=subprocess.STDOUT)
        while not (reaped := os.wait4(proc.pid, os.WNOHANG))[0]:
            if not killed and rss_mb(proc.pid) > limit_mb:
                proc.kill()
                killed = True
            time.sleep(0.5)
    _, status, usage = reaped
    code = os.waitstatus_to_exitcode(status)
    measured = {"ok": code == 0, "process_wall_seconds": round(time.perf_counter() - started, 1),
                "process_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
                "peak_rss_mb": round(usage.ru_maxrss / 1024),
                "load_average_1m": {"start": round(load, 1), "end": round(os.getloadavg()[0], 1)}}
    if code == 0:
        return json.loads(out.read_text()) | measured  # the process-level figures are the reported ones
    reason = f"killed by the watchdog above {limit_mb / 1024:.0f} GB" if killed else f"exit {code}"
    return measured | {"error": reason, "log_tail": log_file.read_text(errors="replace").splitlines()[-15:]}


def bench_params(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The project's params with this benchmark's overrides, written to ``work/bench-params.yaml``."""
    params = yaml.safe_load((Path(args.root) / args.params).read_text(encoding="utf-8"))
    ids, tr = params["identifiers"], params["train"]
    ids["rqvae"]["shared_codebook_size"] = ids["rqvae"]["specific_codebook_size"] = args.codebook_size
    if args.bpr_epochs is not None:
        ids["collaborative"]["epochs"] = args.bpr_epochs
    params["runtime"].update(cache_dir=str((work / "text-cache").resolve()), progress_bar=False, train_logger="csv")
    tr["trainer"]["max_epochs"] = 1
    tr["eval"].update(epoch_users=args.epoch_users, final_users=args.final_users)
    (work / "bench-params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return {"identifiers.rqvae.codebook_size (every level)": args.codebook_size,
            "identifiers.collaborative.epochs": ids["collaborative"]["epochs"], "train.trainer.max_epochs": 1,
            "train.eval.epoch_users": args.epoch_users, "train.eval.final_users": args.final_users}


def run_size(args: argparse.Namespace, argv: list[str], n_items: int) -> dict[str, Any]:
    """Every step for one catalogue size; a failed step is recorded and the steps needing it skipped."""
    work = Path(args.work) / f"items-{n_items}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    entry: dict[str, Any] = {"items": n_items, "overrides": bench_params(args, work), "steps": {}}

    def step(name: str, *extra: str) -> bool:
        print(f"scale benchmark: {n_items:,} items, {name} ...", file=sys.stderr, flush=True)
        entry["steps"][name] = measured_child(argv, ["--child-work", str(work), "--child-items", str(n_items), *extra],
                                              work / f"{name}.log", args.memory_limit_gb * 1024)
        return entry["steps"][name]["ok"]

    if step("generate", "--child", "generate"):
        ids_ok = step("identifiers", "--child", "identifiers")
        if args.train_users is not None and args.representations:
            entry["train_users"] = restrict_events(work, args.train_users)
        for rep in args.representations:
            if rep == "semantic_ids" and not ids_ok:
                entry["steps"][f"train ({rep})"] = {"ok": False, "error": "skipped: the identifiers step failed"}
            else:
                step(f"train ({rep})", "--child", "train", "--child-representation", rep)
    logs = work.with_name(f"{work.name}-logs")  # the steps' logs (phase timestamps) outlive the data
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    for log in work.glob("*.log"):
        shutil.copy2(log, logs / log.name)
    shutil.rmtree(work, ignore_errors=True)
    return entry


def restrict_events(work: Path, n_users: int) -> dict[str, int]:
    """Keep the first ``n_users`` users' events for the train steps."""
    import pandas as pd

    from unigrec.paths import Layout

    path = Layout(work).events
    events = pd.read_parquet(path)
    keep = sorted(events["user_id"].unique())[:n_users]
    events[events["user_id"].isin(keep)].to_parquet(path)
    return {"train_users": len(keep), "all_users": int(events["user_id"].nunique())}


def _result(name: str, s: dict[str, Any]) -> str:
    if not s.get("ok"):
        return f"FAILED: {s['error']}"
    if name == "generate":
        return (f"{s['items_with_events']:,} items with events, top 1% of items = "
                f"{s['top_1pct_items_share_of_events']:.0%} of events")
    if name == "identifiers":
        before, final = s["collision_rate_before"], s["collision_rate_final"]
        hr = next((f"; BPR valid HR@10 {v:.3f}" for k, v in s["collaborative_model"].items()
                   if k.startswith("bpr_valid_hr")), "")
        return (f"collisions sem / col {before['semantic']:.1%} / {before['collaborative']:.1%} before Sinkhorn, "
                f"{final['semantic']:.0%} / {final['collaborative']:.0%} final{hr}")
    v, rec = s["validation"], s["tries"]["rec"]
    return (f"{s['train_sequences_per_second']} seq/s, {s['parameters']:,} parameters; rec HR@10 "
            f"{v['rec'].get('hr@10', float('nan')):.4f} (popularity {v['rec'].get('popularity_hr@10', float('nan')):.4f}),"
            f" search {v['search'].get('hr@10', float('nan')):.4f}; rec trie {rec['nodes']:,} nodes x "
            f"{rec['width']:,}: {rec['sparse_mb']} MB (dense table {rec['dense_table_gib']} GiB)")


def render_block(sizes: list[dict[str, Any]]) -> str:
    """The ``scale`` block: each size's command and machine, then one table over every size."""
    lines = ["## Scale: identifiers + one training epoch on synthetic catalogues (`benchmarks/scale_bench.py`)", ""]
    lines += [f"{machine_id(e['run']['machine'])}, {e['run']['date']}: `{portable(e['run']['command'])}`  " for e in sizes]
    a, e = sizes[0]["run"]["args"], sizes[0]
    users = e.get("train_users")
    lines += [f"Data: {a['users']:,} users x {a['events_per_user']} events, {a['topics']} topics, Zipf s = "
              f"{a['zipf_exponent']}" + (f"; train steps on the first {users['train_users']:,} users" if users else "")
              + "  ",
              "Overrides: " + ", ".join(f"`{'.'.join(k.split('.')[-2:])}={v}`" for k, v in e["overrides"].items())
              + "  ", f"[notes]({NOTES})", "",
              "| items | step | wall s | CPU s | peak RSS MB | result |", "|---:|---|---:|---:|---:|---|"]
    for entry in sizes:
        for name, s in entry["steps"].items():
            cells = (f"{s['process_wall_seconds']} | {s['process_cpu_seconds']} | {s['peak_rss_mb']:,}"
                     if "process_wall_seconds" in s else "- | - | -")
            lines.append(f"| {entry['items']:,} | {name} | {cells} | {_result(name, s)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.child:
        steps = {"generate": generate, "identifiers": identifiers, "train": train}
        from unigrec.logs import setup_logging

        setup_logging("INFO")  # timestamps per phase in the child's log
        result = steps[args.child](args, Path(args.child_work))
        Path(args.child_out).write_text(json.dumps(result, indent=2) + "\n")
        return 0
    results = Path(args.results)
    old = json.loads(results.read_text(encoding="utf-8"))["sizes"] if results.exists() else []
    by_items = {e["items"]: e for e in old}
    if not args.render:
        run = {"command": command_line("benchmarks/scale_bench.py", argv), "machine": machine(),
               "args": {k: v for k, v in vars(args).items() if not k.startswith("child")}}
        for n in args.items:  # a size measured again replaces its old entry
            date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            by_items[n] = run_size(args, argv, n) | {"run": run | {"date": date}}
        sizes = [by_items[n] for n in sorted(by_items)]
        results.write_text(json.dumps({"sizes": sizes}, indent=2) + "\n", encoding="utf-8")
    write_block(Path(args.markdown), "scale", render_block([by_items[n] for n in sorted(by_items)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
