"""Headless matplotlib and one way to write a figure: atomically, byte-stable, then closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unigrec.atomic import atomic_file


def headless_pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display on CI or workers); imported lazily because
    matplotlib costs ~0.5 s and most commands draw nothing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Path, dpi: int) -> None:
    """Write ``fig`` as a PNG at ``path`` (all or nothing) and free it.

    No "Software" stamp: the PNG stays byte-identical across matplotlib patch versions, so plots kept in
    git only change when the picture does.
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, mode="wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
