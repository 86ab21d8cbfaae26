"""Property: a baseline's held-out context holds exactly the history the leak-free rule allows.

On random tiny event tables (ties at equal timestamps and same-engagement twins are common), each case of
:func:`held_out_cases` is checked against the rule written as plain loops (tests/support/history_rule.py):
no held-out event of a later split, no later event, no twin of the target's own engagement.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from support.history_rule import event_rows, held_out_rows, visible_history
from support.strategies import split_events

from unigrec.evaluate.baselines.context import held_out_cases


@settings(max_examples=80, deadline=None)
@given(events=split_events(), split=st.sampled_from(["valid", "test"]))
def test_every_baseline_context_holds_exactly_the_history_the_rule_allows(events, split):
    cases = held_out_cases(events, split)
    rows = event_rows(events)
    targets = held_out_rows(rows, split)
    assert len(cases) == len(targets)
    for case, target in zip(cases, targets, strict=True):
        assert (case.context.user_id, case.target, case.label) == (target["user_id"], target["item_id"], target["label"])
        assert (case.context.kind, case.context.query) == (target["kind"], target["query"])
        history = visible_history(rows, target, split)
        assert [(e.item_id, e.kind, e.query, e.label) for e in case.context.history] == [
            (r["item_id"], r["kind"], r["query"], r["label"]) for r in history
        ]
