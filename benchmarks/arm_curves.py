"""Training curves of a quality block's arms side by side: per epoch, each row's mean over its seeds (a band
from the lowest to the highest seed), for the losses, the validation figures and the task weights the runs
logged. Issue 39 asks for "training curves of both losses and the weights" beside its ablation table; one
run's own plot (``plots/train_task_weights.png`` in its folder) cannot show whether the weighter or the
enhancer moves a curve, and only a figure with the arms overlaid can.

Nothing trains here: it reads ``metrics/train_curve.csv`` from the run folders ``quality.py`` left under
ROOT/.cache/quality (or ``--work``), and where a folder is gone (another machine trained it) the curve the
run's record in the block's results JSON kept; a row or seed with neither is named and skipped.

    python benchmarks/arm_curves.py --root ROOT --spec benchmarks/specs/ml1m-unigrf-ablation.yaml \\
        --rows "plain joint, sampled softmax" "UniGRF full (enhancer + weighter), sampled softmax" \\
        --out plots/ml1m-unigrf-ablation/curves.png
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the benchmarks package, when run as a script

from benchmarks.quality import CURVE_COLUMNS, Spec, load_spec, planned_seeds, run_dir, seed_name

CURVE = Path("metrics") / "train_curve.csv"
TITLES = {
    "train/loss_retrieval_rec": "rec retrieval loss (train)",
    "train/loss_ranking": "ranking loss (train)",
    "val/rec_ndcg@10": "validation rec NDCG@10",
    "val/ranking_auc": "validation ranking AUC",
    "weight_task/retrieval": "weighter: retrieval's task weight",
    "weight_task/ranking": "weighter: ranking's task weight",
}
# (column, panel title) for each column a run's record keeps; a panel no run logged is left out
PANELS = tuple((column, TITLES[column]) for column in CURVE_COLUMNS)
FIGURE_DPI = 100
PANEL_COLUMNS = 3


def seed_curves(work: Path, spec: Spec, labels: Sequence[str],
                runs: dict[str, dict[str, Any]] | None = None) -> tuple[dict[str, list[pd.DataFrame]], list[str]]:
    """Row label -> the per-epoch curves of its seeds found; and the runs that had none (for the log). A
    run's folder under ``work`` is read where it is still there, else the curve its record in ``runs`` (the
    block's results JSON: row label -> seed -> record) kept, so seeds trained on other machines still draw."""
    rows = {r.label: r for r in spec.rows}
    unknown = [label for label in labels if label not in rows]
    if unknown:
        raise SystemExit(f"{spec.path}: no rows {unknown}; its rows: {sorted(rows)}")
    found: dict[str, list[pd.DataFrame]] = {}
    missing: list[str] = []
    for label in labels:
        for seed in planned_seeds(spec, rows[label]):
            path = run_dir(work, spec, rows[label], seed) / CURVE
            if path.exists():
                found.setdefault(label, []).append(pd.read_csv(path))
            elif kept := ((runs or {}).get(label, {}).get(seed_name(seed)) or {}).get("curve"):
                found.setdefault(label, []).append(pd.DataFrame(kept))
            else:
                missing.append(f"{label}, seed {seed}: no {path} and no curve in its record")
    return found, missing


def band(curves: Sequence[pd.DataFrame], column: str) -> pd.DataFrame | None:
    """Per epoch: mean, min and max of ``column`` over the seeds that logged it (epochs 1-based); None when
    none did. Seeds that stopped at different epochs each count where they have a value."""
    parts = [c[["epoch", column]].dropna() for c in curves if column in c.columns]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return None
    stats = pd.concat(parts).groupby("epoch")[column].agg(["mean", "min", "max"]).reset_index()
    stats["epoch"] += 1  # Lightning counts from 0; the logs and notes from 1
    return stats


def plot(found: dict[str, list[pd.DataFrame]], out: Path, title: str) -> list[str]:
    """One panel per logged column, one line (mean) and band (seed range) per row; returns the panels drawn."""
    from unigrec.figures import headless_pyplot, save_png

    # each (row, column) band once: the panel filter and the drawing both need it
    bands = {(label, c): band(curves, c) for label, curves in found.items() for c, _ in PANELS}
    panels = [(c, t) for c, t in PANELS if any(bands[label, c] is not None for label in found)]
    if not panels:
        raise SystemExit("none of the runs logged any of the curves: " + ", ".join(c for c, _ in PANELS))
    plt = headless_pyplot()
    rows = -(-len(panels) // PANEL_COLUMNS)
    fig, axes = plt.subplots(rows, PANEL_COLUMNS, figsize=(5 * PANEL_COLUMNS, 3.6 * rows), squeeze=False)
    # a row keeps its colour in every panel, also where another row logged nothing (a fixed-weight arm has
    # no weighter curve), so the colour cycle cannot shift between panels
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = {label: palette[i % len(palette)] for i, label in enumerate(found)}
    for ax, (column, panel_title) in zip(axes.flat, panels):
        for label, curves in found.items():
            stats = bands[label, column]
            if stats is None:
                continue
            seeds = f"{len(curves)} seed{'s' if len(curves) > 1 else ''}"
            ax.plot(stats["epoch"], stats["mean"], color=colours[label], label=f"{label} ({seeds})")
            ax.fill_between(stats["epoch"], stats["min"], stats["max"], color=colours[label], alpha=0.2)
        ax.set_title(panel_title)
        ax.set_xlabel("epoch")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()  # the first panel: a loss every row logs
    fig.legend(handles, labels, loc="lower center", ncol=1, fontsize="small")
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout(rect=(0, 0.04 + 0.035 * len(found), 1, 0.97))
    save_png(fig, out, FIGURE_DPI)
    return [c for c, _ in panels]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, type=Path, help="the block's root (its runs under ROOT/.cache/quality)")
    p.add_argument("--spec", required=True, type=Path, help="the quality.py spec whose runs are drawn")
    p.add_argument("--rows", nargs="+", default=None, help="row labels to overlay (default: every row)")
    p.add_argument("--work", type=Path, default=None, help="where the runs trained (default: ROOT/.cache/quality)")
    p.add_argument("--results", type=Path, default=None,
                   help="the block's results JSON, for runs whose folder is gone (default: benchmarks/results/BLOCK.json)")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = load_spec(args.spec)
    work = args.work or args.root / ".cache" / "quality"
    results = args.results or ROOT / "benchmarks" / "results" / spec.results
    runs = json.loads(results.read_text(encoding="utf-8")).get("runs", {}) if results.exists() else {}
    found, missing = seed_curves(work, spec, args.rows or [r.label for r in spec.rows], runs)
    for line in missing:
        print(f"skipped: {line}", file=sys.stderr)
    if not found:
        raise SystemExit(f"no run of {spec.block} under {work} has a {CURVE}")
    panels = plot(found, args.out, f"{spec.block}: mean over seeds, band = seed range")
    print(f"wrote {args.out}: {len(found)} rows, panels {', '.join(panels)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
