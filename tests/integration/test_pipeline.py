"""DVC-backed stage runner, params overrides and experiments, on a toy two-stage DVC project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.toy_dvc_project import make_toy_project

from unigrec.pipeline import (
    apply_param_overrides,
    metrics_files,
    override_files,
    pipeline_stages,
    reproduce_stage,
    save_experiment,
    stage_metrics,
)


@pytest.fixture()
def toy_repo(tmp_path: Path) -> Path:
    return make_toy_project(tmp_path / "toy")


def test_reproduce_runs_then_caches(toy_repo: Path):
    assert pipeline_stages(toy_repo) == ["make", "use"]
    first = reproduce_stage("make", toy_repo)
    assert first.ran and first.metrics == {"metrics.json": {"n": 3}}
    assert reproduce_stage("use", toy_repo).ran
    assert (toy_repo / "final.txt").read_text() == "xx"
    again = reproduce_stage("make", toy_repo)
    assert not again.ran and again.metrics == first.metrics
    # a params change re-runs exactly that stage
    apply_param_overrides(toy_repo, ["make.width=2"])
    assert reproduce_stage("make", toy_repo).ran
    assert reproduce_stage("use", toy_repo).ran  # out.txt changed: use re-runs
    assert (toy_repo / "final.txt").read_text() == "xxxx"
    assert stage_metrics(toy_repo, "use") == {}


def test_failed_stage_leaves_its_last_good_outputs(toy_repo: Path, caplog):
    """DVC deletes a stage's outputs before running it; after a failure the runner puts them back."""
    reproduce_stage("make", toy_repo)
    apply_param_overrides(toy_repo, ["make.sleep_s=-1"])  # time.sleep(-1) raises: the stage fails
    with pytest.raises(Exception, match="failed to reproduce"):
        reproduce_stage("make", toy_repo)
    assert (toy_repo / "out.txt").read_text() == "x"  # cached output: back from DVC's cache
    assert json.loads((toy_repo / "metrics.json").read_text()) == {"n": 3}  # git-tracked: from the copy
    assert "last good outputs are back" in caplog.text
    # dvc.lock still describes them, so putting the param back finds the stage up to date
    apply_param_overrides(toy_repo, ["make.sleep_s=0"])
    assert not reproduce_stage("make", toy_repo).ran


def test_first_run_that_fails_has_nothing_to_restore(toy_repo: Path):
    apply_param_overrides(toy_repo, ["make.sleep_s=-1"])
    with pytest.raises(Exception, match="failed to reproduce"):
        reproduce_stage("make", toy_repo)
    assert not (toy_repo / "out.txt").exists() and not (toy_repo / "metrics.json").exists()


def test_stage_that_dies_after_rewriting_an_output_gets_the_recorded_one_back(toy_repo: Path):
    """A crash between two writes must not leave the new half of a run beside the old half."""
    reproduce_stage("make", toy_repo)
    (toy_repo / "make.py").write_text('open("out.txt", "w").write("half-written")\nraise SystemExit(1)\n')
    with pytest.raises(Exception, match="failed to reproduce"):
        reproduce_stage("make", toy_repo)
    assert (toy_repo / "out.txt").read_text() == "x"  # the last good run's, not the failed run's
    assert json.loads((toy_repo / "metrics.json").read_text()) == {"n": 3}


def test_a_failure_before_dvc_touched_the_outputs_leaves_them_alone(toy_repo: Path, monkeypatch):
    """Only what the failed run deleted or rewrote goes back: an output it never reached stays as it is."""
    from dvc.repo import Repo

    reproduce_stage("make", toy_repo)
    (toy_repo / "out.txt").write_text("trained by hand")  # e.g. `unigrec stage make` run outside DVC

    def refuse(*_args, **_kwargs):
        raise RuntimeError("refused before running anything")  # e.g. a lock held or a bad dvc.yaml

    monkeypatch.setattr(Repo, "reproduce", refuse)
    with pytest.raises(RuntimeError, match="refused"):
        reproduce_stage("make", toy_repo)
    assert (toy_repo / "out.txt").read_text() == "trained by hand"


def test_metrics_files_follow_dvc_yaml(toy_repo: Path):
    assert metrics_files(toy_repo) == ["metrics.json"]
    assert metrics_files(toy_repo, ["use"]) == []


def test_overrides_use_dvc_grammar_and_reject_unknown_keys(toy_repo: Path):
    from dvc.exceptions import InvalidArgumentError

    assert override_files(["make.width=2", "other.yaml:a.b=1"]) == ["params.yaml", "other.yaml"]
    apply_param_overrides(toy_repo, ["make.width=4"])
    assert "width: 4" in (toy_repo / "params.yaml").read_text()
    with pytest.raises(InvalidArgumentError):
        apply_param_overrides(toy_repo, ["make.widht=4"])  # a typo must not add a new key silently


def test_saved_experiment_carries_params_and_metrics(toy_repo: Path):
    import dvc.api

    apply_param_overrides(toy_repo, ["make.width=5"])
    reproduce_stage("make", toy_repo)
    sha = save_experiment(toy_repo, "width-5", ["make"])
    rows = {row["Experiment"]: row for row in dvc.api.exp_show(repo=str(toy_repo))}
    assert rows["width-5"]["rev"] == sha[:7]
    # the metrics file is git-ignored by nothing here but untracked: it must be in the experiment
    assert rows["width-5"]["make.width"] == 5 and rows["width-5"]["n"] == 15
    assert json.loads((toy_repo / "metrics.json").read_text()) == {"n": 15}


def test_no_param_is_named_like_dvc_file_metadata():
    """Guard for a DVC 3.67 quirk: the run-cache key drops every key named ``size`` or ``nfiles`` at any
    depth (they are file metadata to it), params included, so changing such a param restores stale
    outputs. No params.yaml key of the project may use those names."""
    import yaml
    from support.toy_dvc_project import PROJECT_ROOT

    def keys(node: object) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {k for v in node.values() for k in keys(v)}
        if isinstance(node, list):
            return {k for v in node for k in keys(v)}
        return set()

    project = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text(encoding="utf-8"))
    assert not keys(project) & {"size", "nfiles"}
