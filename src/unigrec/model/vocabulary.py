"""Token vocabulary: special tokens plus one slice of code tokens per identifier level.

A level name that appears in both the semantic and the collaborative level lists (the shared prefix of
GenSAR's dual-purpose IDs) is ONE slice, so the two IDs of an item really share their prefix tokens.
Every position that carries a training target also carries a *slot*: the slice its prediction is
restricted to (codes of one level of one ID kind, or the action tokens). Restricting each softmax to its
slot is cheap and keeps probability mass off tokens that can never be right there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

PAD = "<pad>"
BOS = "<bos>"  # sequence start; the per-event behaviour token carries the task (see tokenizer)
REC_ITEM = "<rec_item>"  # behaviour: recommendation interaction, the item follows as its collaborative ID
SRC_ITEM = "<src_item>"  # behaviour: item engaged after a search, written as its semantic ID
SRC_QUERY = "<src_query>"  # the query of a search event follows as soft tokens
QUERY = "<query>"  # placeholder id at soft-token positions (its embedding comes from the query vector)
POS = "<pos>"
NEG = "<neg>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, REC_ITEM, SRC_ITEM, SRC_QUERY, QUERY, POS, NEG)

# ID kinds: recommendation events use the collaborative ID, search events the semantic ID.
SEMANTIC = "semantic"
COLLABORATIVE = "collaborative"
ID_KINDS: tuple[str, ...] = (SEMANTIC, COLLABORATIVE)


@dataclasses.dataclass(frozen=True)
class LevelSlice:
    name: str
    offset: int  # token id of code 0 of this level
    size: int


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Token ids, level slices and the legal-slot table of one model."""

    levels: tuple[LevelSlice, ...]
    kind_levels: Mapping[str, tuple[str, ...]]  # id kind -> level names, in code order

    @classmethod
    def from_codebooks(cls, codebooks: Mapping[str, Any]) -> Vocabulary:
        """Build from the identifiers stage's ``codebooks.json`` mapping."""
        offset = len(SPECIAL_TOKENS)
        slices: dict[str, LevelSlice] = {}
        kind_levels: dict[str, tuple[str, ...]] = {}
        for kind in ID_KINDS:
            names = []
            for level in codebooks[f"{kind}_levels"]:
                name, size = str(level["name"]), int(level["size"])
                if name in slices:
                    if slices[name].size != size:
                        raise ValueError(f"level {name!r} has size {slices[name].size} and {size}")
                else:
                    slices[name] = LevelSlice(name, offset, size)
                    offset += size
                names.append(name)
            kind_levels[kind] = tuple(names)
        return cls(levels=tuple(slices.values()), kind_levels=kind_levels)

    def to_codebooks(self) -> dict[str, Any]:
        """Inverse of :meth:`from_codebooks` (what the model card stores)."""
        by_name = {s.name: s for s in self.levels}
        return {
            f"{kind}_levels": [{"name": n, "size": by_name[n].size} for n in self.kind_levels[kind]]
            for kind in ID_KINDS
        }

    # ------------------------------------------------------------------ token ids
    @property
    def size(self) -> int:
        return len(SPECIAL_TOKENS) + sum(s.size for s in self.levels)

    def token(self, name: str) -> int:
        return SPECIAL_TOKENS.index(name)

    def level(self, kind: str, index: int) -> LevelSlice:
        name = self.kind_levels[kind][index]
        return next(s for s in self.levels if s.name == name)

    def n_levels(self, kind: str) -> int:
        return len(self.kind_levels[kind])

    def level_offsets(self, kind: str) -> np.ndarray:
        return np.array([self.level(kind, i).offset for i in range(self.n_levels(kind))], dtype=np.int64)

    def code_tokens(self, kind: str, codes: np.ndarray) -> np.ndarray:
        """Token ids of ``codes`` (..., n_levels) written as an ID of ``kind``."""
        return np.asarray(codes, dtype=np.int64) + self.level_offsets(kind)

    # ------------------------------------------------------------------ slots
    def code_slot(self, kind: str, index: int) -> int:
        """Slot id of level ``index`` of ``kind``; slots of a shared level are shared too."""
        name = self.kind_levels[kind][index]
        return [s.name for s in self.levels].index(name)

    @property
    def action_slot(self) -> int:
        return len(self.levels)

    @property
    def n_slots(self) -> int:
        return len(self.levels) + 1

    def legal_mask(self) -> torch.Tensor:
        """(n_slots, vocab) bool: which tokens each slot may predict."""
        mask = torch.zeros(self.n_slots, self.size, dtype=torch.bool)
        for slot, level in enumerate(self.levels):
            mask[slot, level.offset : level.offset + level.size] = True
        mask[self.action_slot, self.token(POS)] = True
        mask[self.action_slot, self.token(NEG)] = True
        return mask


def atomic_codebooks(n_items: int) -> dict[str, Any]:
    """Codebooks of the atomic form: one level, one token per item, shared by both ID kinds."""
    level = [{"name": "item", "size": int(n_items)}]
    return {"mode": "atomic", "semantic_levels": level, "collaborative_levels": list(level)}


