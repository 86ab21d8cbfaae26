"""``unigrec run --params FILE`` runs the pipeline with FILE's values (issue 40, defect 8: the flag was
accepted and ignored, every run read params.yaml). DVC stages read params.yaml by name, so FILE reaches
them as an overlay does: its changed values written in for the run, recorded as a DVC experiment, params.yaml
put back. The flow runs as plain Python (``.fn``, each stage through ``reproduce_stage``): no Prefect server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support.toy_dvc_project import PROJECT_ROOT, make_toy_project, toy_params

from unigrec.cli import main
from unigrec.config import ConfigError
from unigrec.errors import UnigrecError
from unigrec.orchestration.experiments import params_file_overrides, params_file_section
from unigrec.pipeline import reproduce_stage


@pytest.fixture()
def plain_flow(monkeypatch):
    """The training flow as a plain function whose stages run straight through DVC."""
    import flows.training_pipeline as flow

    monkeypatch.setattr(flow, "training_pipeline", flow.training_pipeline.fn)
    monkeypatch.setattr(flow, "stage_task", lambda stage, cfg: lambda name, root: reproduce_stage(name, Path(root)))


def _write(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


def test_run_with_params_file_uses_its_values_and_restores_params_yaml(tmp_path, plain_flow, capsys):
    toy = make_toy_project(tmp_path / "toy")
    before = (toy / "params.yaml").read_bytes()
    wide = toy_params()
    wide["make"]["width"] = 2
    _write(toy / "wide.yaml", wide)  # a whole params file, as --params takes one

    assert main(["run", "--root", str(toy), "--params", "wide.yaml"]) == 0
    assert json.loads((toy / "metrics.json").read_text()) == {"n": 6}  # width 2, not params.yaml's 1
    assert (toy / "final.txt").read_text() == "xxxx"
    assert (toy / "params.yaml").read_bytes() == before
    assert "DVC experiment" in capsys.readouterr().out

    # the same run without --params is params.yaml's: width 1 again
    assert main(["run", "--root", str(toy)]) == 0
    assert json.loads((toy / "metrics.json").read_text()) == {"n": 3}


def test_params_file_overrides_are_the_changed_keys_only(tmp_path):
    base = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text(encoding="utf-8"))
    _write(tmp_path / "params.yaml", base)
    changed = json.loads(json.dumps(base))
    changed["train"]["seed"] = base["train"]["seed"] + 1
    changed["ingest"]["label_threshold"] = int(base["ingest"]["label_threshold"])  # 4 == 4.0: unchanged
    _write(tmp_path / "alt.yaml", changed)
    assert params_file_overrides(tmp_path, "alt.yaml") == [f"train.seed={base['train']['seed'] + 1}"]
    _write(tmp_path / "partial.yaml", {"split": {"seed": 7}})
    assert params_file_overrides(tmp_path, "partial.yaml") == ["split.seed=7"]
    assert params_file_overrides(tmp_path, "params.yaml") == []
    assert params_file_overrides(tmp_path, str(tmp_path / "params.yaml")) == []
    assert params_file_overrides(tmp_path, None) == []


def test_params_file_orchestration_section_applies_to_the_run(tmp_path):
    base = toy_params()
    _write(tmp_path / "params.yaml", base)
    _write(tmp_path / "slow.yaml", {"orchestration": {"lock_timeout_s": 1234.0}})
    cfg = params_file_section(tmp_path, "slow.yaml", "orchestration")
    assert cfg.lock_timeout_s == 1234.0 and cfg.default_retries == base["orchestration"]["default_retries"]
    assert params_file_section(tmp_path, None, "orchestration").lock_timeout_s == base["orchestration"]["lock_timeout_s"]


def test_bad_params_file_for_run_fails_in_one_line_before_the_flow(tmp_path, monkeypatch):
    import flows.training_pipeline as flow

    monkeypatch.setattr(flow, "training_pipeline", lambda **_: pytest.fail("the flow must not start"))
    _write(tmp_path / "params.yaml", toy_params())
    _write(tmp_path / "typo.yaml", {"make": {"widht": 2}})
    with pytest.raises(UnigrecError, match=r"typo\.yaml: make\.widht is not a key of params\.yaml"):
        params_file_overrides(tmp_path, "typo.yaml")
    with pytest.raises(ConfigError, match="params file not found"):
        params_file_overrides(tmp_path, "missing.yaml")
    for name in ("typo.yaml", "missing.yaml"):
        assert main(["run", "--root", str(tmp_path), "--params", name]) == 2
