"""The CLI's argument errors (issue 40, defects 4 and 5): one line, exit status 2, no traceback, and every
argument checked before a model loads. ``_serving_model`` is replaced by a stand-in: an error that shows
must come from the arguments, never from loading a model."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from unigrec import cli


class FakeModel:
    """Answers ``predict`` with k items per request, like the real Recommender's frame."""

    def __init__(self) -> None:
        self.requests: pd.DataFrame | None = None

    def predict(self, requests: pd.DataFrame, k: int) -> pd.DataFrame:
        self.requests = requests
        rows = [(r, rank, f"i{rank}", 1.0 / (rank + 1)) for r in range(len(requests)) for rank in range(k)]
        return pd.DataFrame(rows, columns=["request", "rank", "item_id", "score"])

    def title(self, item_id: str) -> str:
        return f"title of {item_id}"

    def knows_user(self, user: str) -> bool:
        return True


@pytest.fixture()
def no_model(monkeypatch):
    """Loading a model is a test failure: every argument error must show before it."""

    def boom(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(cli, "_serving_model", boom)


@pytest.fixture()
def fake_model(monkeypatch) -> FakeModel:
    model = FakeModel()
    monkeypatch.setattr(cli, "_serving_model", lambda *args, **kwargs: model)
    return model


def _error(caplog, argv: list[str]) -> str:
    """Run the CLI, expect exit status 2 and return its one error line."""
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="unigrec"):
        assert cli.main(argv) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    return errors[0]


def _recommend(tmp_path: Path, users: Path, output: str = "out.parquet") -> list[str]:
    return ["recommend", "--root", str(tmp_path), "--users-file", str(users), "--output", str(tmp_path / output)]


# --------------------------------------------------------------------------- defect 4: strict users file
@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        ("42\n42.0\n", 2, "looks like a number written as a float"),
        ("1\n\n3 4\n", 3, "blanks or control characters"),
        ("1\n1e3\n", 2, "looks like a number written as a float"),
        ("7\nNaN\n", 2, "spells a missing value"),
        ("user_id\n1\n", 1, "a header line"),
        ("1\n\xff\n", 2, "not UTF-8 text (byte 0xff)"),
    ],
)
def test_bad_users_file_line_is_named_before_the_model_loads(tmp_path, caplog, no_model, content, line, reason):
    users = tmp_path / "users.txt"
    users.write_bytes(content.encode("latin-1"))
    message = _error(caplog, _recommend(tmp_path, users))
    assert message.startswith(f"{users}:{line}: ") and reason in message, message
    assert not (tmp_path / "out.parquet").exists()


def test_users_csv_bad_row_and_missing_column(tmp_path, caplog, no_model):
    users = tmp_path / "users.csv"
    users.write_text("user_id,segment\n1,a\n42.0,b\n", encoding="utf-8")
    assert _error(caplog, _recommend(tmp_path, users)).startswith(f"{users}:3: '42.0' looks like a number")
    users.write_text("user_id,segment\n1,a\n2\n", encoding="utf-8")
    assert _error(caplog, _recommend(tmp_path, users)) == f"{users}:3: 1 field(s), the header has 2"
    users.write_text("uid,segment\n1,a\n", encoding="utf-8")
    assert _error(caplog, _recommend(tmp_path, users)) == (
        f"{users}:1: no user_id column in the header (found 'uid', 'segment')"
    )


def test_users_parquet_float_ids_and_nulls_are_refused(tmp_path, caplog, no_model):
    users = tmp_path / "users.parquet"
    pd.DataFrame({"user_id": [42.0, 7.0]}).to_parquet(users)
    assert "holds floats" in _error(caplog, _recommend(tmp_path, users))
    pd.DataFrame({"user_id": ["1", None]}).to_parquet(users)
    assert _error(caplog, _recommend(tmp_path, users)) == f"{users}:row 2: missing user id"
    pd.DataFrame({"uid": ["1"]}).to_parquet(users)
    assert _error(caplog, _recommend(tmp_path, users)) == f"{users}: no user_id column (found uid)"


def test_duplicate_users_are_served_once_with_a_notice(tmp_path, capsys, fake_model):
    users = tmp_path / "users.txt"
    users.write_text("7\n 3\n\n7\n3\n9\n", encoding="utf-8")
    assert cli.main([*_recommend(tmp_path, users), "--k", "2"]) == 0
    assert fake_model.requests is not None and fake_model.requests["user_id"].tolist() == ["7", "3", "9"]
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["user_id"].tolist() == ["7", "7", "3", "3", "9", "9"]
    err = capsys.readouterr().err
    assert "2 duplicate user id(s) skipped" in err and "'7' at line 4, first at line 1" in err


def test_users_csv_and_integer_parquet_are_read(tmp_path, fake_model):
    csv = tmp_path / "users.csv"
    csv.write_text("segment,user_id\na,5\nb,A12\n", encoding="utf-8")
    assert cli.main(_recommend(tmp_path, csv)) == 0
    assert fake_model.requests["user_id"].tolist() == ["5", "A12"]
    parquet = tmp_path / "users.parquet"
    pd.DataFrame({"user_id": [11, 4]}).to_parquet(parquet)
    assert cli.main(_recommend(tmp_path, parquet)) == 0
    assert fake_model.requests["user_id"].tolist() == ["11", "4"]


# --------------------------------------------------------------------------- defect 5: one-line errors
def test_missing_users_file_and_folder_output_fail_before_the_model(tmp_path, caplog, no_model):
    assert _error(caplog, _recommend(tmp_path, tmp_path / "nope.txt")) == f"{tmp_path / 'nope.txt'}: users file not found"
    users = tmp_path / "users.txt"
    users.write_text("1\n", encoding="utf-8")
    (tmp_path / "out").mkdir()
    assert "--output" in _error(caplog, _recommend(tmp_path, users, output="out")) and "is a folder" in caplog.text
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    message = _error(caplog, _recommend(tmp_path, users, output="afile/r.parquet"))
    assert message == f"--output {tmp_path / 'afile/r.parquet'}: {tmp_path / 'afile'} is a file, not a folder"


def test_validate_report_dir_that_is_a_file(tmp_path, caplog):
    (tmp_path / "report").write_text("x", encoding="utf-8")
    message = _error(caplog, ["validate", "--report-dir", str(tmp_path / "report"), str(tmp_path)])
    assert message == f"--report-dir {tmp_path / 'report'}: {tmp_path / 'report'} is a file, not a folder"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "params file not found"),
        ("ingest: [1\n", "line 2, column 1: not valid YAML"),
        ("- ingest\n- train\n", "expected a mapping in params.yaml's shape (section: keys), got a list"),
        ("just words\n", "got a str"),
    ],
)
def test_bad_params_file_is_one_line(tmp_path, caplog, content, reason):
    params = tmp_path / "p.yaml"
    if content is not None:
        params.write_text(content, encoding="utf-8")
    message = _error(caplog, ["stage", "ingest", "--root", str(tmp_path), "--params", "p.yaml"])
    assert message.startswith(f"{params}:") and reason in message, message


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "--query", "sci-fi \udcff\udcfe"],
        ["recommend", "--user", "\udcff"],
    ],
)
def test_undecodable_argument_bytes_are_named(tmp_path, caplog, no_model, argv):
    message = _error(caplog, [*argv, "--root", str(tmp_path)])
    assert message.startswith(f"{argv[1]}: not valid UTF-8 text (byte 0xff at character ")


def test_cli_process_with_non_utf8_query_prints_one_line(tmp_path):
    """As a user runs it: raw bytes in argv, a real process, no traceback on stderr."""
    exe = Path(sys.executable).with_name("unigrec")
    env = {**os.environ, "UNIGREC_LOG_LEVEL": "INFO"}
    users = tmp_path / "users.txt"
    users.write_text("1\n42.0\n", encoding="utf-8")
    for argv in (
        [b"search", b"--root", os.fsencode(tmp_path), b"--query", b"caf\xe9"],
        [b"recommend", b"--root", os.fsencode(tmp_path), b"--users-file", os.fsencode(users), b"--output",
         os.fsencode(tmp_path / "o.parquet")],
    ):
        done = subprocess.run([os.fsencode(exe), *argv], check=False, capture_output=True, env=env, timeout=120)
        err = done.stderr.decode("utf-8", "replace")
        assert done.returncode == 2 and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1 and "ERROR" in err, err


def test_model_dir_without_a_model_is_one_line(tmp_path, caplog):
    """--model-dir takes any folder: one without the model's files is named, not a FileNotFoundError."""
    from support import REPO

    message = _error(caplog, ["recommend", "--root", str(REPO), "--user", "1", "--model-dir", str(tmp_path)])
    assert message == f"{tmp_path}: not a unigrec model folder (no model.json, item_codes.npz, model.pt)"


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["recommend", "--k", "abc"], "unigrec recommend: error: argument --k: invalid int value: 'abc'"),
        (["search", "--k", "3"], "unigrec search: error: the following arguments are required: --query"),
        (["bogus"], "unigrec: error: argument command: invalid choice: 'bogus'"),
    ],
)
def test_usage_errors_are_one_line_with_status_2(capsys, argv, reason):
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    err = capsys.readouterr().err
    assert caught.value.code == 2 and err.startswith(reason) and len(err.strip().splitlines()) == 1, err
    assert err.rstrip().endswith("--help)")
