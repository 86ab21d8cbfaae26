"""Plot of how items spread over the codes of every level (dead or overloaded codes stand out)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unigrec.figures import headless_pyplot, save_png

MAX_COLUMNS = 4  # panels per row
PANEL_INCHES = (3.6, 2.8)  # width, height of one level's panel
DPI = 100


def plot_code_usage(panels: list[tuple[str, np.ndarray]], target: Path, title: str) -> None:
    """One bar chart per level: items per code value, codes sorted by load.

    ``panels`` holds (label, counts) pairs; sorted bars make utilisation and skew readable at a glance
    regardless of codebook size.
    """
    plt = headless_pyplot()

    cols = min(len(panels), MAX_COLUMNS)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(PANEL_INCHES[0] * cols, PANEL_INCHES[1] * rows),
                             squeeze=False)
    for ax, (label, counts) in zip(axes.flat, panels):
        loads = np.sort(counts)[::-1]
        used = int((counts > 0).sum())
        ax.bar(np.arange(len(loads)), loads, width=1.0, color="tab:blue")
        ax.set_title(f"{label}\n{used}/{len(counts)} codes used", fontsize=9)
        ax.set_xlabel("code (sorted by load)", fontsize=8)
        ax.set_ylabel("items", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_png(fig, Path(target), DPI)
