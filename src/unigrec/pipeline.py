"""Run pipeline stages through DVC, so DVC's cache and lock decide what actually runs.

This is the plain-Python core that the Prefect tasks in ``flows/`` wrap: it knows nothing of Prefect.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class StageOutcome:
    stage: str
    ran: bool  # False: DVC found the stage up to date (cached) and skipped it
    metrics: dict[str, Any]


def pipeline_stages(root: Path) -> list[str]:
    """Stage names in ``dvc.yaml`` order (the pipeline order)."""
    spec = yaml.safe_load((Path(root) / "dvc.yaml").read_text(encoding="utf-8"))
    return list(spec["stages"])


def stage_metrics(root: Path, stage: str) -> dict[str, Any]:
    """The JSON metrics files a stage declares in ``dvc.yaml``, read back after it ran."""
    spec = yaml.safe_load((Path(root) / "dvc.yaml").read_text(encoding="utf-8"))
    found: dict[str, Any] = {}
    for entry in spec["stages"][stage].get("metrics", []):
        name = next(iter(entry)) if isinstance(entry, dict) else entry
        path = Path(root) / name
        if path.exists():
            found[name] = json.loads(path.read_text(encoding="utf-8"))
    return found


def reproduce_stage(stage: str, root: Path = Path(".")) -> StageOutcome:
    """``dvc repro --single-item STAGE``: run it only if its deps, params or code changed."""
    from dvc.repo import Repo

    # DVC resolves stage names and runs commands relative to the current directory, so work from root.
    with contextlib.chdir(Path(root).resolve()), Repo(".") as repo:
        reproduced = repo.reproduce(stage, single_item=True)
    ran = any(getattr(s, "addressing", None) == stage or getattr(s, "name", None) == stage for s in reproduced)
    log.info("stage %s: %s", stage, "ran" if ran else "up to date (cached), skipped")
    return StageOutcome(stage=stage, ran=ran, metrics=stage_metrics(root, stage))
