"""Prefect's overhead around the DVC pipeline: the same stages run three ways, cold and again (cached).

- ``direct``: the stage entry points called one after another in one process, no DVC, no Prefect;
- ``dvc repro``: DVC alone (``dvc repro`` in a fresh process), what ``make run`` does;
- ``flow``: ``unigrec run`` in a fresh process: the Prefect flow with its temporary local server
  (no PREFECT_API_URL), each stage a task running through DVC. A fresh PREFECT_HOME for the cold run
  (first use: database migrations), the same one for the second run.

On the toy two-stage DVC project of the tests (trivial compute: pure overhead) and, when ``data/``
exists, on a throw-away copy of this project restricted to ``--real-stages`` (default: the data stages),
so the shared workspace is never touched. Writes benchmarks/results/prefect_overhead.json and the
``prefect`` block of BENCHMARKS.md.

    .venv/bin/python benchmarks/prefect_overhead.py [--repeats N] [--real-stages ingest validate split]
"""

from __future__ import annotations

import argparse
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

from benchmarks.host import command_line, machine, machine_line
from benchmarks.markdown_block import write_block
from benchmarks.project_copy import copy_project
from tests.prefect_local_server import prefect_server
from tests.toy_dvc_project import TOY_STAGES, make_toy_project
from unigrec.pipeline import pipeline_stages

BIN = Path(sys.executable).parent
RESULTS = ROOT / "benchmarks" / "results" / "prefect_overhead.json"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
BLOCK = "prefect"  # its block in BENCHMARKS.md
DEFAULT_REAL_STAGES = ["ingest", "validate", "split"]
# Stages of the toy project, run directly (what its dvc.yaml cmds are).
TOY_DIRECT = "import runpy, sys; [runpy.run_path(s) for s in ('make.py', 'use.py')]"
# In-process stage calls of the real project: the same entry points `unigrec stage NAME` runs.
REAL_DIRECT = """
import sys
from pathlib import Path
from unigrec.config import load_section
from unigrec.paths import Layout
from unigrec.stages import stage_runner
for name in sys.argv[1:]:
    run, section = stage_runner(name)
    run(load_section(section, Path("params.yaml")), Layout(Path(".")))
"""


def _env(prefect_home: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("PREFECT_API_URL", None)  # the flow must start Prefect's temporary server, as `unigrec run` does
    return env


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


MODES = ("direct", "dvc_cold", "dvc_cached", "flow_cold", "flow_cached", "flow_cached_server")


def _measure(
    make_project, stages: list[str], direct: list[str], repeats: int, work: Path, server_env: dict[str, str]
) -> dict:
    """Cold then again-cached wall seconds per mode; each repeat on a fresh project."""
    runs: dict[str, list[float]] = {k: [] for k in MODES}
    for i in range(repeats):
        home = work / f"prefect-home-{i}"
        env = _env(home)
        project = make_project(work / f"direct-{i}")
        runs["direct"].append(_timed([sys.executable, *direct], project, env))
        project = make_project(work / f"dvc-{i}")
        runs["dvc_cold"].append(_timed([str(BIN / "dvc"), "repro", *stages], project, env))
        runs["dvc_cached"].append(_timed([str(BIN / "dvc"), "repro", *stages], project, env))
        project = make_project(work / f"flow-{i}")
        flow = [str(BIN / "unigrec"), "run", "--root", str(project), "--stages", *stages]
        runs["flow_cold"].append(_timed(flow, project, env))
        runs["flow_cached"].append(_timed(flow, project, env))
        runs["flow_cached_server"].append(_timed(flow, project, server_env))
        print(f"  repeat {i + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in runs.items()))
    return {k: {"median_s": round(statistics.median(v), 2), "runs_s": [round(x, 2) for x in v]} for k, v in runs.items()}


def _markdown(result: dict) -> str:
    lines = [
        "## Prefect overhead (`benchmarks/prefect_overhead.py`)",
        "",
        (
            f"Command: `{result['command']}`. Machine: {machine_line(result['machine'])}. Wall seconds, median "
            f"of {result['repeats']} fresh projects each; every command in a fresh process."
        ),
        "",
        (
            "| project | direct stage calls | `dvc repro` cold | `dvc repro` cached | flow cold (`unigrec run`) "
            "| flow cached | flow cached, running server | flow − dvc, cached (running server) |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["projects"].items():
        m = {k: v["median_s"] for k, v in r.items() if isinstance(v, dict)}
        lines.append(
            f"| {name} ({', '.join(r['stages'])}) | {m['direct']:.1f} | {m['dvc_cold']:.1f} | {m['dvc_cached']:.1f} "
            f"| {m['flow_cold']:.1f} | {m['flow_cached']:.1f} | {m['flow_cached_server']:.1f} "
            f"| {m['flow_cached'] - m['dvc_cached']:+.1f} ({m['flow_cached_server'] - m['dvc_cached']:+.1f}) |"
        )
    lines += [
        "",
        (
            "Flow cold uses a fresh PREFECT_HOME (the temporary server creates its database); flow cached "
            "reuses it; \"running server\" is `unigrec run` with `PREFECT_API_URL` pointing at a `prefect "
            "server start` on loopback (as under a worker). The difference to `dvc repro` is Prefect's own "
            "cost: importing Prefect, starting the temporary local server (not paid against a running "
            "server), and the API calls of the flow and task runs."
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--real-stages", nargs="*", default=DEFAULT_REAL_STAGES)
    parser.add_argument("--skip-real", action="store_true", help="toy project only")
    args = parser.parse_args(argv)
    result: dict = {
        "command": command_line("benchmarks/prefect_overhead.py", sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "repeats": args.repeats,
        "projects": {},
    }
    with (
        tempfile.TemporaryDirectory(prefix="unigrec-prefect-bench-") as tmp,
        prefect_server(Path(tmp) / "server-home") as (_, server_env),
    ):
        work = Path(tmp)
        print("toy project (2 trivial stages)")
        toy = _measure(make_toy_project, TOY_STAGES, ["-c", TOY_DIRECT], args.repeats, work / "toy", server_env)
        result["projects"]["toy"] = {**toy, "stages": TOY_STAGES}
        if (ROOT / "data").exists() and not args.skip_real:
            stages = [s for s in args.real_stages if s in pipeline_stages(ROOT)]
            print(f"real project copy ({', '.join(stages)})")
            real = _measure(
                lambda dest: copy_project(dest, stages),
                stages,
                ["-c", REAL_DIRECT, *stages],
                args.repeats,
                work / "real",
                server_env,
            )
            result["projects"]["real"] = {**real, "stages": stages}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    write_block(BENCHMARKS_MD, BLOCK, _markdown(result))
    print(f"wrote {RESULTS.relative_to(ROOT)} and the prefect block of BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
