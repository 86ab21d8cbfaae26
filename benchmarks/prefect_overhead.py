"""Prefect's overhead around the DVC pipeline: the same stages run directly (the stage entry points in one
process), by ``dvc repro``, and as the ``unigrec run`` flow (a fresh PREFECT_HOME, then cached, then against
a running server), on the toy project of the tests and on a copy of this project's ``--real-stages``.
Writes benchmarks/results/prefect_overhead.json and the ``prefect`` block of BENCHMARKS.md.

    python benchmarks/prefect_overhead.py [--repeats N] [--real-stages ingest validate split]
    python benchmarks/prefect_overhead.py --render    # only re-write the block from the results file
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.host import add_block_arguments, command_line, machine, machine_id, portable
from benchmarks.markdown_block import write_block

BIN = Path(sys.executable).parent
RESULTS = ROOT / "benchmarks" / "results" / "prefect_overhead.json"
NOTES = "docs/experiments/2026-11-25-prefect-overhead.md"
MODES = ("direct", "dvc_cold", "dvc_cached", "flow_cold", "flow_cached", "flow_cached_server")
TOY_DIRECT = "import runpy; [runpy.run_path(s) for s in ('make.py', 'use.py')]"  # the toy dvc.yaml's cmds
# `unigrec stage NAME` for each stage, in one process; the first failure ends it
REAL_DIRECT = "import sys; from unigrec.cli import main; sys.exit(any(main(['stage', s]) for s in sys.argv[1:]))"


def _env(prefect_home: Path) -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90", "PREFECT_LOGGING_LEVEL": "WARNING",
           "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PREFECT_API_URL", None)  # the flow starts Prefect's temporary server, as `unigrec run` does
    return env


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - started


def _measure(make_project, stages: list[str], direct: list[str], repeats: int, work: Path, server_env) -> dict:
    """Cold then cached wall seconds per mode, each repeat on fresh projects."""
    runs: dict[str, list[float]] = {k: [] for k in MODES}
    for i in range(repeats):
        env = _env(work / f"prefect-home-{i}")
        runs["direct"].append(_timed([sys.executable, *direct], make_project(work / f"direct-{i}"), env))
        project = make_project(work / f"dvc-{i}")
        for mode in ("dvc_cold", "dvc_cached"):
            runs[mode].append(_timed([str(BIN / "dvc"), "repro", *stages], project, env))
        project = make_project(work / f"flow-{i}")
        flow = [str(BIN / "unigrec"), "run", "--root", str(project), "--stages", *stages]
        for mode, mode_env in (("flow_cold", env), ("flow_cached", env), ("flow_cached_server", server_env)):
            runs[mode].append(_timed(flow, project, mode_env))
        print(f"  repeat {i + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in runs.items()))
    return {k: {"median_s": round(statistics.median(v), 2), "runs_s": [round(x, 2) for x in v]} for k, v in runs.items()}


def render(result: dict) -> str:
    lines = [
        "## Prefect overhead (`benchmarks/prefect_overhead.py`)",
        "",
        f"Command: `{portable(result['command'])}`  ",
        (f"Machine {machine_id(result['machine'])}, {result['date']}; wall seconds, median of {result['repeats']} "
        f"fresh projects ([notes]({NOTES}))"),
        "",
        ("| project | direct stage calls | `dvc repro` cold | `dvc repro` cached | flow cold | flow cached "
        "| flow cached, running server | flow − dvc, cached (running server) |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in result["projects"].items():
        m = {k: r[k]["median_s"] for k in MODES}
        lines.append(
            f"| {name} ({', '.join(r['stages'])}) | {m['direct']:.1f} | {m['dvc_cold']:.1f} | {m['dvc_cached']:.1f} "
            f"| {m['flow_cold']:.1f} | {m['flow_cached']:.1f} | {m['flow_cached_server']:.1f} "
            f"| {m['flow_cached'] - m['dvc_cached']:+.1f} ({m['flow_cached_server'] - m['dvc_cached']:+.1f}) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--real-stages", nargs="*", default=["ingest", "validate", "split"],
                        help="stages of the project copy (none: the toy project only)")
    add_block_arguments(parser, str(RESULTS), str(ROOT / "BENCHMARKS.md"))
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if args.render:
        write_block(Path(args.markdown), "prefect", render(json.loads(Path(args.results).read_text())))
        return 0
    from benchmarks.project_copy import copy_project
    from tests.support.prefect_local_server import prefect_server
    from tests.support.toy_dvc_project import TOY_STAGES, make_toy_project
    from unigrec.pipeline import pipeline_stages

    result: dict = {"command": command_line("benchmarks/prefect_overhead.py", argv), "machine": machine(),
                    "date": dt.date.today().isoformat(), "repeats": args.repeats, "projects": {}}
    with (tempfile.TemporaryDirectory(prefix="unigrec-prefect-bench-") as tmp,
          prefect_server(Path(tmp) / "server-home") as (_, server_env)):
        work = Path(tmp)
        toy = _measure(make_toy_project, TOY_STAGES, ["-c", TOY_DIRECT], args.repeats, work / "toy", server_env)
        result["projects"]["toy"] = {**toy, "stages": TOY_STAGES}
        if (ROOT / "data").exists() and args.real_stages:
            stages = [s for s in args.real_stages if s in pipeline_stages(ROOT)]
            real = _measure(lambda dest: copy_project(dest, stages), stages, ["-c", REAL_DIRECT, *stages],
                            args.repeats, work / "real", server_env)
            result["projects"]["real"] = {**real, "stages": stages}
    Path(args.results).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    write_block(Path(args.markdown), "prefect", render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
