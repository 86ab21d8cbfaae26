"""Popularity and BM25 negatives for the 1+99 protocol."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from unigrec.config import BM25Config, SplitConfig
from unigrec.data.negatives import BM25Negatives, popularity_weights, sample_popularity_negatives
from unigrec.stages.split import build_candidates


def test_popularity_negatives_exclude_history_are_distinct_and_seeded():
    items = np.array([f"i{k}" for k in range(50)], dtype=object)
    counts = pd.Series({"i0": 100, "i1": 50, "i2": 1})
    probs = popularity_weights(counts, pd.Index(items), smoothing=1.0)
    excluded = {"i0", "i5", "i7"}
    a = sample_popularity_negatives(items, probs, excluded, 20, np.random.default_rng(3))
    b = sample_popularity_negatives(items, probs, excluded, 20, np.random.default_rng(3))
    assert a == b
    assert len(set(a)) == 20
    assert not excluded & set(a)


def test_popularity_sampling_prefers_popular_items():
    items = np.array([f"i{k}" for k in range(100)], dtype=object)
    probs = popularity_weights(pd.Series({"i1": 1000}), pd.Index(items), smoothing=1.0)
    rng = np.random.default_rng(0)
    hits = sum("i1" in sample_popularity_negatives(items, probs, set(), 5, rng) for _ in range(200))
    assert hits > 150  # ~91% of the mass; uniform sampling would give ~10


def test_popularity_negatives_fail_loudly_when_catalogue_too_small():
    items = np.array(["a", "b", "c"], dtype=object)
    probs = popularity_weights(pd.Series(dtype=int), pd.Index(items), smoothing=1.0)
    with pytest.raises(ValueError, match="need 3"):
        sample_popularity_negatives(items, probs, {"a"}, 3, np.random.default_rng(0))


def test_bm25_hard_negatives_match_the_query_and_exclude_the_target():
    texts = [f"Movie {k}. Genres: {'Comedy' if k % 2 else 'Horror'}." for k in range(40)]
    ids = [f"m{k}" for k in range(40)]
    index = BM25Negatives(ids, texts, k1=1.5, b=0.75)
    negs = index.hard_negatives(["comedy"], ["m1"], n=10, pool=30, rng=np.random.default_rng(0))[0]
    assert "m1" not in negs and len(set(negs)) == 10
    assert all(int(n[1:]) % 2 == 1 for n in negs)  # all comedies: BM25 actually ranked them


def test_bm25_tops_up_when_query_matches_too_few_items():
    ids = [f"m{k}" for k in range(20)]
    texts = ["western"] + ["drama"] * 19
    index = BM25Negatives(ids, texts, k1=1.5, b=0.75)
    negs = index.hard_negatives(["western"], ["m0"], n=5, pool=10, rng=np.random.default_rng(0))[0]
    assert len(set(negs)) == 5 and "m0" not in negs


def test_build_candidates_one_list_per_heldout_event():
    from unigrec.data.split import assign_leave_one_out, merge_streams

    items = pd.DataFrame({"item_id": [f"i{k}" for k in range(130)],
                          "text": [f"title {k} genre{k % 5}" for k in range(130)]})
    inter = pd.DataFrame({"user_id": ["u"] * 5 + ["v"] * 4, "item_id": [f"i{k}" for k in range(9)],
                          "timestamp": list(range(9)), "rating": [5.0] * 9, "label": [1] * 9})
    srch = pd.DataFrame({"user_id": ["u"] * 3, "query": ["genre1"] * 3, "item_id": ["i11", "i21", "i31"],
                         "timestamp": [20, 21, 22]})
    ev = assign_leave_one_out(merge_streams(inter, srch), min_events=3)
    cfg = SplitConfig(protocol="per_stream", holdout_window=None, min_events=3, n_negatives=99,
                      popularity_smoothing=1.0, cold_items=0.0, seed=1,
                      bm25=BM25Config(k1=1.5, b=0.75, pool=200))
    cands = build_candidates(ev, items, cfg)
    assert len(cands) == (ev.split != "train").sum() == 6
    for row in cands.itertuples():
        assert len(set(row.negatives)) == 99 and row.item_id not in row.negatives
        if row.kind == "rec":
            assert not set(row.negatives) & set(ev.loc[ev.user_id == row.user_id, "item_id"])
    again = build_candidates(ev, items, cfg)
    assert [list(x) for x in cands.negatives] == [list(x) for x in again.negatives]


def test_bm25_pool_takes_every_item_tied_at_its_edge():
    # 300 items tie on "comedy"; a pool of 200 cut by bm25s's top-k would always hold the same 200 of them
    # (whichever its sort kernel put first), so repeated draws could never reach the other 100.
    ids = [f"m{k}" for k in range(301)]
    index = BM25Negatives(ids, ["comedy"] * 300 + ["drama"], k1=1.5, b=0.75)
    drawn = index.hard_negatives(["comedy"] * 20, ["m0"] * 20, n=50, pool=200, rng=np.random.default_rng(0))
    reached = set().union(*drawn)
    assert "m0" not in reached and "m300" not in reached
    assert len(reached) > 200


_DRAW_SCRIPT = """
import json, numpy as np
from unigrec.data.negatives import BM25Negatives
ids = [f"m{k}" for k in range(3000)]
texts = [f"Movie {k}. Genres: {('Comedy', 'Drama', 'Horror', 'Western', 'War')[k % 5]}" for k in range(3000)]
index = BM25Negatives(ids, texts, k1=1.5, b=0.75)
queries = ["comedy", "drama horror", "war western", "comedy war"] * 3
print(json.dumps(index.hard_negatives(queries, [f"m{k}" for k in range(12)], 99, 200, np.random.default_rng(7))))
"""


def test_bm25_negatives_do_not_depend_on_the_cpu_sort_kernels():
    """numpy picks AVX2/AVX-512 sort kernels by CPU, and they order ties differently; the same seed must
    give the same lists with them turned off (what an older CPU runs)."""
    import json
    import os
    import subprocess
    import sys

    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    active = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    if not active:
        pytest.skip("this CPU runs numpy's baseline kernels only: nothing to turn off")

    def draw(disabled: str) -> list[list[str]]:
        env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": disabled}
        run = subprocess.run([sys.executable, "-c", _DRAW_SCRIPT], env=env, capture_output=True, text=True,
                             check=True)
        return json.loads(run.stdout)

    assert draw("") == draw(",".join(__cpu_dispatch__))


def test_bm25_pool_smaller_than_n_still_gives_n_matching_items():
    texts = [f"Movie {k}. Genres: {'Comedy' if k % 2 else 'Horror'}." for k in range(40)]
    index = BM25Negatives([f"m{k}" for k in range(40)], texts, k1=1.5, b=0.75)
    negs = index.hard_negatives(["comedy"], ["m1"], n=10, pool=5, rng=np.random.default_rng(0))[0]
    assert len(set(negs)) == 10 and all(int(x[1:]) % 2 == 1 for x in negs)  # no random top-up needed
