"""Read RecBole "atomic files" (``*.inter``, ``*.item``): tab-separated, header cells ``name:type``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from unigrec.data.sources.textio import read_text
from unigrec.errors import SourceError


def read_atomic_file(path: Path, required: tuple[str, ...], expected: str) -> pd.DataFrame:
    """All columns as strings (empty cells stay ""), header types stripped: ``item_id:token`` -> ``item_id``.

    RecBole writes UTF-8 (ml-1m with CRLF line ends, which the parser handles). Quotes are data, not
    quoting: titles may contain them.
    """
    text = read_text(path, "utf-8", expected)
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SourceError(f"{path}: not a RecBole atomic file ({expected}): {exc}") from exc
    frame.columns = [str(c).split(":", 1)[0].strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise SourceError(f"{path}: missing column(s) {missing} (expected {expected}); found {list(frame.columns)}")
    return frame
