"""Read canonical parquet tables, turning every reading problem into a contract failure.

An unreadable file, a missing file or text that is not UTF-8 is reported in the same shape as a
broken rule, so one report covers everything wrong with a data drop and validation never crashes
on the very data it exists to diagnose.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from unigrec.contracts.report import Failure

log = logging.getLogger(__name__)

SOURCE = "reading"


def read_table(path: Path, table: str, max_examples: int) -> tuple[pd.DataFrame | None, list[Failure]]:
    """Read one parquet table; return the frame (None if it cannot be read) and the reading failures.

    Text columns holding invalid UTF-8 are reported as ``valid_utf8`` and kept with the bad bytes
    replaced (U+FFFD), so every other rule still runs on the table.
    """
    path = Path(path)
    problem = path_problem(path)
    if problem is not None:
        rule, detail = problem
        return None, [_whole_table(table, rule, detail)]
    try:
        arrow = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        return None, [_whole_table(table, "readable_parquet", f"{path}: {type(exc).__name__}: {exc}")]

    failures: list[Failure] = []
    for position, name in enumerate(arrow.column_names):
        column = arrow.column(position)
        if not _is_text_like(column.type):
            continue
        text, failure = _as_utf8_text(table, name, column, max_examples)
        arrow = arrow.set_column(position, name, text)
        if failure is not None:
            failures.append(failure)
    try:
        frame = arrow.to_pandas()
    except (pa.ArrowException, ValueError, TypeError) as exc:
        failures.append(
            _whole_table(table, "readable_parquet", f"{path}: to pandas: {type(exc).__name__}: {exc}")
        )
        return None, failures
    return frame, failures


def path_problem(path: Path) -> tuple[str, str] | None:
    """Why ``path`` cannot be read as a table file, as (rule, detail); None for a regular file.

    "Does not exist" only when nothing is there: a folder, a symlink loop, a dangling link or a device
    where the file belongs is named as what it is, since the fix differs (a wrong path, a bad copy)."""
    try:
        mode = os.stat(path).st_mode  # follows links; fails on a loop anywhere in the path
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "table_is_a_file", f"{path} is a symlink loop (or has one in its path)"
        if path.is_symlink():
            return "table_present", f"{path} is a symlink to {os.readlink(path)}, which does not exist"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "table_present", f"{path} does not exist"
        return "table_present", f"{path} cannot be reached: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "table_is_a_file", f"{path} is a folder, not a parquet file"
    kinds = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"))
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return "table_is_a_file", f"{path} is {kind}, not a parquet file"


def _is_text_like(dtype: pa.DataType) -> bool:
    return (
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_binary(dtype)
        or pa.types.is_large_binary(dtype)
    )


def _as_utf8_text(
    table: str, name: str, column: pa.ChunkedArray, max_examples: int
) -> tuple[pa.ChunkedArray, Failure | None]:
    """The column as UTF-8 strings, plus a ``valid_utf8`` failure if any value does not decode."""
    try:
        # Arrow checks UTF-8 in C++: the fast path for the (normal) case of clean text. Binary
        # columns that decode cleanly are accepted as text, as some writers store strings that way.
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            return column.cast(pa.string()), None
        column.validate(full=True)
        return column, None
    except pa.ArrowInvalid:
        pass
    raw = column.cast(pa.large_binary()).to_pylist()
    decoded: list[str | None] = []
    bad: list[tuple[int, bytes]] = []
    for row, value in enumerate(raw):
        if value is None:
            decoded.append(None)
            continue
        try:
            decoded.append(value.decode("utf-8"))
        except UnicodeDecodeError:
            bad.append((row, value))
            decoded.append(value.decode("utf-8", errors="replace"))
    log.warning("%s.%s: %d value(s) are not valid UTF-8", table, name, len(bad))
    failure = Failure(
        table=table,
        column=name,
        rule="valid_utf8",
        failing_rows=len(bad),
        examples=[{"row": row, name: repr(value)} for row, value in bad[:max_examples]],
        detail="bytes that do not decode as UTF-8 (shown raw; replaced by U+FFFD for the other checks)",
        source=SOURCE,
    )
    return pa.chunked_array([pa.array(decoded, type=pa.string())]), failure


def _whole_table(table: str, rule: str, detail: str) -> Failure:
    return Failure(
        table=table, column=None, rule=rule, failing_rows=None, examples=[], detail=detail, source=SOURCE
    )
