"""Issue 40, defect 9, on the real stages: a killed stage leaves its last good outputs whole (never new
metrics beside an old serving bundle), the temporaries a kill left are removed at the next start, and
evaluate writes the same bytes when re-run on the same inputs (`dvc status` stays clean)."""

from __future__ import annotations

import itertools
from pathlib import Path
from unittest import mock

import pytest
import torch
from support import FIXTURES
from support.evaluate_project import evaluate_cfg, evaluate_runtime, tiny_project
from support.queries import query_config
from support.runtime import runtime_config

from unigrec.config import IngestConfig, ParquetSourceConfig
from unigrec.paths import Layout


class SimulatedKill(BaseException):
    """Where the process died."""


def _files(layout: Layout) -> dict[str, bytes]:
    """Every file the evaluate stage writes, by path relative to the project."""
    paths = [layout.evaluate_metrics, layout.evaluation_report,
             *layout.evaluate_plots_dir.rglob("*"), *layout.serving_dir.rglob("*")]
    return {str(p.relative_to(layout.root)): p.read_bytes() for p in paths if p.is_file()}


def _hidden(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*") if ".cache" not in p.parts)


def _evaluate(layout: Layout, tick: float = 1.0) -> None:
    """One evaluate run whose wall clock advances ``tick`` seconds a reading (a slower or faster machine)."""
    from unigrec.stages.evaluate import run

    ticks = itertools.count(0.0, tick)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with mock.patch("unigrec.evaluate.evaluation.time.perf_counter", lambda: next(ticks)):
            run(evaluate_cfg(), layout, evaluate_runtime())
    finally:
        torch.set_num_threads(threads)


def test_evaluate_rewrites_the_same_bytes_whatever_its_timings(tmp_path):
    layout = tiny_project(tmp_path)
    _evaluate(layout, tick=1.0)
    first = _files(layout)
    assert {"metrics/evaluate.json", "reports/evaluation.md", "models/serving/settings.json"} <= set(first)
    _evaluate(layout, tick=7.0)  # a slower machine: other timings, same results
    assert _files(layout) == first, "a re-run on the same inputs must rewrite the same bytes"
    assert _hidden(tmp_path) == []


def test_a_kill_before_evaluates_last_output_keeps_every_old_one(tmp_path):
    layout = tiny_project(tmp_path)
    _evaluate(layout)
    # the last good run's outputs, told apart from anything a new run writes
    layout.evaluate_metrics.write_text('{"run": "last good"}\n')
    layout.evaluation_report.write_text("last good\n")
    (layout.serving_dir / "settings.json").write_text('{"run": "last good"}\n')
    before = _files(layout)
    with mock.patch("unigrec.inference.serving.write_serving_bundle", side_effect=SimulatedKill), \
            pytest.raises(SimulatedKill):
        _evaluate(layout)  # dies after metrics, report and plots, before the bundle
    assert _files(layout) == before
    assert _hidden(tmp_path) == []


def _ingest_cfg(path: Path) -> IngestConfig:
    return IngestConfig(
        source="movielens-100k", path=str(path), label_threshold=4.0, max_users=None,
        queries=query_config(search_fraction=0.25, include_decade=True, seed=13),
        parquet=ParquetSourceConfig(items=None, interactions=None, searches=None, columns={}),
    )


def test_ingest_removes_the_half_written_folder_a_killed_ingest_left(tmp_path):
    from unigrec.stages import ingest

    layout = Layout(tmp_path)
    ingest.run(_ingest_cfg(FIXTURES / "ml-100k-grouplens"), layout, runtime_config())
    # what a SIGKILL in the middle of the next ingest leaves: its temporary folder, half written
    half = layout.canonical_dir.with_name(".canonical.x7q2ab")
    half.mkdir()
    (half / "items.parquet").write_bytes(b"PAR1 half")
    before = layout.interactions.read_bytes()
    ingest.run(_ingest_cfg(FIXTURES / "ml-100k-grouplens"), layout, runtime_config())
    assert sorted(p.name for p in layout.canonical_dir.parent.iterdir()) == ["canonical"]
    assert layout.interactions.read_bytes() == before
