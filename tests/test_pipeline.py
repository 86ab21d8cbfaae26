"""DVC-backed stage runner and the Prefect flow that wraps it, on a toy two-stage DVC project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unigrec.pipeline import pipeline_stages, reproduce_stage, stage_metrics

MAKE_PY = """
import json
json.dump({"n": 3}, open("metrics.json", "w"))
open("out.txt", "w").write("x")
"""
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


@pytest.fixture()
def toy_repo(tmp_path: Path) -> Path:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True, env=env)
    (tmp_path / "dvc.yaml").write_text(TOY_DVC.format(py=sys.executable))
    (tmp_path / "params.yaml").write_text("make:\n  size: 1\n")
    (tmp_path / "make.py").write_text(MAKE_PY)
    (tmp_path / "use.py").write_text(USE_PY)
    return tmp_path


def test_reproduce_runs_then_caches(toy_repo: Path):
    assert pipeline_stages(toy_repo) == ["make", "use"]
    first = reproduce_stage("make", toy_repo)
    assert first.ran and first.metrics == {"metrics.json": {"n": 3}}
    assert reproduce_stage("use", toy_repo).ran
    assert (toy_repo / "final.txt").read_text() == "xx"
    again = reproduce_stage("make", toy_repo)
    assert not again.ran and again.metrics == first.metrics
    # a params change re-runs exactly that stage
    (toy_repo / "params.yaml").write_text("make:\n  size: 2\n")
    assert reproduce_stage("make", toy_repo).ran
    assert stage_metrics(toy_repo, "use") == {}


def test_metrics_markdown_flattens_nested_metrics():
    from flows.training_pipeline import metrics_markdown
    from unigrec.pipeline import StageOutcome

    md = metrics_markdown(StageOutcome("split", True, {"m.json": {"a": {"b": 1}, "c": "x", "l": [1]}}))
    assert "| m.json.a.b | 1 |" in md and "| m.json.c | x |" in md and "split: ran" in md
    assert "m.json.l" not in md


@pytest.mark.slow
def test_flow_runs_stages_as_tasks_and_reports_cached_on_rerun(toy_repo: Path, tmp_path_factory):
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    from flows.training_pipeline import training_pipeline

    with prefect_test_harness(server_startup_timeout=120):
        first = training_pipeline(root=str(toy_repo))
        second = training_pipeline(root=str(toy_repo))
    assert [o.ran for o in first] == [True, True]
    assert [o.ran for o in second] == [False, False]
    assert json.loads((toy_repo / "metrics.json").read_text()) == {"n": 3}
