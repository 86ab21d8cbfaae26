"""The champion gate's reasons and improvements: what the suite left open, found by mutation testing
(tools/mutation.py; docs/experiments/2026-12-03-mutation-testing.md names the mutants each test kills).

A decision's ``reason`` is stored on the model version and in metrics/register.json, and ``improvements``
beside it: both are records people read, so their exact text and values are part of the contract."""

from __future__ import annotations

import dataclasses

import pytest

from unigrec.config import ConfigError, GateConfig
from unigrec.errors import UnigrecError
from unigrec.registry.gate import check_gate, gate_decision, short_hash

GATE = GateConfig(metrics=("a", "b"), lower_is_better=(), min_improvement=0.0, max_regression=0.0, on_new_split="promote")
H = "0123456789abcdef"


def test_first_model_reason_and_no_improvements():
    decision = gate_decision(GATE, {"a": 0.1, "b": 0.1}, H, None, None)
    assert decision.reason == "no champion yet: the first registered model becomes champion"
    assert decision.improvements == {}


def test_different_data_names_both_hashes_and_the_default_label():
    decision = gate_decision(GATE, {"a": 0.9, "b": 0.9}, H, {"a": 0.1, "b": 0.1}, "fedcba9876543210")
    assert decision.reason == (
        "not compared: the champion was evaluated on data fedcba987654, this candidate on 0123456789ab; "
        "metrics on different data say nothing about which model is better (register.reevaluate_champion: "
        "true evaluates the champion on this data first; or move the alias by hand)"
    )
    assert decision.improvements == {}
    unrecorded = gate_decision(GATE, {"a": 0.9, "b": 0.9}, H, {"a": 0.1, "b": 0.1}, None)
    assert "was evaluated on data (unrecorded), this candidate on 0123456789ab;" in unrecorded.reason


def test_a_champion_without_a_gate_metric_is_not_compared():
    decision = gate_decision(GATE, {"a": 0.9, "b": 0.9}, H, {"a": 0.1}, H, "v3")
    assert decision.reason == (
        "not compared: v3 has no value for gate metric(s) ['b'] (registered before they existed? "
        "register.reevaluate_champion: true evaluates it with this code first; or move the alias by hand)"
    )
    assert decision.improvements == {}


def test_worse_reason_lists_every_worse_metric_and_keeps_the_gains():
    decision = gate_decision(GATE, {"a": 0.1, "b": 0.2}, H, {"a": 0.3, "b": 0.5}, H, "v3")
    assert decision.reason == "kept v3: worse on a 0.1000 vs 0.3000; b 0.2000 vs 0.5000 (allowed regression 0.0)"
    assert decision.improvements == pytest.approx({"a": -0.2, "b": -0.3})


def test_no_improvement_reason_lists_every_metric_and_keeps_the_gains():
    decision = gate_decision(GATE, {"a": 0.3, "b": 0.5}, H, {"a": 0.3, "b": 0.5}, H, "v3")
    assert decision.reason == (
        "kept v3: no gate metric improves by more than 0.0 (a 0.3000 vs 0.3000; b 0.5000 vs 0.5000)"
    )
    assert decision.improvements == {"a": 0.0, "b": 0.0}


def test_beats_reason_lists_every_better_metric():
    decision = gate_decision(GATE, {"a": 0.4, "b": 0.6}, H, {"a": 0.3, "b": 0.5}, H, "v3")
    assert decision.reason == "beats v3 on a 0.4000 vs 0.3000; b 0.6000 vs 0.5000"


def test_check_gate_errors_say_what_to_fix():
    with pytest.raises(ConfigError, match="^params.register.gate.metrics: name at least one metric to compare "
                                          "models on$"):
        check_gate(GateConfig((), (), 0.0, 0.0, "promote"), {"a": 1.0})
    candidate = {f"m{k:02d}": 0.1 for k in range(25)}
    with pytest.raises(UnigrecError) as error:
        check_gate(GateConfig(("valid.a", "valid.b"), (), 0.0, 0.0, "promote"), candidate)
    known = ", ".join(f"m{k:02d}" for k in range(20))
    assert str(error.value) == (
        f"gate metric(s) ['valid.a', 'valid.b'] are not in the evaluation metrics (known: {known} ...)"
    )


def test_short_hash():
    assert short_hash(None) == short_hash("") == "(unrecorded)"
    assert short_hash("0123456789abcdef") == "0123456789ab"


@pytest.mark.parametrize(
    ("champion", "candidate", "expected"),
    [
        ({"dvc.split.params": "a"}, {"dvc.split.params": "b"}, True),
        ({"dvc.ingest.params": "a", "dvc.split.params": "s"}, {"dvc.ingest.params": "b", "dvc.split.params": "s"}, True),
        ({"dvc.split.params": "a", "dvc.train.params": "x"}, {"dvc.split.params": "a", "dvc.train.params": "y"}, None),
        ({}, {"dvc.split.params": "b"}, None),  # recorded on one side only: no evidence
        ({"dvc.split.params": "a"}, {}, None),
    ],
)
def test_new_split_decision_only_when_both_record_other_split_or_ingest_params(champion, candidate, expected):
    from unigrec.registry.gate import new_split_decision

    for policy in ("promote", "keep"):
        gate = dataclasses.replace(GATE, on_new_split=policy)
        decision = new_split_decision(gate, champion, candidate, "champion v3")
        if expected is None:
            assert decision is None
        else:
            assert decision.promote is (policy == "promote") and decision.improvements == {}
            assert decision.reason.startswith("not compared: champion v3 was made under other")
            assert f"on_new_split: {policy}" in decision.reason
