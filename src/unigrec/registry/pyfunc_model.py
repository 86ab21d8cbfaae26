"""The MLflow pyfunc wrapper of a unigrec model folder and its signature (imports mlflow: load lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

from unigrec.errors import UnigrecError
from unigrec.registry.serving_contract import check_results, resolve_loader

MODEL_DIR_ARTIFACT = "model_dir"  # key of the model folder among the pyfunc's artifacts
# Logged as "model from code" (MLflow's recommended form): the file is stored with the model and run
# at load time, so nothing is pickled and the loader/top_k come from the logged model_config.
ENTRY_FILE = Path(__file__).with_name("pyfunc_entry.py")


def model_config(loader: str, top_k: int, max_k: int | None = None) -> dict[str, Any]:
    """What the pyfunc reads at load: the loader, the default k, and the largest k a caller may ask for
    (params serving.max_k when registered; None: the loader's own bound, the catalogue size)."""
    return {"loader": loader, "top_k": top_k, "max_k": max_k}


class RegisteredRecommender(mlflow.pyfunc.PythonModel):
    """Serves a model folder through the loader named in its model_config; the registry never imports
    model code, so any model kind whose loader honours the serving contract can be registered."""

    def __init__(self) -> None:
        self._model: Any = None
        self._top_k = 0
        self._max_k: int | None = None

    def load_context(self, context: Any) -> None:
        config = context.model_config
        self._top_k = int(config["top_k"])
        self._max_k = int(config["max_k"]) if config.get("max_k") is not None else None
        self._model = resolve_loader(config["loader"])(Path(context.artifacts[MODEL_DIR_ARTIFACT]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        k = int((params or {}).get("k", self._top_k))
        # params.k is anyone's to set over `mlflow models serve`, and the beam widens to k: refuse a huge
        # one before any work (a catalogue-sized bound alone is no bound for a large catalogue)
        if self._max_k is not None and k > self._max_k:
            raise UnigrecError(f"k must be at most {self._max_k} (serving.max_k when this model was registered), got {k}")
        return check_results(self._model.predict(model_input, k), len(model_input), k)


def recommender_signature(top_k: int) -> ModelSignature:
    inputs = Schema(
        [
            ColSpec("string", "user_id"),
            ColSpec("string", "kind"),
            ColSpec("string", "query", required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec("long", "request"),
            ColSpec("long", "rank"),
            ColSpec("string", "item_id"),
            ColSpec("double", "score"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs, params=ParamSchema([ParamSpec("k", "long", top_k)]))
