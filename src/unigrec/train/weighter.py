"""Adaptive weights of the joint loss's tasks: fixed, DWA, GradNorm and uncertainty, behind one small class.

Every mode keeps the weights of the active tasks (base weight > 0) summing to the number of active
tasks, so switching modes changes how the gradient is shared between tasks, never its overall scale
(which would otherwise interact with the learning rate and gradient clipping). The rules are pure
functions; :class:`TaskWeighter` only keeps the running statistics between steps and never touches the
network, so it is tested without Lightning.

GradNorm needs no double backward here: the weighted gradient norm of task i is ``w_i * g_i`` with
``g_i`` the norm of the UNweighted loss's gradient, so the derivative of GradNorm's L1 objective with
respect to ``w_i`` is ``sign(w_i g_i - target_i) * g_i`` in closed form, and the module keeps Lightning's
automatic optimisation (gradient clipping, schedulers, DDP) in every mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from unigrec.config import WeighterConfig

# Numerical guard for loss ratios: a task absent from a batch logs a loss of exactly 0.
_EPS = 1e-8


def renormalise(weights: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """Zero the inactive tasks and scale the rest to sum to the number of active tasks."""
    w = torch.where(active, weights, torch.zeros_like(weights))
    total = w.sum()
    if total <= 0:
        return active.to(weights.dtype)
    return w * (active.sum().to(weights.dtype) / total)


def dwa_weights(ratios: torch.Tensor, temperature: float, active: torch.Tensor) -> torch.Tensor:
    """Dynamic Weight Average (Liu et al. 2019): ``w = T * softmax(r / temperature)`` over the active tasks.

    ``r_i = L_i(now) / L_i(before)``: a task whose loss fell less (r closer to 1) gets more weight.
    """
    logits = (ratios / temperature).masked_fill(~active, float("-inf"))
    return active.sum().to(ratios.dtype) * torch.softmax(logits, dim=0)


def gradnorm_targets(
    weighted_norms: torch.Tensor, rates: torch.Tensor, alpha: float, active: torch.Tensor
) -> torch.Tensor:
    """GradNorm (Chen et al. 2018) target norms: ``mean(G) * (r_i / mean(r)) ** alpha``.

    ``weighted_norms`` are ``w_i * ||grad L_i||`` on the shared block, ``rates`` are ``L_i(t) / L_i(0)``
    (the inverse training rate: a slow task has a large rate and is given a larger target norm).
    """
    n = active.sum().to(rates.dtype)
    mean_norm = (weighted_norms * active).sum() / n
    mean_rate = (rates * active).sum() / n
    relative = torch.where(active, rates / (mean_rate + _EPS), torch.zeros_like(rates))
    return (mean_norm * relative.pow(alpha)).detach()


def gradnorm_weight_gradient(
    weights: torch.Tensor, raw_norms: torch.Tensor, targets: torch.Tensor, active: torch.Tensor
) -> torch.Tensor:
    """d/dw of ``sum_i |w_i g_i - target_i|``: ``sign(w_i g_i - target_i) * g_i`` (0 for inactive tasks)."""
    grad = torch.sign(weights * raw_norms - targets) * raw_norms
    return torch.where(active, grad, torch.zeros_like(grad))


def uncertainty_log_var_gradient(log_vars: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """d/ds of Kendall et al.'s ``exp(-s) * L + s`` per task; its fixed point is ``exp(-s) = 1 / L``."""
    return 1.0 - torch.exp(-log_vars) * losses


class TaskWeighter:
    """Current task weights and the running loss statistics the adaptive modes need.

    Call :meth:`update` once per training step with the (detached) per-task losses, and, in ``gradnorm``
    mode, the per-task gradient norms of the unweighted losses; :attr:`weights` then holds the weights
    for the next step. ``base`` are the configured weights: the fixed weights, and the start (and the
    on/off mask) of the adaptive ones.
    """

    def __init__(self, cfg: WeighterConfig, base: Sequence[float]) -> None:
        if cfg.mode not in ("fixed", "dwa", "gradnorm", "uncertainty"):
            raise ValueError(f"unknown weighter mode {cfg.mode!r}")
        self.cfg = cfg
        base_t = torch.as_tensor(list(base), dtype=torch.float64)
        if (base_t < 0).any():
            raise ValueError("base task weights must be >= 0")
        self.active = base_t > 0
        if not self.active.any():
            raise ValueError("at least one task needs a base weight > 0")
        self.weights = renormalise(base_t, self.active)
        self.steps = 0
        self._ema: torch.Tensor | None = None
        self._ema_at_update: torch.Tensor | None = None
        self._initial: torch.Tensor | None = None
        # The learned quantity of the two learned modes: gradnorm's weights, uncertainty's log-variances.
        self._learned: torch.Tensor | None = None
        self._optimiser: torch.optim.Optimizer | None = None
        if cfg.mode in ("gradnorm", "uncertainty"):
            start = self.weights.clone() if cfg.mode == "gradnorm" else torch.zeros_like(self.weights)
            self._learned = start.requires_grad_(False)
            self._optimiser = torch.optim.Adam([self._learned], lr=cfg.lr)

    @property
    def n_tasks(self) -> int:
        return int(self.weights.shape[0])

    @property
    def needs_grad_norms(self) -> bool:
        return self.cfg.mode == "gradnorm"

    def rates(self) -> torch.Tensor:
        """Smoothed loss over the first step's loss per task (GradNorm's inverse training rate)."""
        if self._ema is None or self._initial is None:
            return torch.ones_like(self.weights)
        return (self._ema + _EPS) / (self._initial + _EPS)

    def update(self, losses: torch.Tensor, grad_norms: torch.Tensor | None = None) -> torch.Tensor:
        """Fold one step's per-task losses (and gradient norms) in; returns the weights for the next step."""
        losses = losses.detach().to("cpu", torch.float64)
        beta = self.cfg.loss_smoothing
        if self._ema is None:
            self._ema = losses.clone()
            self._initial = losses.clone()
            self._ema_at_update = losses.clone()
        else:
            self._ema = beta * self._ema + (1.0 - beta) * losses
        self.steps += 1
        mode = self.cfg.mode
        if mode == "dwa":
            self._update_dwa()
        elif mode == "gradnorm":
            if grad_norms is None:
                raise ValueError("gradnorm mode needs the per-task gradient norms")
            self._update_gradnorm(grad_norms.detach().to("cpu", torch.float64))
        elif mode == "uncertainty":
            self._step_learned(uncertainty_log_var_gradient(self._learned, self._ema))
            self.weights = renormalise(torch.exp(-self._learned), self.active)
        return self.weights

    def _update_dwa(self) -> None:
        if self.steps % self.cfg.update_every:
            return
        ratios = (self._ema + _EPS) / (self._ema_at_update + _EPS)
        self.weights = dwa_weights(ratios, self.cfg.temperature, self.active)
        self._ema_at_update = self._ema.clone()

    def _update_gradnorm(self, raw_norms: torch.Tensor) -> None:
        targets = gradnorm_targets(self._learned * raw_norms, self.rates(), self.cfg.gradnorm_alpha, self.active)
        self._step_learned(gradnorm_weight_gradient(self._learned, raw_norms, targets, self.active))
        with torch.no_grad():
            floored = torch.where(self.active, self._learned.clamp(min=self.cfg.min_weight), self._learned)
            self._learned.copy_(renormalise(floored, self.active))
        self.weights = self._learned.clone()

    def _step_learned(self, grad: torch.Tensor) -> None:
        assert self._learned is not None and self._optimiser is not None
        self._learned.grad = torch.where(self.active, grad, torch.zeros_like(grad))
        self._optimiser.step()
        self._learned.grad = None
