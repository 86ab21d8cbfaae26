"""Seeded k-means (k-means++ seeding + Lloyd), used to initialise RQ-VAE codebooks."""

from __future__ import annotations

import torch


def kmeans_plusplus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Pick ``k`` starting centroids, each drawn with probability proportional to its squared distance.

    Deterministic for a given generator state. With fewer distinct points than ``k`` the remaining
    centroids repeat points (the Lloyd step then re-seeds them if their cluster stays empty).
    """
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    centroids = [x[first]]
    closest = ((x - x[first]) ** 2).sum(dim=1)
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # every point already coincides with a centroid
            pick = int(torch.randint(n, (1,), generator=generator))
        else:
            pick = int(torch.multinomial(closest / total, 1, generator=generator))
        centroids.append(x[pick])
        closest = torch.minimum(closest, ((x - x[pick]) ** 2).sum(dim=1))
    return torch.stack(centroids)


def nearest_centroid(x: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of and squared distance to the closest centroid for every row of ``x`` (no gradient)."""
    with torch.no_grad():
        dist = squared_distances(x, centroids)
    best, idx = dist.min(dim=1)
    return idx, best


def squared_distances(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """(n, k) squared Euclidean distances, computed without the (n, k, d) broadcast."""
    return ((x**2).sum(1, keepdim=True) - 2 * x @ centroids.T + (centroids**2).sum(1)[None, :]).clamp_min(0)


def kmeans(x: torch.Tensor, k: int, iters: int, generator: torch.Generator) -> torch.Tensor:
    """Return ``(k, d)`` centroids of ``x`` after ``iters`` Lloyd steps from k-means++ seeds.

    An empty cluster is moved onto the point currently worst served, so no code starts dead.
    """
    x = x.detach().float()
    centroids = kmeans_plusplus(x, k, generator).clone()
    for _ in range(iters):
        idx, best = nearest_centroid(x, centroids)
        counts = torch.bincount(idx, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, idx, x)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None].float()
        empty = torch.nonzero(~filled).flatten()
        if len(empty):
            worst = torch.argsort(best, descending=True, stable=True)[: len(empty)]
            centroids[empty[: len(worst)]] = x[worst]
    return centroids
