"""LightningModule: owns the joint loss, the optimiser and validation logging; the network is plain torch."""

from __future__ import annotations

from collections.abc import Mapping

import lightning as L
import torch

from unigrec.config import OptimConfig
from unigrec.evaluate.metrics import hr_at_k, ndcg_at_k
from unigrec.model.batch import SequenceBatch
from unigrec.model.decoding import IdSpace
from unigrec.model.transformer import GenerativeTransformer
from unigrec.train.losses import LossSpec, sequence_losses
from unigrec.train.quick_eval import STREAMS, rank_prompts

MONITOR = "val/ndcg"  # mean validation NDCG@k over the streams present (checkpoint + early stopping)


class GenerativeRecModule(L.LightningModule):
    def __init__(
        self,
        net: GenerativeTransformer,
        loss_spec: LossSpec,
        loss_weights: Mapping[str, float],
        optim: OptimConfig,
        spaces: Mapping[bool, IdSpace],
        beam_size: int,
        k: int,
    ) -> None:
        super().__init__()
        self.net = net
        self.loss_spec = loss_spec
        self.loss_weights = dict(loss_weights)
        self.optim = optim
        self.spaces = dict(spaces)
        self.beam_size = beam_size
        self.k = k
        # per stream: [requests, hits@k, ndcg@k sum], summed over the epoch and across ranks
        self.register_buffer("_val_sums", torch.zeros(len(STREAMS), 3), persistent=False)

    # ------------------------------------------------------------------ training
    def training_step(self, batch: SequenceBatch, batch_idx: int) -> torch.Tensor:
        losses = sequence_losses(self.net, batch, self._loss_spec_on_device())
        total = sum(self.loss_weights[name] * value for name, value in losses.items())
        n = len(batch)
        for name, value in losses.items():
            self.log(f"train/loss_{name}", value, batch_size=n, on_step=False, on_epoch=True, sync_dist=True)
        self.log("train/loss", total, batch_size=n, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
        return total

    def _loss_spec_on_device(self) -> LossSpec:
        if self.loss_spec.legal.device != self.device:
            self.loss_spec = LossSpec(
                self.loss_spec.legal.to(self.device),
                self.loss_spec.pos_token,
                self.loss_spec.item_slice,
                self.loss_spec.sampled_negatives,
            )
        return self.loss_spec

    def configure_optimizers(self) -> dict:
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.optim.lr, weight_decay=self.optim.weight_decay)
        warmup = max(self.optim.warmup_steps, 1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        self._val_sums.zero_()
        self.spaces = {s: space.to(self.device) for s, space in self.spaces.items()}

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        prompts, targets, is_search, _ = batch
        ranks = rank_prompts(self.net, prompts, targets, is_search, self.spaces, self.beam_size).cpu().numpy()
        streams = is_search.cpu().numpy()
        for row, search in enumerate(STREAMS):
            sel = ranks[streams == search]
            n = float(sel.size)
            sums = torch.tensor([n, hr_at_k(sel, self.k) * n, ndcg_at_k(sel, self.k) * n], device=self.device)
            self._val_sums[row] += sums

    def on_validation_epoch_end(self) -> None:
        sums = self.trainer.strategy.reduce(self._val_sums.clone(), reduce_op="sum")
        # the sums are global now; sync_dist only keeps every rank's logged value (and callbacks) in step
        ndcgs = []
        for row, name in enumerate(STREAMS.values()):
            n, hits, gains = sums[row]
            if n > 0:
                self.log(f"val/{name}_hr@{self.k}", hits / n, sync_dist=True)
                self.log(f"val/{name}_ndcg@{self.k}", gains / n, prog_bar=True, sync_dist=True)
                ndcgs.append(gains / n)
        value = torch.stack(ndcgs).mean() if ndcgs else torch.zeros((), device=self.device)
        self.log(MONITOR, value, prog_bar=True, sync_dist=True)
