"""A whole pipeline run: lock the workspace, apply params overrides, run the stages, record the experiment.

Overrides come from three places, all turned into the same ``section.key=value`` strings that ``dvc exp run
-S`` takes and :func:`unigrec.pipeline.apply_param_overrides` writes: experiment overlays
(:mod:`unigrec.orchestration.experiments`), the dataset flags, and ``--set``. Later ones win.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from unigrec.atomic import atomic_file
from unigrec.orchestration.workspace_lock import hold_workspace
from unigrec.pipeline import (
    StageOutcome,
    apply_param_overrides,
    override_files,
    pipeline_stages,
    save_experiment,
)

StageRunner = Callable[[str], StageOutcome]

@dataclasses.dataclass(frozen=True)
class PipelineRequest:
    """What one run should do. Without overrides it is a plain ``dvc repro`` of the stages."""

    stages: list[str] | None = None  # None = every stage of dvc.yaml, in order
    overrides: list[str] = dataclasses.field(default_factory=list)  # ``dvc exp run -S`` style: "train.seed=3"
    experiment_name: str | None = None  # only with overrides; None = DVC picks a name

@dataclasses.dataclass(frozen=True)
class PipelineResult:
    outcomes: list[StageOutcome]
    experiment: str | None  # commit of the DVC experiment recorded for an overrides run

    @property
    def all_cached(self) -> bool:
        return not any(o.ran for o in self.outcomes)

def dataset_overrides(source: str | None, path: str | None) -> list[str]:
    """Params overrides that point ingest at another dataset; none for what is not given."""
    overrides = []
    if source is not None:
        overrides.append(f"ingest.source={source}")
    if path is not None:
        # Quoted: a path may hold characters (spaces, '=', ',') that the override grammar reads as syntax.
        overrides.append(f"ingest.path='{path}'")
    return overrides

def run_pipeline(
    root: Path, request: PipelineRequest, run_stage: StageRunner, lock_timeout_s: float
) -> PipelineResult:
    """Run the requested stages in order through ``run_stage``, holding the workspace for the whole run.

    With overrides this is ``dvc exp run -S ...`` done stage by stage: the overrides are written into
    params.yaml, each stage runs (and reports ran/cached), and the workspace is saved as a DVC
    experiment, comparable with ``dvc exp show``. the params files are then put back as they were, so a
    scheduled run with overrides never changes what the next plain run trains.
    """
    root = Path(root)
    with hold_workspace(root, lock_timeout_s):
        names = request.stages or pipeline_stages(root)
        if not request.overrides:
            return PipelineResult([run_stage(n) for n in names], experiment=None)
        originals = {f: (root / f).read_text(encoding="utf-8") for f in override_files(request.overrides)}
        try:
            apply_param_overrides(root, request.overrides)
            outcomes = [run_stage(n) for n in names]
            sha = save_experiment(root, request.experiment_name, names)
        finally:
            for name, text in originals.items():
                with atomic_file(root / name) as fh:
                    fh.write(text)
        return PipelineResult(outcomes, experiment=sha)
