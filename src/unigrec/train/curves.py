"""Per-epoch learning curve from Lightning's CSV log: one row per epoch, plus a PNG plot."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from unigrec.atomic import atomic_file
from unigrec.figures import headless_pyplot, save_png

FIGURE_DPI = 100


def epoch_curve(metrics_csv: Path) -> pd.DataFrame:
    """Collapse Lightning's mixed step/epoch rows into one row per epoch (last logged value wins)."""
    raw = pd.read_csv(metrics_csv)
    keep = [c for c in raw.columns if c == "epoch" or c.endswith("_epoch") or c.startswith("val/")]
    keep += [c for c in raw.columns if c.startswith("train/loss_") and not c.endswith("_step") and c not in keep]
    curve = raw[keep].groupby("epoch", as_index=False).last()
    return curve.rename(columns=lambda c: c.removesuffix("_epoch"))


def write_curve(curve: pd.DataFrame, csv_path: Path, png_path: Path) -> None:
    plt = headless_pyplot()

    with atomic_file(csv_path) as fh:
        curve.to_csv(fh, index=False)
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 4))
    for column in [c for c in curve.columns if c.startswith("train/loss")]:
        ax_loss.plot(curve["epoch"], curve[column], marker="o", label=column.removeprefix("train/"))
    ax_loss.set_xlabel("epoch")
    ax_loss.set_title("training loss")
    ax_loss.legend(fontsize="small")
    for column in [c for c in curve.columns if c.startswith("val/")]:
        ax_val.plot(curve["epoch"], curve[column], marker="o", label=column.removeprefix("val/"))
    ax_val.set_xlabel("epoch")
    ax_val.set_title("validation (epoch sample)")
    ax_val.legend(fontsize="small")
    fig.tight_layout()
    save_png(fig, png_path, FIGURE_DPI)


def step_log(metrics_csv: Path, prefixes: tuple[str, ...] = ("weight/", "grad_norm/", "train/loss_")) -> pd.DataFrame:
    """Per-step rows of the task weights, gradient norms and task losses (Lightning's ``*_step`` columns)."""
    raw = pd.read_csv(metrics_csv)
    keep = [c for c in raw.columns if c.startswith(prefixes) and not c.endswith("_epoch")]
    rows = raw[["step", *keep]].dropna(subset=keep, how="all")
    return rows.groupby("step", as_index=False).last().rename(columns=lambda c: c.removesuffix("_step"))


def write_task_weights_plot(metrics_csv: Path, png_path: Path) -> None:
    """Weight trajectories, gradient norms on the last shared block and task losses, per training step."""
    plt = headless_pyplot()

    steps = step_log(metrics_csv)
    panels = (("weight/", "task weight"), ("grad_norm/", "gradient norm, last shared block"),
              ("train/loss_", "task loss (plain, before weighting)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 4))
    for ax, (prefix, title) in zip(axes, panels):
        for column in [c for c in steps.columns if c.startswith(prefix)]:
            series = steps[["step", column]].dropna()
            ax.plot(series["step"], series[column], label=column.removeprefix(prefix))
        ax.set_xlabel("step")
        ax.set_title(title)
        if ax.has_data():
            ax.legend(fontsize="small")
    fig.tight_layout()
    save_png(fig, png_path, FIGURE_DPI)
