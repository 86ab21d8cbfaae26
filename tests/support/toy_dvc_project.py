"""A two-stage DVC project in a temp folder: quick enough for orchestration tests and the overhead benchmark.

``make`` reads params ``make.width`` / ``make.sleep_s`` (a stand-in for compute) and writes a metric;
``use`` depends on ``make``'s output. params.yaml carries the real project's ``orchestration`` section,
so the flows read the same knobs as in production.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from . import REPO

PROJECT_ROOT = REPO

MAKE_PY = """
import json, time, yaml
params = yaml.safe_load(open("params.yaml"))["make"]
time.sleep(params["sleep_s"])
json.dump({"n": params["width"] * 3}, open("metrics.json", "w"))
open("out.txt", "w").write("x" * params["width"])
"""
TOY_STAGES = ["make", "use"]  # as in TOY_DVC, in pipeline order
USE_PY = 'open("final.txt", "w").write(open("out.txt").read() * 2)\n'
TOY_DVC = """
stages:
  make:
    cmd: {py} make.py
    deps: [make.py]
    params: [make]
    outs: [out.txt]
    metrics:
      - metrics.json:
          cache: false
  use:
    cmd: {py} use.py
    deps: [use.py, out.txt]
    outs: [final.txt]
"""


def toy_params(sleep_s: float = 0.0, lock_timeout_s: float | None = None) -> dict:
    """The toy's params: its own ``make`` section plus the project's ``orchestration`` section."""
    project = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text(encoding="utf-8"))
    orchestration = dict(project["orchestration"])
    if lock_timeout_s is not None:
        orchestration["lock_timeout_s"] = lock_timeout_s
    return {"make": {"width": 1, "sleep_s": sleep_s}, "orchestration": orchestration}


def make_toy_project(path: Path, sleep_s: float = 0.0, lock_timeout_s: float | None = None) -> Path:
    """git + dvc init a toy project in ``path`` and commit it (DVC experiments need a baseline commit)."""
    path.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run(["git", "config", "user.name", "unigrec tests"], cwd=path, check=True)
    subprocess.run(["git", "config", "user.email", "tests@unigrec.invalid"], cwd=path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=path, check=True, env=env)
    (path / "dvc.yaml").write_text(TOY_DVC.format(py=sys.executable))
    (path / "params.yaml").write_text(yaml.safe_dump(toy_params(sleep_s, lock_timeout_s), sort_keys=False))
    (path / "make.py").write_text(MAKE_PY)
    (path / "use.py").write_text(USE_PY)
    subprocess.run(["git", "add", "-A"], cwd=path, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "toy project"], cwd=path, check=True)
    return path
