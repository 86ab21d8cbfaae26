"""The identifiers stage end to end on a tiny synthetic catalogue: output contract, zero collisions,
determinism, train-only collaborative signal, single-source modes and cold start."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from support import REPO
from support.ids_project import single_threaded_torch  # noqa: F401 (autouse fixture)
from support.runtime import runtime_config

from unigrec.config import IdentifiersConfig, load_section
from unigrec.errors import SourceError
from unigrec.ids.assign import assign_ids_for_embeddings, assign_ids_for_texts
from unigrec.ids.build import build_identifiers, item_texts
from unigrec.ids.collaborative import fit_collaborative
from unigrec.ids.persist import IDS_SCHEMA
from unigrec.ids.synthetic import SyntheticSpec, synthetic_semantic_vectors, write_synthetic_project
from unigrec.paths import Layout
from unigrec.stages.identifiers import run
from unigrec.text_encoder import embedding_cache_file

ROOT = REPO
SPEC = SyntheticSpec(n_items=150, n_users=60, events_per_user=20, n_topics=6, topics_per_user=2,
                     words_per_topic=10, search_share=0.25, positive_share=0.6, popularity_skew=2.0,
                     noise=0.7, seed=3)


def tiny_config(**top) -> IdentifiersConfig:
    """The project's identifiers section, shrunk so a whole run takes a few seconds."""
    cfg = load_section("identifiers", ROOT / "params.yaml")
    return dataclasses.replace(
        cfg,
        collaborative=dataclasses.replace(cfg.collaborative, dim=8, epochs=5, batch_size=128, eval_users=20),
        rqvae=dataclasses.replace(cfg.rqvae, latent_dim=4, hidden_dims=(16,), shared_levels=2,
                                  shared_codebook_size=8, specific_levels=1, specific_codebook_size=8,
                                  steps=120, warmup_steps=20, batch_size=32, kmeans_iters=5, lr=0.01),
        collisions=dataclasses.replace(cfg.collisions, dedup_size=4),
        **top,
    )


def make_project(root: Path) -> tuple[Layout, pd.DataFrame, pd.DataFrame]:
    """A project root holding items + events, with the text cache pre-filled by topic-clustered vectors
    (the real encoder is exercised by the slow test only)."""
    layout = Layout(root)
    items, events = write_synthetic_project(layout, SPEC)
    cache = layout.resolve(runtime_config().cache_dir)
    cache.mkdir(parents=True)
    np.save(embedding_cache_file(item_texts(items), cache), synthetic_semantic_vectors(SPEC, items))
    return layout, items, events


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory):
    layout, items, events = make_project(tmp_path_factory.mktemp("proj"))
    summary = run(tiny_config(), layout, runtime_config())
    return layout, items, events, summary


def test_ids_table_matches_the_contract(stage_run):
    layout, items, _, summary = stage_run
    table = pq.read_table(layout.ids_table)
    assert table.schema.equals(IDS_SCHEMA)
    ids = table.to_pandas()
    assert ids["item_id"].tolist() == items["item_id"].tolist()
    books = json.loads(layout.codebooks.read_text())
    assert books["mode"] == "dual"
    assert [lv["name"] for lv in books["semantic_levels"]] == ["shared_0", "shared_1", "sem_0", "sem_dedup"]
    assert [lv["name"] for lv in books["collaborative_levels"]] == [
        "shared_0", "shared_1", "col_0", "col_dedup"]
    for kind in ("semantic", "collaborative"):
        codes = np.array(ids[f"{kind}_id"].tolist())
        sizes = [lv["size"] for lv in books[f"{kind}_levels"]]
        assert codes.shape == (len(items), len(sizes))
        assert (codes >= 0).all() and (codes < np.array(sizes)).all()
        assert len({tuple(r) for r in codes}) == len(items)  # each ID maps to exactly one item
    sem, col = np.array(ids["semantic_id"].tolist()), np.array(ids["collaborative_id"].tolist())
    assert (sem[:, :2] == col[:, :2]).all()  # the shared prefix
    assert not (sem[:, 2] == col[:, 2]).all()  # the specific levels differ somewhere
    assert summary["semantic_collisions_final"] == 0 and summary["collaborative_collisions_final"] == 0


def test_embeddings_metrics_and_plot(stage_run):
    layout, items, _, _ = stage_run
    emb = np.load(layout.item_embeddings)
    assert emb["item_ids"].tolist() == items["item_id"].tolist()
    assert emb["semantic"].shape == (len(items), 384) and emb["semantic"].dtype == np.float32
    assert emb["collaborative"].shape == (len(items), 8)
    metrics = json.loads(layout.identifiers_metrics.read_text())
    for kind in ("semantic_id", "collaborative_id"):
        figures = metrics[kind]
        assert figures["collision_rate_final"] == 0.0
        assert figures["collision_rate_after_sinkhorn"] <= figures["collision_rate_before"]
        for level in figures["levels"].values():
            assert 0 < level["utilisation"] <= 1
            assert 1 <= level["perplexity"] <= level["size"] + 1e-9
    assert 0 <= metrics["reconstruction_nearest_codes"]["semantic"]["fraction_unexplained"] < 1
    assert layout.identifiers_plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_gives_byte_identical_ids(stage_run, tmp_path):
    layout, _, _, _ = stage_run
    again, _, _ = make_project(tmp_path)
    run(tiny_config(), again, runtime_config())
    assert again.ids_table.read_bytes() == layout.ids_table.read_bytes()
    assert again.identifiers_metrics.read_text() == layout.identifiers_metrics.read_text()


def test_collaborative_vectors_ignore_validation_and_test_events(stage_run):
    _, items, events, _ = stage_run
    cfg = tiny_config().collaborative
    import torch

    item_ids = items["item_id"].tolist()
    held_out = events["split"] != "train"
    shuffled = events.copy()
    shuffled.loc[held_out, "item_id"] = np.random.default_rng(0).choice(item_ids, int(held_out.sum()))
    a = fit_collaborative(events, item_ids, cfg, torch.Generator().manual_seed(0), show_progress=False)
    b = fit_collaborative(shuffled, item_ids, cfg, torch.Generator().manual_seed(0), show_progress=False)
    assert np.array_equal(a.item_vectors, b.item_vectors)


def test_sequential_source_gives_the_collaborative_half(tmp_path):
    """source sasrec: the collaborative input is SASRec's item embedding table (its width), its validation
    HR@k is in the metrics beside popularity, and the IDs are built and collision-free as with BPR."""
    layout, items, _ = make_project(tmp_path)
    base = tiny_config()
    sasrec = dataclasses.replace(base.collaborative.sasrec, hidden=12, n_blocks=1, epochs=3, max_len=20)
    cfg = dataclasses.replace(base, collaborative=dataclasses.replace(base.collaborative, source="sasrec",
                                                                      sasrec=sasrec))
    summary = run(cfg, layout, runtime_config())
    assert summary["collaborative_collisions_final"] == 0
    assert np.load(layout.item_embeddings)["collaborative"].shape == (len(items), 12)
    figures = json.loads(layout.identifiers_metrics.read_text())["collaborative_model"]
    assert figures["source"] == "sasrec" and figures["valid_users"] == 20
    assert 0 <= figures["sasrec_valid_hr@10"] <= 1 and 0 <= figures["popularity_valid_hr@10"] <= 1
    assert len(assign_ids_for_embeddings(np.load(layout.item_embeddings)["semantic"][:2], layout.ids_dir)) == 2


def test_rqkmeans_quantiser_builds_collision_free_ids_and_encodes_new_items(tmp_path):
    layout, _, _ = make_project(tmp_path)
    summary = run(tiny_config(quantiser="rqkmeans"), layout, runtime_config())
    assert summary["semantic_collisions_final"] == 0 and summary["collaborative_collisions_final"] == 0
    metrics = json.loads(layout.identifiers_metrics.read_text())
    assert metrics["quantiser"] == "rqkmeans"
    assert 0 <= metrics["reconstruction_nearest_codes"]["semantic"]["fraction_unexplained"] < 1
    # the saved quantiser (one linear map per source) reloads and codes items it has not seen
    new = assign_ids_for_embeddings(np.load(layout.item_embeddings)["semantic"][:3], layout.ids_dir)
    assert len(new) == 3


@pytest.mark.parametrize("mode, prefix", [("semantic_only", "sem"), ("collaborative_only", "col")])
def test_single_source_modes_use_one_id_for_both_tasks(stage_run, mode, prefix, tmp_path):
    _, items, events, _ = stage_run
    layout, _, _ = make_project(tmp_path)
    runtime = runtime_config()
    built = build_identifiers(items, events, tiny_config(mode=mode), runtime.batch_sizes,
                              cache_dir=layout.resolve(runtime.cache_dir), show_progress=False)
    names = [lv.name for lv in built.layout.semantic_levels]
    assert names == [f"{prefix}_0", f"{prefix}_1", f"{prefix}_2", f"{prefix}_dedup"]
    assert built.layout.semantic_levels == built.layout.collaborative_levels
    assert np.array_equal(built.ids["semantic"], built.ids["collaborative"])
    assert len({tuple(r) for r in built.ids["semantic"]}) == len(items)


def test_semantic_only_mode_fits_no_collaborative_model_and_still_assigns_cold_items(tmp_path, monkeypatch):
    def no_bpr(*args, **kwargs):
        raise AssertionError("semantic_only IDs must not fit BPR-MF: nothing reads its vectors")

    monkeypatch.setattr("unigrec.ids.build.fit_collaborative", no_bpr)
    layout, items, _ = make_project(tmp_path)
    cfg = tiny_config(mode="semantic_only")
    # room on every prefix for the catalogue copies assigned below (one source crowds the tiny codebooks)
    run(dataclasses.replace(cfg, collisions=dataclasses.replace(cfg.collisions, dedup_size=16)), layout, runtime_config())
    emb = np.load(layout.item_embeddings)
    assert emb["collaborative"].shape == (len(items), 0)
    assert json.loads(layout.identifiers_metrics.read_text())["collaborative_model"] == {}
    pairs = assign_ids_for_embeddings(emb["semantic"][:3], layout.ids_dir)
    assert len(pairs) == 3 and all(sem == col for sem, col in pairs)


def test_cold_start_ids_never_collide_with_the_catalogue(stage_run):
    layout = stage_run[0]
    emb = np.load(layout.item_embeddings)
    existing = pq.read_table(layout.ids_table).to_pandas()
    taken = {kind: {tuple(r) for r in existing[f"{kind}_id"]} for kind in ("semantic", "collaborative")}
    # Copies of catalogue items land on occupied prefixes: the dedup token must move them off.
    new = np.concatenate([emb["semantic"][:5], emb["semantic"][:5]])
    pairs = assign_ids_for_embeddings(new, layout.ids_dir)
    assert len(pairs) == 10
    for sem, col in pairs:
        assert len(sem) == 4 and len(col) == 4 and sem[:2] == col[:2]
        assert sem not in taken["semantic"] and col not in taken["collaborative"]
    assert len({sem for sem, _ in pairs}) == 10 and len({col for _, col in pairs}) == 10


def test_missing_upstream_output_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="dvc repro ingest"):
        run(tiny_config(), Layout(tmp_path), runtime_config())


@pytest.mark.slow
def test_cold_start_from_text_with_the_real_encoder(stage_run, tmp_path):
    layout, _, _, _ = stage_run
    pairs = assign_ids_for_texts(["A brand new film. Genres: Comedy, Romance."], layout.ids_dir)
    existing = pq.read_table(layout.ids_table).to_pandas()
    assert len(pairs) == 1
    assert pairs[0][0] not in {tuple(r) for r in existing["semantic_id"]}
