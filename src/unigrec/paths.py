"""Where every stage reads and writes, relative to the project root.

``dvc.yaml`` declares the same paths (a test keeps the two in step); stages talk to each other only
through these files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from unigrec.errors import ContractViolation


@dataclasses.dataclass(frozen=True)
class IdsArtefacts:
    """Where each output lives inside an identifiers folder: the project's ``data/ids``, or any folder
    the cold-start code writes IDs into (so the names live here, once)."""

    dir: Path

    @property
    def table(self) -> Path:
        return Path(self.dir) / "ids.parquet"

    @property
    def codebooks(self) -> Path:
        return Path(self.dir) / "codebooks.json"

    @property
    def quantizer(self) -> Path:
        return Path(self.dir) / "quantizer.pt"

    @property
    def embeddings(self) -> Path:
        return Path(self.dir) / "item_embeddings.npz"


def require_inputs(inputs: Iterable[tuple[Path, str]]) -> None:
    """Fail before any work when an input is absent, naming the stage that writes it, so a user who runs one
    stage out of order learns what to run rather than reading a pandas traceback."""
    for path, stage in inputs:
        if not path.exists():
            raise ContractViolation(f"{path} is missing: run the {stage} stage first")


@dataclasses.dataclass(frozen=True)
class Layout:
    root: Path = Path(".")

    def _p(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def resolve(self, path: str | Path) -> Path:
        """A path given in params.yaml: relative ones are relative to the project root, wherever the
        command runs from (the one place params paths are resolved)."""
        path = Path(path)
        return path if path.is_absolute() else self.root / path

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
    def split_card(self) -> Path:
        return self.split_dir / "split_card.md"

    @property
    def split_metrics(self) -> Path:
        return self._p("metrics", "split.json")

    # identifiers
    @property
    def ids_dir(self) -> Path:
        return self._p("data", "ids")

    @property
    def ids_table(self) -> Path:
        """item_id -> semantic_id, collaborative_id (the contract the model reads)."""
        return IdsArtefacts(self.ids_dir).table

    @property
    def codebooks(self) -> Path:
        """Level names and sizes of both ID kinds (the model's code vocabulary)."""
        return IdsArtefacts(self.ids_dir).codebooks

    @property
    def quantizer(self) -> Path:
        """Trained RQ-VAE + text->collaborative map, to give cold-start items IDs."""
        return IdsArtefacts(self.ids_dir).quantizer

    @property
    def item_embeddings(self) -> Path:
        """item_ids, semantic (N,384) and collaborative (N,d) float32 vectors."""
        return IdsArtefacts(self.ids_dir).embeddings

    @property
    def identifiers_metrics(self) -> Path:
        return self._p("metrics", "identifiers.json")

    @property
    def identifiers_plot(self) -> Path:
        return self._p("plots", "identifiers_code_usage.png")

    # train
    @property
    def model_dir(self) -> Path:
        """Weights, model card and item codes of the trained generative model."""
        return self._p("models", "generative")

    @property
    def train_metrics(self) -> Path:
        return self._p("metrics", "train.json")

    @property
    def train_curve(self) -> Path:
        return self._p("metrics", "train_curve.csv")

    @property
    def train_plot(self) -> Path:
        return self._p("plots", "train_curve.png")

    @property
    def train_work_dir(self) -> Path:
        """Lightning's checkpoints and raw logs during a run (scratch, not a DVC output)."""
        return self._p(".cache", "unigrec", "train")

    # evaluate
    @property
    def evaluate_metrics(self) -> Path:
        """Test-split metrics of the model (nested JSON); the register stage's gate reads it."""
        return self._p("metrics", "evaluate.json")

    @property
    def evaluate_plots_dir(self) -> Path:
        """HR@k curves (CSV, for `dvc plots show`) and the PNG figures of the evaluation report."""
        return self._p("plots", "evaluate")

    @property
    def evaluation_report(self) -> Path:
        return self._p("reports", "evaluation.md")

    @property
    def serving_dir(self) -> Path:
        """What serving needs beside the weights: catalogue titles, user histories, query vectors, settings."""
        return self._p("models", "serving")

    # register
    @property
    def register_metrics(self) -> Path:
        """The registered version, whether it became champion, and why."""
        return self._p("metrics", "register.json")
