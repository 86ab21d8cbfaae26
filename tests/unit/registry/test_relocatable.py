"""Issue 40, defect 2: the registry travels with the project. MLflow records absolute artifact paths (the
experiment's location, each run's, each logged model's and each version's storage location); a moved or
copied project must serve from and register into its own folder, never the old one, and a registry whose
artifacts are gone says so in one line instead of a bare FileNotFoundError."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from test_registry import load_dummy_model, register, register_cfg

from unigrec.errors import UnigrecError

pytestmark = pytest.mark.usefixtures("_no_inherited_tracking_uri")


@pytest.fixture
def _no_inherited_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def recorded_locations(root: Path) -> list[str]:
    """Every artifact location the store records (the places MLflow reads from and writes to)."""
    with sqlite3.connect(root / "mlflow.db") as db:
        rows = db.execute(
            "select artifact_location from experiments where name != 'Default' "
            "union all select artifact_uri from runs "
            "union all select artifact_location from logged_models "
            "union all select storage_location from model_versions"
        ).fetchall()
    return [r[0] for r in rows]


def serve(root: Path, dest: Path, version: int | None = None):
    from unigrec.registry.download import registered_model_dir

    folder = registered_model_dir(register_cfg(), root, dest, version=version)
    assert folder is not None
    return load_dummy_model(folder)


def test_a_moved_project_serves_and_registers_in_its_new_folder(tmp_path):
    pytest.importorskip("mlflow")
    old, new = tmp_path / "old", tmp_path / "new"
    assert register(old, 0.1, 0.2, tag="first").promoted
    old.rename(new)

    assert serve(new, tmp_path / "dl1").tag == "first"
    result = register(new, 0.2, 0.3, tag="second")
    assert result.promoted and result.version == 2
    assert serve(new, tmp_path / "dl2").tag == "second"
    assert serve(new, tmp_path / "dl3", version=1).tag == "first"
    assert not old.exists(), "nothing may be written under the old folder"
    locations = recorded_locations(new)
    assert len(locations) >= 5 and all(loc.startswith((new / "mlartifacts").as_uri()) for loc in locations)


def test_a_copied_project_registers_into_its_own_artifacts_not_the_original(tmp_path):
    pytest.importorskip("mlflow")
    original, copy = tmp_path / "original", tmp_path / "copy"
    register(original, 0.1, 0.2, tag="first")
    shutil.copytree(original, copy)
    before = sorted(p.relative_to(original) for p in (original / "mlartifacts").rglob("*"))

    register(copy, 0.2, 0.3, tag="second")
    assert serve(copy, tmp_path / "dl").tag == "second"
    assert sorted(p.relative_to(original) for p in (original / "mlartifacts").rglob("*")) == before
    assert all(loc.startswith((copy / "mlartifacts").as_uri()) for loc in recorded_locations(copy))
    # the original still serves its own champion from its own folder
    assert serve(original, tmp_path / "dl-original").tag == "first"
    assert all(loc.startswith((original / "mlartifacts").as_uri()) for loc in recorded_locations(original))


def test_missing_artifacts_are_named_in_one_line(tmp_path):
    pytest.importorskip("mlflow")
    register(tmp_path, 0.1, 0.2, tag="first")
    shutil.rmtree(tmp_path / "mlartifacts")
    from unigrec.registry.download import registered_model_dir

    with pytest.raises(UnigrecError) as info:
        registered_model_dir(register_cfg(), tmp_path, tmp_path / "dl")
    message = str(info.value)
    assert "\n" not in message
    assert "tiny v1" in message and str(tmp_path / "mlartifacts") in message and "missing" in message
