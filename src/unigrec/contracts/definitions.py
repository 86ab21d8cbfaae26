"""Load the contract definitions that live outside the package, in ``validate.contracts_dir``.

The folder holds ``tables.py`` (pandera models, exported as ``MODELS``), one Great Expectations suite
per table (``<table>.json``) and ``relations.json`` (cross-table rules). Loading them by path lets a
user edit a contract without touching unigrec, and lets DVC list the folder as a dependency.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.machinery
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from unigrec.errors import UnigrecError

MODELS_FILE = "tables.py"
RELATIONS_FILE = "relations.json"


class ContractDefinitionError(UnigrecError):
    """The contracts folder itself is broken (missing, unreadable or malformed), not the data."""


@dataclasses.dataclass(frozen=True)
class ForeignKey:
    """``child_table.child_column`` values must all appear in ``parent_table.parent_column``."""

    child_table: str
    child_column: str
    parent_table: str
    parent_column: str

    def __str__(self) -> str:
        return f"{self.child_table}.{self.child_column} -> {self.parent_table}.{self.parent_column}"


@dataclasses.dataclass(frozen=True)
class Contracts:
    models: dict[str, Any]  # table -> pandera DataFrameModel class
    suites: dict[str, dict[str, Any]]  # table -> GX suite as parsed JSON
    foreign_keys: list[ForeignKey]

    @property
    def tables(self) -> list[str]:
        return list(self.models)


def load_contracts(folder: Path) -> Contracts:
    """Read every contract file in ``folder``; a broken definition fails here, before any data is read."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ContractDefinitionError(
            f"contracts folder {folder} not found (params.yaml validate.contracts_dir)"
        )
    models = load_models(folder / MODELS_FILE)
    suites = {
        table: _read_json(folder / f"{table}.json")
        for table in models
        if (folder / f"{table}.json").is_file()
    }
    relations_path = folder / RELATIONS_FILE
    foreign_keys = (
        parse_foreign_keys(_read_json(relations_path), relations_path) if relations_path.is_file() else []
    )
    return Contracts(models=models, suites=suites, foreign_keys=foreign_keys)


class _NoBytecodeLoader(importlib.machinery.SourceFileLoader):
    """Imports a contract file without writing ``__pycache__`` next to it: DVC hashes the contracts
    folder as a dependency of the validate stage, and a new .pyc would make it look changed."""

    def set_data(self, path: str, data: bytes, *, _mode: int = 0o666) -> None:
        return None


def load_models(path: Path) -> dict[str, Any]:
    """Import ``tables.py`` by path and return its ``MODELS`` mapping (table name -> DataFrameModel)."""
    if not path.is_file():
        raise ContractDefinitionError(f"{path} not found: it must define MODELS = {{table: DataFrameModel}}")
    # A name unique to the file's location, so two contract folders never share a module object,
    # and a re-load picks up edits made since the last one.
    module_name = "unigrec_contracts_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(
        module_name, path, loader=_NoBytecodeLoader(module_name, str(path))
    )
    if spec is None or spec.loader is None:
        raise ContractDefinitionError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # pandera and typing resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise ContractDefinitionError(f"{path}: failed to import: {type(exc).__name__}: {exc}") from exc
    models = getattr(module, "MODELS", None)
    if not isinstance(models, dict) or not models:
        raise ContractDefinitionError(f"{path}: must define a non-empty MODELS = {{table: DataFrameModel}}")
    return dict(models)


def parse_foreign_keys(raw: Any, path: Path) -> list[ForeignKey]:
    """``{"referential_integrity": [{"child": "t.col", "parent": "t.col"}, ...]}`` -> foreign keys."""
    if not isinstance(raw, dict) or not isinstance(raw.get("referential_integrity", []), list):
        raise ContractDefinitionError(
            f"{path}: expected {{'referential_integrity': [{{child, parent}}, ...]}}"
        )
    keys = []
    for entry in raw.get("referential_integrity", []):
        try:
            child_table, child_column = str(entry["child"]).split(".", 1)
            parent_table, parent_column = str(entry["parent"]).split(".", 1)
        except (KeyError, TypeError, ValueError) as exc:
            raise ContractDefinitionError(
                f"{path}: each rule needs child and parent as 'table.column', got {entry!r}"
            ) from exc
        keys.append(ForeignKey(child_table, child_column, parent_table, parent_column))
    return keys


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ContractDefinitionError(f"{path}: not valid JSON: {exc}") from exc
