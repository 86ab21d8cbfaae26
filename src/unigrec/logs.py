"""One readable log format for the CLI, DVC stage commands and Prefect tasks."""

from __future__ import annotations

import logging
import os


def setup_logging(level: str | None = None) -> None:
    """Configure the root logger once; ``UNIGREC_LOG_LEVEL`` overrides the default INFO."""
    level = (level or os.environ.get("UNIGREC_LOG_LEVEL") or "INFO").upper()
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # Libraries that are chatty at INFO; their warnings still show.
    for noisy in ("lightning.pytorch", "lightning.fabric", "httpx", "sentence_transformers", "alembic", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def bar_disabled(show_progress: bool) -> bool | None:
    """tqdm's ``disable`` for a bar the caller wants shown or not.

    ``None`` rather than ``False`` when shown: tqdm then hides the bar when stderr is not a terminal, so a
    stage run under nohup, CI or a Prefect worker logs lines, not thousands of carriage-return updates.
    """
    return None if show_progress else True
