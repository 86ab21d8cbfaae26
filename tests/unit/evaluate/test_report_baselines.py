"""The report says how its trained baselines were fitted: a "beats SASRec" means little without it."""

from __future__ import annotations

import dataclasses

from unigrec.config import load_section
from unigrec.evaluate.report import baseline_recipes

BASELINES = load_section("baselines", "params.yaml")


def test_a_fixed_epoch_sasrec_is_named_as_the_quick_recipe_and_an_early_stopped_one_as_the_published():
    fixed = dataclasses.replace(BASELINES.sasrec, patience=None, epochs=40, max_len=50, hidden=64,
                                train_windows="latest")
    line = baseline_recipes(dataclasses.replace(BASELINES, sasrec=fixed), ["popularity", "sasrec"])
    assert "the last 50 events (trained on each user's last 51), width 64" in line
    assert "40 fixed epochs, no early stopping" in line and "sasrec-published" in line
    published = dataclasses.replace(fixed, patience=10, epochs=100, hidden=128)
    line = baseline_recipes(dataclasses.replace(BASELINES, sasrec=published), ["sasrec"])
    assert "width 128" in line and "up to 100 epochs, stopped 10 epochs after the best validation NDCG@10" in line
    assert "no early stopping" not in line
    every = dataclasses.replace(published, train_windows="all")
    assert "(trained on every window of each history)" in baseline_recipes(dataclasses.replace(BASELINES, sasrec=every), ["sasrec"])


def test_only_the_baselines_asked_for_are_described():
    assert "`bm25`: k1 1.5, b 0.75" in baseline_recipes(BASELINES, ["bm25_read"])
    assert "sasrec" not in baseline_recipes(BASELINES, ["bm25"])
    assert baseline_recipes(BASELINES, ["popularity", "dense"]) == ""


def test_the_line_says_how_far_this_runs_sasrec_went_when_the_metrics_carry_its_fit():
    fitted = {"sasrec": {"rec": {}, "training": {"epochs": 37, "best_epoch": 27, "validation_ndcg@10": 0.10504}}}
    line = baseline_recipes(BASELINES, ["sasrec"], fitted)
    assert "this run: 37 epochs, epoch 27's weights kept (validation NDCG@10 0.1050)" in line
    fixed = {"sasrec": {"training": {"epochs": 40, "best_epoch": 40}}}
    assert "this run: 40 epochs, epoch 40's weights kept." in baseline_recipes(BASELINES, ["sasrec"], fixed)
    assert "this run" not in baseline_recipes(BASELINES, ["sasrec"], {"sasrec": {"rec": {}}})
