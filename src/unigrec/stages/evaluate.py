"""``evaluate`` stage: every protocol on the TEST split, for the model and the baselines named in params;
writes the metrics file (DVC metrics), plot data and figures, the Markdown report, and the serving bundle
(the decode settings measured here, re-ranking weights tuned on validation, are the ones served).

The metrics file also holds a ``valid`` block, the model's full-catalogue retrieval figures on the
VALIDATION split: the registry gate chooses between versions on those, never on ``test``."""

from __future__ import annotations

import logging
import os
from typing import Any

from unigrec.atomic import stage_outputs, write_json
from unigrec.config import PARAMS_FILE, EvaluateConfig, RuntimeConfig
from unigrec.paths import Layout, require_inputs

log = logging.getLogger(__name__)


def run(cfg: EvaluateConfig, layout: Layout, runtime: RuntimeConfig) -> dict[str, Any]:
    from unigrec.config import load_section
    from unigrec.evaluate.evaluation import TUNING_SPLIT, check_settings, evaluate_test_split
    from unigrec.evaluate.inputs import load_test_inputs
    from unigrec.evaluate.report import finite_or_none, report_markdown, write_plot_files
    from unigrec.inference.serving import write_serving_bundle

    check_settings(cfg)
    require_inputs(((layout.model_dir, "train"),))
    data = load_test_inputs(runtime, layout)
    # Baselines have their own params section (their knobs), read only when some are asked for.
    baselines_cfg = load_section("baselines", layout.root / PARAMS_FILE) if cfg.baselines else None
    result = evaluate_test_split(cfg, data, layout.model_dir, runtime, layout, baselines_cfg)
    metrics = finite_or_none(result.metrics)
    slice_cutoff = min(cfg.full_ndcg_cutoffs)
    # Every output from this run or all from the last good one: metrics, figures, report and the serving
    # bundle that register pairs with the metrics are swapped in together.
    with stage_outputs(layout.root, "evaluate", dirs=[layout.evaluate_plots_dir, layout.serving_dir],
                       files=[layout.evaluate_metrics, layout.evaluation_report]) as out:
        write_json(out[layout.evaluate_metrics], metrics)
        plots = write_plot_files(out[layout.evaluate_plots_dir], result.curves, metrics, slice_cutoff)
        report_dir = layout.evaluation_report.parent
        figures = {  # where the figures will be, not where they are staged
            title: os.path.relpath(layout.evaluate_plots_dir / plots[key].name, report_dir)
            for title, key in (("HR@k over the full catalogue", "curve_png"),
                               (f"NDCG@{slice_cutoff} by slice", "slices_png"))
        }
        out[layout.evaluation_report].write_text(
            report_markdown(metrics, cfg, result.n_cases, result.n_negatives, figures, baselines_cfg),
            encoding="utf-8"
        )
        write_serving_bundle(out[layout.serving_dir], data.events, data.items, data.query_texts,
                             data.query_table, result.settings)

    test = metrics["test"]
    headline = {"sampled": f"ndcg@{max(cfg.sampled_ndcg_cutoffs)}", "full": f"ndcg@{min(cfg.full_ndcg_cutoffs)}"}
    summary = {f"{s}_{p}_{m}": test[s][p][m] for s in ("rec", "search") for p, m in headline.items()}
    valid = metrics[TUNING_SPLIT]  # what the registry gate chooses on
    summary.update({f"valid_{s}_full_{headline['full']}": valid[s]["full"][headline["full"]] for s in ("rec", "search")})
    summary["ranking_auc"] = test["ranking"]["auc"]
    # Milliseconds, not tenths: on a small root a whole decode takes well under 0.05 s and a tenth would
    # read as "not timed".
    summary.update({f"seconds_{name}": round(s, 3) for name, s in result.seconds.items()})
    log.info("evaluate: %s", ", ".join(f"{k}={v}" for k, v in summary.items()))
    return summary
