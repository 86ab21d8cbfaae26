"""Build both identifiers for a catalogue: embeddings -> RQ-VAE or RQ-KMeans -> Sinkhorn -> dedup, with figures.

The stage wraps this with file reading and atomic writing; tests and the benchmark call it directly.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from unigrec.config import BatchSizesConfig, IdentifiersConfig
from unigrec.errors import ContractViolation
from unigrec.ids.artefacts import CodeLayout, build_code_layout, id_sources, quantised_level_names
from unigrec.ids.collaborative import (
    CollaborativeVectors,
    bpr_scores,
    fit_collaborative,
    validation_hit_rates,
)
from unigrec.ids.collisions import collision_rate, dedup_tokens, rebalance_last_level
from unigrec.ids.kmeans import squared_distances
from unigrec.ids.quality import code_counts, squared_error_sum, total_variance, usage_stats
from unigrec.ids.ridge import LinearMap, fit_ridge
from unigrec.ids.rqkmeans import fit_rqkmeans
from unigrec.ids.rqvae import DualRQVAE, QuantiserShape
from unigrec.ids.sequential import fit_sequential
from unigrec.ids.train_rqvae import encode_in_chunks, train_rqvae
from unigrec.text_encoder import embed_texts

log = logging.getLogger(__name__)

KINDS = ("semantic", "collaborative")


@dataclasses.dataclass
class IdentifierBuild:
    item_ids: list[str]
    semantic_vectors: np.ndarray  # (n, 384) text embeddings
    # (n, d) BPR factors, ridge-predicted where an item had no events; (n, 0) in semantic_only mode
    collaborative_vectors: np.ndarray
    ids: dict[str, np.ndarray]  # kind -> (n, L+1) final codes, last column = dedup token
    layout: CodeLayout
    model: DualRQVAE
    text_map: LinearMap
    metrics: dict[str, Any]
    usage: list[tuple[str, np.ndarray]]  # (label, items per code) for the usage plot


def item_texts(items: pd.DataFrame) -> list[str]:
    """What the text encoder reads: ``text`` (title + genres/description), else the title."""
    text = items["text"].astype("string").fillna("")
    title = items["title"].astype("string").fillna("")
    return [t if t.strip() else ti for t, ti in zip(text.tolist(), title.tolist())]


def unit_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows so IDs group items by direction (what/who), not by magnitude (popularity)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def quantiser_inputs(mode: str, semantic: np.ndarray, collaborative: np.ndarray) -> dict[str, torch.Tensor]:
    """The per-source tensors the quantiser of ``mode`` encodes (same rule at training and cold start)."""
    vectors = {"semantic": semantic, "collaborative": collaborative}
    return {s: torch.from_numpy(unit_rows(vectors[s])) for s in id_sources(mode)}


def quantiser_shape(mode: str, cfg: IdentifiersConfig, semantic_dim: int) -> QuantiserShape:
    rq = cfg.rqvae
    dims = {"semantic": semantic_dim, "collaborative": cfg.collaborative.width}
    single = len(id_sources(mode)) == 1
    return QuantiserShape(
        input_dims={s: dims[s] for s in id_sources(mode)},
        latent_dim=rq.latent_dim,
        # RQ-KMeans is the same module with one linear map per encoder and decoder (its PCA projection)
        hidden_dims=() if cfg.quantiser == "rqkmeans" else tuple(rq.hidden_dims),
        # Single-source IDs keep the same length: the shared levels become the source's first levels.
        shared_levels=0 if single else rq.shared_levels,
        shared_codebook_size=rq.shared_codebook_size,
        specific_levels=rq.shared_levels + rq.specific_levels if single else rq.specific_levels,
        specific_codebook_size=rq.specific_codebook_size,
    )


@torch.no_grad()
def reconstruction_report(
    model: DualRQVAE, inputs: dict[str, torch.Tensor], codes: dict[str, torch.Tensor], chunk: int
) -> dict[str, dict[str, float]]:
    """Error of decoding each source from the given codes, against the unit-norm inputs.

    Accumulated chunk by chunk, so a large catalogue's reconstructions never sit in memory at once.
    """
    n = len(next(iter(codes.values())))
    errors = dict.fromkeys(inputs, 0.0)
    for i in range(0, n, chunk):
        recon = model.decode(model.latent_from_codes({k: c[i : i + chunk] for k, c in codes.items()}))
        for s, x in inputs.items():
            errors[s] += squared_error_sum(x[i : i + chunk].numpy(), recon[s].numpy())
    report = {}
    for s, x in inputs.items():
        variance = total_variance(x.numpy())
        report[s] = {"mse": errors[s] / max(n, 1),
                     "fraction_unexplained": errors[s] / variance if variance > 0 else 0.0}
    return report


def embed_catalogue(
    items: pd.DataFrame, events: pd.DataFrame, cfg: IdentifiersConfig, batches: BatchSizesConfig,
    cache_dir: Path | None, generator: torch.Generator, show_progress: bool,
) -> tuple[np.ndarray, np.ndarray, LinearMap, dict[str, Any]]:
    """Semantic vectors, collaborative vectors (ridge-filled for items with no training events), the map.

    In ``semantic_only`` mode nothing reads the collaborative half, so its model (most of the stage's time
    on a real catalogue: ~440 of ~490 s for BPR-MF on ML-1M) is not fitted: the vectors and the map are
    zero-width.
    """
    item_ids = items["item_id"].astype(str).tolist()
    semantic = embed_texts(item_texts(items), batches.text_encoding, cache_dir, show_progress)
    if "collaborative" not in id_sources(cfg.mode):
        log.info("collaborative: not fitted (identifiers.mode %s encodes text only)", cfg.mode)
        unused = LinearMap(np.zeros((semantic.shape[1], 0), np.float32), np.zeros(0, np.float32))
        return semantic, np.zeros((len(item_ids), 0), np.float32), unused, {}
    source = collaborative_source(items, events, cfg, batches, generator, show_progress)
    warm = source.warm
    text_map = fit_ridge(semantic[warm], source.item_vectors[warm], cfg.ridge_lambda)
    collaborative = np.where(warm[:, None], source.item_vectors, text_map(semantic)).astype(np.float32)
    log.info("collaborative: %s", ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                            for k, v in source.figures.items()))
    return semantic, collaborative, text_map, source.figures


def collaborative_source(
    items: pd.DataFrame, events: pd.DataFrame, cfg: IdentifiersConfig, batches: BatchSizesConfig,
    generator: torch.Generator, show_progress: bool,
) -> CollaborativeVectors:
    """Item vectors of ``identifiers.collaborative.source`` fitted on the training split, which items had
    training events (the others' rows are untrained), and the source's figures (its validation HR@k)."""
    collab = cfg.collaborative
    item_ids = items["item_id"].astype(str).tolist()
    if collab.source == "sasrec":
        return fit_sequential(events, item_ids, collab, batches.baseline_contexts, generator)
    bpr = fit_collaborative(events, item_ids, collab, generator, show_progress)
    figures: dict[str, Any] = {
        "source": "bpr",
        "items_without_training_events": int((~bpr.warm).sum()),
        "bpr_training_users": len(bpr.user_index),
    }
    figures |= validation_hit_rates("bpr", bpr_scores(bpr), bpr.user_index, events, item_ids, collab.eval_k,
                                    collab.eval_users, generator, batches.baseline_contexts)
    return CollaborativeVectors(bpr.item_vectors, bpr.warm, figures)


def resolve_collisions(
    raw: np.ndarray, last_cost: np.ndarray, cfg: IdentifiersConfig, show_progress: bool
) -> tuple[np.ndarray, dict[str, Any]]:
    """Sinkhorn on the last level, then a dedup token; returns ``(n, L+1)`` codes and the rates."""
    balanced = rebalance_last_level(raw, last_cost, cfg.collisions.sinkhorn_epsilon,
                                    cfg.collisions.sinkhorn_iters, show_progress)
    final = np.concatenate([balanced, dedup_tokens(balanced)[:, None]], axis=1)
    figures = {
        "collision_rate_before": collision_rate(raw),
        "collision_rate_after_sinkhorn": collision_rate(balanced),
        "collision_rate_final": collision_rate(final),
        "items_moved_by_sinkhorn": int((balanced[:, -1] != raw[:, -1]).sum()),
        "items_needing_dedup_token": int((final[:, -1] > 0).sum()),
        "max_dedup_token": int(final[:, -1].max()) if len(final) else 0,
    }
    return final, figures


def assign_ids(
    model: DualRQVAE, codes: dict[str, torch.Tensor], residuals: dict[str, torch.Tensor], mode: str,
    cfg: IdentifiersConfig, show_progress: bool,
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]], dict[str, torch.Tensor]]:
    """Final codes of both kinds, their collision figures, and the per-level codes after balancing.

    ``codes``/``residuals``: nearest codes and the residual each level quantised, per level name.
    """
    names = quantised_level_names(mode, cfg.rqvae.shared_levels, cfg.rqvae.specific_levels)
    ids: dict[str, np.ndarray] = {}
    figures: dict[str, dict[str, Any]] = {}
    balanced_codes = {n: c.clone() for n, c in codes.items()}
    kinds = ("semantic",) if len(id_sources(mode)) == 1 else KINDS
    for kind in kinds:
        last = names[kind][-1]
        raw = torch.stack([codes[n] for n in names[kind]], dim=1).numpy().astype(np.int64)
        cost = squared_distances(residuals[last], model.codebooks[last].detach()).numpy()
        ids[kind], figures[kind] = resolve_collisions(raw, cost, cfg, show_progress)
        balanced_codes[last] = torch.from_numpy(ids[kind][:, -2].copy())
        if figures[kind]["collision_rate_final"] > 0:
            raise ContractViolation(f"identifiers: {kind} IDs still collide after dedup (a bug)")
    if len(kinds) == 1:  # single-source ablation: the one ID serves search and recommendation
        ids["collaborative"], figures["collaborative"] = ids["semantic"], figures["semantic"]
    return ids, figures, balanced_codes


def level_usage(
    ids: dict[str, np.ndarray], layout: CodeLayout, figures: dict[str, dict[str, Any]]
) -> list[tuple[str, np.ndarray]]:
    """Add utilisation/perplexity per level to ``figures``; return the plot panels (each level once)."""
    panels: list[tuple[str, np.ndarray]] = []
    for kind in KINDS:
        per_level = figures[kind].setdefault("levels", {})
        for j, level in enumerate(layout.levels(kind)):
            per_level[level.name] = usage_stats(ids[kind][:, j], level.size) | {"size": level.size}
            if level.name not in {label for label, _ in panels}:  # shared levels are plotted once
                panels.append((level.name, code_counts(ids[kind][:, j], level.size)))
    return panels


def build_identifiers(
    items: pd.DataFrame, events: pd.DataFrame, cfg: IdentifiersConfig, batches: BatchSizesConfig,
    cache_dir: Path | None = None, show_progress: bool = True,
) -> IdentifierBuild:
    """Give every catalogue item a semantic and a collaborative ID (docs/design.md §3) and measure them.

    ``batches`` sizes the text encoding and code assignment (memory and speed only); ``cache_dir`` keeps
    the text embeddings between runs."""
    torch.manual_seed(cfg.seed)  # module initialisation draws from the global generator
    generator = torch.Generator().manual_seed(cfg.seed)
    item_ids = items["item_id"].astype(str).tolist()
    semantic, collaborative, text_map, collab_figures = embed_catalogue(
        items, events, cfg, batches, cache_dir, generator, show_progress)

    inputs = quantiser_inputs(cfg.mode, semantic, collaborative)
    model = DualRQVAE(quantiser_shape(cfg.mode, cfg, semantic.shape[1]))
    if cfg.quantiser == "rqkmeans":
        losses = fit_rqkmeans(model, inputs, cfg.rqvae.kmeans_iters, generator)
    else:
        losses = train_rqvae(model, inputs, cfg.rqvae, generator, show_progress)
    codes, residuals = encode_in_chunks(model, inputs, batches.rqvae_inference)
    ids, kind_figures, balanced_codes = assign_ids(model, codes, residuals, cfg.mode, cfg, show_progress)

    largest_tie = max(f["max_dedup_token"] + 1 for f in kind_figures.values())
    dedup_size = max(cfg.collisions.dedup_size, largest_tie)
    if dedup_size > cfg.collisions.dedup_size:
        log.warning("identifiers: %d items share one ID after balancing; dedup level grown from %d to %d "
                    "tokens (larger codebooks would avoid this)", largest_tie, cfg.collisions.dedup_size,
                    dedup_size)
    layout = build_code_layout(cfg.mode, model.level_sizes(), dedup_size, cfg.rqvae.shared_levels,
                               cfg.rqvae.specific_levels)
    usage = level_usage(ids, layout, kind_figures)

    chunk = batches.rqvae_inference
    metrics = {
        "mode": cfg.mode,
        "quantiser": cfg.quantiser,
        "n_items": len(item_ids),
        "collaborative_model": collab_figures,
        "quantiser_final_losses": losses,
        "reconstruction_nearest_codes": reconstruction_report(model, inputs, codes, chunk),
        "reconstruction_final_ids": reconstruction_report(model, inputs, balanced_codes, chunk),
        "semantic_id": kind_figures["semantic"],
        "collaborative_id": kind_figures["collaborative"],
    }
    return IdentifierBuild(item_ids, semantic, collaborative, ids, layout, model, text_map, metrics, usage)
