"""Read source files as text with errors that name the file, what was expected and where it broke.

A bare ``UnicodeDecodeError`` or ``FileNotFoundError`` deep inside pandas tells a user nothing about
which of several downloaded files is wrong; every read here raises ``SourceError`` instead.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from unigrec.errors import SourceError

# Bytes shown around an undecodable byte, enough to find the line in an editor.
_CONTEXT_BYTES = 20


def require_folder(path: str | None, source: str) -> Path:
    """The configured source folder, or a SourceError saying how to set it."""
    if path is None:
        raise SourceError(f"source {source!r} needs ingest.path: a folder holding its files")
    folder = Path(path)
    if not folder.is_dir():
        raise SourceError(f"ingest.path {folder} is not a folder (source {source!r})")
    return folder


def read_bytes(path: Path, expected: str) -> bytes:
    """Whole file content; ``.gz`` files are decompressed. ``expected`` describes the file for errors."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{path}: file not found (expected {expected})") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise SourceError(f"{path}: cannot read {expected}: {exc}") from exc


def decode_text(data: bytes, path: Path, encoding: str) -> str:
    """Decode ``data`` read from ``path``; a bad byte becomes a SourceError with its offset."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        where = "decompressed byte offset" if path.suffix == ".gz" else "byte offset"
        context = data[max(0, exc.start - _CONTEXT_BYTES) : exc.end + _CONTEXT_BYTES]
        raise SourceError(
            f"{path}: not valid {encoding} at {where} {exc.start} "
            f"(byte 0x{data[exc.start]:02x}, near {context!r})"
        ) from None


def read_text(path: Path, encoding: str, expected: str) -> str:
    """Read and decode a text file (optionally gzipped) with SourceErrors on every failure."""
    return decode_text(read_bytes(path, expected), path, encoding)


def first_existing(folder: Path, names: tuple[str, ...], expected: str) -> Path:
    """The first of ``names`` present in ``folder``; a SourceError listing them all if none is."""
    for name in names:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise SourceError(f"{folder}: none of {', '.join(names)} found (expected {expected})")
