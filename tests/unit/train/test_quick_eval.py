"""The validation monitor's popularity list leaves out what the user has already seen."""

from __future__ import annotations

import numpy as np

from unigrec.train.quick_eval import unseen_top_k


def test_unseen_top_k_skips_seen_items_and_keeps_the_order():
    order = np.array([4, 2, 7, 0, 5, 1])
    assert unseen_top_k(order, np.array([2, 0]), 3).tolist() == [4, 7, 5]
    assert unseen_top_k(order, np.array([], dtype=np.int64), 2).tolist() == [4, 2]
    assert unseen_top_k(order, order, 3).size == 0
