"""Logging and artifacts that work inside a Prefect run and, for tests and scripts, outside one."""

from __future__ import annotations

import logging


def in_prefect_run() -> bool:
    """True inside a flow or task run (where Prefect has somewhere to attach logs and artifacts)."""
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def run_logger(name: str) -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger (its lines show in the UI) inside a run, the module's logger otherwise."""
    if in_prefect_run():
        from prefect import get_run_logger

        return get_run_logger()
    return logging.getLogger(name)


def publish_markdown(key: str, markdown: str, description: str) -> None:
    """Attach a Markdown artifact to the current run; outside a run (``task.fn(...)``) log it instead.

    Artifacts are stored by the Prefect API; a plain function call has no run to hang them on, and
    should not start a server just to store a table nobody can look up.
    """
    if not in_prefect_run():
        logging.getLogger(__name__).info("%s\n%s", description, markdown)
        return
    from prefect.artifacts import create_markdown_artifact

    # Artifact keys allow lower-case letters, digits and dashes only.
    create_markdown_artifact(key=key.lower().replace("_", "-"), markdown=markdown, description=description)
