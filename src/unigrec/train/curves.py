"""Per-epoch learning curve from Lightning's CSV log: one row per epoch, plus a PNG plot."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from unigrec.atomic import atomic_file


def epoch_curve(metrics_csv: Path) -> pd.DataFrame:
    """Collapse Lightning's mixed step/epoch rows into one row per epoch (last logged value wins)."""
    raw = pd.read_csv(metrics_csv)
    keep = [c for c in raw.columns if c == "epoch" or c.endswith("_epoch") or c.startswith("val/")]
    keep += [c for c in raw.columns if c.startswith("train/loss_") and not c.endswith("_step") and c not in keep]
    curve = raw[keep].groupby("epoch", as_index=False).last()
    return curve.rename(columns=lambda c: c.removesuffix("_epoch"))


def write_curve(curve: pd.DataFrame, csv_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    png_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(png_path, mode="wb") as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)
