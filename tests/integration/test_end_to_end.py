"""The whole pipeline, as a user runs it (`dvc repro` in a project checkout), on a small real slice.

The project files are copied into a fresh git + DVC repo; params point ingest at the shared
MovieLens-100K files and keep the first users only, and shrink the model so the run takes a minute.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support.pipeline_project import ML100K, copy_project, run

# Overrides that make the run small (a minute or two on 2 cores); every key must exist in params.yaml.
SMALL = {
    "ingest": {"max_users": 60},
    "identifiers": {"collaborative": {"epochs": 5}, "rqvae": {"steps": 150, "warmup_steps": 50}},
    "train": {"trainer": {"max_epochs": 1}, "eval": {"epoch_users": 20, "final_users": 30}},
    "evaluate": {"baselines": ["popularity"], "relevance": {"typed_queries": {"max_queries": 10}}},
}


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ML100K.exists(), reason="shared ml-100k data not present"),
]


_run = run  # the helper under the name the tests below use


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("project"), tmp_path_factory.mktemp("cache"), SMALL)
    _run([sys.executable, "-m", "dvc", "repro"], root)
    return root


def test_pipeline_writes_every_declared_output(project: Path):
    spec = yaml.safe_load((project / "dvc.yaml").read_text())
    for name, stage in spec["stages"].items():
        for key in ("outs", "metrics", "plots"):
            for entry in stage.get(key, []):
                path = next(iter(entry)) if isinstance(entry, dict) else entry
                assert (project / path).exists(), f"stage {name} did not write {path}"
    card = json.loads((project / "data/canonical/data_card.json").read_text())
    assert json.loads((project / "reports/validation.json").read_text())["success"] is True
    events = pd.read_parquet(project / "data/split/events.parquet")
    assert events["user_id"].nunique() == 60
    assert {"train", "valid", "test"} <= set(events["split"]) <= {"train", "valid", "test", "gap"}
    # the default split is time-consistent: no user is trained on an event after their earliest held-out one
    held_out = events[events["split"].isin(["valid", "test"])].groupby("user_id")["order"].min()
    train = events[events["split"] == "train"]
    assert not (train["order"].to_numpy() > train["user_id"].map(held_out).fillna(float("inf")).to_numpy()).any()
    # the data card describes the tables it sits beside, not some other run's
    tables = {t: pd.read_parquet(project / f"data/canonical/{t}.parquet") for t in ("items", "interactions", "searches")}
    stats = card["stats"]
    assert stats["users"] == 60 == events["user_id"].nunique()
    assert {t: stats[t] for t in tables} == {t: len(frame) for t, frame in tables.items()}
    assert stats["searches"] == int((events["kind"] == "search").sum())


def test_second_repro_is_a_noop(project: Path):
    status = _run([sys.executable, "-m", "dvc", "status"], project)
    assert "up to date" in status.stdout.lower()
    again = _run([sys.executable, "-m", "dvc", "repro"], project)
    assert "Running stage" not in again.stdout


def test_flipping_runtime_knobs_reruns_nothing_and_a_stage_knob_does(project: Path):
    """params.yaml's runtime section changes how stages run, never what they write: no stage depends on it."""
    good_params = (project / "params.yaml").read_text()
    params = yaml.safe_load(good_params)
    runtime = params["runtime"]
    runtime["progress_bar"] = not runtime["progress_bar"]
    runtime["dataloader_workers"] += 1
    runtime["torch_threads"]["train"] = 1
    runtime["batch_sizes"] = {name: size + 1 for name, size in runtime["batch_sizes"].items()}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = _run([sys.executable, "-m", "dvc", "status"], project)
        assert "up to date" in status.stdout.lower(), status.stdout
        params["train"]["seed"] += 1  # a knob of what train computes: train and what follows it are stale
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        status = _run([sys.executable, "-m", "dvc", "status"], project)
        assert "train:" in status.stdout and "split:" not in status.stdout, status.stdout
    finally:
        (project / "params.yaml").write_text(good_params)


def test_bad_drop_fails_validation_and_keeps_downstream_outputs(project: Path, tmp_path: Path):
    """A new data drop with dangling item ids: validate fails, nothing downstream is rewritten."""
    events_before = (project / "data/split/events.parquet").read_bytes()
    canonical = project / "data/canonical"
    drop = tmp_path / "drop"
    drop.mkdir()
    for table in ("items", "interactions", "searches"):
        frame = pd.read_parquet(canonical / f"{table}.parquet")
        if table == "items":
            frame = frame.iloc[1:]  # every event of the first item now points nowhere
        frame.to_parquet(drop / f"{table}.parquet", index=False)
    good_params = (project / "params.yaml").read_text()
    params = yaml.safe_load(good_params)
    params["ingest"]["source"] = "parquet"
    params["ingest"]["parquet"].update({t: str(drop / f"{t}.parquet") for t in ("items", "interactions", "searches")})
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        proc = _run([sys.executable, "-m", "dvc", "repro"], project, check=False)
        assert proc.returncode != 0
        report = json.loads((project / "reports/validation.json").read_text())
        assert report["success"] is False
        text = (project / "reports/validation.md").read_text()
        assert "interactions" in text and "item_id" in text and "referential" in text.lower()
        assert (project / "data/split/events.parquet").read_bytes() == events_before
    finally:
        (project / "params.yaml").write_text(good_params)
        _run([sys.executable, "-m", "dvc", "repro"], project)


def test_failed_stage_under_the_flow_runner_keeps_its_last_good_outputs(project: Path):
    """DVC deletes a stage's outputs before running it; the runner behind `unigrec run` puts them back."""
    from unigrec.pipeline import reproduce_stage, stage_outputs

    def snapshot() -> dict[str, bytes]:
        files = {}
        for rel in stage_outputs(project, ["evaluate"]):
            path = project / rel
            for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
                if f.is_file():
                    files[str(f.relative_to(project))] = f.read_bytes()
        return files

    before = snapshot()
    assert any(name.startswith("models/serving/") for name in before) and "metrics/evaluate.json" in before
    good_params = (project / "params.yaml").read_text()
    params = yaml.safe_load(good_params)
    params["evaluate"]["beam_size"] = "wide"  # fails when the stage loads its config, after DVC's cleanup
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        with pytest.raises(Exception, match="failed to reproduce"):
            reproduce_stage("evaluate", project)
        assert snapshot() == before, "the directory, metrics, report and plots of the last good run"
    finally:
        (project / "params.yaml").write_text(good_params)
    status = _run([sys.executable, "-m", "dvc", "status"], project)
    assert "up to date" in status.stdout.lower(), "dvc.lock still matches what is on disk"
