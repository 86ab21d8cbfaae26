"""Typed, validated view of ``params.yaml``: one frozen dataclass per section.

Every knob of the pipeline lives in ``params.yaml``; this module is the single place that reads it.
A missing, unknown or mistyped key fails at start-up with the key's dotted name, so a typo never
silently falls back to a default deep inside a stage.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from unigrec.errors import UnigrecError

PARAMS_FILE = "params.yaml"


class ConfigError(UnigrecError, ValueError):
    """A value in params.yaml is missing, unknown or of the wrong type."""


# --------------------------------------------------------------------------- ingest
@dataclasses.dataclass(frozen=True)
class QueryConfig:
    """How semi-synthetic search events are made for datasets without a query log."""

    search_fraction: float  # share of each user's positive interactions recast as search events
    include_decade: bool  # add the release decade ("1990s") to genre queries
    seed: int


@dataclasses.dataclass(frozen=True)
class ParquetSourceConfig:
    """User-supplied canonical tables; ``columns`` maps canonical name -> the user's column name."""

    items: str | None
    interactions: str | None
    searches: str | None
    columns: dict[str, str]


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    source: Literal["movielens-100k", "movielens-1m", "amazon2014", "parquet"]
    path: str | None  # local folder with the source files; None = obtain them automatically
    cache_dir: str  # where downloaded wheels and extracted files are kept between runs
    label_threshold: float  # rating >= threshold -> label 1
    max_users: int | None  # keep only the first N users (sorted by id) for quick runs; None = all
    queries: QueryConfig
    parquet: ParquetSourceConfig


# --------------------------------------------------------------------------- validate
@dataclasses.dataclass(frozen=True)
class ValidateConfig:
    contracts_dir: str  # folder with the pandera models (tables.py) and the GX suites (*.json)
    max_examples: int  # example rows shown per failed rule


# --------------------------------------------------------------------------- split
@dataclasses.dataclass(frozen=True)
class BM25Config:
    k1: float
    b: float
    pool: int  # BM25 hits retrieved per query before drawing the hard negatives


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    min_events: int  # a user needs this many events in a stream to give a valid and a test event
    n_negatives: int  # negatives per candidate list (GenSAR's 1+99 protocol: 99)
    popularity_smoothing: float  # added to every item's train count before popularity sampling
    seed: int
    bm25: BM25Config


# --------------------------------------------------------------------------- all
@dataclasses.dataclass(frozen=True)
class Params:
    ingest: IngestConfig
    validate: ValidateConfig
    split: SplitConfig


def _matches(value: Any, hint: Any) -> bool:
    origin = get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in get_args(hint))
    if origin is Literal:
        return value in get_args(hint)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is dict:
        key_t, val_t = get_args(hint)
        return isinstance(value, dict) and all(
            _matches(k, key_t) and _matches(v, val_t) for k, v in value.items()
        )
    if origin is list:
        (item_t,) = get_args(hint)
        return isinstance(value, list) and all(_matches(v, item_t) for v in value)
    if origin is tuple:
        item_t = get_args(hint)[0]
        return isinstance(value, (list, tuple)) and all(_matches(v, item_t) for v in value)
    return isinstance(value, hint)


def build_section(cls: type, raw: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, recursing into nested dataclasses.

    ``where`` is the dotted path used in error messages (e.g. ``ingest.queries``).
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key = f"{where}.{name}"
        if name not in raw:
            if field.default is not dataclasses.MISSING:
                values[name] = field.default
                continue
            if field.default_factory is not dataclasses.MISSING:
                values[name] = field.default_factory()
                continue
            raise ConfigError(f"{key}: missing")
        hint = hints[name]
        value = raw[name]
        if dataclasses.is_dataclass(hint):
            values[name] = build_section(hint, value, key)
        elif not _matches(value, hint):
            raise ConfigError(f"{key}: {value!r} is not a valid {_describe(hint)}")
        else:
            if hint is float and isinstance(value, int):
                value = float(value)
            if get_origin(hint) is tuple:
                value = tuple(value)
            values[name] = value
    return cls(**values)


def _describe(hint: Any) -> str:
    if get_origin(hint) is Literal:
        return "choice of " + ", ".join(repr(a) for a in get_args(hint))
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate the whole params file."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return params_from_dict(raw)


def params_from_dict(raw: dict[str, Any]) -> Params:
    """Validate a parsed params mapping; sections not declared in :class:`Params` are rejected."""
    return build_section(Params, raw, "params")


def load_section(name: str, path: str | Path = PARAMS_FILE) -> Any:
    """Read and validate one section only, so a stage depends on nothing but its own knobs."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    hints = typing.get_type_hints(Params)
    if name not in hints:
        raise ConfigError(f"params: no section named {name!r}")
    if name not in raw:
        raise ConfigError(f"params.{name}: missing")
    return build_section(hints[name], raw[name], f"params.{name}")
