"""LightningModule: owns the joint loss, its task weights, the enhancer, the optimiser and validation logging.

The network is plain torch; the weighter and the enhancer are plain components (``weighter.py``,
``enhancer.py``) that this module calls once per step and logs.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Mapping

import lightning as L
import numpy as np
import torch

from unigrec.config import OptimConfig
from unigrec.evaluate.metrics import auc, hr_at_k, ndcg_at_k
from unigrec.inference.retrieval import STREAMS, positive_probability, rank_prompts
from unigrec.model.batch import SequenceBatch
from unigrec.model.decoding import IdSpace
from unigrec.model.tokenizer import LOSS_GROUPS, RETRIEVAL_SEARCH
from unigrec.model.transformer import GenerativeTransformer
from unigrec.train.enhancer import RankingDrivenEnhancer, enhancer_ready
from unigrec.train.losses import LossSpec, losses_from_states, sequence_losses_and_states
from unigrec.train.weighter import TaskWeighter

MONITOR = "val/ndcg"  # validation NDCG@k over the streams present (checkpoint + early stopping), see monitor_value
RANKING_MONITOR = "val/ranking_auc"  # what a ranking-only model (retrieval weights 0) is selected on
ENHANCER_GATE = "enhancer_gate"  # checkpoint key of the enhancer's warm-up state (a resumed run keeps it)

log = logging.getLogger(__name__)


def lr_factor(step: int, cfg: OptimConfig, total_steps: int) -> float:
    """Multiplier of the base lr at ``step``: linear warm-up, then constant or cosine down to min_lr_ratio.

    Why decay: with a constant lr the validation metric plateaus while the loss is still noisy; annealing
    lets the last epochs settle into the minimum they circle. ``total_steps`` 0 (unknown) holds the lr.
    """
    warmup = max(cfg.warmup_steps, 1)
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant" or total_steps <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / (total_steps - warmup))
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def monitor_value(sums: torch.Tensor, average: str) -> torch.Tensor:
    """The checkpoint/early-stopping monitor from per-stream ``[prompts, hits@k, ndcg@k sum]`` rows.

    ``streams`` averages the streams' NDCG@k, so each task weighs the same whatever its traffic;
    ``prompts`` divides the NDCG sum by the prompt count, so a stream weighs by its scored prompts and a
    small, noisy one (a few hundred searches) cannot pick the checkpoint on its own. ``rec`` is the
    recommendation stream's NDCG@k alone (row 0): the checkpoint of the best recommender, which is what
    SASRec-style baselines are stopped on. Streams without prompts are left out; none at all gives 0.
    """
    if average == "rec":
        sums = sums[:1]
    present = sums[:, 0] > 0
    if not bool(present.any()):
        return torch.zeros((), dtype=sums.dtype, device=sums.device)
    n, gains = sums[present, 0], sums[present, 2]
    if average == "streams":
        return (gains / n).mean()
    if average in ("prompts", "rec"):
        return gains.sum() / n.sum()
    raise ValueError(f"monitor average must be 'streams', 'prompts' or 'rec', not {average!r}")


class GenerativeRecModule(L.LightningModule):
    def __init__(
        self,
        net: GenerativeTransformer,
        loss_spec: LossSpec,
        weighter: TaskWeighter,
        optim: OptimConfig,
        spaces: Mapping[bool, IdSpace],
        beam_size: int,
        k: int,
        enhancer: RankingDrivenEnhancer | None = None,
        log_grad_norms: bool = False,
        monitor_average: str = "prompts",  # params.yaml train.eval.monitor_average
        alignment_weight: float = 0.0,  # params.yaml train.alignment.weight
    ) -> None:
        super().__init__()
        if weighter.n_losses != len(LOSS_GROUPS):
            raise ValueError(f"the weighter has {weighter.n_losses} loss terms, the loss {len(LOSS_GROUPS)}")
        if enhancer is not None and enhancer.feeds_sampled_softmax and loss_spec.sampled_negatives is None:
            raise ValueError("train.enhancer.hard_negatives.into: sampled_softmax needs "
                             "train.retrieval_loss.softmax: sampled (in a full softmax every item already is a negative)")
        self.net = net
        self.loss_spec = loss_spec
        self.weighter = weighter
        self.enhancer = enhancer
        self.log_grad_norms = log_grad_norms
        self.optim = optim
        self.spaces = dict(spaces)
        self.beam_size = beam_size
        self.k = k
        self.monitor_average = monitor_average
        self.alignment_weight = alignment_weight
        # per stream: [requests, hits@k, ndcg@k sum], summed over the epoch and across ranks
        self.register_buffer("_val_sums", torch.zeros(len(STREAMS), 3), persistent=False)
        self._val_scores: list[torch.Tensor] = []  # P(<pos>) of rec validation targets, and their labels
        self._val_labels: list[torch.Tensor] = []
        # the enhancer's warm-up (train.enhancer.warmup): latched on once over; the last epoch's validation AUC
        self._last_valid_auc: float | None = None
        self._enhancer_on = enhancer is not None and enhancer_ready(0, None, enhancer.cfg.warmup)

    # ------------------------------------------------------------------ training
    def training_objective(
        self, batch: SequenceBatch, alignment: SequenceBatch | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, float]]:
        """Weighted joint loss of one batch: (total, plain task losses, task losses + enhancer and
        alignment terms, stats).

        With the enhancer off, no alignment batch and fixed weights this is exactly
        ``sum(w_task * loss_task)`` of :func:`sequence_losses`, the plain joint loss. ``alignment``: a batch
        of the catalogue's one-event searches (train/alignment.py); its search-retrieval loss, times
        ``alignment_weight``, joins that task's, so the weighter balances the task as a whole.

        One forward pass: the enhancer reuses its hidden states and cache. With ``hard_negatives.into:
        sampled_softmax`` it mines before the task losses are taken from the same hidden states, so its hard
        negatives join the retrieval loss's softmax (the plain task losses then include them); otherwise it
        runs after them, as it always did, so the random draws and the gradient's summation order, hence
        every number, stay what they were.
        """
        spec = self._loss_spec_on_device()
        hidden, cache = self.net.encode_batch(batch)
        enhance = self.enhancer is not None and self._enhancer_on and self.enhancer.active_at(int(self.global_step))
        out = None
        if enhance and self.enhancer.feeds_sampled_softmax:
            out = self.enhancer(self.net, batch, hidden, cache, self._spaces_on_device())
        losses = losses_from_states(self.net, batch, spec, hidden, out.softmax_negatives if out is not None else None)
        if enhance and out is None:
            out = self.enhancer(self.net, batch, hidden, cache, self._spaces_on_device())
        tasks = dict(losses)
        stats: dict[str, float] = {}
        if out is not None:
            for name, extra in out.losses.items():
                tasks[name] = tasks[name] + extra
            stats = out.stats
        if alignment is not None and self.alignment_weight > 0:
            name = LOSS_GROUPS[RETRIEVAL_SEARCH]
            aligned = sequence_losses_and_states(self.net, alignment, self._loss_spec_on_device())[0][name]
            tasks[name] = tasks[name] + self.alignment_weight * aligned
            stats = {**stats, "train/loss_alignment": float(aligned.detach())}
        weights = self.weighter.weights.tolist()
        total = sum(weights[i] * tasks[name] for i, name in enumerate(LOSS_GROUPS))
        return total, losses, tasks, stats

    def training_step(self, batch: SequenceBatch | dict[str, SequenceBatch], batch_idx: int) -> torch.Tensor:
        weights = self.weighter.weights.tolist()  # the weights this step is trained with
        task_weights = self.weighter.task_weights.tolist()
        # a dict when the catalogue's alignment searches ride along (SplitDataModule.train_dataloader)
        batch, alignment = (batch["users"], batch["alignment"]) if isinstance(batch, dict) else (batch, None)
        total, losses, tasks, stats = self.training_objective(batch, alignment)
        wanted = self.weighter.needs_grad_norms or (self.log_grad_norms and self._is_logging_step())
        norms = self._task_grad_norms(tasks) if wanted else None
        self.weighter.update(self._across_ranks(torch.stack([losses[name].detach() for name in LOSS_GROUPS])),
                             self._across_ranks(norms) if norms is not None else None)
        n = len(batch)
        for i, name in enumerate(LOSS_GROUPS):
            self.log(f"train/loss_{name}", losses[name], batch_size=n, on_step=True, on_epoch=True, sync_dist=True)
            self.log(f"weight/{name}", weights[i], batch_size=n, on_step=True, on_epoch=False)
        grouped = self.weighter.n_tasks != self.weighter.n_losses  # tasks: two (with three, weight/* are theirs)
        for i, name in enumerate(self.weighter.task_names):
            if grouped:
                self.log(f"weight_task/{name}", task_weights[i], batch_size=n, on_step=True, on_epoch=False)
            if norms is not None:
                self.log(f"grad_norm/{name}", norms[i], batch_size=n, on_step=True, on_epoch=False)
        for key, value in stats.items():
            self.log(key, value, batch_size=n, on_step=True, on_epoch=False)
        self.log("train/loss", total, batch_size=n, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
        return total

    def _across_ranks(self, values: torch.Tensor) -> torch.Tensor:
        # Every DDP rank must apply the same weights, so the weighter sees the mean over ranks.
        if self._trainer is None:
            return values
        return self.trainer.strategy.reduce(values, reduce_op="mean")

    def _is_logging_step(self) -> bool:
        # the norms cost one backward through the heads per task: only pay for them when they are logged
        every = self.trainer.log_every_n_steps if self._trainer is not None else 1
        return int(self.global_step) % max(every, 1) == 0

    def on_train_epoch_start(self) -> None:
        self.update_enhancer_gate(int(self.current_epoch), self._last_valid_auc)

    def update_enhancer_gate(self, epoch: int, last_auc: float | None) -> bool:
        """Switch the enhancer on once its warm-up is over (:func:`enhancer_ready`), and keep it on: whether
        it runs from now. ``epoch``: training epochs completed; ``last_auc``: the last validation AUC."""
        if self.enhancer is None or self._enhancer_on:
            return self._enhancer_on
        warmup = self.enhancer.cfg.warmup
        if enhancer_ready(epoch, last_auc, warmup):
            self._enhancer_on = True
            log.info("enhancer on from epoch %d (train.enhancer.warmup: %d epochs, validation ranking AUC %s, "
                     "needed %s)", epoch + 1, warmup.epochs, "n/a" if last_auc is None else f"{last_auc:.4f}",
                     "none" if warmup.min_valid_auc is None else f"{warmup.min_valid_auc:g}")
        return self._enhancer_on

    def on_train_end(self) -> None:
        if self.enhancer is not None and not self._enhancer_on:
            # otherwise a run "with the enhancer" would read as a measurement of it
            warmup = self.enhancer.cfg.warmup
            log.warning("train.enhancer is enabled but never ran: its warm-up was not passed (%d epochs, validation "
                        "ranking AUC %s needed, last %s)", warmup.epochs, warmup.min_valid_auc, self._last_valid_auc)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # a resumed run must not warm up again, nor lose the AUC that opened the gate
        checkpoint[ENHANCER_GATE] = {"on": self._enhancer_on, "last_valid_auc": self._last_valid_auc}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        gate = checkpoint.get(ENHANCER_GATE)
        if gate is not None:
            self._enhancer_on = bool(gate["on"]) or self._enhancer_on
            self._last_valid_auc = gate["last_valid_auc"]

    def on_train_epoch_end(self) -> None:
        # DWA with update_every: epoch steps here, on the epoch's loss ratios (a no-op in every other setting)
        self.weighter.end_epoch()

    def _task_grad_norms(self, tasks: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Norm of each (unweighted) weighter task loss's gradient on the last shared transformer block.

        The weighter's tasks, not the loss terms: with ``train.weighter.tasks: two`` retrieval's norm is
        that of the grouped retrieval loss (weighter.task_loss), the loss its weight multiplies. Only the
        heads -> last block part of the graph is traversed, and the graph is kept for the real backward;
        inactive tasks (base weight 0) get 0 without a backward.
        """
        shared = [p for p in self.net.blocks[-1].parameters() if p.requires_grad]
        terms = [tasks[name] for name in LOSS_GROUPS]
        norms = []
        for i, members in enumerate(self.weighter.groups):
            if not bool(self.weighter.active[i]) or not any(terms[j].requires_grad for j in members):
                norms.append(torch.zeros((), device=self.device))
                continue
            loss = self.weighter.task_loss(i, terms)
            grads = torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True)
            norms.append(torch.sqrt(sum((g.detach() ** 2).sum() for g in grads if g is not None)))
        return torch.stack(norms)

    def _loss_spec_on_device(self) -> LossSpec:
        if self.loss_spec.legal.device != self.device:
            self.loss_spec = dataclasses.replace(self.loss_spec, legal=self.loss_spec.legal.to(self.device))
        return self.loss_spec

    def _spaces_on_device(self) -> dict[bool, IdSpace]:
        if any(space.codes.device != self.device for space in self.spaces.values()):
            self.spaces = {s: space.to(self.device) for s, space in self.spaces.items()}
        return self.spaces

    def configure_optimizers(self) -> dict:
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.optim.lr, weight_decay=self.optim.weight_decay)
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 0
        factor = functools.partial(lr_factor, cfg=self.optim, total_steps=total)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        self._val_sums.zero_()
        self._val_scores, self._val_labels = [], []
        self._spaces_on_device()

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        # Lightning runs this under the training precision's autocast; with bf16-mixed the beam search
        # would rank on bf16 logits (3 significant digits: near items tie) and pick checkpoints on figures
        # the fp32 evaluate stage does not reproduce. The weights are fp32 either way, so scoring in fp32
        # costs only the bf16 speed-up on validation.
        with torch.autocast(self.device.type, enabled=False):
            self._validate(*batch)

    def _validate(self, prompts: SequenceBatch, targets: torch.Tensor, is_search: torch.Tensor,
                  labels: torch.Tensor, seen: torch.Tensor) -> None:
        ranks = rank_prompts(self.net, prompts, targets, is_search, self.spaces, self.beam_size, seen).cpu().numpy()
        streams = is_search.cpu().numpy()
        for row, search in enumerate(STREAMS):
            sel = ranks[streams == search]
            n = float(sel.size)
            sums = torch.tensor([n, hr_at_k(sel, self.k) * n, ndcg_at_k(sel, self.k) * n], device=self.device)
            self._val_sums[row] += sums
        # Ranking is measured on rec events: search events are all positives (label 1).
        rec = ~is_search
        probs = positive_probability(self.net, prompts, targets, is_search, {False: self.spaces[False]})
        self._val_scores.append(probs[rec])
        self._val_labels.append(labels[rec].to(probs.dtype))

    def on_validation_epoch_end(self) -> None:
        sums = self.trainer.strategy.reduce(self._val_sums.clone(), reduce_op="sum")
        # the sums are global now; sync_dist only keeps every rank's logged value (and callbacks) in step
        for row, name in enumerate(STREAMS.values()):
            n, hits, gains = sums[row]
            if n > 0:
                self.log(f"val/{name}_hr@{self.k}", hits / n, sync_dist=True)
                self.log(f"val/{name}_ndcg@{self.k}", gains / n, prog_bar=True, sync_dist=True)
        self.log(MONITOR, monitor_value(sums, self.monitor_average), prog_bar=True, sync_dist=True)
        ranking_auc = self._ranking_auc()
        self.log(RANKING_MONITOR, ranking_auc, sync_dist=True)
        if not self.trainer.sanity_checking:  # the sanity check's few batches say nothing about the ranker
            self._last_valid_auc = float(ranking_auc)

    def _ranking_auc(self) -> torch.Tensor:
        """AUC of P(<pos>) on the epoch's rec validation targets, gathered over ranks (0.5 if undefined)."""
        scores = torch.cat(self._val_scores) if self._val_scores else torch.zeros(0, device=self.device)
        labels = torch.cat(self._val_labels) if self._val_labels else torch.zeros(0, device=self.device)
        # the DistributedSampler pads every rank to the same length, so all_gather stacks cleanly
        scores, labels = self.all_gather(scores).reshape(-1), self.all_gather(labels).reshape(-1)
        value = auc(labels.cpu().numpy(), scores.cpu().numpy())
        return torch.tensor(0.5 if np.isnan(value) else value, device=self.device)
