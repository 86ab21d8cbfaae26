"""The whole pipeline from scratch, stage by stage through DVC, then a no-op re-run: wall time and peak
RSS per stage, plus the run's quality figures. Writes ``benchmarks/results/pipeline_bench.json`` (one
entry per ``--label``) and the ``pipeline-bench`` block of BENCHMARKS.md (every label in the JSON).

The run happens in a throw-away git + DVC copy of this project (``--work``) with its own empty caches
(text embeddings included: a real cold start), so the shared workspace is never touched. Each stage is
``dvc repro --single-item NAME`` in its own process; its peak RSS is the largest resident set of that
process tree (``os.wait4``), i.e. the stage's process, since DVC itself is smaller.

Examples:
    # ml-100k, default params, from the shared copy of the data (no download)
    python benchmarks/pipeline_bench.py --label ml-100k --set ingest.path=../shared/data/ml-100k
    # MovieLens-1M, UniGRF's dataset
    python benchmarks/pipeline_bench.py --label ml-1m --set ingest.source=movielens-1m \\
        --set ingest.path=../shared/data/ml-1m
    # stop after train, continue later in the same copy (stages already run keep their figures)
    python benchmarks/pipeline_bench.py --label ml-1m ... --until train
    python benchmarks/pipeline_bench.py --label ml-1m --keep
    # a variant sharing the data stages: copy the folder, change a knob, run what DVC finds changed
    cp -r /tmp/unigrec-pipeline-bench/ml-1m /tmp/unigrec-pipeline-bench/ml-1m-atomic
    python benchmarks/pipeline_bench.py --label ml-1m-atomic --keep \
        --set train.model.item_representation=atomic
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.host import command_line, machine, machine_line
from benchmarks.markdown_block import write_block
from benchmarks.params_override import write_param_overrides
from benchmarks.project_copy import commit, copy_project
from unigrec.pipeline import pipeline_stages

RESULTS = ROOT / "benchmarks" / "results" / "pipeline_bench.json"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
BLOCK = "pipeline-bench"  # its block in BENCHMARKS.md
BIN = Path(sys.executable).parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--label", required=True, help="name of this run in the JSON and the table (e.g. ml-1m)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="params.yaml override, dotted key, YAML value (e.g. train.trainer.max_epochs=4)")
    p.add_argument("--work", default=None, help="the project copy (default: /tmp/unigrec-pipeline-bench/LABEL)")
    p.add_argument("--keep", action="store_true",
                   help="continue in an existing copy (--set then changes its params): stages DVC finds up "
                        "to date keep this label's earlier figures, or show as reused")
    p.add_argument("--until", default=None, help="last stage to run (default: the whole pipeline)")
    return p.parse_args(argv)


def prepare(work: Path, overrides: list[str]) -> None:
    copy_project(work, share_cache=False)
    apply_overrides(work, overrides)


def apply_overrides(work: Path, overrides: list[str]) -> None:
    write_param_overrides(work, overrides)
    commit(work, "benchmark params")


def measured(cmd: list[str], cwd: Path, log_file: Path) -> dict[str, Any]:
    """Wall seconds and peak RSS (MB) of ``cmd``'s process tree; output appended to ``log_file``."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1"}
    with log_file.open("a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}); see {log_file}")
    return {"wall_s": round(wall, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1)}


def stage_ran(log_file: Path, before: int) -> bool:
    """Whether DVC actually executed the stage (rather than finding it up to date)."""
    with log_file.open(encoding="utf-8") as fh:
        fh.seek(before)
        return "Running stage" in fh.read()


def quality(work: Path) -> dict[str, Any]:
    """Headline figures of the run: validation (train) and test (evaluate), as the stages wrote them."""
    out: dict[str, Any] = {}
    for name in ("train", "evaluate", "identifiers", "split"):
        path = work / "metrics" / f"{name}.json"
        if path.exists():
            out[name] = json.loads(path.read_text(encoding="utf-8"))
    return out


def _get(d: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _fmt(x: Any, digits: int = 4) -> str:
    return "–" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def render(results: dict[str, Any]) -> str:
    lines = [
        "## Whole pipeline, stage by stage: time and peak memory (`benchmarks/pipeline_bench.py`)",
        "",
        ("Each stage is `dvc repro --single-item NAME` in its own process, in a fresh git + DVC copy of the "
         "project with empty caches (the MiniLM text-embedding cache included). Peak RSS is the largest "
         "resident set of the stage's process tree. The no-op row is a plain `dvc repro` right after."),
        "",
    ]
    for label, run in results.items():
        lines += [
            f"### {label}",
            "",
            "Command: " + " then ".join(f"`{c}`" for c in run.get("commands", [run.get("command")])) + "  ",
            (f"Machine: {machine_line(run['machine'])}; load average (1 min) at start "
             f"{run.get('load_start', '–')}, at end {run.get('load_end', '–')}  "),
            f"Date: {run['date']}  ",
            f"Overrides of params.yaml: {', '.join(f'`{o}`' for o in run['overrides']) or 'none'}",
            "",
            "| stage | wall s | CPU s | peak RSS MB |",
            "|---|---:|---:|---:|",
        ]
        total = 0.0
        for stage, r in run["stages"].items():
            if r.get("reused"):
                lines.append(f"| {stage} | reused (up to date in the copy) | | |")
                continue
            total += r["wall_s"]
            lines.append(f"| {stage} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_rss_mb']:,} |")
        lines.append(f"| **all stages** | **{total:.1f}** | | |")
        if "noop" in run:
            lines.append(f"| no-op `dvc repro` | {run['noop']['wall_s']:.1f} | {run['noop']['cpu_s']:.1f} | {run['noop']['peak_rss_mb']:,} |")
        q = run.get("quality", {})
        train = _get(q, "train", "training") or {}
        if train:
            lines += ["", (f"Training: {train.get('epochs')} epochs, {train.get('train_sequences'):,} sequences per "
                           f"epoch, {train.get('train_sequences_per_second')} sequences/s, "
                           f"{train.get('parameters'):,} parameters.")]
        test = _get(q, "evaluate", "test")
        if test:
            lines += [
                "",
                "| test (full catalogue) | n | HR@10 | HR@50 | NDCG@10 | NDCG@50 | MRR |",
                "|---|---:|---:|---:|---:|---:|---:|",
            ]
            for stream in ("rec", "search"):
                f = _get(test, stream, "full") or {}
                lines.append(
                    f"| {stream} | {_get(test, stream, 'n')} | {_fmt(f.get('hr@10'))} | {_fmt(f.get('hr@50'))} | "
                    f"{_fmt(f.get('ndcg@10'))} | {_fmt(f.get('ndcg@50'))} | {_fmt(f.get('mrr'))} |"
                )
            ranking = test.get("ranking", {})
            lines.append(f"\nRanking on labelled test recommendations: AUC {_fmt(ranking.get('auc'))}, "
                         f"GAUC {_fmt(ranking.get('gauc'))}, LogLoss {_fmt(ranking.get('logloss'))}.")
        lines.append("")
    lines.append(f"Raw figures: `{RESULTS.relative_to(ROOT)}`; stage logs in each copy's `pipeline_bench.log`.")
    return "\n".join(lines)


def save(label: str, run: dict[str, Any]) -> dict[str, Any]:
    """Store ``run`` under ``label`` in the results file (re-read first: another label's run may have
    written meanwhile); return every label's results."""
    results = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    results[label] = run
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.work or f"/tmp/unigrec-pipeline-bench/{args.label}").resolve()
    results = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    previous = results.get(args.label, {}) if args.keep else {}
    if args.keep:
        if not work.exists():
            raise SystemExit(f"--keep: {work} does not exist")
        if args.overrides:  # e.g. a copy of another label's project with one knob changed
            apply_overrides(work, args.overrides)
    else:
        if work.exists():
            raise SystemExit(f"{work} exists: remove it, or pass --keep to continue in it")
        prepare(work, args.overrides)
    log_file = work / "pipeline_bench.log"
    log_file.touch()
    stages = pipeline_stages(work)
    if args.until:
        stages = stages[: stages.index(args.until) + 1]
    command = command_line("benchmarks/pipeline_bench.py", sys.argv[1:] if argv is None else argv)
    run: dict[str, Any] = {
        "commands": [*previous.get("commands", [previous["command"]] if "command" in previous else []), command],
        "overrides": [*previous.get("overrides", []), *args.overrides],
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load_start": round(os.getloadavg()[0], 1),
        "stages": dict(previous.get("stages", {})),
    }
    for stage in stages:
        before = log_file.stat().st_size
        figures = measured([str(BIN / "dvc"), "repro", "--single-item", stage], work, log_file)
        if stage_ran(log_file, before):
            run["stages"][stage] = figures
        elif stage not in run["stages"]:  # up to date in a copy this label did not build: not measured here
            run["stages"][stage] = {"reused": True}
        print(f"{stage}: {run['stages'][stage]}", flush=True)
        save(args.label, run)  # a long run that is stopped later keeps what it measured
    if args.until is None:
        run["noop"] = measured([str(BIN / "dvc"), "repro"], work, log_file)
        print(f"no-op dvc repro: {run['noop']}", flush=True)
    run["load_end"] = round(os.getloadavg()[0], 1)
    run["quality"] = quality(work)
    write_block(BENCHMARKS_MD, BLOCK, render(save(args.label, run)))
    print(f"wrote {RESULTS.relative_to(ROOT)} and the pipeline-bench block of {BENCHMARKS_MD.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
