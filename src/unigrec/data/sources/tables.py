"""What every source adapter returns: the raw canonical frames plus where they came from."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

# Reading in blocks keeps hashing a 45 MB ratings file from doubling peak memory.
_HASH_BLOCK_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """One file an adapter read, recorded in the data card so a run can be traced to exact bytes."""

    name: str  # path relative to the source folder, or the member path inside a wheel
    sha256: str
    size_bytes: int


@dataclasses.dataclass(frozen=True)
class SourceTables:
    """Frames in canonical column names (not yet cast: ``schema.conform`` does that) plus provenance.

    ``items`` may carry an extra nullable ``year`` column: the semi-synthetic query rule adds the
    release decade, and the canonical items table has no place for it.
    ``searches`` is None when the source has no query log; the ingest stage then builds them.
    """

    items: pd.DataFrame
    interactions: pd.DataFrame
    searches: pd.DataFrame | None
    source: str  # the ``ingest.source`` value that produced these tables
    origin: str  # where the files came from (local folder, or wheel + sha256)
    licence: str  # terms of use and the acknowledgement the data asks for
    files: tuple[SourceFile, ...]
    label_rule: str  # how ``label`` was derived, for the data card
    query_rule: str | None = None  # how the source's own searches were made; None = no query log
    notes: tuple[str, ...] = ()  # source-specific facts worth a line in the data card


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_HASH_BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def record_file(path: Path, name: str) -> SourceFile:
    """Provenance record of ``path``; ``name`` is what the data card shows (machine-independent)."""
    return SourceFile(name=name, sha256=sha256_of(path), size_bytes=path.stat().st_size)


def label_rule_text(threshold: float) -> str:
    return f"label = 1 if rating >= {threshold:g} else 0"


def labels_from_ratings(ratings: pd.Series, threshold: float) -> pd.Series:
    """1 = liked: explicit ratings at or above the threshold; below it the user saw but disliked."""
    return (ratings.to_numpy(dtype="float64") >= threshold).astype("int8")


def user_sort_key(user_ids: pd.Series) -> pd.Series:
    """Sort key that orders numeric ids as numbers ("2" before "10"), other ids as strings.

    "The first N users" should mean users 1..N on MovieLens, not 1, 10, 100, ...
    """
    text = user_ids.astype("string")
    if len(text) and bool(text.str.fullmatch(r"\d+").all()):
        return text.astype("int64")
    return text


def keep_first_users(tables: SourceTables, max_users: int | None) -> SourceTables:
    """Keep the first ``max_users`` users in sorted id order, in both event streams; items stay whole.

    Row order inside the kept frames is unchanged: it is the tie-break for equal timestamps.
    """
    if max_users is None:
        return tables
    if max_users < 1:
        raise ValueError(f"max_users must be >= 1 or None, got {max_users}")
    frames = [tables.interactions] + ([tables.searches] if tables.searches is not None else [])
    users = pd.Series(pd.unique(np.concatenate([f["user_id"].astype(str).to_numpy() for f in frames])))
    order = np.argsort(user_sort_key(users).to_numpy(), kind="stable")
    kept = set(users.iloc[order[:max_users]])

    def _filter(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.loc[frame["user_id"].astype(str).isin(kept)].reset_index(drop=True)

    return dataclasses.replace(
        tables,
        interactions=_filter(tables.interactions),
        searches=_filter(tables.searches) if tables.searches is not None else None,
    )
