"""params.yaml loading: every section builds, and bad values fail with the key's dotted name."""

from __future__ import annotations

import copy

import pytest
import yaml
from support import REPO

from unigrec.config import ConfigError, load_params, load_section, params_from_dict

ROOT = REPO


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


def test_small_floats_written_by_dvc_read_back_as_floats(tmp_path):
    """DVC's writer (``dvc exp run -S``, ``unigrec run --set``) puts 1e-5 down as ``1e-05``, which YAML 1.1
    (PyYAML's default) reads as a string; params are read as YAML 1.2, as DVC reads them."""
    import shutil

    from unigrec.pipeline import apply_param_overrides

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    apply_param_overrides(tmp_path, ["train.optim.lr=0.00001", "identifiers.collaborative.l2=2E-7"])
    text = (tmp_path / "params.yaml").read_text()
    assert "lr: 1e-05" in text  # what DVC writes
    train = load_section("train", tmp_path / "params.yaml")
    assert train.optim.lr == pytest.approx(1e-5)
    assert load_section("identifiers", tmp_path / "params.yaml").collaborative.l2 == pytest.approx(2e-7)
    assert load_section("ingest", tmp_path / "params.yaml").queries.seed == 13  # ints stay ints


def test_retrieval_loss_defaults_to_the_sampled_softmax_and_one_overlay_restores_the_full_one(raw):
    """The sampled softmax is the default since 2026-12-07; the rows recorded before it name ``full-softmax``,
    which must give back exactly the earlier default (one key, nothing else moved)."""
    from unigrec.orchestration.experiments import experiment_overrides

    assert params_from_dict(raw).train.retrieval_loss.softmax == "sampled"
    assert experiment_overrides(ROOT, ["full-softmax"]) == ["train.retrieval_loss.softmax='full'"]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("negatives", 0, r"params\.train\.retrieval_loss\.negatives: must be >= 1, got 0"),
    ("temperature", 0.0, r"params\.train\.retrieval_loss\.temperature: must be > 0, got 0\.0"),
    ("temperature", -0.05, r"params\.train\.retrieval_loss\.temperature: must be > 0"),
    ("softmax", "hierarchical", r"retrieval_loss\.softmax: 'hierarchical' is not a valid choice"),
])
def test_retrieval_loss_refuses_bad_values_by_name(raw, key, value, message):
    bad = copy.deepcopy(raw)
    bad["train"]["retrieval_loss"][key] = value
    with pytest.raises(ConfigError, match=message):
        params_from_dict(bad)


def test_retrieval_loss_is_checked_however_the_section_is_loaded(tmp_path, raw):
    bad = copy.deepcopy(raw)
    bad["train"]["retrieval_loss"].update(negatives=-3, temperature=0)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": bad["train"]}))
    both = r"params\.train\.retrieval_loss\.negatives: .*; params\.train\.retrieval_loss\.temperature"
    with pytest.raises(ConfigError, match=both):
        load_section("train", tmp_path / "params.yaml")


def test_atomic_negatives_is_gone_from_the_model_section(raw):
    # replaced by train.retrieval_loss: an old params file fails by name instead of being half-read
    old = copy.deepcopy(raw)
    old["train"]["model"]["atomic_negatives"] = 64
    with pytest.raises(ConfigError, match=r"params\.train\.model: unknown key\(s\) atomic_negatives"):
        params_from_dict(old)


def test_enhancer_defaults_keep_todays_enhancer_with_the_papers_parts_only(raw):
    # off by default; turned on, the new knobs give the enhancer as it was, and (c), (d) (ours) stay off
    enhancer = params_from_dict(raw).train.enhancer
    assert not enhancer.enabled
    assert (enhancer.warmup.epochs, enhancer.warmup.min_valid_auc) == (0, None)
    assert (enhancer.target_weighting, enhancer.candidate_score, enhancer.hard_negatives.into) == (
        "context_mean", "ranking", "contrastive")
    assert enhancer.hard_negatives.enabled and enhancer.extra_targets.enabled
    assert not enhancer.distill.enabled and not enhancer.ranking_negatives.enabled


@pytest.mark.parametrize(("path", "value", "message"), [
    (("warmup", "epochs"), -1, r"params\.train\.enhancer\.warmup\.epochs: must be >= 0, got -1"),
    (("warmup", "min_valid_auc"), 1.5, r"params\.train\.enhancer\.warmup\.min_valid_auc: must be null or in \[0, 1\]"),
    (("warmup", "min_valid_auc"), "high", r"params\.train\.enhancer\.warmup\.min_valid_auc: 'high' is not a valid"),
    (("target_weighting",), "sum", r"params\.train\.enhancer\.target_weighting: 'sum' is not a valid choice"),
    (("candidate_score",), "like", r"params\.train\.enhancer\.candidate_score: 'like' is not a valid choice"),
    (("hard_negatives", "into"), "softmax", r"params\.train\.enhancer\.hard_negatives\.into: 'softmax' is not a valid"),
])
def test_enhancer_paper_form_knobs_refuse_bad_values_by_name(raw, path, value, message):
    bad = copy.deepcopy(raw)
    node = bad["train"]["enhancer"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=message):
        params_from_dict(bad)


def test_hard_negatives_into_the_sampled_softmax_need_the_sampled_softmax(tmp_path, raw):
    paper = copy.deepcopy(raw)
    paper["train"]["enhancer"]["enabled"] = True
    paper["train"]["enhancer"]["hard_negatives"]["into"] = "sampled_softmax"
    paper["train"]["retrieval_loss"]["softmax"] = "full"
    both = (r"params\.train\.enhancer\.hard_negatives\.into: 'sampled_softmax' needs "
            r"train\.retrieval_loss\.softmax: sampled, got 'full'")
    with pytest.raises(ConfigError, match=both):
        params_from_dict(paper)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": paper["train"]}))
    with pytest.raises(ConfigError, match=both):
        load_section("train", tmp_path / "params.yaml")
    paper["train"]["retrieval_loss"]["softmax"] = "sampled"
    assert params_from_dict(paper).train.enhancer.feeds_sampled_softmax
    idle = copy.deepcopy(raw)  # the enhancer off: the choice is moot, nothing to refuse
    idle["train"]["enhancer"]["hard_negatives"]["into"] = "sampled_softmax"
    assert not params_from_dict(idle).train.enhancer.feeds_sampled_softmax


def test_item_event_layout_takes_the_enhancer(raw):
    # the enhancer finds an event by the slot of its first code, which every layout writes (issue 39: the
    # default's layout must be able to carry what the ablation turns on)
    item = copy.deepcopy(raw)
    item["train"]["model"]["event_layout"] = "item"
    assert params_from_dict(item).train.model.event_layout == "item", "ranking stays on: it has its own channel"
    item["train"]["enhancer"]["enabled"] = True
    assert params_from_dict(item).train.enhancer.enabled


def test_past_action_input_is_refused_where_action_tokens_carry_the_actions(raw):
    model = params_from_dict(raw).train.model
    assert (model.event_layout, model.past_action_input) == ("item", True), "the default (params.yaml)"
    item = copy.deepcopy(raw)
    item["train"]["model"].update(event_layout="behaviour_item", past_action_input=True)
    assert params_from_dict(item).train.model.past_action_input is True
    tokens = copy.deepcopy(raw)
    tokens["train"]["model"].update(event_layout="behaviour_item_action", past_action_input=True)
    with pytest.raises(ConfigError, match=r"train\.model\.past_action_input: the 'behaviour_item_action' layout"):
        params_from_dict(tokens)


def test_sasrec_early_stopping_refuses_bad_values_by_name(raw):
    bad = copy.deepcopy(raw)
    bad["baselines"]["sasrec"].update(patience=0, monitor_k=0)
    with pytest.raises(ConfigError, match=r"baselines\.sasrec\.patience: must be null or >= 1, got 0; "
                                          r"params\.baselines\.sasrec\.monitor_k: must be >= 1"):
        params_from_dict(bad)
    # the IDs' sequential source trains fixed epochs: it has no validation monitor to stop on
    ids = copy.deepcopy(raw)
    ids["identifiers"]["collaborative"]["sasrec"]["patience"] = 10
    with pytest.raises(ConfigError, match=r"identifiers\.collaborative\.sasrec\.patience: must be null"):
        params_from_dict(ids)
