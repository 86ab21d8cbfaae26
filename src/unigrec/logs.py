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
