"""Markdown tables for Prefect artifacts: a stage's metrics, and what a pipeline run did."""

from __future__ import annotations

from unigrec.orchestration.run import PipelineResult
from unigrec.pipeline import StageOutcome


def _status(outcome: StageOutcome) -> str:
    return "ran" if outcome.ran else "cached"


def metrics_markdown(outcome: StageOutcome) -> str:
    """A small Markdown table of a stage's scalar metrics (nested keys flattened with '.')."""
    lines = [f"### {outcome.stage}: {_status(outcome)}", "", "| metric | value |", "|---|---|"]

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, (int, float, str, bool)):
            lines.append(f"| {prefix} | {value} |")

    walk("", outcome.metrics)
    return "\n".join(lines) + "\n"


def run_summary_markdown(result: PipelineResult, overrides: list[str]) -> str:
    """Which stages ran and which DVC found cached, plus the experiment an overrides run recorded."""
    lines = ["### pipeline run", ""]
    if overrides:
        lines += [f"overrides: `{' '.join(overrides)}`; DVC experiment `{result.experiment}`", ""]
    lines += ["| stage | status |", "|---|---|"]
    lines += [f"| {o.stage} | {_status(o)} |" for o in result.outcomes]
    return "\n".join(lines) + "\n"
