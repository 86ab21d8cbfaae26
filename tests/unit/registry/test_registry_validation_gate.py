"""The champion gate on validation figures through a real MLflow store (issue 35): what it keeps and
promotes, and a champion registered before the gate read validation. Apart from test_registry.py so the
mutation tool's per-mutant selection (tools/mutation.py, group gate) stays free of MLflow registrations."""

from __future__ import annotations

import dataclasses

import pytest

from tests.unit.registry.test_registry import (  # noqa: F401 (an autouse fixture)
    EXAMPLE,
    _client,
    _no_inherited_tracking_uri,
    evaluation,
    make_model_dir,
    nested_metrics,
    project_gate,
    register_cfg,
)
from unigrec.registry.gate import flatten_metrics, mlflow_metric_key
from unigrec.stages.register import reevaluation_reason

pytest.importorskip("mlflow")


def test_the_registry_keeps_a_champion_that_is_better_on_validation_only(tmp_path):
    """Issue 35 through a real store and the project's gate: a candidate better on test but worse on
    validation is registered (its test figures stored) and not promoted; one better on validation is."""
    from unigrec.registry.register import Candidate, register_candidate

    cfg = dataclasses.replace(register_cfg(), gate=project_gate())

    def register_version(tag: str, valid: tuple[float, float], test: tuple[float, float]):
        candidate = Candidate(make_model_dir(tmp_path / tag, tag), flatten_metrics(evaluation(valid, test)), "d", EXAMPLE)
        return register_candidate(cfg, candidate, tmp_path)

    assert register_version("champion", (0.30, 0.30), (0.20, 0.20)).promoted
    better_on_test = register_version("test", (0.29, 0.30), (0.40, 0.40))
    assert not better_on_test.promoted and better_on_test.champion_version == 1
    assert "worse on valid.rec.full.ndcg@10 0.2900 vs 0.3000" in better_on_test.reason
    better_on_valid = register_version("valid", (0.31, 0.30), (0.10, 0.10))
    assert better_on_valid.promoted and better_on_valid.champion_version == 3
    client = _client(tmp_path)
    assert int(client.get_model_version_by_alias("tiny", "champion").version) == 3
    stored = client.get_run(client.get_model_version("tiny", "2").run_id).data.metrics
    assert stored["test.rec.full.ndcg_at_10"] == pytest.approx(0.40)


def test_a_champion_registered_without_validation_figures_is_not_compared(tmp_path, monkeypatch):
    """A version registered before the gate read validation figures holds none: the gate says so (and how
    to fix it) instead of failing or promoting; the register stage re-evaluates such a champion first
    (tests/integration/test_champion_reevaluation.py)."""
    from unigrec.registry import register as registry
    from unigrec.registry.register import Candidate, current_champion, register_candidate

    cfg = register_cfg()
    old = {"test": evaluation((0.3, 0.3), (0.3, 0.3))["test"]}  # what the evaluate stage wrote before
    with monkeypatch.context() as patched:
        patched.setattr(registry, "check_gate", lambda gate, metrics: None)  # the old gate read test.*
        register_candidate(cfg, Candidate(make_model_dir(tmp_path / "old", "old"), flatten_metrics(old), "d", EXAMPLE),
                           tmp_path)
    champion = current_champion(cfg, tmp_path)
    assert champion is not None and "test.rec.full.ndcg_at_10" in champion.metrics
    new = Candidate(make_model_dir(tmp_path / "new", "new"), flatten_metrics(nested_metrics(0.9, 0.9)), "d", EXAMPLE)
    assert reevaluation_reason(cfg, champion, new) == (
        "has no value for gate metric(s) ['valid.rec.full.ndcg@10', 'valid.search.full.ndcg@10']"
    )
    result = register_candidate(cfg, new, tmp_path)
    assert not result.promoted and result.champion_version == 1
    assert result.reason == (
        "not compared: champion v1 has no value for gate metric(s) ['valid.rec.full.ndcg@10', "
        "'valid.search.full.ndcg@10'] (registered before they existed? register.reevaluate_champion: true "
        "evaluates it with this code first; or move the alias by hand)"
    )
    # a champion holding validation figures measured on the same data needs no re-evaluation
    compared = dataclasses.replace(champion, metrics={mlflow_metric_key(m): 0.1 for m in cfg.gate.metrics})
    assert reevaluation_reason(cfg, compared, new) is None
    other_data = dataclasses.replace(compared, eval_data_hash="0123456789abcdef")
    assert reevaluation_reason(cfg, other_data, new) == "was evaluated on data 0123456789ab, this candidate on d"
