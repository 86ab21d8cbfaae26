"""benchmarks/arm_curves.py: each row's band is the mean / min / max over the seeds that logged a column (at
1-based epochs), a run without a curve is named rather than drawn as zeros, a panel nobody logged is left
out, and a row label that is not in the spec is refused."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from benchmarks import arm_curves as ac
from benchmarks.quality import load_spec


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"title": "T", "block": "blk", "seeds": [1, 2], "rows": [
        {"label": "plain", "seed_key": "train.seed"},
        {"label": "weighted", "seed_key": "train.seed"},
    ]}))
    return path


def _curve(work: Path, label: str, seed: int, frame: dict) -> None:
    folder = work / f"blk-{label}-{seed}" / "metrics"
    folder.mkdir(parents=True)
    pd.DataFrame(frame).to_csv(folder / "train_curve.csv", index=False)


def test_bands_span_the_seeds_and_missing_runs_are_named(tmp_path: Path, spec_path: Path) -> None:
    work = tmp_path / "work"
    _curve(work, "plain", 1, {"epoch": [0, 1], "val/ranking_auc": [0.70, 0.80]})
    _curve(work, "plain", 2, {"epoch": [0, 1], "val/ranking_auc": [0.72, 0.76]})
    _curve(work, "weighted", 1, {"epoch": [0, 1], "val/ranking_auc": [0.7, 0.9], "weight_task/ranking": [1.0, 1.4]})
    found, missing = ac.seed_curves(work, load_spec(spec_path), ["plain", "weighted"])
    assert [len(found["plain"]), len(found["weighted"])] == [2, 1]
    assert len(missing) == 1 and missing[0].startswith("weighted, seed 2")

    stats = ac.band(found["plain"], "val/ranking_auc")
    assert stats["epoch"].tolist() == [1, 2]
    assert stats["mean"].tolist() == pytest.approx([0.71, 0.78])
    assert stats["min"].tolist() == pytest.approx([0.70, 0.76])
    assert stats["max"].tolist() == pytest.approx([0.72, 0.80])
    assert ac.band(found["plain"], "weight_task/ranking") is None  # a fixed-weight arm logs no weighter curve

    out = tmp_path / "curves.png"
    panels = ac.plot(found, out, "T")
    assert panels == ["val/ranking_auc", "weight_task/ranking"]  # nobody logged the losses: no empty panels
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_row_the_spec_lacks_is_refused(tmp_path: Path, spec_path: Path) -> None:
    with pytest.raises(SystemExit, match="no rows"):
        ac.seed_curves(tmp_path, load_spec(spec_path), ["plain", "typo"])


def test_main_writes_the_figure_from_a_root(tmp_path: Path, spec_path: Path, capsys) -> None:
    _curve(tmp_path / ".cache" / "quality", "plain", 1, {"epoch": [0], "train/loss_ranking": [0.6]})
    out = tmp_path / "fig.png"
    assert ac.main(["--root", str(tmp_path), "--spec", str(spec_path), "--out", str(out)]) == 0
    assert out.exists() and "1 rows" in capsys.readouterr().out


def test_a_run_whose_folder_is_gone_draws_from_its_record(tmp_path: Path, spec_path: Path) -> None:
    """The run folders stay on the machine that trained them; the results JSON travels with the repo."""
    _curve(tmp_path / "work", "plain", 1, {"epoch": [0, 1], "val/ranking_auc": [0.70, 0.80]})
    runs = {"plain": {"2": {"curve": {"epoch": [0, 1], "val/ranking_auc": [0.74, 0.78]}}}}
    found, missing = ac.seed_curves(tmp_path / "work", load_spec(spec_path), ["plain"], runs)
    assert len(found["plain"]) == 2 and missing == []
    assert ac.band(found["plain"], "val/ranking_auc")["mean"].tolist() == pytest.approx([0.72, 0.79])


def test_a_record_keeps_the_drawn_columns_of_its_curve(tmp_path: Path) -> None:
    from benchmarks.quality import CURVE_COLUMNS, kept_curve
    from unigrec.paths import Layout

    assert kept_curve(tmp_path) is None  # a baseline or a two-part run: no curve of its own
    path = Layout(tmp_path).train_curve
    path.parent.mkdir(parents=True)
    pd.DataFrame({"epoch": [0, 1], "val/ranking_auc": [0.7, 0.812345678], "weight_task/ranking": [None, 1.2],
                  "lr": [0.1, 0.05]}).to_csv(path, index=False)
    assert kept_curve(tmp_path) == {"epoch": [0, 1], "val/ranking_auc": [0.7, 0.812346],
                                    "weight_task/ranking": [None, 1.2]}  # only what arm_curves draws
    assert [c for c, _ in ac.PANELS] == list(CURVE_COLUMNS)
