"""Baselines' held-out contexts: cases the suite left open, found by mutation testing (tools/mutation.py;
docs/experiments/2026-12-03-mutation-testing.md names the mutants each test kills)."""

from __future__ import annotations

import pytest
from support.events import interactions_frame, searches_frame

from unigrec.data.split import assign_leave_one_out, merge_streams
from unigrec.errors import ContractViolation
from unigrec.evaluate.baselines.context import EvalContext, held_out_cases


def _events():
    inter = interactions_frame([("u", "a", 1, 5.0, 1), ("u", "b", 2, 2.0, 0), ("u", "c", 3, 5.0, 1)])
    return assign_leave_one_out(merge_streams(inter, searches_frame([])), min_events=3)


def test_held_out_cases_reject_a_split_without_a_context_rule():
    with pytest.raises(ValueError, match=r"^split must be one of \['test', 'valid'\], not 'train'$"):
        held_out_cases(_events(), "train")


def test_a_missing_events_column_is_a_contract_violation_naming_it():
    with pytest.raises(ContractViolation, match=r"events table lacks column\(s\) \['order'\]"):
        held_out_cases(_events().drop(columns=["order"]), "test")


def test_context_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"^context kind must be one of \('rec', 'search'\), not 'browse'$"):
        EvalContext("u", (), "browse")
    with pytest.raises(ValueError, match="^a search context needs its query$"):
        EvalContext("u", (), "search")
