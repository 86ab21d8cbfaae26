"""A tiny project for the evaluate stage and serving tests: the synthetic split and ids, 1+9 candidate
lists, an UNTRAINED generative model saved exactly as the train stage saves one, and pre-filled query
vectors (random, cached under the texts' hash) so no test loads MiniLM."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from unigrec.config import EvaluateConfig, RuntimeConfig, build_section
from unigrec.paths import Layout

from . import REPO
from . import synthetic_train_data as syn
from .runtime import runtime_config

ROOT = REPO
N_NEGATIVES = 9
QUERY_DIM = 384


def write_candidates(layout: Layout, seed: int = 3) -> None:
    """Valid/test 1+9 lists: negatives drawn from items outside the user's whole history."""
    events = pd.read_parquet(layout.events)
    items = pd.read_parquet(layout.items)["item_id"].astype(str).tolist()
    rng = np.random.default_rng(seed)
    rows = []
    for ev in events[events["split"] != "train"].itertuples(index=False):
        seen = set(events.loc[events["user_id"] == ev.user_id, "item_id"].astype(str))
        pool = [i for i in items if i not in seen]
        rows.append({"user_id": ev.user_id, "kind": ev.kind, "split": ev.split, "item_id": ev.item_id,
                     "negatives": list(rng.choice(pool, size=N_NEGATIVES, replace=False))})
    pd.DataFrame(rows).to_parquet(layout.candidates, index=False)


def fill_query_cache(layout: Layout, cache_dir: str) -> np.ndarray:
    from unigrec.inference.prompts import query_table_texts
    from unigrec.text_encoder import embedding_cache_file

    texts = list(query_table_texts(pd.read_parquet(layout.events)))
    vectors = np.random.default_rng(0).normal(size=(len(texts), QUERY_DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    path = embedding_cache_file(texts, layout.root / cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def fill_typed_query_cache(layout: Layout, cache_dir: str) -> None:
    """Random vectors for the typed-query set's texts (evaluate/relevance.py), so no test loads MiniLM."""
    from unigrec.data.relevance import CatalogueJudge
    from unigrec.evaluate.relevance import typed_query_requests
    from unigrec.text_encoder import embedding_cache_file

    cfg = evaluate_cfg().relevance
    items, events = pd.read_parquet(layout.items), pd.read_parquet(layout.events)
    requests = typed_query_requests(cfg, items, events, CatalogueJudge(items, cfg.reading))
    texts = sorted({r.query for r in requests})
    if not texts:
        return
    vectors = np.random.default_rng(1).normal(size=(len(texts), QUERY_DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    path = embedding_cache_file(texts, layout.root / cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)


def save_untrained_model(layout: Layout, seed: int = 0) -> None:
    from unigrec.config import TrainConfig, resolve_auto
    from unigrec.model.card import model_card, save_model
    from unigrec.model.item_codes import load_item_codes
    from unigrec.model.tokenizer import SequenceSerialiser
    from unigrec.model.transformer import GenerativeTransformer
    from unigrec.model.vocabulary import Vocabulary
    from unigrec.train.fit import transformer_dims

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
    raw["model"].update(d_model=16, n_heads=2, d_ff=32, dropout=0.0)
    raw.update(max_events=20)
    cfg = resolve_auto(build_section(TrainConfig, raw, "train"), "small")  # the tier a tiny catalogue gets
    items, codebooks = load_item_codes(layout.ids_table, layout.codebooks)
    vocab = Vocabulary.from_codebooks(codebooks)
    serialiser = SequenceSerialiser(vocab, items, cfg.model.n_query_tokens, cfg.max_events)
    dims = transformer_dims(cfg.model, cfg.retrieval_loss, vocab, serialiser.max_length, QUERY_DIM)
    torch.manual_seed(seed)
    net = GenerativeTransformer(dims).eval()
    save_model(layout.model_dir, net, items, model_card(dims, vocab, serialiser, "semantic_ids"))


def evaluate_cfg(**overrides) -> EvaluateConfig:
    """The project's evaluate params, sized for a 40-item catalogue and 1+9 lists."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())["evaluate"]
    raw.update(
        sampled_hr_cutoffs=[1, 5], sampled_ndcg_cutoffs=[5], full_hr_cutoffs=[5, 10], full_ndcg_cutoffs=[5, 10],
        curve_max_k=10, beam_size=20, pipeline_k=10, pipeline_ndcg_cutoff=5,
        cold_user_max_events=14, baselines=["popularity"],
    )
    cfg = build_section(EvaluateConfig, raw, "evaluate")
    return dataclasses.replace(cfg, **overrides)


def evaluate_runtime() -> RuntimeConfig:
    """The runtime the evaluate tests run with: the project's, decoding 8 prompts per batch."""
    return runtime_config(batch_sizes={"evaluation_prompts": 8})


def tiny_project(root: Path) -> Layout:
    """Everything the evaluate stage reads, in ``root``; returns its layout."""
    layout = Layout(root)
    syn.write_project(root)
    write_candidates(layout)
    fill_query_cache(layout, evaluate_runtime().cache_dir)
    fill_typed_query_cache(layout, evaluate_runtime().cache_dir)
    save_untrained_model(layout)
    (root / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    return layout
