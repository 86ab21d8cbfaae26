"""Per-epoch learning curve from Lightning's CSV log: one row per epoch, plus a PNG plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from unigrec.atomic import atomic_file
from unigrec.figures import headless_pyplot, save_png

FIGURE_DPI = 100
# Per-step weights logged by the module: the applied weight of each loss term, and with
# train.weighter.tasks: two the weighter's own task weights (retrieval, ranking).
WEIGHT_PREFIXES = ("weight/", "weight_task/")


def epoch_curve(metrics_csv: Path) -> pd.DataFrame:
    """Collapse Lightning's mixed step/epoch rows into one row per epoch (last logged value wins); the task
    weights, logged per step, are averaged over the epoch's steps (the weight the epoch trained with)."""
    raw = pd.read_csv(metrics_csv)
    keep = [c for c in raw.columns if c == "epoch" or c.endswith("_epoch") or c.startswith("val/")]
    keep += [c for c in raw.columns if c.startswith("train/loss_") and not c.endswith("_step") and c not in keep]
    curve = raw[keep].groupby("epoch", as_index=False).last()
    weights = [c for c in raw.columns if c.startswith(WEIGHT_PREFIXES)]
    if weights:
        curve = curve.merge(raw[["epoch", *weights]].groupby("epoch", as_index=False).mean(), on="epoch", how="left")
    return curve.rename(columns=lambda c: c.removesuffix("_epoch"))


def write_curve(curve: pd.DataFrame, csv_path: Path, png_path: Path) -> None:
    plt = headless_pyplot()

    with atomic_file(csv_path) as fh:
        curve.to_csv(fh, index=False)
    fig, (ax_loss, ax_val, ax_weight) = plt.subplots(1, 3, figsize=(15, 4))
    for column in [c for c in curve.columns if c.startswith("train/loss")]:
        ax_loss.plot(curve["epoch"], curve[column], marker="o", label=column.removeprefix("train/"))
    ax_loss.set_xlabel("epoch")
    ax_loss.set_title("training loss")
    if ax_loss.has_data():
        ax_loss.legend(fontsize="small")
    for column in [c for c in curve.columns if c.startswith("val/")]:
        ax_val.plot(curve["epoch"], curve[column], marker="o", label=column.removeprefix("val/"))
    ax_val.set_xlabel("epoch")
    ax_val.set_title("validation (epoch sample)")
    if ax_val.has_data():
        ax_val.legend(fontsize="small")
    _plot_weights(ax_weight, curve, "epoch", marker="o")
    ax_weight.set_xlabel("epoch")
    ax_weight.set_title("task weights (epoch mean)")
    fig.tight_layout()
    save_png(fig, png_path, FIGURE_DPI)


def _plot_weights(ax: Any, frame: pd.DataFrame, x: str, **style: Any) -> None:
    """The loss terms' applied weights as solid lines, the weighter's task weights (tasks: two) dashed."""
    for prefix, line, label in (("weight/", "-", "{}"), ("weight_task/", "--", "task: {}")):
        for column in [c for c in frame.columns if c.startswith(prefix)]:
            series = frame[[x, column]].dropna()
            ax.plot(series[x], series[column], linestyle=line, label=label.format(column.removeprefix(prefix)),
                    **style)
    if ax.has_data():
        ax.legend(fontsize="small")


def step_log(
    metrics_csv: Path, prefixes: tuple[str, ...] = (*WEIGHT_PREFIXES, "grad_norm/", "train/loss_")
) -> pd.DataFrame:
    """Per-step rows of the task weights, gradient norms and task losses (Lightning's ``*_step`` columns)."""
    raw = pd.read_csv(metrics_csv)
    keep = [c for c in raw.columns if c.startswith(prefixes) and not c.endswith("_epoch")]
    rows = raw[["step", *keep]].dropna(subset=keep, how="all")
    return rows.groupby("step", as_index=False).last().rename(columns=lambda c: c.removesuffix("_step"))


def write_task_weights_plot(metrics_csv: Path, png_path: Path) -> None:
    """Weight trajectories, gradient norms on the last shared block and task losses, per training step."""
    plt = headless_pyplot()

    steps = step_log(metrics_csv)
    panels = (("grad_norm/", "gradient norm, last shared block (per weighter task)"),
              ("train/loss_", "task loss (plain, before weighting)"))
    fig, axes = plt.subplots(1, 1 + len(panels), figsize=(15, 4))
    _plot_weights(axes[0], steps, "step")
    axes[0].set_xlabel("step")
    axes[0].set_title("task weight")
    for ax, (prefix, title) in zip(axes[1:], panels):
        for column in [c for c in steps.columns if c.startswith(prefix)]:
            series = steps[["step", column]].dropna()
            ax.plot(series["step"], series[column], label=column.removeprefix(prefix))
        ax.set_xlabel("step")
        ax.set_title(title)
        if ax.has_data():
            ax.legend(fontsize="small")
    fig.tight_layout()
    save_png(fig, png_path, FIGURE_DPI)
