"""Adaptive weights of the joint loss's tasks: fixed, DWA, GradNorm and uncertainty, behind one small class.

Every mode keeps the weights of the active tasks (base weight > 0) summing to the number of active
tasks, so switching modes changes how the gradient is shared between tasks, never its overall scale
(which would otherwise interact with the learning rate and gradient clipping). The rules are pure
functions; :class:`TaskWeighter` only keeps the running statistics between steps and never touches the
network, so it is tested without Lightning.

The weighter's tasks need not be the loss's terms (``train.weighter.tasks``): with ``three`` each loss
group (rec retrieval, search retrieval, ranking) is its own task; with ``two`` the weighter balances
retrieval against ranking, as UniGRF does, and retrieval is the base-weighted mean of the two retrieval
losses, whose internal ratio stays the base one. Balancing three tasks dilutes the paper's signal: ranking
then competes with two retrieval losses that mostly move together. The weights the module applies to the
three terms are expanded from the task weights (:func:`expand_weights`) so that they still sum to the
number of active terms, and ``fixed`` gives the same loss with either grouping.

GradNorm needs no double backward here: the weighted gradient norm of task i is ``w_i * g_i`` with
``g_i`` the norm of the UNweighted loss's gradient, so the derivative of GradNorm's L1 objective with
respect to ``w_i`` is ``sign(w_i g_i - target_i) * g_i`` in closed form, and the module keeps Lightning's
automatic optimisation (gradient clipping, schedulers, DDP) in every mode.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence

import torch

from unigrec.config import WeighterConfig
from unigrec.model.tokenizer import LOSS_GROUPS, RANKING, RETRIEVAL_REC, RETRIEVAL_SEARCH

# Numerical guard for loss ratios: a task absent from a batch logs a loss of exactly 0.
_EPS = 1e-8

# train.weighter.update_every: DWA steps once at the end of each training epoch (Liu et al.'s time scale).
EPOCH = "epoch"

# train.weighter.tasks: two -> the weighter's tasks as (name, the LOSS_GROUPS indices they combine).
TWO_TASKS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("retrieval", (RETRIEVAL_REC, RETRIEVAL_SEARCH)),
    ("ranking", (RANKING,)),
)


def weighter_tasks(tasks: str, n_losses: int) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """The weighter's tasks over ``n_losses`` loss terms, as (name, indices of the terms they combine).

    ``three``: every term its own task (named after LOSS_GROUPS when the terms are the model's; any count
    is accepted, so the rules can be tested on toy problems). ``two``: retrieval (both retrieval terms)
    and ranking, which needs the model's LOSS_GROUPS terms.
    """
    if tasks == "three":
        names = LOSS_GROUPS if n_losses == len(LOSS_GROUPS) else tuple(f"task_{i}" for i in range(n_losses))
        return tuple((name, (i,)) for i, name in enumerate(names))
    if tasks == "two":
        if n_losses != len(LOSS_GROUPS):
            raise ValueError(f"weighter tasks 'two' groups the {len(LOSS_GROUPS)} loss terms {LOSS_GROUPS}, "
                             f"got {n_losses} base weights")
        return TWO_TASKS
    raise ValueError(f"unknown weighter tasks {tasks!r}")


def group_base(base: torch.Tensor, groups: Sequence[Sequence[int]]) -> torch.Tensor:
    """A task's base weight: the sum of its terms' (so ``fixed`` keeps every term's configured weight)."""
    return torch.stack([base[list(members)].sum() for members in groups])


def member_shares(base: torch.Tensor, groups: Sequence[Sequence[int]]) -> torch.Tensor:
    """Each term's share of its task: ``b_i / sum of its task's b``; the shares of a task sum to 1.

    A task whose terms are all off (base 0) shares equally; it is never weighted, only tracked. A task of
    one term has share exactly 1.0, so one-term tasks pass their loss and weight through bit for bit.
    """
    shares = torch.zeros_like(base)
    for members, total in zip(groups, group_base(base, groups), strict=True):
        idx = list(members)
        shares[idx] = base[idx] / total if total > 0 else torch.full_like(base[idx], 1.0 / len(idx))
    return shares


def group_loss(losses: Sequence[torch.Tensor], members: Sequence[int], shares: Sequence[float]) -> torch.Tensor:
    """One task's loss: its terms' losses weighted by their shares (differentiable, no other term's graph)."""
    return functools.reduce(operator.add, (shares[i] * losses[i] for i in members))


def group_losses(losses: torch.Tensor, groups: Sequence[Sequence[int]], base: torch.Tensor) -> torch.Tensor:
    """Every task's loss (:func:`group_loss`) from the per-term ``losses``: the base-weighted mean of its terms.

    The mean (not the sum) keeps a task's loss on the scale of one term, so uncertainty weighting and the
    GradNorm norms compare like with like whatever the number of terms a task holds.
    """
    shares = member_shares(base, groups).tolist()
    return torch.stack([group_loss(losses, members, shares) for members in groups])


def expand_weights(task_weights: torch.Tensor, groups: Sequence[Sequence[int]], base: torch.Tensor) -> torch.Tensor:
    """The weight of each loss term from its task's: ``w_i = W_task * share_i * n_active_terms / n_active_tasks``.

    ``share_i`` keeps the terms' ratio inside a task at their base ratio. The factor makes the applied
    weights sum to the number of active terms, as without grouping, so grouping never rescales the
    gradient (the task weights sum to the number of active tasks). With ``task_weights`` the renormalised
    base of the tasks (``fixed`` mode) this is exactly the renormalised base of the terms: the same loss.
    """
    owner = torch.empty(base.shape[0], dtype=torch.long)
    for task, members in enumerate(groups):
        owner[list(members)] = task
    n_terms = int((base > 0).sum())
    n_tasks = int((group_base(base, groups) > 0).sum())
    scale = n_terms / n_tasks if n_tasks else 0.0
    return task_weights[owner] * member_shares(base, groups) * scale


def renormalise(weights: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """Zero the inactive tasks and scale the rest to sum to the number of active tasks."""
    w = torch.where(active, weights, torch.zeros_like(weights))
    total = w.sum()
    if total <= 0:
        return active.to(weights.dtype)
    return w * (active.sum().to(weights.dtype) / total)


def dwa_weights(ratios: torch.Tensor, temperature: float, active: torch.Tensor) -> torch.Tensor:
    """Dynamic Weight Average (Liu et al. 2019): ``w = T * softmax(r / temperature)`` over the active tasks.

    ``r_i = L_i(now) / L_i(before)``: a task whose loss fell less (r closer to 1) gets more weight. Two
    tasks' weights stand in the ratio ``exp((r_i - r_j) / temperature)``: ratios 0.05 apart move them by
    about 1% at temperature 2 (Liu et al.'s), by about 25% at 0.1.
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

    Call :meth:`update` once per training step with the (detached) per-term losses, and, in ``gradnorm``
    mode, the gradient norms of the unweighted TASK losses (:meth:`task_loss`; one per task, so with
    ``tasks: two`` the norm of the grouped retrieval loss); :attr:`weights` then holds the weights of the
    loss terms for the next step, :attr:`task_weights` those of the weighter's tasks. With
    ``update_every: epoch`` call :meth:`end_epoch` at the end of each training epoch: DWA steps there.
    ``base`` are the configured per-term weights: the fixed weights, the terms' shares inside a task, and
    the start (and the on/off mask) of the adaptive ones.
    """

    def __init__(self, cfg: WeighterConfig, base: Sequence[float]) -> None:
        if cfg.mode not in ("fixed", "dwa", "gradnorm", "uncertainty"):
            raise ValueError(f"unknown weighter mode {cfg.mode!r}")
        every = cfg.update_every
        if every != EPOCH and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise ValueError(f"weighter update_every must be a step count >= 1 or {EPOCH!r}, not {every!r}")
        held = cfg.baseline_updates
        if isinstance(held, bool) or not isinstance(held, int) or held < 0:
            raise ValueError(f"weighter baseline_updates must be a count >= 0, not {held!r}")
        self.cfg = cfg
        base_t = torch.as_tensor(list(base), dtype=torch.float64)
        if (base_t < 0).any():
            raise ValueError("base task weights must be >= 0")
        tasks = weighter_tasks(cfg.tasks, int(base_t.shape[0]))
        self.task_names: tuple[str, ...] = tuple(name for name, _ in tasks)
        self.groups: tuple[tuple[int, ...], ...] = tuple(members for _, members in tasks)
        self.base = base_t
        self.shares: list[float] = member_shares(base_t, self.groups).tolist()
        task_base = group_base(base_t, self.groups)
        self.active = task_base > 0  # per weighter task
        if not self.active.any():
            raise ValueError("at least one task needs a base weight > 0")
        self.task_weights = renormalise(task_base, self.active)
        self.weights = self._expand()
        self.steps = 0
        self._dwa_updates = 0
        self._ema: torch.Tensor | None = None
        self._ema_at_update: torch.Tensor | None = None
        self._initial: torch.Tensor | None = None
        # The learned quantity of the two learned modes: gradnorm's weights, uncertainty's log-variances.
        self._learned: torch.Tensor | None = None
        self._optimiser: torch.optim.Optimizer | None = None
        if cfg.mode in ("gradnorm", "uncertainty"):
            start = self.task_weights.clone() if cfg.mode == "gradnorm" else torch.zeros_like(self.task_weights)
            self._learned = start.requires_grad_(False)
            self._optimiser = torch.optim.Adam([self._learned], lr=cfg.lr)

    @property
    def n_tasks(self) -> int:
        """The weighter's tasks (the length of :attr:`task_weights`, of the gradient norms and the rates)."""
        return int(self.task_weights.shape[0])

    @property
    def n_losses(self) -> int:
        """The loss terms the weights apply to (the length of :attr:`weights` and of the losses updated with)."""
        return int(self.weights.shape[0])

    @property
    def needs_grad_norms(self) -> bool:
        return self.cfg.mode == "gradnorm"

    def task_loss(self, task: int, losses: Sequence[torch.Tensor]) -> torch.Tensor:
        """Task ``task``'s loss from the per-term ``losses`` (differentiable; touches only its own terms)."""
        return group_loss(losses, self.groups[task], self.shares)

    def rates(self) -> torch.Tensor:
        """Smoothed loss over the first step's loss per task (GradNorm's inverse training rate)."""
        if self._ema is None or self._initial is None:
            return torch.ones_like(self.task_weights)
        return (self._ema + _EPS) / (self._initial + _EPS)

    def update(self, losses: torch.Tensor, grad_norms: torch.Tensor | None = None) -> torch.Tensor:
        """Fold one step's per-term losses (and per-task gradient norms) in; returns the terms' weights for
        the next step."""
        losses = losses.detach().to("cpu", torch.float64)
        if losses.shape[0] != self.n_losses:
            raise ValueError(f"the weighter has {self.n_losses} loss terms, got {losses.shape[0]} losses")
        losses = group_losses(losses, self.groups, self.base)
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
            if self.cfg.update_every != EPOCH and not self.steps % self.cfg.update_every:
                self._update_dwa()
        elif mode == "gradnorm":
            if grad_norms is None:
                raise ValueError("gradnorm mode needs the per-task gradient norms")
            if grad_norms.shape[0] != self.n_tasks:
                raise ValueError(f"the weighter has {self.n_tasks} tasks, got {grad_norms.shape[0]} gradient norms")
            self._update_gradnorm(grad_norms.detach().to("cpu", torch.float64))
        elif mode == "uncertainty":
            self._step_learned(uncertainty_log_var_gradient(self._learned, self._ema))
            self.task_weights = renormalise(torch.exp(-self._learned), self.active)
        self.weights = self._expand()
        return self.weights

    def end_epoch(self) -> torch.Tensor:
        """End of a training epoch: with ``update_every: epoch`` DWA steps on the epoch's loss ratios."""
        if self.cfg.mode == "dwa" and self.cfg.update_every == EPOCH and self._ema is not None:
            self._update_dwa()
            self.weights = self._expand()
        return self.weights

    def _expand(self) -> torch.Tensor:
        return expand_weights(self.task_weights, self.groups, self.base)

    def _update_dwa(self) -> None:
        # The first ``baseline_updates`` updates only move the baseline: a ratio against the untrained
        # model's first-step loss measures how far each task's loss starts above its trained scale, not
        # which task is learning slower (on ML-1M it gave retrieval 0.03 of the weight for an epoch).
        if self._dwa_updates >= self.cfg.baseline_updates:
            ratios = (self._ema + _EPS) / (self._ema_at_update + _EPS)
            self.task_weights = dwa_weights(ratios, self.cfg.temperature, self.active)
        self._dwa_updates += 1
        self._ema_at_update = self._ema.clone()

    def _update_gradnorm(self, raw_norms: torch.Tensor) -> None:
        targets = gradnorm_targets(self._learned * raw_norms, self.rates(), self.cfg.gradnorm_alpha, self.active)
        self._step_learned(gradnorm_weight_gradient(self._learned, raw_norms, targets, self.active))
        with torch.no_grad():
            floored = torch.where(self.active, self._learned.clamp(min=self.cfg.min_weight), self._learned)
            self._learned.copy_(renormalise(floored, self.active))
        self.task_weights = self._learned.clone()

    def _step_learned(self, grad: torch.Tensor) -> None:
        assert self._learned is not None and self._optimiser is not None
        self._learned.grad = torch.where(self.active, grad, torch.zeros_like(grad))
        self._optimiser.step()
        self._learned.grad = None
