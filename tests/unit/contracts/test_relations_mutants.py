"""Referential integrity: what the contract tests left open, found by mutation testing (tools/mutation.py;
docs/experiments/2026-12-03-mutation-testing.md names the mutants each test kills)."""

from __future__ import annotations

import pandas as pd

from unigrec.contracts.definitions import ForeignKey
from unigrec.contracts.relations import check_foreign_keys

ITEMS = pd.DataFrame({"item_id": ["a", "b"]})
KEY = ForeignKey("interactions", "item_id", "items", "item_id")


def test_each_runnable_key_counts_once_and_a_dangling_value_is_reported_in_full():
    frames = {"interactions": pd.DataFrame({"item_id": ["a", "x", None, "x"]}), "items": ITEMS,
              "searches": pd.DataFrame({"item_id": ["b"]})}
    keys = [KEY, ForeignKey("searches", "item_id", "items", "item_id")]
    results = check_foreign_keys(frames, keys, max_examples=1)
    assert results.checks_run == 2 and results.skipped == []
    (failure,) = results.failures
    assert failure.failing_rows == 2  # the null is the nullability rule's business
    assert failure.examples == [{"row": 1, "item_id": "x"}]
    assert failure.detail == "interactions.item_id -> items.item_id: 2 of 4 rows reference a value missing from " \
                             "items.item_id"


def test_a_key_whose_column_is_missing_is_skipped_with_the_reason():
    frames = {"interactions": pd.DataFrame({"user_id": ["u"]}), "items": ITEMS}
    results = check_foreign_keys(frames, [KEY], max_examples=3)
    assert results.checks_run == 0 and results.failures == []
    assert results.skipped == [
        "referential_integrity interactions.item_id -> items.item_id: not run (column interactions.item_id missing)"
    ]
    results = check_foreign_keys({"interactions": pd.DataFrame({"item_id": ["a"]})}, [KEY], max_examples=3)
    assert results.skipped == [
        "referential_integrity interactions.item_id -> items.item_id: not run (table items not available)"
    ]
