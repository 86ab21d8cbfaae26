"""Prefect flow ``training-pipeline``: every DVC stage in order as its own task, one run at a time.

Each task runs its stage through DVC (``unigrec.pipeline.reproduce_stage``), so a stage whose inputs
did not change is skipped from DVC's cache: the flow adds orchestration, never a second cache. Params
overrides turn the run into a DVC experiment (``dvc exp show`` compares them).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.run_context import publish_markdown
from flows.stage_tasks import stage_task
from unigrec.orchestration.experiments import (
    experiment_overrides,
    merge_overrides,
    params_file_overrides,
    params_file_section,
)
from unigrec.orchestration.markdown import run_summary_markdown
from unigrec.orchestration.run import PipelineRequest, PipelineResult, dataset_overrides, run_pipeline


@flow(name="training-pipeline")
def training_pipeline(
    root: str = ".",
    source: str | None = None,
    data_path: str | None = None,
    overrides: list[str] | None = None,
    experiment_name: str | None = None,
    stages: list[str] | None = None,
    experiments: list[str] | None = None,
    params_file: str | None = None,
) -> PipelineResult:
    """Run the pipeline (all of dvc.yaml by default); stop at the first failing stage.

    Args:
        root: project root holding dvc.yaml and params.yaml.
        source / data_path: dataset to ingest (``ingest.source`` / ``ingest.path``); None = params.yaml's.
        overrides: more params overrides, ``dvc exp run -S`` style (``train.seed=3``).
        experiment_name: name of the DVC experiment an overrides run records (None: DVC picks one).
        stages: only these stages, in this order.
        experiments: overlays of ``configs/experiments/`` (file stems or YAML paths), applied in order;
            the dataset and ``overrides`` win over them. Every key is checked before any stage runs.
        params_file: a params file (relative to ``root``) whose values this run uses instead of params.yaml's
            (``unigrec run --params``); the overlays, the dataset and ``overrides`` win over it. Its orchestration
            section (lock timeout, retries) applies to this run too.
    """
    cfg = params_file_section(Path(root), params_file, "orchestration")
    request = PipelineRequest(
        stages=stages,
        overrides=merge_overrides(
            params_file_overrides(Path(root), params_file),
            experiment_overrides(Path(root), experiments or []),
            dataset_overrides(source, data_path),
            overrides or [],
        ),
        experiment_name=experiment_name,
    )
    result = run_pipeline(
        Path(root),
        request,
        run_stage=lambda name: stage_task(name, cfg)(name, root),
        lock_timeout_s=cfg.lock_timeout_s,
    )
    publish_markdown("pipeline-run", run_summary_markdown(result, request.overrides), "stages run or cached")
    return result


if __name__ == "__main__":
    training_pipeline()
