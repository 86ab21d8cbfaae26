"""Data contracts: every kind of broken input is caught and named, valid data passes, the stage stops the
pipeline with the full diagnosis, and the CLI exits non-zero on bad data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from support import REPO
from support.contract_fixtures import BROKEN_CASES, BrokenCase, valid_tables, write_tables
from support.queries import query_config
from support.runtime import runtime_config

from unigrec.cli import main
from unigrec.config import IngestConfig, ParquetSourceConfig, ValidateConfig
from unigrec.contracts.definitions import ContractDefinitionError
from unigrec.contracts.expectations import resolve_suite_parameters
from unigrec.contracts.runner import validate_paths, validate_tables
from unigrec.errors import ContractViolation
from unigrec.paths import Layout
from unigrec.stages import validate as validate_stage

CONTRACTS = REPO / "data_contracts"
SHARED_ML100K = REPO.parent / "shared" / "data" / "ml-100k"


@pytest.fixture
def cfg() -> ValidateConfig:
    return ValidateConfig(contracts_dir=str(CONTRACTS), max_examples=3)


def _matching(report, case: BrokenCase):
    return [
        f
        for f in report.failures
        if f.table == case.table and f.column == case.column and f.rule.startswith(case.rule)
    ]


# --------------------------------------------------------------------------- valid data
def test_valid_tables_pass(cfg):
    report = validate_tables(valid_tables(), cfg)
    assert report.success, report.describe_failures()
    assert report.failures == []
    assert report.row_counts == {"items": 4, "interactions": 10, "searches": 4}
    assert report.checks_run > 40  # pandera + GX + relations all ran, not just one family


def test_valid_folder_passes_and_writes_both_reports(cfg, tmp_path):
    folder = write_tables(valid_tables(), tmp_path / "canonical")
    report = validate_paths([folder], cfg, report_dir=tmp_path / "reports")
    assert report.success, report.describe_failures()
    saved = json.loads((tmp_path / "reports" / "validation.json").read_text())
    assert saved["success"] is True and saved["failures"] == []
    assert saved["row_counts"] == {"items": 4, "interactions": 10, "searches": 4}
    assert "PASSED" in (tmp_path / "reports" / "validation.md").read_text()


def test_files_are_named_by_their_stem(cfg, tmp_path):
    folder = write_tables(valid_tables(), tmp_path)
    report = validate_paths([folder / "items.parquet", folder / "searches.parquet"], cfg)
    assert report.success, report.describe_failures()
    assert set(report.row_counts) == {"items", "searches"}
    # interactions were not given: their rule is skipped and says so, rather than failing or passing silently
    assert any("interactions.item_id -> items.item_id" in s for s in report.skipped)


# --------------------------------------------------------------------------- each kind of breakage
@pytest.mark.parametrize("name", list(BROKEN_CASES))
def test_broken_input_fails_naming_the_rule(cfg, tmp_path, name):
    case = BROKEN_CASES[name]
    report = validate_paths([case.write(tmp_path / name)], cfg)
    assert not report.success
    found = _matching(report, case)
    assert found, (
        f"{name}: expected {case.table}.{case.column} {case.rule}, got:\n{report.describe_failures()}"
    )
    markdown = report.to_markdown()
    assert case.rule in markdown and case.table in markdown
    assert case.rule in report.describe_failures()


def test_at_least_twelve_kinds_of_breakage_are_covered():
    assert len(BROKEN_CASES) >= 12
    assert len({c.rule for c in BROKEN_CASES.values()}) >= 12


def test_row_level_failure_shows_table_column_rule_and_example_rows(cfg):
    tables = valid_tables()
    tables["interactions"].loc[3, "item_id"] = "i999"
    report = validate_tables(tables, cfg)
    (failure,) = report.failures
    assert (failure.table, failure.column, failure.rule, failure.failing_rows) == (
        "interactions",
        "item_id",
        "referential_integrity",
        1,
    )
    assert failure.examples == [
        {"row": 3, "user_id": "u1", "item_id": "i999", "timestamp": 1_600_010_800, "rating": 5.0, "label": 1}
    ]
    assert "| interactions | item_id | referential_integrity | 1 |" in report.to_markdown()
    assert '"item_id": "i999"' in report.to_markdown()


def test_wrong_type_is_reported_not_coerced(cfg):
    tables = valid_tables()
    tables["interactions"]["label"] = tables["interactions"]["label"].astype(np.float64)
    report = validate_tables(tables, cfg)
    dtype = [f for f in report.failures if f.rule == "dtype('int8')"]
    assert dtype and dtype[0].column == "label" and "float64" in dtype[0].detail


def test_all_violations_are_reported_at_once(cfg):
    tables = valid_tables()
    tables["items"].loc[0, "text"] = None  # pandera: not_nullable
    tables["items"]["price"] = 1.0  # pandera: strict columns
    tables["interactions"].loc[0, "label"] = 2  # pandera: isin
    tables["interactions"].loc[1, "rating"] = 9.0  # GX: rating range
    tables["searches"].loc[0, "item_id"] = "ghost"  # relations
    report = validate_tables(tables, cfg)
    got = {(f.table, f.column, f.rule) for f in report.failures}
    assert {
        ("items", "text", "not_nullable"),
        ("items", "price", "column_in_schema"),
        ("interactions", "label", "isin([0, 1])"),
        ("interactions", "rating", "expect_column_values_to_be_between"),
        ("searches", "item_id", "referential_integrity"),
    } <= got
    assert {f.source for f in report.failures} == {"pandera", "great_expectations", "relations"}


def test_examples_are_capped_but_counts_are_not(cfg):
    tables = valid_tables()
    tables["interactions"]["timestamp"] = -np.arange(1, 11, dtype=np.int64)
    report = validate_tables(tables, cfg)
    (negative,) = [f for f in report.failures if f.rule == "greater_than_or_equal_to(0)"]
    assert negative.failing_rows == 10 and len(negative.examples) == cfg.max_examples


def test_a_reading_failure_does_not_stop_the_other_tables(cfg, tmp_path):
    folder = BROKEN_CASES["corrupt_parquet"].write(tmp_path)
    (folder / "items.parquet").unlink()
    report = validate_paths([folder], cfg)
    rules = {(f.table, f.rule) for f in report.failures}
    assert {("interactions", "readable_parquet"), ("items", "table_present")} <= rules
    assert report.row_counts == {"searches": 4}  # still read and checked
    assert any("searches.item_id -> items.item_id" in s for s in report.skipped)


def test_unknown_table_name_is_a_failure(cfg):
    report = validate_tables({"users": pd.DataFrame({"user_id": ["u1"]})}, cfg)
    assert [(f.table, f.rule) for f in report.failures] == [("users", "known_table")]


def test_non_default_index_is_handled(cfg):
    # GX miscounts nulls on a non-default index; the runner must make that irrelevant.
    tables = {name: frame.set_axis(frame.index + 100) for name, frame in valid_tables().items()}
    assert validate_tables(tables, cfg).success


# --------------------------------------------------------------------------- contract definitions
def test_time_bound_is_resolved_at_validation_time():
    assert resolve_suite_parameters({"max_timestamp": {"now_plus_seconds": 86400}, "n": 3}, now=1000.0) == {
        "max_timestamp": 87400,
        "n": 3,
    }
    with pytest.raises(ContractDefinitionError, match="max_timestamp"):
        resolve_suite_parameters({"max_timestamp": "tomorrow"}, now=0.0)


def test_contracts_are_read_from_the_configured_folder(cfg, tmp_path):
    edited = shutil.copytree(CONTRACTS, tmp_path / "contracts", ignore=shutil.ignore_patterns("__pycache__"))
    suite = json.loads((edited / "items.json").read_text())
    suite["expectations"][0]["kwargs"]["min_value"] = 100  # now 4 items are too few
    (edited / "items.json").write_text(json.dumps(suite))
    report = validate_tables(valid_tables(), ValidateConfig(contracts_dir=str(edited), max_examples=3))
    assert [(f.table, f.rule) for f in report.failures] == [("items", "expect_table_row_count_to_be_between")]
    assert not (edited / "__pycache__").exists()  # the folder is a DVC dependency: loading must not touch it


def test_missing_contracts_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ContractDefinitionError, match="validate.contracts_dir"):
        validate_tables(valid_tables(), ValidateConfig(contracts_dir=str(tmp_path / "nope"), max_examples=3))


def test_undeclared_suite_parameter_is_a_clear_error(tmp_path):
    edited = shutil.copytree(CONTRACTS, tmp_path / "contracts", ignore=shutil.ignore_patterns("__pycache__"))
    suite = json.loads((edited / "searches.json").read_text())
    suite["meta"]["parameters"] = {}
    (edited / "searches.json").write_text(json.dumps(suite))
    with pytest.raises(ContractDefinitionError, match="max_timestamp"):
        validate_tables(valid_tables(), ValidateConfig(contracts_dir=str(edited), max_examples=3))


def test_malformed_expectation_is_an_error_not_a_silently_dropped_rule(tmp_path):
    edited = shutil.copytree(CONTRACTS, tmp_path / "contracts", ignore=shutil.ignore_patterns("__pycache__"))
    suite = json.loads((edited / "interactions.json").read_text())
    suite["expectations"].append(
        {"type": "expect_column_values_to_be_betwen", "kwargs": {"column": "rating"}}
    )
    (edited / "interactions.json").write_text(json.dumps(suite))
    with pytest.raises(ContractDefinitionError, match="expect_column_values_to_be_betwen"):
        validate_tables(valid_tables(), ValidateConfig(contracts_dir=str(edited), max_examples=3))


# --------------------------------------------------------------------------- stage and CLI
def test_stage_writes_report_and_raises_with_every_failure(tmp_path):
    layout = Layout(tmp_path)
    tables = valid_tables()
    tables["items"].loc[1, "text"] = ""
    tables["searches"].loc[2, "item_id"] = "ghost"
    write_tables(tables, layout.canonical_dir)
    cfg = ValidateConfig(contracts_dir=str(CONTRACTS), max_examples=2)
    with pytest.raises(ContractViolation) as caught:
        validate_stage.run(cfg, layout)
    message = str(caught.value)
    assert "items.text: not_blank (1 failing row(s))" in message
    assert "searches.item_id: referential_integrity" in message and '"item_id": "ghost"' in message
    saved = json.loads(layout.validation_json.read_text())
    assert saved["success"] is False and saved["n_failures"] == 2
    assert "referential_integrity" in layout.validation_md.read_text()


def test_stage_passes_on_valid_tables_with_contracts_relative_to_root(tmp_path, monkeypatch):
    shutil.copytree(CONTRACTS, tmp_path / "data_contracts", ignore=shutil.ignore_patterns("__pycache__"))
    layout = Layout(tmp_path)
    write_tables(valid_tables(), layout.canonical_dir)
    monkeypatch.chdir(REPO / "tests")  # not the project root: the relative contracts_dir must still resolve
    summary = validate_stage.run(ValidateConfig(contracts_dir="data_contracts", max_examples=5), layout)
    assert summary["row_counts"] == {"items": 4, "interactions": 10, "searches": 4}
    assert json.loads(layout.validation_json.read_text())["success"] is True


def test_cli_validate_exit_status(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # params.yaml's contracts_dir is relative to the project root
    good = write_tables(valid_tables(), tmp_path / "good")
    bad = BROKEN_CASES["dangling_search_item"].write(tmp_path / "bad")
    assert main(["validate", str(good)]) == 0
    assert "PASSED" in capsys.readouterr().out
    assert main(["validate", str(bad), "--report-dir", str(tmp_path / "reports")]) == 1
    out = capsys.readouterr().out
    assert "referential_integrity" in out and "ghost" in out
    assert (tmp_path / "reports" / "validation.md").is_file()


# --------------------------------------------------------------------------- real data
@pytest.mark.skipif(not SHARED_ML100K.is_dir(), reason="shared ml-100k data absent")
def test_real_movielens_100k_passes(cfg, tmp_path):
    from unigrec.stages import ingest

    layout = Layout(tmp_path)
    ingest.run(
        IngestConfig(
            source="movielens-100k",
            path=str(SHARED_ML100K),
            label_threshold=4.0,
            max_users=None,
            queries=query_config(search_fraction=0.25, include_decade=True, seed=13),
            parquet=ParquetSourceConfig(items=None, interactions=None, searches=None, columns={}),
        ),
        layout,
        runtime_config(cache_dir=str(tmp_path / "cache")),
    )
    report = validate_paths([layout.canonical_dir], cfg)
    assert report.success, report.describe_failures()
    assert report.row_counts["items"] == 1682
    assert report.row_counts["interactions"] + report.row_counts["searches"] == 100_000


# --------------------------------------------------------------------------- issue 40: hygiene, duplicates, lengths, path kinds
@pytest.mark.parametrize("spelling", ["", "   ", " 42", "42 ", "nan", "NaN", "None", "null", "NULL", "NA", "n/a", "<NA>"])
def test_an_identifier_that_is_padded_or_spells_a_missing_value_is_refused(cfg, spelling):
    tables = valid_tables()
    tables["interactions"].loc[7, "user_id"] = spelling
    report = validate_tables(tables, cfg)
    failures = [f for f in report.failures if (f.table, f.column) == ("interactions", "user_id")]
    assert failures, f"{spelling!r} passed the contracts"
    assert all(f.failing_rows == 1 and f.examples[0]["row"] == 7 for f in failures)
    assert {f.rule for f in failures} <= {"not_blank", "no_surrounding_blanks", "not_a_missing_value"}


def test_a_real_identifier_that_only_contains_such_letters_passes(cfg):
    tables = valid_tables()
    tables["interactions"]["user_id"] = tables["interactions"]["user_id"].replace({"u1": "nancy", "u2": "4 2"})
    tables["searches"]["user_id"] = tables["searches"]["user_id"].replace({"u1": "nancy", "u2": "4 2"})
    report = validate_tables(tables, cfg)
    assert report.success, report.describe_failures()


def test_a_duplicate_row_is_named_with_the_whole_row(cfg):
    tables = valid_tables()
    tables["searches"] = pd.concat([tables["searches"], tables["searches"].iloc[[1, 1]]], ignore_index=True)
    report = validate_tables(tables, cfg)
    (failure,) = report.failures
    assert (failure.table, failure.column, failure.rule, failure.failing_rows) == (
        "searches", None, "no_duplicate_rows", 2)
    assert failure.examples[0] == {"row": 4, "user_id": "u1", "query": "action thriller", "item_id": "i2",
                                   "timestamp": 1_600_007_200}
    assert "searches: no_duplicate_rows (2 failing row(s))" in report.describe_failures()


def test_the_same_user_and_item_at_another_time_is_no_duplicate(cfg):
    tables = valid_tables()
    again = tables["interactions"].iloc[[0]].assign(timestamp=tables["interactions"]["timestamp"].max() + 60)
    tables["interactions"] = pd.concat([tables["interactions"], again], ignore_index=True)
    assert validate_tables(tables, cfg).success


def test_length_limits_live_in_the_contract_files(cfg, tmp_path):
    edited = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, edited, ignore=shutil.ignore_patterns("__pycache__"))
    spec = json.loads((edited / "items.json").read_text())
    for expectation in spec["expectations"]:
        if expectation["kwargs"].get("column") == "text" and "lengths" in expectation["type"]:
            expectation["kwargs"]["max_value"] = 20
    (edited / "items.json").write_text(json.dumps(spec))
    report = validate_tables(valid_tables(), ValidateConfig(contracts_dir=str(edited), max_examples=3))
    (failure,) = report.failures
    assert (failure.table, failure.column, failure.rule, failure.failing_rows) == (
        "items", "text", "expect_column_value_lengths_to_be_between", 3)


@pytest.mark.parametrize(("make", "words"), [
    (lambda p: p.mkdir(), "is a folder"),
    (lambda p: p.symlink_to(p.name), "is a symlink loop"),
    (lambda p: p.symlink_to("elsewhere.parquet"), "is a symlink to elsewhere.parquet, which does not exist"),
    (lambda p: __import__("os").mkfifo(p), "is a named pipe"),
])
def test_a_table_path_that_is_not_a_file_says_what_it_is(cfg, tmp_path, make, words):
    folder = write_tables(valid_tables(), tmp_path / "canonical")
    (folder / "items.parquet").unlink()
    make(folder / "items.parquet")
    report = validate_paths([folder], cfg)
    (failure,) = [f for f in report.failures if f.table == "items"]
    assert words in failure.detail and "does not exist" not in failure.detail.replace(", which does not exist", "")
    assert failure.rule == ("table_present" if "symlink to" in words else "table_is_a_file")


def test_a_path_given_on_the_command_line_that_loops_is_named(cfg, tmp_path):
    loop = tmp_path / "canonical"
    loop.symlink_to("canonical")
    (failure,) = validate_paths([loop], cfg).failures
    assert failure.rule == "table_is_a_file" and "symlink loop" in failure.detail
