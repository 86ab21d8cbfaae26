"""Evaluate an already trained model folder on the project's current data and give it this data's serving
bundle: how the register stage puts a champion that was evaluated on older data, or by older code without
the validation figures the gate now reads, on the same footing as a new candidate (the gate only compares
metrics measured on the same data)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from unigrec.config import EvaluateConfig, RuntimeConfig
from unigrec.paths import Layout

BUNDLE_SUBDIR = "bundle"
MODEL_SUBDIR = "model"


def reevaluate_folder(
    cfg: EvaluateConfig, runtime: RuntimeConfig, layout: Layout, model_dir: Path, dest: Path
) -> tuple[Path, dict[str, Any]]:
    """Every protocol of the evaluate stage for the model in ``model_dir`` (no baselines: they do not
    change with the model), on ``layout``'s data.

    Returns a servable folder under ``dest`` (the model's files with a serving bundle built from the
    current data: histories, catalogue, and re-ranking weights re-tuned on its validation split) and the
    nested metrics, in the evaluate stage's format (the ``valid`` block the gate reads included).
    """
    from unigrec.evaluate.evaluation import check_settings, evaluate_test_split
    from unigrec.evaluate.inputs import load_test_inputs
    from unigrec.evaluate.report import finite_or_none
    from unigrec.inference.serving import assemble_servable_folder, write_serving_bundle

    cfg = dataclasses.replace(cfg, baselines=())
    check_settings(cfg)
    data = load_test_inputs(runtime, layout)
    result = evaluate_test_split(cfg, data, model_dir, runtime, layout)
    bundle = Path(dest) / BUNDLE_SUBDIR
    write_serving_bundle(bundle, data.events, data.items, data.query_texts, data.query_table, result.settings)
    folder = assemble_servable_folder(model_dir, bundle, Path(dest) / MODEL_SUBDIR)
    return folder, finite_or_none(result.metrics)
