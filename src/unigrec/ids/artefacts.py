"""Level structure of the identifiers stage's outputs (the contract later stages read); the file names
live in :class:`unigrec.paths.IdsArtefacts`.

Kept free of torch/pandas imports: the model code reads level names and sizes from here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

SOURCE_PREFIX = {"semantic": "sem", "collaborative": "col"}  # level-name prefix per input source
MODES = ("dual", "semantic_only", "collaborative_only")
DEDUP_SUFFIX = "dedup"


@dataclasses.dataclass(frozen=True)
class Level:
    name: str  # the same name in both ID kinds means the same vocabulary slice in the model
    size: int  # number of possible code values


@dataclasses.dataclass(frozen=True)
class CodeLayout:
    """The ordered levels of the semantic ID and of the collaborative ID (last level = dedup token)."""

    mode: str
    semantic_levels: tuple[Level, ...]
    collaborative_levels: tuple[Level, ...]

    def levels(self, kind: str) -> tuple[Level, ...]:
        return self.semantic_levels if kind == "semantic" else self.collaborative_levels

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "semantic_levels": [dataclasses.asdict(lv) for lv in self.semantic_levels],
            "collaborative_levels": [dataclasses.asdict(lv) for lv in self.collaborative_levels],
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> CodeLayout:
        return cls(
            mode=payload["mode"],
            semantic_levels=tuple(Level(**lv) for lv in payload["semantic_levels"]),
            collaborative_levels=tuple(Level(**lv) for lv in payload["collaborative_levels"]),
        )

    @classmethod
    def read(cls, path: Path) -> CodeLayout:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


def id_sources(mode: str) -> tuple[str, ...]:
    """Input sources the quantiser encodes in ``mode`` (concatenation order of the shared latent)."""
    if mode == "dual":
        return ("semantic", "collaborative")
    if mode == "semantic_only":
        return ("semantic",)
    if mode == "collaborative_only":
        return ("collaborative",)
    raise ValueError(f"unknown identifiers mode {mode!r}; expected one of {MODES}")


def quantised_level_names(mode: str, shared_levels: int, specific_levels: int) -> dict[str, list[str]]:
    """Level names (without the dedup level) of each ID kind.

    Single-source modes fold the shared levels into the source's own stack, so every mode gives IDs of
    the same length and the ablation compares like with like.
    """
    sources = id_sources(mode)
    if len(sources) == 1:
        prefix = SOURCE_PREFIX[sources[0]]
        names = [f"{prefix}_{i}" for i in range(shared_levels + specific_levels)]
        return {"semantic": names, "collaborative": names}
    shared = [f"shared_{i}" for i in range(shared_levels)]
    return {
        kind: shared + [f"{SOURCE_PREFIX[kind]}_{i}" for i in range(specific_levels)] for kind in sources
    }


def dedup_level_name(mode: str, kind: str) -> str:
    sources = id_sources(mode)
    source = sources[0] if len(sources) == 1 else kind
    return f"{SOURCE_PREFIX[source]}_{DEDUP_SUFFIX}"


def build_code_layout(mode: str, level_sizes: dict[str, int], dedup_size: int, shared_levels: int,
                      specific_levels: int) -> CodeLayout:
    """Assemble the level list of both kinds from the quantiser's codebook sizes and the dedup width."""
    names = quantised_level_names(mode, shared_levels, specific_levels)

    def kind_levels(kind: str) -> tuple[Level, ...]:
        quantised = [Level(n, level_sizes[n]) for n in names[kind]]
        return tuple(quantised + [Level(dedup_level_name(mode, kind), dedup_size)])

    return CodeLayout(mode, kind_levels("semantic"), kind_levels("collaborative"))
