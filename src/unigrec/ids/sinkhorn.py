"""Sinkhorn balanced assignment of items to codes (GenSAR/LC-Rec's last-level collision step)."""

from __future__ import annotations

import math

import torch


def sinkhorn_plan(cost: torch.Tensor, epsilon: float, iters: int) -> torch.Tensor:
    """Entropic optimal-transport plan between ``n`` items (mass 1/n each) and ``K`` codes (1/K each).

    ``cost`` is divided by its largest entry first so ``epsilon`` means the same thing for any scale of
    distances. Computed in the log domain: small ``epsilon`` would underflow ``exp(-cost/eps)``.
    """
    n, k = cost.shape
    scale = cost.max().clamp_min(torch.finfo(cost.dtype).tiny)
    log_kernel = -(cost / scale) / epsilon
    log_rows = torch.full((n,), -math.log(n), dtype=cost.dtype)
    log_cols = torch.full((k,), -math.log(k), dtype=cost.dtype)
    u = torch.zeros(n, dtype=cost.dtype)
    v = torch.zeros(k, dtype=cost.dtype)
    for _ in range(iters):
        u = log_rows - torch.logsumexp(log_kernel + v[None, :], dim=1)
        v = log_cols - torch.logsumexp(log_kernel + u[:, None], dim=0)
    return torch.exp(log_kernel + u[:, None] + v[None, :])


def balanced_assign(cost: torch.Tensor, epsilon: float, iters: int) -> torch.Tensor:
    """One code per item from the Sinkhorn plan, no code taking more than ``ceil(n/K)`` items.

    Rounding is greedy over the plan's entries, largest first (ties broken by item then code index, so
    the result is deterministic). With ``n <= K`` every item gets a different code; with more items
    than codes the load is as even as the pigeonhole principle allows.
    """
    n, k = cost.shape
    capacity = -(-n // k)
    plan = sinkhorn_plan(cost.double(), epsilon, iters)
    order = torch.argsort(-plan.flatten(), stable=True).tolist()
    assigned = [-1] * n
    load = [0] * k
    remaining = n
    for flat in order:
        item, code = divmod(flat, k)
        if assigned[item] >= 0 or load[code] >= capacity:
            continue
        assigned[item] = code
        load[code] += 1
        remaining -= 1
        if remaining == 0:
            break
    return torch.tensor(assigned, dtype=torch.long)
