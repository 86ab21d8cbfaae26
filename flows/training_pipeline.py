"""Prefect flow: run every DVC stage in order as a task, with retries, logs and metrics artifacts.

Each task runs its stage through DVC (``unigrec.pipeline.reproduce_stage``), so a stage whose inputs
did not change is skipped from DVC's cache — the flow adds orchestration, never a second cache.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from unigrec.pipeline import StageOutcome, pipeline_stages, reproduce_stage


def metrics_markdown(outcome: StageOutcome) -> str:
    """A small Markdown table of a stage's scalar metrics (nested keys flattened with '.')."""
    lines = [f"### {outcome.stage}: {'ran' if outcome.ran else 'cached'}", "", "| metric | value |", "|---|---|"]

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, (int, float, str, bool)):
            lines.append(f"| {prefix} | {value} |")

    walk("", outcome.metrics)
    return "\n".join(lines) + "\n"


@task(task_run_name="dvc-stage-{stage}", retries=1, retry_delay_seconds=5)
def run_stage(stage: str, root: str = ".") -> StageOutcome:
    """Run one DVC stage; publish its metrics as a Markdown artifact."""
    logger = get_run_logger()
    outcome = reproduce_stage(stage, Path(root))
    logger.info("stage %s %s", stage, "ran" if outcome.ran else "was cached (skipped)")
    if outcome.metrics:
        create_markdown_artifact(
            key=f"{stage}-metrics".replace("_", "-"),
            markdown=metrics_markdown(outcome),
            description=f"metrics of DVC stage {stage}",
        )
    return outcome


@flow(name="training-pipeline", log_prints=True)
def training_pipeline(root: str = ".", stages: list[str] | None = None) -> list[StageOutcome]:
    """Run the pipeline stages in order (all of dvc.yaml by default); stop at the first failure."""
    names = stages or pipeline_stages(Path(root))
    return [run_stage(name, root) for name in names]


if __name__ == "__main__":
    training_pipeline()
