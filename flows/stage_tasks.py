"""One Prefect task per DVC stage: a thin wrapper of ``unigrec.pipeline.reproduce_stage``.

DVC decides whether the stage runs (its deps, params or code changed) or is cached; the task adds
retries where a retry can help, a log line saying which it was, and a Markdown artifact of the metrics.
"""

from __future__ import annotations

from pathlib import Path

from prefect import Task, task

from flows.run_context import publish_markdown, run_logger
from unigrec.config import OrchestrationConfig
from unigrec.orchestration.markdown import metrics_markdown
from unigrec.pipeline import StageOutcome, reproduce_stage


@task(name="dvc-stage", task_run_name="dvc-stage-{stage}")
def run_stage(stage: str, root: str = ".") -> StageOutcome:
    """Run one DVC stage (or find it cached) and publish its metrics as a Markdown artifact."""
    outcome = reproduce_stage(stage, Path(root))
    run_logger(__name__).info(
        "stage %s %s", stage, "ran" if outcome.ran else "was cached: DVC found it up to date, skipped"
    )
    if outcome.metrics:
        publish_markdown(f"{stage}-metrics", metrics_markdown(outcome), f"metrics of DVC stage {stage}")
    return outcome


def stage_task(stage: str, cfg: OrchestrationConfig) -> Task:
    """The task for ``stage``, named after it, with the retries params.yaml grants that stage.

    Retries come from ``orchestration.stage_retries`` (default ``default_retries``): ingest downloads and
    may meet a network blip; validate must not be retried, a contract violation fails at once.
    """
    return run_stage.with_options(
        name=f"dvc-stage-{stage}",
        retries=cfg.stage_retries.get(stage, cfg.default_retries),
        retry_delay_seconds=cfg.retry_delay_s,
    )
