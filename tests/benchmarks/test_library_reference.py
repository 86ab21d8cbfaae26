"""benchmarks/library_reference.py: the export gives the library model exactly the histories our evaluation
gives every method (checked against the plain-loop oracle of the leak-free rule), our metric code and the
library's agree on hand-made lists, and a one-epoch run on a tiny project writes its results and block."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from support.evaluate_project import tiny_project
from support.history_rule import event_rows, held_out_rows, visible_history
from support.synthetic_train_data import events_frame

from benchmarks import library_reference as ref
from unigrec.data.split import assign_time_consistent

HOLDOUT_WINDOW = 6  # short enough that the synthetic users' other stream falls in the gap


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    """Synthetic timelines split by the time-consistent rule, so some histories hold ``gap`` events."""
    raw = events_frame(n_users=12).drop(columns="split")
    return assign_time_consistent(raw, min_events=3, holdout_window=HOLDOUT_WINDOW)


@pytest.mark.parametrize("split", ["valid", "test"])
def test_export_holds_the_contexts_our_evaluation_uses(events: pd.DataFrame, split: str) -> None:
    rows = event_rows(events)
    expected = [(t["user_id"], t["item_id"], [r["item_id"] for r in visible_history(rows, t, split)])
                for t in held_out_rows(rows, split) if t["kind"] == "rec"]
    cases = ref.reference_cases(events, split)
    got = list(zip(cases["user_id"], cases["item_id"], map(list, cases["history"])))
    assert got == expected
    history_splits = {r["split"] for t in held_out_rows(rows, split) if t["kind"] == "rec"
                      for r in visible_history(rows, t, split)}
    assert "gap" in history_splits  # the fixture exercises the rule's gap clause
    assert (cases["split"] == split).all()


def test_training_sequences_hold_train_events_only_in_timeline_order(events: pd.DataFrame) -> None:
    train = ref.train_sequences(events)
    assert (events["split"] == "gap").any()
    for user, items in zip(train["user_id"], train["items"]):
        mine = events[(events["user_id"] == user) & (events["split"] == "train")].sort_values("order")
        assert list(items) == mine["item_id"].tolist()
    assert sum(map(len, train["items"])) == int((events["split"] == "train").sum())


def test_our_metrics_and_the_librarys_agree_on_hand_made_lists() -> None:
    lists = [["a", "b", "c"], ["d", "e", "f"], ["g", "h", "i"], ["j", "k", "l"]]
    targets = ["a", "f", "z", "k"]  # ranks 0, 2, absent, 1
    want_ndcg = (1.0 + 1.0 / math.log2(4) + 0.0 + 1.0 / math.log2(3)) / 4
    ours = ref.our_metrics(lists, targets, 3)
    theirs = ref.library_metrics(lists, targets, 3)
    assert ours == pytest.approx({"hr@3": 0.75, "ndcg@3": want_ndcg})
    assert theirs == pytest.approx(ours, abs=5e-5)  # the library rounds to four decimals
    assert ref.our_metrics(lists, targets, 1) == pytest.approx({"hr@1": 0.25, "ndcg@1": 0.25})


def test_top_lists_never_return_history_or_padding() -> None:
    import argparse

    cfg = argparse.Namespace(dim=8, max_len=5, dropout=0.0, blocks=1, heads=1)
    model = ref.build_model(12, cfg)
    histories = [[1, 2, 3], [4], [5, 6, 7, 8, 9, 10, 11]]
    top = ref.top_lists(model, histories, 12, 5, 5, batch=2)  # batches of 2 and a lone row
    assert top.shape == (3, 5)
    for row, history in zip(top, histories):
        assert ref.PADDING not in row and not set(row) & set(history) and len(set(row)) == 5


def test_one_epoch_on_a_tiny_project_writes_results_and_block(tmp_path: Path) -> None:
    tiny_project(tmp_path / "root")
    results, markdown = tmp_path / "results.json", tmp_path / "BENCHMARKS.md"
    args = ["--root", str(tmp_path / "root"), "--label", "tiny", "--work", str(tmp_path / "export"),
            "--seeds", "3", "--max-epochs", "1", "--max-len", "10", "--dim", "8", "--batch-size", "16",
            "--results", str(results), "--markdown", str(markdown)]
    assert ref.main(args) == 0
    run = json.loads(results.read_text())["runs"]["tiny"]
    seed = run["seeds"]["3"]
    assert seed["epochs"] == 1 and seed["n"] == len(pd.read_parquet(tmp_path / "export" / "cases.parquet")
                                                   .query("split == 'test'"))
    assert seed["library"] == pytest.approx(seed["ours"], abs=5e-5)
    block = markdown.read_text()
    assert "<!-- library-reference:start -->" in block and "--root ROOT" in block
    assert str(tmp_path) not in block  # no path of this workspace in a shared file
    assert seed["device"] == "cpu" and "trained on" not in block
    # a seed trained off the CPU (--device cuda) says so on the block's machine line
    stored = json.loads(results.read_text())
    stored["runs"]["tiny"]["seeds"]["3"]["device"] = "cuda:0"
    assert "trained on cuda:0" in ref.render(stored, results.parent)


def test_seeds_trained_by_separate_processes_share_one_run(tmp_path: Path) -> None:
    """Seeds run one a process (side by side on a small machine) merge into one run whose command remakes
    them all; a seed trained under other settings starts the run afresh."""
    tiny_project(tmp_path / "root")
    results = tmp_path / "results.json"
    common = ["--root", str(tmp_path / "root"), "--label", "tiny", "--work", str(tmp_path / "export"),
              "--max-epochs", "1", "--max-len", "10", "--dim", "8", "--batch-size", "16",
              "--results", str(results), "--markdown", str(tmp_path / "BENCHMARKS.md")]
    assert ref.main([*common, "--seeds", "5"]) == 0
    assert ref.main([*common, "--seeds", "3"]) == 0
    run = json.loads(results.read_text())["runs"]["tiny"]
    assert set(run["seeds"]) == {"3", "5"}
    assert "--seeds 3 5" in run["command"] and "--max-epochs 1" in run["command"]
    assert ref.main([*common, "--seeds", "5", "--dim", "4"]) == 0  # another width: seed 3 does not belong
    assert set(json.loads(results.read_text())["runs"]["tiny"]["seeds"]) == {"5"}


def test_seeds_command_replaces_the_seed_list_wherever_it_sits() -> None:
    assert ref.seeds_command("python s.py --seeds 12 --label x", ["13", "11", "12"]) == \
        "python s.py --seeds 11 12 13 --label x"
    assert ref.seeds_command("python s.py --label x", ["2"]) == "python s.py --label x --seeds 2"


def test_an_interrupted_seed_resumes_to_what_an_uninterrupted_one_draws(tmp_path: Path) -> None:
    """A seed stopped after epoch 1 and run again goes on from its checkpoint and ends where a seed trained
    in one go ends: same curve, same test lists' figures."""
    tiny_project(tmp_path / "root")
    items = pd.read_parquet(tmp_path / "root" / "data" / "canonical" / "items.parquet")["item_id"].astype(str)
    cfg = ref.parse_args(["--max-epochs", "2", "--max-len", "10", "--dim", "8", "--batch-size", "16",
                          "--patience", "5"])
    fingerprint = {"settings": "same", "export": "same"}

    def run(folder: str, max_epochs: int) -> dict:
        work = tmp_path / folder
        ref.export_split(tmp_path / "root", work)
        cfg.max_epochs = max_epochs
        return ref.train_and_score(work, list(items), cfg, 7, fingerprint)

    whole = run("whole", 2)
    run("split", 1)  # the "interruption": its checkpoint stays after epoch 1
    resumed = run("split", 2)
    assert [c["epoch"] for c in resumed["curve"]] == [1, 2]
    assert resumed["curve"] == whole["curve"]
    assert resumed["ours"] == whole["ours"]
    # another fingerprint (other settings or export) does not resume: it trains from epoch 1
    fingerprint["settings"] = "other"
    cfg.max_epochs = 1
    assert len(ref.train_and_score(tmp_path / "split", list(items), cfg, 7, fingerprint)["curve"]) == 1
