"""Slices in the metrics file, the report's slice table and the slice plot, on hand-made ranks: every
method on every slice of the streams it serves, with the case count, an empty slice shown as empty."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from unigrec.config import load_section
from unigrec.evaluate.comparison import MODEL_LABEL
from unigrec.evaluate.evaluation import MethodRanks, method_metrics
from unigrec.evaluate.report import SERVED_LABEL, slice_frame, slice_table, write_plot_files
from unigrec.evaluate.slices import SEARCH_SLICE_NAMES, SLICE_NAMES

# Cases 0-2 are recommendations, 3-5 searches; the model serves both, the search baselines search only.
ROWS = {"rec": np.array([0, 1, 2]), "search": np.array([3, 4, 5])}
MASKS = {name: np.zeros(6, dtype=bool) for name in SLICE_NAMES}
MASKS["cold_users"][[0, 3, 4]] = True
MASKS["warm_users"][[1, 2, 5]] = True
MASKS["long_tail_items"][:] = True  # popular_items stays empty in both streams
MASKS["unseen_query"][[4, 5]] = True
MASKS["target_never_searched"][[5]] = True  # target_no_train_events stays empty


def _ranks(rec: list[float] | None, search: list[float]) -> MethodRanks:
    streams = {"search": np.array(search)} if rec is None else {"rec": np.array(rec), "search": np.array(search)}
    rows = {s: ROWS[s] for s in streams}
    return MethodRanks(rows, sampled=streams, full=streams)


@pytest.fixture(scope="module")
def metrics() -> dict:
    cfg = load_section("evaluate")
    return {
        "test": method_metrics(_ranks([0.0, 20.0, np.inf], [0.0, 1.0, np.inf]), MASKS, cfg),
        "baselines": {
            "popularity": method_metrics(_ranks([1.0, 1.0, 1.0], [5.0, 5.0, 5.0]), MASKS, cfg),
            "query_lookup": method_metrics(_ranks(None, [0.0, np.inf, np.inf]), MASKS, cfg),
        },
    }


def test_search_slices_are_reported_for_search_only_with_their_counts(metrics):
    for block in (metrics["test"], *metrics["baselines"].values()):
        assert set(block["slices"]) == set(SLICE_NAMES)
        for name in SEARCH_SLICE_NAMES:
            assert set(block["slices"][name]) == {"search"}
    slices = metrics["test"]["slices"]
    assert set(slices["cold_users"]) == {"rec", "search"}
    assert slices["unseen_query"]["search"]["n"] == 2
    # cases 4 (rank 1) and 5 (not found): NDCG@10 = (1/log2(3) + 0) / 2
    assert slices["unseen_query"]["search"]["full"]["ndcg@10"] == pytest.approx(0.5 / np.log2(3))
    assert slices["target_no_train_events"]["search"]["n"] == 0
    lookup = metrics["baselines"]["query_lookup"]["slices"]
    assert lookup["unseen_query"]["search"]["full"]["hr@10"] == 0.0
    assert lookup["cold_users"]["search"]["full"]["hr@10"] == 0.5


def test_slice_table_shows_every_method_on_every_slice(metrics):
    lines = slice_table(metrics, 10, 10)
    assert lines[0] == f"| stream | slice | n | {MODEL_LABEL} | popularity | query_lookup |"
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line for line in lines[2:]}
    rec_slices = [n for n in SLICE_NAMES if n not in SEARCH_SLICE_NAMES]
    expected = {("rec", "all test cases")} | {("rec", n.replace("_", " ")) for n in rec_slices}
    expected |= {("search", "all test cases")} | {("search", n.replace("_", " ")) for n in SLICE_NAMES}
    assert set(rows) == expected
    at_1, at_5 = f"{1 / np.log2(3):.4f}", f"{1 / np.log2(7):.4f}"  # NDCG of one case at rank 1, rank 5
    assert rows[("rec", "cold users")].endswith(f"| 1 | 1.0000 | {at_1} | – |")  # lookup serves no rec
    assert rows[("search", "all test cases")].split("|")[3].strip() == "3"
    assert rows[("search", "unseen query")].endswith(f"| 2 | {0.5 / np.log2(3):.4f} | {at_5} | 0.0000 |")
    assert rows[("search", "target never searched")].endswith(f"| 1 | 0.0000 | {at_5} | 0.0000 |")
    assert rows[("search", "target no train events")].endswith("| 0 | empty | empty | empty |")
    assert rows[("rec", "popular items")].endswith("| 0 | empty | empty | – |")


def test_slice_plot_files_hold_every_method_and_slice(metrics, tmp_path):
    frame = slice_frame(metrics, 10)
    search = frame[frame["stream"] == "search"]
    assert set(search["slice"]) == set(SLICE_NAMES)
    assert set(search["method"]) == {MODEL_LABEL, "popularity", "query_lookup"}
    assert not set(frame.loc[frame["stream"] == "rec", "slice"]) & set(SEARCH_SLICE_NAMES)
    curves = {"rec": {MODEL_LABEL: np.linspace(0, 1, 5)}, "search": {MODEL_LABEL: np.linspace(0, 1, 5)}}
    written = write_plot_files(tmp_path, curves, metrics, 10)
    assert written["slices_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv = pd.read_csv(written["slices_csv"])
    assert len(csv) == len(frame) and (csv["n"] == frame["n"]).all()


def test_slice_table_shows_the_served_pipeline_beside_the_model(metrics):
    """test.pipeline.<stream>.slices (the served list, retrieve + re-rank) gets its own column."""
    def served(n: int, ndcg: float) -> dict:
        return {"n": n, "ndcg@5": ndcg, "ndcg@10": ndcg, "hr@5": 1.0}

    pipeline = {
        "rec": {**served(3, 0.1), "slices": {n: served(1, 0.2) for n in SLICE_NAMES if n not in SEARCH_SLICE_NAMES}},
        "search": {**served(3, 0.3), "slices": {n: served(1, 0.4) for n in SLICE_NAMES}},
    }
    pipeline["search"]["slices"]["target_no_train_events"] = served(0, 0.0)
    with_pipeline = {**metrics, "test": {**metrics["test"], "pipeline": pipeline}}
    lines = slice_table(with_pipeline, 10, 5)
    assert lines[0] == (
        f"| stream | slice | n | {MODEL_LABEL} | {SERVED_LABEL} (NDCG@5) | popularity | query_lookup |"
    )
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line.split("|")[5].strip() for line in lines[2:]}
    assert rows[("rec", "all test cases")] == "0.1000" and rows[("search", "all test cases")] == "0.3000"
    assert rows[("search", "unseen query")] == "0.4000" and rows[("rec", "cold users")] == "0.2000"
    assert rows[("search", "target no train events")] == "empty"
    assert ("rec", "unseen query") not in rows
    assert f"| {SERVED_LABEL} |" in slice_table(with_pipeline, 10, 10)[0]  # same cut-off: no note
