"""dvc.yaml and the code agree on where each stage writes."""

from __future__ import annotations

from pathlib import Path

import yaml
from support import REPO

from unigrec.paths import Layout
from unigrec.stages import STAGES

ROOT = REPO


def _declared_outputs() -> dict[str, set[str]]:
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    out: dict[str, set[str]] = {}
    for name, stage in spec["stages"].items():
        paths = set()
        for key in ("outs", "metrics", "plots"):
            for entry in stage.get(key, []):
                paths.add(next(iter(entry)) if isinstance(entry, dict) else entry)
        out[name] = paths
    return out


def test_every_dvc_stage_is_a_cli_stage_with_matching_command():
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    for name, stage in spec["stages"].items():
        assert name in STAGES
        assert stage["cmd"] == f"unigrec stage {name}"
        assert name in stage.get("params", []), f"{name} must depend on its own params section"


def test_layout_paths_written_by_stages_are_declared_in_dvc_yaml():
    layout = Layout(Path("."))
    declared = set().union(*_declared_outputs().values())

    def covered(path: Path) -> bool:
        p = path.as_posix()
        return any(p == d or p.startswith(d.rstrip("/") + "/") for d in declared)

    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    for name in ("items", "interactions", "searches", "data_card_json", "validation_json",
                 "validation_md", "events", "candidates", "split_metrics", "split_card"):
        assert covered(getattr(layout, name)), name
    if "identifiers" in spec["stages"]:
        assert covered(layout.ids_dir) and covered(layout.identifiers_metrics)
