"""Plain training loop for the RQ-VAE: auto-encoder warm-up, k-means codebook init, then full loss.

A plain loop rather than Lightning: the model is tiny, runs on CPU in seconds, and needs a step between
warm-up and quantised training (codebook init) that a Trainer would only obscure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch

from unigrec.config import RQVAEConfig
from unigrec.ids.rqvae import DualRQVAE
from unigrec.logs import progress

log = logging.getLogger(__name__)


def reconstruction_loss(inputs: dict[str, torch.Tensor], recon: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over sources of the mean per-row squared error (inputs are unit-norm, so sources weigh equally)."""
    return sum(((recon[s] - inputs[s]) ** 2).sum(1).mean() for s in inputs)  # type: ignore[return-value]


def batch_indices(n: int, batch_size: int, steps: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """``steps`` mini-batches, walking seeded permutations so every row is seen once per epoch."""
    size = min(batch_size, n)
    order = torch.randperm(n, generator=generator)
    pos = 0
    for _ in range(steps):
        if pos + size > n:
            order, pos = torch.randperm(n, generator=generator), 0
        yield order[pos : pos + size]
        pos += size


def train_rqvae(
    model: DualRQVAE,
    inputs: dict[str, torch.Tensor],
    cfg: RQVAEConfig,
    generator: torch.Generator,
    show_progress: bool = True,
) -> dict[str, float]:
    """Train ``model`` in place on all rows of ``inputs``; returns the loss terms averaged over the last
    epoch's worth of steps."""
    n = next(iter(inputs.values())).shape[0]
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)  # fewer kernel launches per step
    model.train()

    warmup = batch_indices(n, cfg.batch_size, cfg.warmup_steps, generator)
    for idx in progress(warmup, show=show_progress, total=cfg.warmup_steps, desc="rq-vae warm-up"):
        batch = {s: x[idx] for s, x in inputs.items()}
        loss = reconstruction_loss(batch, model.decode(model.encode(batch)))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    model.initialise_codebooks(inputs, cfg.kmeans_iters, generator)

    # Report the mean of the last epoch's steps: a stable figure without another pass over the data.
    last_epoch = max(1, min(cfg.steps, -(-n // cfg.batch_size)))
    # Codebook and commitment losses have the same value (they differ only in where gradients go),
    # so one "quantisation" figure is reported: summed squared residual-to-codeword distance.
    tail: dict[str, list[float]] = {"reconstruction": [], "quantisation": []}
    steps = batch_indices(n, cfg.batch_size, cfg.steps, generator)
    bar = progress(steps, show=show_progress, total=cfg.steps, desc="rq-vae")
    for step, idx in enumerate(bar):
        batch = {s: x[idx] for s, x in inputs.items()}
        out = model(batch)
        recon = reconstruction_loss(batch, out.reconstructions)
        loss = recon + out.codebook_loss + cfg.beta * out.commitment_loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step >= cfg.steps - last_epoch:
            for key, value in (("reconstruction", recon), ("quantisation", out.codebook_loss)):
                tail[key].append(value.detach().item())
    model.eval()
    final = {key: sum(values) / len(values) for key, values in tail.items() if values}
    log.info("rq-vae trained: %s", ", ".join(f"{k} {v:.4f}" for k, v in final.items()))
    return final


@torch.no_grad()
def encode_in_chunks(
    model: DualRQVAE, inputs: dict[str, torch.Tensor], chunk: int
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Codes and per-level residuals of all rows, ``chunk`` rows at a time (bounded memory; no decoding)."""
    model.eval()
    n = next(iter(inputs.values())).shape[0]
    codes: dict[str, list[torch.Tensor]] = {}
    residuals: dict[str, list[torch.Tensor]] = {}
    for i in range(0, n, chunk):
        part_codes, part_residuals, _ = model.quantise_latent(
            model.encode({s: x[i : i + chunk] for s, x in inputs.items()}))
        for name in part_codes:
            codes.setdefault(name, []).append(part_codes[name])
            residuals.setdefault(name, []).append(part_residuals[name])
    return ({k: torch.cat(v) for k, v in codes.items()}, {k: torch.cat(v) for k, v in residuals.items()})
