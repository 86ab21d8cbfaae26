"""The ``train`` stage end to end on tiny synthetic split/ids files, and the same run under 2-process DDP."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from support import REPO
from support import synthetic_train_data as syn
from support.runtime import runtime_config

from unigrec.config import RuntimeConfig, TrainConfig, build_section
from unigrec.paths import Layout

ROOT = REPO


@pytest.fixture(scope="module")
def query_cache(tmp_path_factory) -> Path:
    """Embed the synthetic queries once (MiniLM load is the slow part); runs reuse the cache."""
    from unigrec.inference.prompts import query_table_texts
    from unigrec.text_encoder import embed_texts

    cache = tmp_path_factory.mktemp("query_cache")
    embed_texts(list(query_table_texts(syn.events_frame())), cache_dir=cache, show_progress=False)
    return cache


def _runtime(cache: Path, **overrides) -> RuntimeConfig:
    """The project's runtime section reading query vectors from ``cache`` (the module's query_cache)."""
    return runtime_config(cache_dir=str(cache), **overrides)


def _train_section(cache: Path, **trainer) -> dict:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
    raw.update(batch_size=8, max_events=20)
    # the dual codes (GenSAR's form): these tests read its ID spaces and identifier files; the default
    # (atomic) form trains end to end in tests/integration/test_end_to_end.py and test_default_search.py
    raw["model"].update(item_representation="semantic_ids", d_model=32, n_heads=2, d_ff=64, dropout=0.0)
    raw["optim"].update(warmup_steps=1)
    raw["trainer"].update({"max_epochs": 6, "log_every_n_steps": 1, **trainer})
    raw["eval"].update(epoch_users=12, beam_size=10)
    return raw


def _run_single_threaded(cfg: TrainConfig, layout: Layout, cache: Path) -> dict:
    """The train stage at one torch thread (the test machine's 2 cores are shared), threads restored."""
    from unigrec.stages.train import run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run(cfg, layout, _runtime(cache))
    finally:
        torch.set_num_threads(threads)


def test_stage_trains_writes_outputs_and_beats_popularity(tmp_path, query_cache, caplog):
    from unigrec.model.batch import collate_sequences
    from unigrec.model.card import load_model
    from unigrec.model.decoding import beam_search, build_id_space
    from unigrec.model.tokenizer import EventSeq
    from unigrec.model.vocabulary import PAD, SEMANTIC

    syn.write_project(tmp_path)
    cfg = build_section(TrainConfig, _train_section(query_cache), "train")
    with caplog.at_level(logging.INFO, logger="unigrec.train.callbacks"):
        summary = _run_single_threaded(cfg, Layout(tmp_path), query_cache)
    layout = Layout(tmp_path)
    metrics = json.loads(layout.train_metrics.read_text())
    # one log line per epoch, with this epoch's validation figures (the bar is off: progress_bar false)
    epoch_lines = [r.getMessage() for r in caplog.records if r.name == "unigrec.train.callbacks"]
    assert len(epoch_lines) == metrics["training"]["epochs"]
    assert epoch_lines[0].startswith("epoch 1/6: train loss ") and "ndcg=" in epoch_lines[0]
    val = metrics["validation"]
    for stream in ("rec", "search"):
        assert val[stream]["n"] == 24
        for key in ("hr@10", "ndcg@10", "popularity_hr@10", "popularity_ndcg@10"):
            assert 0.0 <= val[stream][key] <= 1.0
    # queries name the target's cluster, histories stay in one: learnable well beyond popularity
    assert val["search"]["ndcg@10"] > val["search"]["popularity_ndcg@10"]
    assert val["rec"]["ndcg@10"] > val["rec"]["popularity_ndcg@10"]
    assert 0.0 <= val["ranking"]["auc"] <= 1.0
    assert summary["ranking_auc"] == val["ranking"]["auc"]
    assert metrics["training"]["epochs"] >= 1 and metrics["training"]["train_sequences_per_second"] > 0
    assert metrics["training"]["selected_on"] == "val/ndcg" and 0 < metrics["training"]["best_epoch_score"] <= 1
    # the keys params.yaml leaves auto took the small tier (a few hundred events); the ones given stayed
    import pandas as pd

    sizing = metrics["training"]["sizing"]
    train_events = int((pd.read_parquet(layout.events)["split"] == "train").sum())
    assert sizing["tier"] == "small" and sizing["train_events"] == train_events < cfg.sizing.large_from_train_events
    assert sizing["auto"] == {k: cfg.sizing.values("small")[k] for k in ("optim.schedule", "optim.min_lr_ratio",
                                                                "optim.ema_epochs", "retrieval_loss.temperature", "trainer.precision",
                                                                "trainer.patience")}
    assert layout.train_curve.exists() and layout.train_plot.stat().st_size > 0
    curve = layout.train_curve.read_text().splitlines()
    assert "val/ndcg" in curve[0] and len(curve) >= 2
    # the model folder alone rebuilds a working model
    loaded = load_model(layout.model_dir)
    assert loaded.serialiser.max_events == 20, "max_events was given a value (20): not sized"
    prompt = loaded.serialiser.prompt(EventSeq(np.array([0, 1]), np.array([False, True]), np.array([1, 1]),
                                               np.array([-1, 0])), is_search=True, query=0)
    batch = collate_sequences([prompt], np.zeros((1, 384), np.float32), loaded.serialiser.n_query_tokens,
                              loaded.vocab.token(PAD))
    found, _ = beam_search(loaded.net, batch, build_id_space(loaded.vocab, loaded.items, SEMANTIC), 5)
    assert ((found >= 0) & (found < loaded.items.n_items)).all()


def test_bf16_mixed_trains_on_cpu_and_picks_checkpoints_on_fp32_figures(tmp_path, query_cache):
    """precision bf16-mixed (the CPU speed-up on AVX-512 BF16) trains, and the per-epoch monitor scores the
    kept checkpoint exactly as the stage's fp32 validation report does (every prompt scored each epoch)."""
    syn.write_project(tmp_path)
    section = _train_section(query_cache, precision="bf16-mixed", max_epochs=2)
    section["eval"].update(epoch_users=None, monitor_average="prompts")
    _run_single_threaded(build_section(TrainConfig, section, "train"), Layout(tmp_path), query_cache)
    metrics = json.loads(Layout(tmp_path).train_metrics.read_text())
    rec, search = metrics["validation"]["rec"], metrics["validation"]["search"]
    prompt_mean = (rec["n"] * rec["ndcg@10"] + search["n"] * search["ndcg@10"]) / (rec["n"] + search["n"])
    assert metrics["training"]["best_epoch_score"] == pytest.approx(prompt_mean, abs=1e-6)


def test_bf16_mixed_trains_with_the_enhancer_and_a_learned_weighter(tmp_path, query_cache):
    """The enhancer's beam search, its four loss terms and GradNorm's per-task gradient norms all run under
    the bf16 autocast too, in the default's item layout with past actions: every enhancer step scores
    contexts, every logged loss is finite, and the weights move off their start (GradNorm stepped on the
    bf16 norms)."""
    import pandas as pd

    syn.write_project(tmp_path)
    section = _train_section(query_cache, precision="bf16-mixed", max_epochs=1)
    section["enhancer"].update(enabled=True, every_n_steps=1)
    for part in ("hard_negatives", "extra_targets", "distill", "ranking_negatives"):
        section["enhancer"][part]["enabled"] = True
    section["weighter"]["mode"] = "gradnorm"
    layout = Layout(tmp_path)
    _run_single_threaded(build_section(TrainConfig, section, "train"), layout, query_cache)
    steps = pd.read_csv(layout.train_work_dir / "csv" / "version_0" / "metrics.csv")
    steps = steps[steps["train/loss_step"].notna()]
    assert len(steps) >= 2 and (steps["enhancer/contexts"] > 0).all()
    losses = steps[[c for c in steps.columns if c.startswith("train/loss") and c.endswith("_step")]].to_numpy()
    assert losses.shape[1] == 4  # the total and the three tasks
    assert np.isfinite(losses).all()
    weights = steps[[c for c in steps.columns if c.startswith("weight/")]]
    assert not np.allclose(weights.iloc[-1], weights.iloc[0])


def test_alignment_views_add_one_event_searches_for_every_catalogue_item(tmp_path, query_cache):
    """train.alignment on: every item of the catalogue (not only those searched) is a search target once per
    view, and the alignment loss is logged beside the tasks' and is finite."""
    import pandas as pd

    syn.write_project(tmp_path)
    section = _train_section(query_cache, max_epochs=1)
    section["alignment"].update(views=["text", "genres"], weight=1.0)
    layout = Layout(tmp_path)
    _run_single_threaded(build_section(TrainConfig, section, "train"), layout, query_cache)
    metrics = json.loads(layout.train_metrics.read_text())
    assert metrics["training"]["alignment_sequences"] == 2 * len(syn.item_ids())  # "m000", "genre0 film"
    steps = pd.read_csv(layout.train_work_dir / "csv" / "version_0" / "metrics.csv")
    aligned = steps["train/loss_alignment"].dropna()
    assert len(aligned) >= 1 and np.isfinite(aligned).all() and (aligned > 0).all()


def test_hybrid_items_train_with_the_enhancer_and_keep_items_without_train_events_cold(tmp_path, query_cache):
    """train.model.item_representation hybrid end to end: the per-item table learns for items with TRAIN
    events only; an item whose every train event is dropped (its valid/test events kept) is cold, its row
    exactly zero although the enhancer scores retrieved candidates and the alignment searches carry every
    item; the saved model holds the mask and decodes."""
    import pandas as pd

    from unigrec.model.card import load_model

    syn.write_project(tmp_path)
    layout = Layout(tmp_path)
    events = pd.read_parquet(layout.events)
    cold_id = syn.item_ids()[-1]
    assert ((events["item_id"] == cold_id) & (events["split"] != "train")).any()
    events = events[(events["item_id"] != cold_id) | (events["split"] != "train")]
    events.to_parquet(layout.events, index=False)
    section = _train_section(query_cache, max_epochs=1)
    section["model"]["item_representation"] = "hybrid"
    section["enhancer"].update(enabled=True, every_n_steps=1)
    section["alignment"].update(views=["text"], weight=1.0)
    _run_single_threaded(build_section(TrainConfig, section, "train"), layout, query_cache)
    loaded = load_model(layout.model_dir)
    assert loaded.card["item_representation"] == "hybrid" and not loaded.net.dims.ranking_head
    trained = set(events.loc[events["split"] == "train", "item_id"])
    expected = [item in trained for item in loaded.items.item_ids]
    assert loaded.net.item_has_events.tolist() == expected and not all(expected)
    table = loaded.net.item_embedding.weight.detach()
    cold = ~loaded.net.item_has_events
    assert (table[cold] == 0).all() and (table[~cold] != 0).any(-1).all()


def test_hybrid_dense_items_train_and_serve_a_cold_item_by_its_codes(tmp_path, query_cache):
    """train.model.item_representation hybrid_dense end to end: the saved net holds each item's codes (the
    identifiers stage's dual IDs, dedup levels left out) and which items have TRAIN events; a cold item's row
    is its codes' sum alone, learned from the items it shares them with, and the model decodes it."""
    import pandas as pd
    import torch

    from unigrec.model.card import load_model
    from unigrec.model.item_codes import code_composition, load_item_codes

    syn.write_project(tmp_path)
    layout = Layout(tmp_path)
    events = pd.read_parquet(layout.events)
    cold_id = syn.item_ids()[-1]
    events = events[(events["item_id"] != cold_id) | (events["split"] != "train")]
    events.to_parquet(layout.events, index=False)
    section = _train_section(query_cache, max_epochs=1)
    section["model"]["item_representation"] = "hybrid_dense"
    _run_single_threaded(build_section(TrainConfig, section, "train"), layout, query_cache)
    loaded = load_model(layout.model_dir)
    assert loaded.card["item_representation"] == "hybrid_dense" and loaded.net.dims.ranking_head
    dual, codebooks = load_item_codes(layout.ids_table, layout.codebooks)
    expected = code_composition(dual, codebooks, loaded.items.item_ids).index
    assert loaded.net.item_code_index.tolist() == expected.tolist()
    trained = set(events.loc[events["split"] == "train", "item_id"])
    assert loaded.net.item_has_events.tolist() == [item in trained for item in loaded.items.item_ids]
    cold = loaded.items.item_ids.index(cold_id)
    net = loaded.net
    row = net.token_table()[net.item_offset + cold]
    torch.testing.assert_close(row, net.code_embedding.weight[net.item_code_index[cold]].sum(0))
    assert (row != 0).any()  # its codes learned from the warm items that share them


def test_missing_inputs_fail_with_a_clear_error(tmp_path, query_cache):
    from unigrec.errors import ContractViolation
    from unigrec.stages.train import run

    cfg = build_section(TrainConfig, _train_section(query_cache), "train")
    with pytest.raises(ContractViolation, match="items.parquet is missing: run the ingest stage"):
        run(cfg, Layout(tmp_path), _runtime(query_cache))
    syn.write_project(tmp_path)
    Layout(tmp_path).codebooks.unlink()
    with pytest.raises(ContractViolation, match="run the identifiers stage"):
        run(cfg, Layout(tmp_path), _runtime(query_cache))


def test_inputs_list_identifier_files_only_for_semantic_ids(tmp_path, query_cache):
    """``inputs`` is the one list the stage checks and --export copies: atomic IDs read no identifier files."""
    import dataclasses

    from unigrec.stages.train import inputs

    layout = Layout(tmp_path)
    cfg = build_section(TrainConfig, _train_section(query_cache), "train")
    atomic = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, item_representation="atomic"))
    semantic = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, item_representation="semantic_ids"))
    assert [p for p, _ in inputs(atomic, layout)] == [layout.items, layout.events]
    assert {layout.ids_table, layout.codebooks} < {p for p, _ in inputs(semantic, layout)}
    dense = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, item_representation="hybrid_dense"))
    assert {layout.ids_table, layout.codebooks} < {p for p, _ in inputs(dense, layout)}


def test_training_runs_with_the_configured_thread_count_and_restores_it(tmp_path, query_cache, monkeypatch):
    """runtime.torch_threads.train holds for fitting and the validation report, and only for them."""

    from unigrec.stages.train import run
    from unigrec.train import fit, quick_eval

    seen = {}

    class Stop(Exception):
        pass

    def fake_fit(*args, **kwargs):
        seen["fit"] = torch.get_num_threads()
        return type("R", (), {"is_global_zero": True, "net": None})()

    def fake_report(**kwargs):
        seen["report"] = torch.get_num_threads()
        raise Stop

    monkeypatch.setattr(fit, "fit_generative_model", fake_fit)
    monkeypatch.setattr(quick_eval, "validation_report", fake_report)
    syn.write_project(tmp_path)
    cfg = build_section(TrainConfig, _train_section(query_cache), "train")
    runtime = _runtime(query_cache, torch_threads={"train": 1})
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(Stop):
            run(cfg, Layout(tmp_path), runtime)
        assert seen == {"fit": 1, "report": 1}
        assert torch.get_num_threads() == 2  # restored even though the stage failed
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_ddp_two_cpu_processes_with_gloo(tmp_path, query_cache):
    """strategy ddp, devices 2 on cpu: Lightning launches a second process; both train, rank 0 writes."""
    syn.write_project(tmp_path)
    section = _train_section(query_cache, strategy="ddp", devices=2, accelerator="cpu", max_epochs=2)
    runtime = yaml.safe_load((ROOT / "params.yaml").read_text())["runtime"]
    runtime.update(cache_dir=str(query_cache), progress_bar=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": section, "runtime": runtime}))
    env = {**os.environ, "UNIGREC_LOG_LEVEL": "INFO", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "unigrec.cli", "stage", "train", "--root", str(tmp_path)],
        check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert log.count("stage train: starting") == 2, log[-3000:]  # rank 0 and the process Lightning launched
    metrics = json.loads(Layout(tmp_path).train_metrics.read_text())
    assert metrics["training"]["epochs"] >= 1
    assert metrics["validation"]["rec"]["n"] == 24


class _Crash(Exception):
    pass


def _crash_in_epoch(cfg: TrainConfig, layout: Layout, runtime: RuntimeConfig, monkeypatch, at: int = 1) -> None:
    """Run the train stage and kill it a few batches into epoch ``at``."""
    import lightning as L

    from unigrec.stages.train import run
    from unigrec.train import fit

    class CrashInEpoch(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.current_epoch == at and batch_idx == 2:
                raise _Crash

    original = fit.build_trainer
    with monkeypatch.context() as patch:
        patch.setattr(fit, "build_trainer", lambda *a, **kw: original(*a[:5], [*a[5], CrashInEpoch()]))
        with pytest.raises(_Crash):
            run(cfg, layout, runtime)


def test_a_killed_run_resumes_after_its_last_epoch_and_only_if_params_match(
    tmp_path, query_cache, monkeypatch, caplog
):
    """Kill a run after its first epoch (last.ckpt written); the same run then continues at epoch 1 with the
    first epoch's log kept, a finished run or changed params start from scratch."""
    import pandas as pd

    from unigrec.stages.train import run
    from unigrec.train.resume import checkpoint_epoch

    def crash(cfg: TrainConfig, at: int = 1) -> None:
        _crash_in_epoch(cfg, layout, _runtime(query_cache), monkeypatch, at)

    syn.write_project(tmp_path)
    layout = Layout(tmp_path)
    section = _train_section(query_cache, max_epochs=3, patience=10)
    cfg = build_section(TrainConfig, section, "train")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        crash(cfg)
        assert (layout.train_work_dir / "checkpoints" / "last.ckpt").exists()
        assert not layout.train_metrics.exists()

        # the large tier's table edited: this small run trains the same, so it continues (the tier table is
        # how auto keys were chosen, not part of the run)
        section["sizing"]["large"]["optim"]["min_lr_ratio"] = 0.5
        with caplog.at_level(logging.INFO, logger="unigrec.train.fit"):
            run(build_section(TrainConfig, section, "train"), layout, _runtime(query_cache))  # continues
        training = json.loads(layout.train_metrics.read_text())["training"]
        assert training["resumed_after_epoch"] == 0 and training["epochs"] == 3
        # the log counts epochs from 1, as its per-epoch lines do; the record keeps metrics.csv's index
        assert "epoch 1 of 3 was its last finished one" in caplog.text
        assert sorted(p.name for p in (layout.train_work_dir / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
        epochs = pd.read_csv(layout.train_work_dir / "csv" / "version_0" / "metrics.csv")
        assert sorted(epochs.dropna(subset=["val/ndcg"])["epoch"]) == [0, 1, 2]  # no epoch lost or doubled
        assert [row.split(",")[0] for row in layout.train_curve.read_text().splitlines()[1:]] == ["0", "1", "2"]

        run(cfg, layout, _runtime(query_cache))  # that run finished: a re-run trains again from scratch
        training = json.loads(layout.train_metrics.read_text())["training"]
        assert training["resumed_after_epoch"] is None and training["device"] == "cpu"

        crash(cfg)
        section["optim"]["lr"] *= 2  # other params: the checkpoint is not theirs
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="unigrec.train.fit"):
            run(build_section(TrainConfig, section, "train"), layout, _runtime(query_cache))
        assert json.loads(layout.train_metrics.read_text())["training"]["resumed_after_epoch"] is None
        assert "holds an unfinished run of other train params or data" in caplog.text  # said, not silent

        # The resume point is the last finished epoch even when it was no new best. With lr 0 the weights
        # never move, so epoch 1 scores exactly what epoch 0 did and only epoch 0 is ever "best".
        section["optim"]["lr"] = 0.0
        frozen = build_section(TrainConfig, section, "train")
        crash(frozen, at=2)
        checkpoints = layout.train_work_dir / "checkpoints"
        assert checkpoint_epoch(checkpoints / "best.ckpt") == 0, "the set-up: no epoch after the first is a best"
        assert checkpoint_epoch(checkpoints / "last.ckpt") == 1
        run(frozen, layout, _runtime(query_cache))
        assert json.loads(layout.train_metrics.read_text())["training"]["resumed_after_epoch"] == 1
    finally:
        torch.set_num_threads(threads)


def test_a_moved_run_keeps_its_best_and_a_run_killed_after_its_last_epoch_only_redoes_the_end(
    tmp_path, query_cache, monkeypatch
):
    """A run packed on one machine and resumed in another folder keeps its best checkpoint: Lightning drops
    the best score when the recorded folder differs, so without relocating, the first resumed epoch would
    overwrite best.ckpt. With lr 0 every epoch scores the same, so best.ckpt must stay epoch 0's. And a run
    killed after its last epoch but before its outputs were written resumes there instead of retraining."""
    import shutil

    from unigrec.stages import train
    from unigrec.train.resume import checkpoint_epoch

    section = _train_section(query_cache, max_epochs=3, patience=10)
    section["optim"]["lr"] = 0.0
    cfg = build_section(TrainConfig, section, "train")
    first, moved = Layout(tmp_path / "gpu-machine"), Layout(tmp_path / "back-home")
    syn.write_project(first.root)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _crash_in_epoch(cfg, first, _runtime(query_cache), monkeypatch, at=2)
        checkpoints = first.train_work_dir / "checkpoints"
        assert (checkpoint_epoch(checkpoints / "best.ckpt"), checkpoint_epoch(checkpoints / "last.ckpt")) == (0, 1)
        shutil.move(first.root, moved.root)
        train.run(cfg, moved, _runtime(query_cache))
        training = json.loads(moved.train_metrics.read_text())["training"]
        assert training["resumed_after_epoch"] == 1 and training["epochs"] == 3
        assert checkpoint_epoch(moved.train_work_dir / "checkpoints" / "best.ckpt") == 0

        def killed_while_saving(*args, **kwargs):
            raise _Crash

        train.run(cfg, moved, _runtime(query_cache))  # finished: trains afresh
        with monkeypatch.context() as patch:  # ... and is killed while saving its model
            patch.setattr("unigrec.model.card.save_model", killed_while_saving)
            moved.train_metrics.unlink()
            with pytest.raises(_Crash):
                train.run(cfg, moved, _runtime(query_cache))
        train.run(cfg, moved, _runtime(query_cache))
        assert json.loads(moved.train_metrics.read_text())["training"]["resumed_after_epoch"] == 2
    finally:
        torch.set_num_threads(threads)
