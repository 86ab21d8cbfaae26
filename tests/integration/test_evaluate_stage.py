"""The evaluate stage end to end on a tiny project with an untrained model: every output, metric names
the register gate reads, and beam-search ranks equal to exact scoring of the whole catalogue."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from support.evaluate_project import ROOT, evaluate_cfg, evaluate_runtime, tiny_project

from unigrec.config import ConfigError, GateConfig, build_section
from unigrec.inference.prompts import CONTEXT_SPLITS
from unigrec.paths import Layout


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    from unigrec.stages.evaluate import run

    layout = tiny_project(tmp_path_factory.mktemp("evaluate"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # shared 2-core test machine
    try:
        summary = run(evaluate_cfg(), layout, evaluate_runtime())
    finally:
        torch.set_num_threads(threads)
    return layout, summary


def test_stage_writes_every_output(evaluated):
    layout, summary = evaluated
    metrics = json.loads(layout.evaluate_metrics.read_text())
    test = metrics["test"]
    for stream in ("rec", "search"):
        assert test[stream]["n"] == 24
        assert set(test[stream]["sampled"]) == {"hr@1", "hr@5", "ndcg@5"}
        assert set(test[stream]["full"]) == {"hr@5", "hr@10", "ndcg@5", "ndcg@10", "mrr"}
        for value in [*test[stream]["sampled"].values(), *test[stream]["full"].values()]:
            assert 0.0 <= value <= 1.0
        pipeline = test["pipeline"][stream]
        assert pipeline["n"] == 24
        # the re-ranking weight is the validation grid's best (ties to the smaller weight), served as is
        grid = pipeline["validation"]["ndcg@5_by_weight"]
        assert [w for w, _ in grid] == list(evaluate_cfg().fusion_weights)
        assert pipeline["validation"]["n"] > 0
        best = max(q for _, q in grid)
        assert pipeline["fusion_weight"] == min(w for w, q in grid if q == best)
        served = json.loads((layout.serving_dir / "settings.json").read_text())["fusion_weights"]
        assert served[stream] == pipeline["fusion_weight"]
        if pipeline["fusion_weight"] == 0.0:
            assert pipeline["ndcg@5"] == pipeline["retrieval_only_ndcg@5"]
        if pipeline["fusion_weight"] == 1.0:
            assert pipeline["ndcg@5"] == pipeline["ranking_only_ndcg@5"]
    assert 0.0 <= test["ranking"]["auc"] <= 1.0 and test["ranking"]["n"] == 24
    # slices partition the cases
    for stream in ("rec", "search"):
        s = test["slices"]
        assert s["cold_users"][stream]["n"] + s["warm_users"][stream]["n"] == 24
        assert s["popular_items"][stream]["n"] + s["long_tail_items"][stream]["n"] == 24
    # the search slices: search cases only, nested (no training event at all -> never a search target);
    # cold items (no training event) are a slice of both streams
    for name in ("unseen_query", "target_never_searched"):
        assert set(s[name]) == {"search"} and set(metrics["baselines"]["popularity"]["slices"][name]) == {"search"}
    assert set(s["target_no_train_events"]) == {"rec", "search"}
    assert s["target_no_train_events"]["search"]["n"] <= s["target_never_searched"]["search"]["n"] <= 24
    # the served pipeline per slice, on the same cases (the report's served column)
    for stream in ("rec", "search"):
        served = test["pipeline"][stream]["slices"]
        assert {name: v["n"] for name, v in served.items()} == {name: s[name][stream]["n"] for name in s if stream in s[name]}
    assert set(metrics["baselines"]) == {"popularity"}
    assert summary["ranking_auc"] == test["ranking"]["auc"]
    # the popularity figures, recomputed here from the files alone: every step of the protocol (the test
    # cases, their histories, the seen-item rule, the cut-offs, the metric) stands behind the numbers
    assert metrics["baselines"]["popularity"]["rec"]["full"] == pytest.approx(_popularity_by_hand(layout, "rec"))
    assert metrics["baselines"]["popularity"]["search"]["full"] == pytest.approx(_popularity_by_hand(layout, "search"))

    report = layout.evaluation_report.read_text()
    for heading in ("## Protocol", "## Model vs baselines", "## Ranking head", "## Unified pipeline", "## Slices"):
        assert heading in report
    assert "Seen-item rule, for every method" in report
    assert "| search | unseen query |" in report and "| rec | unseen query |" not in report
    assert "unigrec served (retrieve + re-rank) |" in report
    assert "{" not in report.split("## Model vs baselines")[0]  # no unformatted placeholder in the protocol text
    assert "μ·term coverage" in report
    for png in ("hr_curve.png", "slices.png"):
        path = layout.evaluate_plots_dir / png
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"../plots/evaluate/{png}" in report
    curve = pd.read_csv(layout.evaluate_plots_dir / "hr_curve_rec.csv")
    assert list(curve.columns) == ["k", "unigrec", "popularity"] and len(curve) == 10
    assert (curve["unigrec"].diff().dropna() >= 0).all()  # HR@k never falls as k grows
    assert (layout.serving_dir / "settings.json").exists()


def _popularity_by_hand(layout, stream: str) -> dict[str, float]:
    """Full-catalogue HR/NDCG@5,10 and MRR of "most engaged in training in this stream", computed from the
    split file with plain loops: a user's history is every train/valid event before the test one but its
    same-second twin, seen items are dropped, ties go to the overall count and then to catalogue order."""
    events = pd.read_parquet(layout.events).sort_values(["user_id", "order"], kind="mergesort")
    catalogue = pd.read_parquet(layout.items)["item_id"].astype(str).tolist()
    train = events[events["split"] == "train"]
    in_stream = train[train["kind"] == stream]["item_id"].astype(str).value_counts()
    overall = train["item_id"].astype(str).value_counts()
    key = {i: (in_stream.get(i, 0), overall.get(i, 0), -pos) for pos, i in enumerate(catalogue)}
    ranked = sorted(catalogue, key=key.__getitem__, reverse=True)
    hits = {"hr@5": [], "hr@10": [], "ndcg@5": [], "ndcg@10": [], "mrr": []}
    for user, group in events.groupby("user_id"):
        target = group[(group["split"] == "test") & (group["kind"] == stream)]
        if target.empty:
            continue
        target = target.iloc[0]
        twin = (group["item_id"] == target["item_id"]) & (group["timestamp"] == target["timestamp"])
        history = group[(group["order"] < target["order"]) & group["split"].isin(CONTEXT_SPLITS["test"]) & ~twin]
        seen = set(history["item_id"].astype(str))
        top = [i for i in ranked if i not in seen][:10]
        rank = top.index(str(target["item_id"])) if str(target["item_id"]) in top else None
        for k in (5, 10):
            hits[f"hr@{k}"].append(float(rank is not None and rank < k))
            hits[f"ndcg@{k}"].append(1 / math.log2(rank + 2) if rank is not None and rank < k else 0.0)
        hits["mrr"].append(1 / (rank + 1) if rank is not None else 0.0)
    return {name: float(np.mean(values)) for name, values in hits.items()}


def test_metrics_hold_the_register_gate_metrics(evaluated):
    """The gate reads dotted names from metrics/evaluate.json: the project's gate must find them all."""
    from unigrec.registry.gate import check_gate, flatten_metrics

    layout, _ = evaluated
    flat = flatten_metrics(json.loads(layout.evaluate_metrics.read_text()))
    gate = yaml.safe_load((ROOT / "params.yaml").read_text())["register"]["gate"]
    gate = build_section(GateConfig, gate, "register.gate")
    check_gate(gate, flat)  # raises when a gate metric is missing or not finite


def test_stage_writes_the_validation_block_the_gate_chooses_on(evaluated):
    """The registry gate reads valid.*: the model's full-catalogue retrieval figures on the validation
    split, from the decode that also chose the re-ranking weights (its w = 0 entry ranks the same list)."""
    layout, summary = evaluated
    metrics = json.loads(layout.evaluate_metrics.read_text())
    events = pd.read_parquet(layout.events)
    valid = metrics["valid"]
    assert set(valid) == {"rec", "search"}
    for stream in ("rec", "search"):
        assert valid[stream]["n"] == int(((events["split"] == "valid") & (events["kind"] == stream)).sum()) > 0
        assert set(valid[stream]["full"]) == set(metrics["test"][stream]["full"])
        tuning = metrics["test"]["pipeline"][stream]["validation"]
        if tuning.get("lexical_weight", 0.0) == 0.0:  # the w grid at λ = 0: w = 0 is the retrieval order
            grid = {w: q for w, q in tuning["ndcg@5_by_weight"]}
            assert valid[stream]["full"]["ndcg@5"] == pytest.approx(grid[0.0])
        assert summary[f"valid_{stream}_full_ndcg@5"] == valid[stream]["full"]["ndcg@5"]
    assert 0.0 < summary["seconds_validation"] <= summary["seconds_unigrec"]


def test_beam_ranks_equal_exact_catalogue_scoring(tmp_path):
    """With a beam as wide as the catalogue, constrained beam search is exact: the full-catalogue rank of
    each target must equal its rank when every unseen item is scored one by one."""
    from unigrec.evaluate.baselines.context import held_out_cases
    from unigrec.evaluate.evaluation import evaluate_test_split
    from unigrec.evaluate.inputs import load_test_inputs
    from unigrec.inference.prompts import group_user_events, prompt_examples, query_table_texts
    from unigrec.inference.retrieval import id_spaces
    from unigrec.model.batch import collate_sequences
    from unigrec.model.card import load_model
    from unigrec.model.decoding import score_candidates
    from unigrec.model.vocabulary import PAD
    from unigrec.text_encoder import embedding_cache_file

    layout = tiny_project(tmp_path)
    events = pd.read_parquet(layout.events)
    texts = query_table_texts(events)
    table = np.load(embedding_cache_file(list(texts), layout.resolve(evaluate_runtime().cache_dir)))
    cfg = evaluate_cfg(beam_size=40, pipeline_k=10, baselines=())
    data = load_test_inputs(evaluate_runtime(), layout)
    result = evaluate_test_split(cfg, data, layout.model_dir, evaluate_runtime(), layout)
    model = load_model(layout.model_dir)
    cases = held_out_cases(events, "test")
    examples = prompt_examples(group_user_events(events, model.items, texts), model.serialiser, "test")
    everything = torch.arange(model.items.n_items)[None, :]
    for stream, rows in result.methods["unigrec"].rows.items():
        expected = []
        for i in rows:
            batch = collate_sequences([examples[i].prompt], table, model.serialiser.n_query_tokens,
                                      model.vocab.token(PAD))
            scores, _ = score_candidates(model.net, batch, everything, id_spaces(model.vocab, model.items)[stream == "search"])
            seen = {e.item_id for e in cases[i].context.history}
            order = [model.items.item_ids[j] for j in torch.argsort(-scores[0]).tolist()]
            ranked = [item for item in order if item not in seen]
            expected.append(float(ranked.index(cases[i].target)) if cases[i].target in ranked[:10] else math.inf)
        assert result.methods["unigrec"].full[stream].tolist() == expected


def test_missing_model_and_bad_settings_fail_clearly(tmp_path):
    from unigrec.errors import ContractViolation
    from unigrec.stages.evaluate import run

    with pytest.raises(ContractViolation, match="train stage"):
        run(evaluate_cfg(), Layout(tmp_path), evaluate_runtime())
    with pytest.raises(ConfigError, match="beam_size"):
        run(dataclasses.replace(evaluate_cfg(), beam_size=5), Layout(tmp_path), evaluate_runtime())
    with pytest.raises(ConfigError, match="fusion_weights"):
        run(dataclasses.replace(evaluate_cfg(), fusion_weights=(0.0, 1.5)), Layout(tmp_path), evaluate_runtime())
    with pytest.raises(ConfigError, match="fusion_weights"):
        run(dataclasses.replace(evaluate_cfg(), fusion_weights=()), Layout(tmp_path), evaluate_runtime())
    for grid in ((), (0.0, -1.0)):
        cfg = evaluate_cfg()
        with pytest.raises(ConfigError, match="lexical.coverage_weights"):
            run(dataclasses.replace(cfg, lexical=dataclasses.replace(cfg.lexical, coverage_weights=grid)),
                Layout(tmp_path), evaluate_runtime())


def test_a_single_fusion_weight_is_used_as_given(tmp_path):
    from unigrec.evaluate.evaluation import evaluate_test_split
    from unigrec.evaluate.inputs import load_test_inputs

    layout = tiny_project(tmp_path)
    cfg = evaluate_cfg(fusion_weights=(0.3,), baselines=())
    cfg = dataclasses.replace(cfg, lexical=dataclasses.replace(cfg.lexical, weights=(0.0,), coverage_weights=(0.0,)))
    result = evaluate_test_split(cfg, load_test_inputs(evaluate_runtime(), layout), layout.model_dir,
                                 evaluate_runtime(), layout)
    for stream in ("rec", "search"):
        pipeline = result.metrics["test"]["pipeline"][stream]
        assert pipeline["fusion_weight"] == 0.3 and result.settings.weight(stream) == 0.3
        assert pipeline["validation"] == {"weight": 0.3, "lexical_weight": 0.0, "coverage_weight": 0.0,
                                          "weight_without_lexical": 0.3, "n": 0, "ndcg@5_by_weight": [],
                                          "ndcg@5_by_lexical_weight": [], "ndcg@5_by_coverage_weight": []}
        # nothing to choose, but validation is still decoded: the registry gate chooses on its figures
        assert result.metrics["valid"][stream]["n"] > 0


def test_stage_writes_relevance_figures_for_every_search_method(evaluated):
    """Relevance NDCG@10 / P@10 of each search method on the test searches and the typed-query set, in the
    metrics file and the report; popularity's test-search figures recomputed here from the files."""
    layout, _ = evaluated
    metrics = json.loads(layout.evaluate_metrics.read_text())
    # the tiny catalogue: 4 clusters of 10 items, category "genre<c>|film": 4 forms with 10 fully relevant
    # items each, typed as generated, reordered and cased (no other spelling, no word long enough to
    # misspell), each for one seeded user
    assert metrics["typed_queries"]["forms"] == 4 and metrics["typed_queries"]["requests"] == 12
    for block in (metrics["test"], metrics["baselines"]["popularity"]):
        relevance = block["relevance"]
        assert relevance["test_searches"]["n"] == 24
        assert relevance["typed_queries"]["all"]["n"] == 12
        by_variant = relevance["typed_queries"]["by_variant"]
        assert {v: by_variant[v]["n"] for v in by_variant} == {
            "as_generated": 4, "reordered": 4, "cased": 4, "spelled": 0, "misspelled": 0}
        assert by_variant["spelled"]["p@10"] is None  # no request: undefined, not 0
        for part in (relevance["test_searches"], relevance["typed_queries"]["all"]):
            assert 0.0 <= part["p@10"] <= 1.0 and 0.0 < part["ndcg@10"] <= 1.0
    assert metrics["baselines"]["popularity"]["relevance"]["test_searches"] == pytest.approx(
        _popularity_relevance_by_hand(layout)
    )
    report = layout.evaluation_report.read_text()
    assert "## Search relevance" in report
    assert "typed P@10" in report and "| popularity |" in report.split("## Search relevance")[1]


def _popularity_relevance_by_hand(layout) -> dict[str, float]:
    """Popularity's top 10 unseen items for each test search (as in _popularity_by_hand), graded by hand:
    an item fully fits "genre<c> film" when it is in cluster c (items m000-m009 are cluster 0, ...), every
    other item fits "film" only; NDCG gains 2^grade - 1 against the best unseen list."""
    events = pd.read_parquet(layout.events).sort_values(["user_id", "order"], kind="mergesort")
    catalogue = pd.read_parquet(layout.items)["item_id"].astype(str).tolist()
    train = events[events["split"] == "train"]
    in_stream = train[train["kind"] == "search"]["item_id"].astype(str).value_counts()
    overall = train["item_id"].astype(str).value_counts()
    key = {i: (in_stream.get(i, 0), overall.get(i, 0), -pos) for pos, i in enumerate(catalogue)}
    ranked = sorted(catalogue, key=key.__getitem__, reverse=True)
    ndcg, precision = [], []
    for _, group in events.groupby("user_id"):
        target = group[(group["split"] == "test") & (group["kind"] == "search")]
        if target.empty:
            continue
        target = target.iloc[0]
        cluster = int(target["query"].split()[0].removeprefix("genre"))
        twin = (group["item_id"] == target["item_id"]) & (group["timestamp"] == target["timestamp"])
        history = group[(group["order"] < target["order"]) & group["split"].isin(CONTEXT_SPLITS["test"]) & ~twin]
        seen = set(history["item_id"].astype(str))
        grade = {i: 2 if int(i[1:]) // 10 == cluster else 1 for i in catalogue}
        top = [i for i in ranked if i not in seen][:10]
        ideal = sorted((grade[i] for i in catalogue if i not in seen), reverse=True)[:10]
        dcg = sum((2 ** grade[i] - 1) / math.log2(r + 2) for r, i in enumerate(top))
        best = sum((2**g - 1) / math.log2(r + 2) for r, g in enumerate(ideal))
        ndcg.append(dcg / best)
        precision.append(sum(grade[i] == 2 for i in top) / 10)
    return {"n": len(ndcg), "ndcg@10": float(np.mean(ndcg)), "p@10": float(np.mean(precision))}


def test_baselines_alone_are_judged_for_relevance_as_in_the_full_evaluation(evaluated):
    """What benchmark tables use for a baseline row (``evaluate_baselines``) carries the same relevance
    figures as the stage's own evaluation of that baseline, so a served model and BM25 stand side by side."""
    from unigrec.config import load_section
    from unigrec.evaluate.evaluation import evaluate_baselines
    from unigrec.evaluate.inputs import load_test_inputs

    layout, _ = evaluated
    stage = json.loads(layout.evaluate_metrics.read_text())["baselines"]["popularity"]["relevance"]
    cfg = dataclasses.replace(evaluate_cfg(), baselines=("popularity",))
    alone = evaluate_baselines(cfg, load_test_inputs(evaluate_runtime(), layout),
                               load_section("baselines", layout.root / "params.yaml"), evaluate_runtime(), layout)
    relevance = alone["popularity"]["relevance"]
    for part in ("test_searches", "unseen_forms"):
        got = relevance[part] if part == "test_searches" else relevance["typed_queries"]["all"]
        want = stage[part] if part == "test_searches" else stage["typed_queries"]["all"]
        assert got["n"] > 0 and got == pytest.approx(want)
