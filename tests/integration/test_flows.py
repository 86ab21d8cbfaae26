"""Flows and their plain-Python core without a Prefect server: stage tasks via ``.fn``, the workspace
lock under two concurrent runs, overrides as DVC experiments, the data-contract flow."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.toy_dvc_project import PROJECT_ROOT, make_toy_project

from unigrec.config import load_section
from unigrec.orchestration.markdown import metrics_markdown, run_summary_markdown
from unigrec.orchestration.run import PipelineRequest, PipelineResult, dataset_overrides, run_pipeline
from unigrec.orchestration.workspace_lock import WorkspaceBusy, hold_workspace
from unigrec.pipeline import StageOutcome, reproduce_stage

# A toy stage that takes this long gives the second of two concurrent runs time to arrive while the
# first holds the workspace.
SLOW_STAGE_S = 1.5


@pytest.fixture()
def toy_repo(tmp_path: Path) -> Path:
    return make_toy_project(tmp_path / "toy")


def _run(root: Path, request: PipelineRequest | None = None, timeout_s: float = 60) -> PipelineResult:
    return run_pipeline(
        root, request or PipelineRequest(), run_stage=lambda s: reproduce_stage(s, root), lock_timeout_s=timeout_s
    )


def test_stage_task_fn_runs_then_reports_cached(toy_repo: Path):
    from flows.stage_tasks import run_stage

    first = run_stage.fn("make", str(toy_repo))
    assert first == StageOutcome("make", True, {"metrics.json": {"n": 3}})
    assert not run_stage.fn("make", str(toy_repo)).ran


def test_stage_tasks_are_named_and_retried_per_params():
    from flows.stage_tasks import stage_task

    cfg = load_section("orchestration", PROJECT_ROOT / "params.yaml")
    ingest, validate = stage_task("ingest", cfg), stage_task("validate", cfg)
    assert ingest.name == "dvc-stage-ingest" and ingest.retries == cfg.stage_retries["ingest"] > 0
    assert validate.name == "dvc-stage-validate" and validate.retries == 0  # a violation fails at once
    assert ingest.retry_delay_seconds == cfg.retry_delay_s


def test_plain_run_then_every_stage_cached(toy_repo: Path):
    first = _run(toy_repo)
    assert [(o.stage, o.ran) for o in first.outcomes] == [("make", True), ("use", True)]
    second = _run(toy_repo)
    assert second.all_cached and second.experiment is None
    assert "| use | cached |" in run_summary_markdown(second, [])


def test_overrides_run_is_a_dvc_experiment_and_params_file_is_restored(toy_repo: Path):
    import dvc.api

    params_before = (toy_repo / "params.yaml").read_bytes()
    result = _run(toy_repo, PipelineRequest(overrides=["make.width=2"], experiment_name="wide"))
    assert all(o.ran for o in result.outcomes) and result.experiment
    assert json.loads((toy_repo / "metrics.json").read_text()) == {"n": 6}
    assert (toy_repo / "final.txt").read_text() == "xxxx"
    assert (toy_repo / "params.yaml").read_bytes() == params_before
    row = next(r for r in dvc.api.exp_show(repo=str(toy_repo)) if r["Experiment"] == "wide")
    assert row["make.width"] == 2 and row["n"] == 6
    # the workspace went back to the committed params: a plain run re-makes the baseline
    assert _run(toy_repo).outcomes[0].ran


def test_bad_override_fails_before_any_stage_and_restores_params(toy_repo: Path):
    from dvc.exceptions import InvalidArgumentError

    before = (toy_repo / "params.yaml").read_bytes()
    with pytest.raises(InvalidArgumentError):
        _run(toy_repo, PipelineRequest(overrides=["make.widht=2"]))
    assert (toy_repo / "params.yaml").read_bytes() == before and not (toy_repo / "out.txt").exists()


def test_dataset_overrides_quote_paths():
    assert dataset_overrides(None, None) == []
    assert dataset_overrides("parquet", "/drops/a b") == ["ingest.source=parquet", "ingest.path='/drops/a b'"]


def test_second_run_fails_clearly_when_workspace_stays_busy(toy_repo: Path):
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with hold_workspace(toy_repo, timeout_s=5):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        started = time.perf_counter()
        with pytest.raises(WorkspaceBusy, match="lock_timeout_s"):
            _run(toy_repo, timeout_s=0.3)
        assert time.perf_counter() - started < 5
        assert not (toy_repo / "out.txt").exists()  # nothing ran
    finally:
        release.set()
        thread.join()


CONCURRENT_RUN = """
import json, sys
from pathlib import Path
from unigrec.orchestration.run import PipelineRequest, run_pipeline
from unigrec.pipeline import reproduce_stage
root = Path(sys.argv[1])
result = run_pipeline(root, PipelineRequest(), lambda s: reproduce_stage(s, root), lock_timeout_s=60)
print(json.dumps([o.ran for o in result.outcomes]))
"""


def test_two_concurrent_runs_queue_on_the_lock_and_leave_good_outputs(tmp_path: Path):
    root = make_toy_project(tmp_path / "toy", sleep_s=SLOW_STAGE_S)
    cmd = [sys.executable, "-c", CONCURRENT_RUN, str(root)]
    runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for proc in runs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]  # without the lock one of them dies on DVC's own lock
        results.append(json.loads(out.strip().splitlines()[-1]))
    # one run did the work; the other waited for it and then found every stage cached
    assert sorted(results) == [[False, False], [True, True]]
    assert (root / "final.txt").read_text() == "xx"
    assert json.loads((root / "metrics.json").read_text()) == {"n": 3}


def test_metrics_markdown_flattens_nested_metrics():
    md = metrics_markdown(StageOutcome("split", True, {"m.json": {"a": {"b": 1}, "c": "x", "l": [1]}}))
    assert "| m.json.a.b | 1 |" in md and "| m.json.c | x |" in md and "split: ran" in md
    assert "m.json.l" not in md


def test_data_contract_check_fn_passes_good_drop_and_fails_loudly_on_bad(tmp_path: Path):
    from support.contract_fixtures import BROKEN_CASES, valid_tables, write_tables

    from flows.data_contract_check import data_contract_check
    from unigrec.errors import ContractViolation

    good = write_tables(valid_tables(), tmp_path / "good")
    summary = data_contract_check.fn(drop_path=str(good), root=str(PROJECT_ROOT))
    assert summary["success"] and summary["n_failures"] == 0

    case = BROKEN_CASES["duplicate_item_id"]
    case.write(tmp_path / "bad")
    with pytest.raises(ContractViolation, match=case.rule) as failure:
        data_contract_check.fn(drop_path=str(tmp_path / "bad"), root=str(PROJECT_ROOT), report_dir=str(tmp_path / "r"))
    assert "items" in str(failure.value)
    assert json.loads((tmp_path / "r" / "validation.json").read_text())["success"] is False
