"""RQ-KMeans: residual k-means on a PCA projection of each source, fitted in closed form (no gradient steps).

Why offer it beside the RQ-VAE: GRID (Ju et al. 2025) found residual k-means at least as good as an RQ-VAE
for semantic IDs, and it has no training to converge (our RQ-VAE stops after a fixed number of steps). It is
the same module as the RQ-VAE (:class:`~unigrec.ids.rqvae.DualRQVAE`, one linear layer per encoder and
decoder) with the encoder set to the source's top principal directions, the decoder to their transpose and
the codebooks to the k-means of the residuals level by level, so shared and specific levels, code
assignment, cold-start encoding and the saved quantiser work unchanged.
"""

from __future__ import annotations

import logging

import torch

from unigrec.ids.rqvae import DualRQVAE

log = logging.getLogger(__name__)


def pca_basis(x: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean row of ``x`` and its top ``width`` principal directions as rows ``(width, d)``, largest
    variance first; rows past ``x``'s width are zero (a latent wider than its input keeps every direction)."""
    x = x.double()
    mean = x.mean(0)
    centred = x - mean
    # eigh of the (d, d) covariance: exact and deterministic, and d (384 at most here) is small
    values, vectors = torch.linalg.eigh(centred.T @ centred / max(len(x) - 1, 1))
    order = torch.argsort(values, descending=True, stable=True)[:width]
    basis = torch.zeros(width, x.shape[1], dtype=torch.float64)
    basis[: len(order)] = vectors[:, order].T
    # A direction's sign is arbitrary: fix it so the largest-magnitude entry is positive (reruns agree).
    pivot = basis.abs().argmax(1)
    basis *= torch.where(basis.gather(1, pivot[:, None]) < 0, -1.0, 1.0)
    return mean.float(), basis.float()


@torch.no_grad()
def fit_rqkmeans(
    model: DualRQVAE, inputs: dict[str, torch.Tensor], kmeans_iters: int, generator: torch.Generator
) -> dict[str, float]:
    """Set ``model`` (built with no hidden layers) to RQ-KMeans on ``inputs``; returns the figures the RQ-VAE's
    training reports: mean squared reconstruction error and quantisation error per item."""
    for source, x in inputs.items():
        encoder, decoder = model.encoders[source], model.decoders[source]
        if len(encoder) != 1 or len(decoder) != 1:
            raise ValueError("rq-kmeans needs a quantiser without hidden layers (one linear map per source)")
        mean, basis = pca_basis(x, model.shape.latent_dim)
        encoder[0].weight.copy_(basis)
        encoder[0].bias.copy_(-(basis @ mean))
        decoder[0].weight.copy_(basis.T)
        decoder[0].bias.copy_(mean)
    model.initialise_codebooks(inputs, kmeans_iters, generator)
    model.eval()
    out = model(inputs)
    n = len(next(iter(inputs.values())))
    recon = sum(((out.reconstructions[s] - x) ** 2).sum() for s, x in inputs.items()) / max(n, 1)
    figures = {"reconstruction": float(recon), "quantisation": float(out.codebook_loss)}
    log.info("rq-kmeans fitted: %s", ", ".join(f"{k} {v:.4f}" for k, v in figures.items()))
    return figures
