"""The whole pipeline from scratch, stage by stage through DVC, then a no-op re-run: wall time and peak
RSS per stage, plus the run's quality figures. Writes ``benchmarks/results/pipeline_bench.json`` (one
entry per ``--label``) and the ``pipeline-bench`` block of BENCHMARKS.md (every label in the JSON).

The run happens in a throw-away git + DVC copy of this project (``--work``) with its own empty caches
(text embeddings included: a real cold start), so the shared workspace is never touched. Each stage is
``dvc repro --single-item NAME`` in its own process; its peak RSS is the largest resident set of that
process tree (``os.wait4``), i.e. the stage's process, since DVC itself is smaller.

Params change as ``unigrec run`` changes them (``--experiment``, ``--data-path``, ``--set``). Examples:
    python benchmarks/pipeline_bench.py --label ml-100k --data-path ../shared/data/ml-100k
    python benchmarks/pipeline_bench.py --label ml-1m --experiment ml1m --data-path ../shared/data/ml-1m
    # stop after train, continue later in the same copy (stages already run keep their figures)
    python benchmarks/pipeline_bench.py --label ml-1m ... --until train
    python benchmarks/pipeline_bench.py --label ml-1m --keep
    # a variant sharing the data stages: copy the folder, change params, run what DVC finds changed
    cp -r /tmp/unigrec-pipeline-bench/ml-1m /tmp/unigrec-pipeline-bench/ml-1m-atomic
    python benchmarks/pipeline_bench.py --label ml-1m-atomic --keep --experiment atomic-ids
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.host import command_line, machine, machine_id, portable
from benchmarks.markdown_block import write_block
from benchmarks.project_copy import add_override_args, commit, configure, copy_project
from unigrec.pipeline import pipeline_stages

RESULTS = ROOT / "benchmarks" / "results" / "pipeline_bench.json"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
BLOCK = "pipeline-bench"  # its block in BENCHMARKS.md
NOTES = "docs/experiments/2026-11-25-ml100k-pipeline.md"
REMARK = re.compile(r""" [(][^'"]*[)]$""")  # "(stopped during train: ...)" after a recorded command
PATH = re.compile(r"(^|[\s=])(/|\.\./)[^\s'`,)]+")  # a path outside the checkout in a hand-written note
BIN = Path(sys.executable).parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--label", default=None, help="name of this run in the JSON and the table (e.g. ml-1m)")
    add_override_args(p)
    p.add_argument("--work", default=None, help="the project copy (default: /tmp/unigrec-pipeline-bench/LABEL)")
    p.add_argument("--keep", action="store_true",
                   help="continue in an existing copy (params options then change its params): stages DVC finds up "
                        "to date keep this label's earlier figures, or show as reused")
    p.add_argument("--until", default=None, help="last stage to run (default: the whole pipeline)")
    p.add_argument("--render", action="store_true", help="only re-write the block from the results JSON")
    return p.parse_args(argv)


def options(args: argparse.Namespace) -> list[str]:
    """The params options as typed: what the block shows (resolved paths would name this machine's)."""
    data = [f"--data-path {args.data_path}"] if args.data_path else []
    return [*(f"--experiment {e}" for e in args.experiment), *data, *args.overrides]


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


def _fmt(x: Any) -> str:
    return "–" if x is None else (f"{x:.4f}" if isinstance(x, float) else str(x))


def _cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "–"
    return "reused" if r.get("reused") else f"{r['wall_s']:.1f} s (CPU {r['cpu_s']:.1f}), {r['peak_rss_mb']:,} MB"


def render(results: dict[str, Any]) -> str:
    """One table of every label's stages (wall, CPU, peak RSS), one of the figures the runs reached, then
    each label's machine, date and commands (what was changed by hand besides them, where anything was)."""
    runs = list(results.values())
    stages = list(dict.fromkeys(stage for run in runs for stage in run["stages"]))
    lines = [
        "## Whole pipeline, stage by stage: time and peak memory (`benchmarks/pipeline_bench.py`)", "",
        "Each stage is `dvc repro --single-item NAME` in its own process, in a fresh git + DVC copy with empty caches",
        "(MiniLM's included); peak RSS of its process tree; \"reused\": up to date in a copy this label did not build;",
        f"no-op: a plain `dvc repro` right after. Raw figures: `{RESULTS.relative_to(ROOT)}`; [notes]({NOTES})", "",
        "| stage | " + " | ".join(results) + " |", "|---|" + "---:|" * len(runs),
        *(f"| {stage} | " + " | ".join(_cell(run["stages"].get(stage)) for run in runs) + " |" for stage in stages),
        "| **all stages, wall** | " + " | ".join(
            f"**{sum(r['wall_s'] for r in run['stages'].values() if not r.get('reused')):.1f} s**" for run in runs) + " |",
        "| no-op `dvc repro` | " + " | ".join(_cell(run.get("noop")) for run in runs) + " |", "",
        ("| run | epochs | sequences/s | parameters | test rec HR@10 | rec NDCG@10 | search HR@10 | search NDCG@10 "
         "| ranking AUC |"), "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, run in results.items():
        train, test = _get(run, "quality", "train", "training") or {}, _get(run, "quality", "evaluate", "test") or {}
        figures = [_get(test, s, "full", m) for s in ("rec", "search") for m in ("hr@10", "ndcg@10")]
        lines.append(f"| {label} | {train.get('epochs', '–')} | {train.get('train_sequences_per_second', '–')} | "
                     f"{train.get('parameters', 0):,} | " + " | ".join(map(_fmt, figures))
                     + f" | {_fmt(_get(test, 'ranking', 'auc'))} |")
    lines.append("")
    for label, run in results.items():
        commands = run.get("commands", [run.get("command")])
        typed = " then ".join(f"`{portable(REMARK.sub('', c))}`" for c in commands)
        by_hand = [PATH.sub(r"\1DIR", o) for o in run["overrides"] if o not in " ".join(commands)]
        lines.append(textwrap.fill(
            f"- **{label}** ({machine_id(run['machine'])}, {run['date']}): {typed}"
            + (f"; besides: {'; '.join(by_hand)}" if by_hand else "") + ".",
            110, subsequent_indent="  ", break_on_hyphens=False, break_long_words=False))
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
    if args.render:
        write_block(BENCHMARKS_MD, BLOCK, render(json.loads(RESULTS.read_text(encoding="utf-8"))))
        return 0
    if args.label is None:
        raise SystemExit("--label names the run (only --render works without one)")
    work = Path(args.work or f"/tmp/unigrec-pipeline-bench/{args.label}").resolve()
    results = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    previous = results.get(args.label, {}) if args.keep else {}
    if args.keep:
        if not work.exists():
            raise SystemExit(f"--keep: {work} does not exist")
    elif work.exists():
        raise SystemExit(f"{work} exists: remove it, or pass --keep to continue in it")
    else:
        copy_project(work, share_cache=False)
    if configure(work, args):  # with --keep: e.g. a copy of another label's project with one knob changed
        commit(work, "benchmark params")
    log_file = work / "pipeline_bench.log"
    log_file.touch()
    stages = pipeline_stages(work)
    if args.until:
        stages = stages[: stages.index(args.until) + 1]
    command = command_line("benchmarks/pipeline_bench.py", sys.argv[1:] if argv is None else argv)
    run: dict[str, Any] = {
        "commands": [*previous.get("commands", [previous["command"]] if "command" in previous else []), command],
        "overrides": [*previous.get("overrides", []), *options(args)],
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
