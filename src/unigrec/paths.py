"""Where every stage reads and writes, relative to the project root.

``dvc.yaml`` declares the same paths (a test keeps the two in step); stages talk to each other only
through these files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Layout:
    root: Path = Path(".")

    def _p(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    # ingest
    @property
    def canonical_dir(self) -> Path:
        return self._p("data", "canonical")

    @property
    def items(self) -> Path:
        return self.canonical_dir / "items.parquet"

    @property
    def interactions(self) -> Path:
        return self.canonical_dir / "interactions.parquet"

    @property
    def searches(self) -> Path:
        return self.canonical_dir / "searches.parquet"

    @property
    def data_card_json(self) -> Path:
        return self.canonical_dir / "data_card.json"

    @property
    def data_card_md(self) -> Path:
        return self.canonical_dir / "data_card.md"

    # validate
    @property
    def validation_json(self) -> Path:
        return self._p("reports", "validation.json")

    @property
    def validation_md(self) -> Path:
        return self._p("reports", "validation.md")

    # split
    @property
    def split_dir(self) -> Path:
        return self._p("data", "split")

    @property
    def events(self) -> Path:
        return self.split_dir / "events.parquet"

    @property
    def candidates(self) -> Path:
        return self.split_dir / "candidates.parquet"

    @property
    def split_metrics(self) -> Path:
        return self._p("metrics", "split.json")

    # identifiers
    @property
    def ids_dir(self) -> Path:
        return self._p("data", "ids")

    @property
    def identifiers_metrics(self) -> Path:
        return self._p("metrics", "identifiers.json")
