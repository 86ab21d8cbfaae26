"""Property: the gate never promotes a candidate that is worse on a gate metric.

Random gates (which metrics, which of them lower-is-better, the two tolerances) and random metric dicts for
candidate and champion, on a binary grid so that differences are exact and gains landing exactly on a
tolerance come up often. The decision must equal the rule computed in exact arithmetic: promote iff the
champion was measured on the same data with a finite value for every gate metric, no gate metric gets
worse by more than ``max_regression`` and some improves by more than ``min_improvement``, "better" meaning
smaller for the ``lower_is_better`` ones; metrics outside the gate never matter (test figures among them:
the gate reads only the ``valid`` block, and ``check_gate`` refuses a gate naming anything else).
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.strategies import grid_floats

from unigrec.config import ConfigError, GateConfig
from unigrec.errors import UnigrecError
from unigrec.registry.gate import check_gate, gate_decision

GATE_NAMES = ("valid.rec.full.ndcg@10", "valid.search.full.ndcg@10", "valid.rec.full.mrr", "valid.ranking.logloss")
NAMES = (*GATE_NAMES, "test.rec.full.ndcg@10", "test.search.full.ndcg@10", "seconds")  # what a metrics file holds
VALUES = grid_floats(0.0, 1.0)
DELTAS = grid_floats(-0.125, 0.125)  # champion minus candidate: ties and gains on either side of a tolerance
TOLERANCES = st.integers(0, 3).flatmap(lambda zero: st.just(0.0) if zero == 0 else grid_floats(0.0, 0.125))


@st.composite
def gates(draw) -> GateConfig:
    metrics = draw(st.lists(st.sampled_from(GATE_NAMES), min_size=1, max_size=4, unique=True))
    lower = draw(st.lists(st.sampled_from(metrics), unique=True))
    return GateConfig(tuple(metrics), tuple(lower), draw(TOLERANCES), draw(TOLERANCES), "promote")


@st.composite
def champions(draw, gate: GateConfig, candidate: dict[str, float]) -> dict[str, float]:
    """Values near the candidate's (small gains and losses, exact ties, a few far off); in one draw of
    five a gate metric missing or not finite."""
    out = {}
    for name, value in candidate.items():
        out[name] = draw(VALUES) if draw(st.integers(0, 4)) == 0 else value + draw(DELTAS)
    if draw(st.integers(0, 4)) == 0:
        broken = draw(st.sampled_from(gate.metrics))
        if draw(st.booleans()):
            del out[broken]
        else:
            out[broken] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    return out


def _exact_rule(gate: GateConfig, candidate: dict, champion: dict | None, same_data: bool) -> bool:
    if champion is None:
        return True
    if not same_data or any(not math.isfinite(champion.get(m, math.nan)) for m in gate.metrics):
        return False
    gains = {m: (Fraction(candidate[m]) - Fraction(champion[m])) * (-1 if m in gate.lower_is_better else 1)
             for m in gate.metrics}
    regressed = any(g < -Fraction(gate.max_regression) for g in gains.values())
    improved = any(g > Fraction(gate.min_improvement) for g in gains.values())
    return improved and not regressed


@settings(max_examples=300, deadline=None)
@given(gate=gates(), data=st.data())
def test_the_gate_promotes_exactly_when_no_gate_metric_regresses_and_one_improves(gate, data):
    candidate = data.draw(st.fixed_dictionaries({n: VALUES for n in NAMES}), label="candidate")
    first = data.draw(st.integers(0, 7), label="no champion draw") == 0
    champion = None if first else data.draw(champions(gate, candidate), label="champion")
    same_data = data.draw(st.integers(0, 9), label="data hash draw") > 0
    decision = gate_decision(gate, candidate, "h1", champion, "h1" if same_data else "h2")

    assert decision.promote is _exact_rule(gate, candidate, champion, same_data)
    if decision.promote and champion is not None:
        for m in gate.metrics:
            worse_by = champion[m] - candidate[m] if m not in gate.lower_is_better else candidate[m] - champion[m]
            assert worse_by <= gate.max_regression, f"promoted although {m} is worse by {worse_by}"
            if gate.max_regression == 0:
                assert worse_by <= 0
        assert any(decision.improvements[m] > gate.min_improvement for m in gate.metrics)
    if decision.improvements:
        assert set(decision.improvements) == set(gate.metrics)


@settings(max_examples=150, deadline=None)
@given(gate=gates(), data=st.data())
def test_check_gate_refuses_exactly_the_candidates_the_gate_cannot_judge(gate, data):
    stray = data.draw(st.lists(st.sampled_from(NAMES), max_size=1), label="stray lower_is_better")
    outside = data.draw(st.lists(st.sampled_from(NAMES[len(GATE_NAMES):]), max_size=1), label="non-validation")
    gate = GateConfig(
        (*gate.metrics, *outside), (*gate.lower_is_better, *stray), gate.min_improvement, gate.max_regression, "promote"
    )
    candidate = data.draw(
        st.dictionaries(st.sampled_from(NAMES), st.one_of(VALUES, st.sampled_from([math.nan, math.inf]))),
        label="candidate",
    )
    if outside:
        with pytest.raises(ConfigError, match=r"^params\.register\.gate\.metrics: .* are not validation figures"):
            check_gate(gate, candidate)
    elif set(gate.lower_is_better) - set(gate.metrics):
        with pytest.raises(ConfigError, match="lower_is_better"):
            check_gate(gate, candidate)
    elif any(m not in candidate for m in gate.metrics):
        with pytest.raises(UnigrecError, match="not in the evaluation metrics"):
            check_gate(gate, candidate)
    elif any(not math.isfinite(candidate[m]) for m in gate.metrics):
        with pytest.raises(UnigrecError, match="not finite"):
            check_gate(gate, candidate)
    else:
        check_gate(gate, candidate)
