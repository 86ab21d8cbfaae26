"""The register stage when the split changed under the champion: the champion is evaluated on the new
data and re-registered holding the alias, so the gate compares the candidate with it instead of giving
up; a champion that cannot be evaluated stays champion, untouched."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from support.evaluate_project import ROOT, evaluate_cfg, evaluate_runtime, tiny_project, write_candidates

from unigrec.config import load_section

pytest.importorskip("mlflow")


@pytest.fixture(autouse=True)
def _no_inherited_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _as_yaml(value):
    if isinstance(value, dict):
        return {k: _as_yaml(v) for k, v in value.items()}
    return list(value) if isinstance(value, tuple) else value


@pytest.fixture
def project(tmp_path):
    """The tiny project with the evaluate params the tests evaluate with also in its params.yaml, which
    is where the register stage's re-evaluation reads them."""
    layout = tiny_project(tmp_path)
    eval_cfg = evaluate_cfg(baselines=())
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["evaluate"] = _as_yaml(dataclasses.asdict(eval_cfg))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    register_cfg = dataclasses.replace(load_section("register", ROOT / "params.yaml"), requirements=("pandas",))
    return layout, eval_cfg, register_cfg


def _new_test_lists(layout, eval_cfg, seed: int) -> None:
    """Other 1+9 lists (new evaluation data), then the evaluate stage on them, as `dvc repro` would."""
    from unigrec.stages.evaluate import run as evaluate

    write_candidates(layout, seed=seed)
    evaluate(eval_cfg, layout, evaluate_runtime())


def _client(layout):
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{layout.root.resolve() / 'mlflow.db'}")


def test_a_champion_from_other_data_is_evaluated_on_this_data_before_the_gate(project):
    from unigrec.stages.evaluate import run as evaluate
    from unigrec.stages.register import run as register

    layout, eval_cfg, cfg = project
    evaluate(eval_cfg, layout, evaluate_runtime())
    first = register(cfg, layout, evaluate_runtime())
    assert first["promoted"] and first["version"] == 1 and first["champion_reevaluation"] is None

    _new_test_lists(layout, eval_cfg, seed=4)
    second = register(cfg, layout, evaluate_runtime())
    assert second["eval_data_hash"] != first["eval_data_hash"]
    assert second["champion_reevaluation"] == {"of_version": 1, "version": 2, "promoted": True}
    # The candidate is the same untrained model, so on the same data it cannot beat the re-evaluated
    # champion: compared (not "not compared") and kept out.
    assert second["version"] == 3 and not second["promoted"] and second["champion_version"] == 2
    assert "no gate metric improves" in second["reason"]

    client = _client(layout)
    v1, v2, v3 = (client.get_model_version(cfg.model_name, str(v)) for v in (1, 2, 3))
    assert int(client.get_model_version_by_alias(cfg.model_name, cfg.alias).version) == 2
    assert v2.tags["unigrec.reevaluated_from"] == "1"
    assert v2.tags["unigrec.eval_data_hash"] == second["eval_data_hash"]
    assert v2.tags["git_commit"] == v1.tags["git_commit"]  # lineage of the model, carried over
    assert "re-evaluation of champion v1" in v2.tags["unigrec.gate_reason"]
    # Same model, same data, same evaluation code: the re-evaluation reproduces the evaluate stage.
    reevaluated = client.get_run(v2.run_id).data.metrics
    candidate = client.get_run(v3.run_id).data.metrics
    assert {k: v for k, v in reevaluated.items() if k.startswith("test.")} == pytest.approx(
        {k: v for k, v in candidate.items() if k.startswith("test.")}
    )
    # ... and it is not v1's old numbers copied: the 1+9 protocol scores the new lists.
    first_metrics = client.get_run(v1.run_id).data.metrics
    sampled = [k for k in first_metrics if ".sampled." in k]
    assert sampled and any(first_metrics[k] != reevaluated[k] for k in sampled)


def test_a_champion_that_cannot_be_evaluated_stays_champion(project, monkeypatch, caplog):
    from unigrec.evaluate import reevaluate
    from unigrec.stages.evaluate import run as evaluate
    from unigrec.stages.register import run as register

    layout, eval_cfg, cfg = project
    evaluate(eval_cfg, layout, evaluate_runtime())
    register(cfg, layout, evaluate_runtime())

    def broken(*args, **kwargs):
        raise ValueError("model card was written with a different special-token list")

    monkeypatch.setattr(reevaluate, "reevaluate_folder", broken)
    _new_test_lists(layout, eval_cfg, seed=5)
    with caplog.at_level("WARNING"):
        result = register(cfg, layout, evaluate_runtime())
    assert result["champion_reevaluation"] == {
        "of_version": 1,
        "error": "ValueError: model card was written with a different special-token list",
    }
    assert not result["promoted"] and result["champion_version"] == 1 and "not compared" in result["reason"]
    assert "champion v1 could not be evaluated on this data" in caplog.text
    client = _client(layout)
    assert int(client.get_model_version_by_alias(cfg.model_name, cfg.alias).version) == 1
    assert sorted(int(v.version) for v in client.search_model_versions(f"name='{cfg.model_name}'")) == [1, 2]


def test_reevaluation_can_be_turned_off(project):
    from unigrec.stages.evaluate import run as evaluate
    from unigrec.stages.register import run as register

    layout, eval_cfg, cfg = project
    evaluate(eval_cfg, layout, evaluate_runtime())
    register(cfg, layout, evaluate_runtime())
    _new_test_lists(layout, eval_cfg, seed=6)
    result = register(dataclasses.replace(cfg, reevaluate_champion=False), layout, evaluate_runtime())
    assert result["champion_reevaluation"] is None and "not compared" in result["reason"]


def test_a_champion_registered_before_the_gate_read_validation_is_reevaluated_first(project, monkeypatch):
    """Issue 35: a champion whose stored metrics hold no valid.* figures (registered while the gate read
    test.*) is evaluated with this code on this data and re-registered holding the alias; the candidate
    is then compared with it on validation instead of never being compared at all."""
    import json

    from unigrec.registry import register as registry
    from unigrec.stages.evaluate import run as evaluate
    from unigrec.stages.register import run as register

    layout, eval_cfg, cfg = project
    evaluate(eval_cfg, layout, evaluate_runtime())
    current = layout.evaluate_metrics.read_text()
    old = {k: v for k, v in json.loads(current).items() if k != "valid"}  # the metrics file before issue 35
    layout.evaluate_metrics.write_text(json.dumps(old))
    with monkeypatch.context() as patched:  # the gate of that code read test.*: it never checked valid.*
        patched.setattr(registry, "check_gate", lambda gate, metrics: None)
        patched.setattr("unigrec.registry.gate.check_gate", lambda gate, metrics: None)
        first = register(cfg, layout, evaluate_runtime())
    assert first["promoted"] and first["version"] == 1
    client = _client(layout)
    assert not any(k.startswith("valid.") for k in client.get_run(first["run_id"]).data.metrics)

    layout.evaluate_metrics.write_text(current)
    second = register(cfg, layout, evaluate_runtime())
    assert second["eval_data_hash"] == first["eval_data_hash"]  # same data: only the figures are missing
    assert second["champion_reevaluation"] == {"of_version": 1, "version": 2, "promoted": True}
    assert second["version"] == 3 and not second["promoted"] and "no gate metric improves" in second["reason"]
    reevaluated = client.get_run(client.get_model_version(cfg.model_name, "2").run_id).data.metrics
    assert {k: v for k, v in reevaluated.items() if k.startswith("valid.")} == pytest.approx(
        {k: v for k, v in client.get_run(second["run_id"]).data.metrics.items() if k.startswith("valid.")}
    )


def _write_lock(layout, split_params: dict, evaluate_params: dict | None = None) -> None:
    """A dvc.lock as `dvc repro` leaves it, reduced to what the lineage reads: stages' params."""
    stages = {"split": {"cmd": "unigrec stage split", "params": {"params.yaml": {"split": split_params}}}}
    if evaluate_params is not None:
        stages["evaluate"] = {"cmd": "unigrec stage evaluate", "params": {"params.yaml": {"evaluate": evaluate_params}}}
    (layout.root / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}))


@pytest.mark.parametrize("policy", ["promote", "keep"])
def test_a_champion_made_under_another_split_rule_is_not_judged_on_this_split(project, policy):
    """Issue 35 follow-up: `make run` after the split rule changed re-evaluated the old champion on the new
    split, whose validation events it had partly trained on, and kept it on those flattered figures
    (valid search NDCG@10 0.172 vs the new model's 0.149). Now it is neither re-evaluated nor compared, and
    register.gate.on_new_split decides."""
    from unigrec.stages.evaluate import run as evaluate
    from unigrec.stages.register import run as register

    layout, eval_cfg, cfg = project
    cfg = dataclasses.replace(cfg, gate=dataclasses.replace(cfg.gate, on_new_split=policy))
    _write_lock(layout, {"protocol": "per_stream"})
    evaluate(eval_cfg, layout, evaluate_runtime())
    first = register(cfg, layout, evaluate_runtime())
    assert first["promoted"] and first["version"] == 1

    _write_lock(layout, {"protocol": "time_consistent"})
    _new_test_lists(layout, eval_cfg, seed=7)
    second = register(cfg, layout, evaluate_runtime())
    assert second["champion_reevaluation"] == {"of_version": 1, "skipped": "made under other ingest/split params"}
    assert second["version"] == 2 and "not compared" in second["reason"] and "dvc.split.params" in second["reason"]
    assert second["promoted"] is (policy == "promote")
    assert second["champion_version"] == (2 if policy == "promote" else 1)
    client = _client(layout)
    assert sorted(int(v.version) for v in client.search_model_versions(f"name='{cfg.model_name}'")) == [1, 2]


def test_same_split_rule_new_data_still_reevaluates_the_champion(project):
    """Only a changed split rule skips the re-evaluation: new lists under the same rule are judged as before."""
    from unigrec.stages.evaluate import run as evaluate
    from unigrec.stages.register import run as register

    layout, eval_cfg, cfg = project
    _write_lock(layout, {"protocol": "time_consistent"})
    evaluate(eval_cfg, layout, evaluate_runtime())
    register(cfg, layout, evaluate_runtime())
    _new_test_lists(layout, eval_cfg, seed=8)
    second = register(cfg, layout, evaluate_runtime())
    assert second["champion_reevaluation"] == {"of_version": 1, "version": 2, "promoted": True}


def test_a_champion_evaluated_under_other_evaluate_params_is_reevaluated_once(project):
    """A change of evaluate params alone (say, how the served pipeline's BM25 reads a query) leaves every
    gate figure tied, so the champion kept serving the old settings (issue 41's reader never reached v5).
    Now the champion is re-evaluated under the new params and re-registered holding the alias, once: the
    re-evaluated version records the evaluate params it was evaluated with."""
    from unigrec.stages.evaluate import run as evaluate
    from unigrec.stages.register import run as register

    layout, eval_cfg, cfg = project
    _write_lock(layout, {"protocol": "time_consistent"}, {"lexical": {"normalise_queries": False}})
    evaluate(eval_cfg, layout, evaluate_runtime())
    assert register(cfg, layout, evaluate_runtime())["version"] == 1

    _write_lock(layout, {"protocol": "time_consistent"}, {"lexical": {"normalise_queries": True}})
    second = register(cfg, layout, evaluate_runtime())
    assert second["champion_reevaluation"] == {"of_version": 1, "version": 2, "promoted": True}
    assert second["version"] == 3 and not second["promoted"] and second["champion_version"] == 2
    v2 = _client(layout).get_model_version(cfg.model_name, "2")
    assert v2.tags["dvc.evaluate.params"] != _client(layout).get_model_version(cfg.model_name, "1").tags[
        "dvc.evaluate.params"]

    third = register(cfg, layout, evaluate_runtime())  # same params again: nothing to re-evaluate
    assert third["champion_reevaluation"] is None and third["champion_version"] == 2
