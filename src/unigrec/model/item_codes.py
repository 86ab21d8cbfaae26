"""Items and their code sequences per ID kind, read from the identifiers stage's outputs.

Items are addressed by a dense index (0..N-1) inside the model; ``item_ids`` maps back to the
catalogue's string ids.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unigrec.errors import ContractViolation
from unigrec.model.vocabulary import COLLABORATIVE, ID_KINDS, SEMANTIC, atomic_codebooks

_ID_COLUMNS = {SEMANTIC: "semantic_id", COLLABORATIVE: "collaborative_id"}


@dataclasses.dataclass(frozen=True)
class ItemCodes:
    """``codes[kind]`` is an (N, n_levels) int64 array; row i holds the ID of ``item_ids[i]``."""

    item_ids: tuple[str, ...]
    codes: Mapping[str, np.ndarray]

    def __post_init__(self) -> None:
        for kind in ID_KINDS:
            if self.codes[kind].shape[0] != len(self.item_ids):
                raise ValueError(f"{kind} codes have {self.codes[kind].shape[0]} rows for {len(self.item_ids)} items")

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def index(self) -> dict[str, int]:
        return {item: i for i, item in enumerate(self.item_ids)}

    def indices_of(self, item_ids: Sequence[str]) -> np.ndarray:
        """Dense indices of ``item_ids``; raises naming the first few ids without an identifier."""
        lookup = self.index()
        missing = [i for i in item_ids if i not in lookup]
        if missing:
            raise ContractViolation(
                f"{len(set(missing))} item id(s) have no identifier in the ids table, e.g. {sorted(set(missing))[:5]}"
            )
        return np.fromiter((lookup[i] for i in item_ids), dtype=np.int64, count=len(item_ids))


def item_codes_from_frame(frame: Any) -> ItemCodes:
    """Build from an ids frame with columns item_id, semantic_id, collaborative_id (lists of ints)."""
    codes = {}
    for kind, column in _ID_COLUMNS.items():
        rows = [np.asarray(v, dtype=np.int64) for v in frame[column]]
        lengths = {len(r) for r in rows}
        if len(lengths) != 1:
            raise ContractViolation(f"ids.parquet: {column} lengths differ across items: {sorted(lengths)}")
        codes[kind] = np.stack(rows) if rows else np.zeros((0, 0), dtype=np.int64)
    return ItemCodes(item_ids=tuple(str(i) for i in frame["item_id"]), codes=codes)


def load_item_codes(table: Path, codebooks_file: Path) -> tuple[ItemCodes, dict[str, Any]]:
    """Read the identifiers stage's ID table (parquet) and codebooks (JSON)."""
    import pandas as pd

    for path in (Path(table), Path(codebooks_file)):
        if not path.exists():
            raise ContractViolation(f"{path} is missing: run the identifiers stage first")
    codebooks = json.loads(Path(codebooks_file).read_text(encoding="utf-8"))
    items = item_codes_from_frame(pd.read_parquet(table))
    for kind in ID_KINDS:
        n_levels = len(codebooks[f"{kind}_levels"])
        if items.codes[kind].shape[1] != n_levels:
            raise ContractViolation(
                f"ids.parquet: {kind} IDs have {items.codes[kind].shape[1]} codes, codebooks.json lists {n_levels} levels"
            )
    return items, codebooks


def atomic_item_codes(item_ids: Sequence[str]) -> tuple[ItemCodes, dict[str, Any]]:
    """UniGRF's own form: every item is one token, the same one for both ID kinds."""
    column = np.arange(len(item_ids), dtype=np.int64)[:, None]
    codes = {kind: column for kind in ID_KINDS}
    return ItemCodes(item_ids=tuple(item_ids), codes=codes), atomic_codebooks(len(item_ids))


@dataclasses.dataclass(frozen=True)
class CodeComposition:
    """Which code embeddings make up each item's vector in the ``hybrid_dense`` form.

    ``index`` (N, L): row i lists item i's codes as rows of ONE code table of ``table_size`` rows, one
    column per quantised level of its dual IDs; ``levels`` names the columns.
    """

    index: np.ndarray
    table_size: int
    levels: tuple[str, ...]


def code_composition(items: ItemCodes, codebooks: Mapping[str, Any], item_ids: Sequence[str]) -> CodeComposition:
    """The code levels of GenSAR's dual IDs that compose each of ``item_ids``' vectors, in that order.

    Every quantised level of both ID kinds counts once: a shared level (same name in both kinds, one
    quantiser's codes) is one column, each kind's specific levels one column each. The dedup levels are
    left out: they number items that share every quantised code, an arbitrary order that carries no
    meaning to share between items (the per-item embedding tells such warm items apart).
    """
    from unigrec.ids.artefacts import DEDUP_SUFFIX

    rows = items.indices_of(list(item_ids))
    columns: dict[str, np.ndarray] = {}  # level name -> its codes, in item_ids' order
    offsets: dict[str, int] = {}  # level name -> row of its code 0 in the one table
    table_size = 0
    for kind in ID_KINDS:
        for level, entry in enumerate(codebooks[f"{kind}_levels"]):
            name, size = str(entry["name"]), int(entry["size"])
            if name.endswith(f"_{DEDUP_SUFFIX}"):
                continue
            codes = items.codes[kind][rows, level]
            if name in columns:
                if not np.array_equal(columns[name], codes):
                    raise ContractViolation(f"ids.parquet: level {name!r} is shared by both ID kinds but its "
                                            "codes differ between them")
                continue
            columns[name], offsets[name] = codes, table_size
            table_size += size
    if not columns:
        raise ContractViolation("codebooks.json: no quantised level to compose items from")
    index = np.stack([codes + offsets[name] for name, codes in columns.items()], axis=1).astype(np.int64)
    return CodeComposition(index, table_size, tuple(columns))
