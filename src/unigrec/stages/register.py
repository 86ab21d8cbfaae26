"""``register`` stage: log the trained model with its metrics and lineage to MLflow, register a new
version, and move the champion alias only if the gate says the candidate is better."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import yaml

from unigrec.atomic import write_json
from unigrec.config import PARAMS_FILE, RegisterConfig
from unigrec.paths import Layout
from unigrec.stages import require_inputs

log = logging.getLogger(__name__)

DVC_LOCK = "dvc.lock"


def run(cfg: RegisterConfig, layout: Layout) -> dict[str, Any]:
    import pandas as pd

    from unigrec.model.serving import assemble_servable_folder
    from unigrec.registry.gate import flatten_mapping, flatten_metrics
    from unigrec.registry.lineage import dvc_lock_hashes, files_fingerprint, git_state
    from unigrec.registry.register import Candidate, register_candidate
    from unigrec.registry.serving_contract import request_examples

    require_inputs((
        (layout.model_dir, "train"),
        (layout.evaluate_metrics, "evaluate"),
        (layout.serving_dir, "evaluate"),
        (layout.events, "split"),
    ))
    metrics = flatten_metrics(json.loads(layout.evaluate_metrics.read_text(encoding="utf-8")))
    # The evaluation's inputs: held-out events, their 1+99 lists, and the catalogue ranked against.
    eval_data = [layout.events, layout.candidates, layout.items]
    params_file = layout.root / PARAMS_FILE
    lock = layout.root / DVC_LOCK
    # Serving needs the catalogue, user histories and query vectors beside the weights: register one
    # self-contained folder so the champion can serve anywhere it is loaded.
    with tempfile.TemporaryDirectory() as tmp:
        folder = assemble_servable_folder(layout.model_dir, layout.serving_dir, Path(tmp) / "model")
        candidate = Candidate(
            model_dir=folder,
            metrics=metrics,
            eval_data_hash=files_fingerprint([p for p in eval_data if p.exists()]),
            input_example=request_examples(pd.read_parquet(layout.events)),
            params=flatten_mapping(yaml.safe_load(params_file.read_text(encoding="utf-8")) or {})
            if params_file.exists()
            else {},
            tags={**git_state(layout.root), **dvc_lock_hashes(lock)},
            artifacts={
                "identifiers": layout.ids_dir,
                "lineage": lock,
                "params": params_file,
                "evaluation": layout.evaluate_metrics,
            },
        )
        result = register_candidate(cfg, candidate, layout.root)
    # The tracking URI is an absolute path on this machine: kept out of the git-tracked metrics file.
    summary = {k: v for k, v in result.as_dict().items() if k != "tracking_uri"}
    write_json(layout.register_metrics, summary)
    return summary
