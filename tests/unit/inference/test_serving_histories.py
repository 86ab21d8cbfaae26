"""Recommender._group_histories: each user's events in recorded order, whatever order the rows come in
(the bundle sorts them, a hand-made one may not), items the model has no ID for dropped."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd


def test_histories_keep_each_users_rows_in_order_when_users_interleave():
    from unigrec.inference.serving import Recommender

    index = {"a": 0, "b": 1, "c": 2}
    fake = types.SimpleNamespace(model=types.SimpleNamespace(items=types.SimpleNamespace(index=lambda: index)))
    frame = pd.DataFrame({
        "user_id": [7, "u2", 7, "u2", 7, 7],
        "item_id": ["c", "a", "zz", "b", "a", "b"],  # "zz": no ID in the model
        "kind": ["rec", "search", "rec", "rec", "search", "rec"],
        "query": [None, "space film", None, np.nan, "old film", None],
        "label": [1, 0, 1, 1, 0, 1],
    })
    out = Recommender._group_histories(fake, frame)

    assert list(out) == ["7", "u2"]  # users by first appearance, as text
    seven, two = out["7"], out["u2"]
    assert seven.items.tolist() == [2, 0, 1] and seven.items.dtype == np.int64
    assert seven.is_search.tolist() == [False, True, False]
    assert seven.labels.tolist() == [1, 0, 1] and seven.labels.dtype == np.int64
    assert seven.queries == [None, "old film", None]
    assert two.items.tolist() == [0, 1]
    assert two.queries == ["space film", None]
    assert Recommender._group_histories(fake, frame.iloc[:0]) == {}
