"""One readable log format for the CLI, DVC stage commands and Prefect tasks."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from tqdm import tqdm

T = TypeVar("T")


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


def bars_wanted(show: bool = True) -> bool:
    """Whether a progress bar should draw at all: asked for and not switched off by ``TQDM_DISABLE``.

    tqdm reads that variable only when a call leaves ``disable`` unset, and :func:`progress` must set it
    to get the terminal check below, so the variable is honoured here instead, read as tqdm reads it
    (``bool`` of the string: any non-empty value, "0" included, turns bars off). Any friendlier reading
    would leave third-party bars that rely on tqdm's own reading off while ours draw.
    """
    return show and not os.environ.get("TQDM_DISABLE")


def bar_on_stderr(show: bool = True) -> bool:
    """:func:`bars_wanted` plus the terminal check, for libraries whose bar takes a plain on/off
    (sentence-transformers, Lightning) and so cannot get tqdm's ``disable=None``."""
    return bars_wanted(show) and sys.stderr.isatty()


def progress(iterable: Iterable[T] | None = None, *, show: bool = True, **kwargs: Any) -> tqdm[T]:
    """A tqdm bar for long work that stays out of logs.

    Hidden when the caller says so (``show=False``), when ``TQDM_DISABLE`` is set, and when stderr is not
    a terminal (tqdm's ``disable=None``): a stage run under nohup, CI, DVC in a pipe or a Prefect worker
    then logs lines, not thousands of carriage-return updates. Notebooks still draw their widget.
    """
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=None if bars_wanted(show) else True, **kwargs)
