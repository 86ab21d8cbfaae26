"""params.yaml loading: every section builds, and bad values fail with the key's dotted name."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from unigrec.config import ConfigError, load_params, load_section, params_from_dict

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_project_params_load():
    params = load_params(ROOT / "params.yaml")
    assert params.ingest.source == "movielens-100k"
    assert params.split.n_negatives == 99


def test_unknown_key_is_named(raw):
    bad = copy.deepcopy(raw)
    bad["split"]["n_negativs"] = 5
    with pytest.raises(ConfigError, match=r"params\.split: unknown key\(s\) n_negativs"):
        params_from_dict(bad)


def test_missing_key_is_named(raw):
    bad = copy.deepcopy(raw)
    del bad["split"]["bm25"]["k1"]
    with pytest.raises(ConfigError, match=r"params\.split\.bm25\.k1: missing"):
        params_from_dict(bad)


def test_wrong_type_and_bad_choice_are_named(raw):
    bad = copy.deepcopy(raw)
    bad["split"]["seed"] = "forty-two"
    with pytest.raises(ConfigError, match=r"params\.split\.seed: 'forty-two'"):
        params_from_dict(bad)
    bad = copy.deepcopy(raw)
    bad["ingest"]["source"] = "netflix"
    with pytest.raises(ConfigError, match=r"params\.ingest\.source: 'netflix' is not a valid choice"):
        params_from_dict(bad)


def test_bool_is_not_an_int(raw):
    bad = copy.deepcopy(raw)
    bad["split"]["n_negatives"] = True
    with pytest.raises(ConfigError, match="n_negatives"):
        params_from_dict(bad)


def test_int_accepted_where_float_expected(raw):
    ok = copy.deepcopy(raw)
    ok["ingest"]["label_threshold"] = 4
    assert params_from_dict(ok).ingest.label_threshold == 4.0


def test_load_section_reads_only_its_own_section(tmp_path, raw):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"split": raw["split"]}))
    assert load_section("split", tmp_path / "params.yaml").seed == raw["split"]["seed"]
    with pytest.raises(ConfigError, match=r"params\.ingest: missing"):
        load_section("ingest", tmp_path / "params.yaml")


def test_epoch_users_may_be_null_for_every_validation_prompt(raw):
    # null scores every validation prompt each epoch (cap_per_stream keeps them all)
    ok = copy.deepcopy(raw)
    ok["train"]["eval"]["epoch_users"] = None
    assert params_from_dict(ok).train.eval.epoch_users is None
