"""Per-task losses of one teacher-forced pass over a batch of interleaved sequences.

Losses come back as a dict (``retrieval_rec``, ``retrieval_search``, ``ranking``) so a weighter can
combine them; nothing here knows the weights.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from unigrec.model.batch import SequenceBatch
from unigrec.model.tokenizer import LOSS_GROUPS, RANKING, RETRIEVAL_REC, RETRIEVAL_SEARCH
from unigrec.model.transformer import GenerativeTransformer, PrefixCache


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """What the loss needs besides the network and the batch."""

    legal: torch.Tensor  # (n_slots, vocab) bool, from Vocabulary.legal_mask()
    pos_token: int
    item_slice: tuple[int, int] | None  # (offset, size) of the item tokens: atomic form's sampled softmax
    sampled_negatives: int  # atomic form only


def sequence_losses(net: GenerativeTransformer, batch: SequenceBatch, spec: LossSpec) -> dict[str, torch.Tensor]:
    """Retrieval CE for each stream and ranking BCE, from ONE forward pass."""
    return sequence_losses_and_states(net, batch, spec)[0]


def sequence_losses_and_states(
    net: GenerativeTransformer, batch: SequenceBatch, spec: LossSpec
) -> tuple[dict[str, torch.Tensor], torch.Tensor, PrefixCache]:
    """:func:`sequence_losses` plus the pass's hidden states and key/value cache.

    The enhancer scores retrieved candidates by extending this cache, so it adds no second encoding
    of the batch and its gradient flows through the same pass.
    """
    hidden, cache = net.encode(batch.tokens, batch.valid, batch.query_refs, batch.query_vectors)
    where = batch.groups >= 0
    h, targets, slots, groups = hidden[where], batch.targets[where], batch.slots[where], batch.groups[where]
    losses: dict[str, torch.Tensor] = {}
    for group in (RETRIEVAL_REC, RETRIEVAL_SEARCH):
        sel = groups == group
        if spec.item_slice is None:
            losses[LOSS_GROUPS[group]] = _restricted_ce(net, h[sel], targets[sel], spec.legal[slots[sel]], hidden)
        else:
            losses[LOSS_GROUPS[group]] = _sampled_softmax(net, h[sel], targets[sel], spec, hidden)
    sel = groups == RANKING
    if sel.any():
        labels = (targets[sel] == spec.pos_token).float()
        losses[LOSS_GROUPS[RANKING]] = F.binary_cross_entropy_with_logits(net.ranking_logit(h[sel]), labels)
    else:
        losses[LOSS_GROUPS[RANKING]] = _zero_like_graph(hidden)
    return losses, hidden, cache


def _zero_like_graph(hidden: torch.Tensor) -> torch.Tensor:
    # A batch without targets of one task still returns a loss attached to the graph, so backward and
    # DDP's gradient hooks behave the same in every step.
    return hidden.sum() * 0.0


def _restricted_ce(
    net: GenerativeTransformer, h: torch.Tensor, targets: torch.Tensor, legal: torch.Tensor, hidden: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy with each position's softmax restricted to its legal slice."""
    if not h.shape[0]:
        return _zero_like_graph(hidden)
    logits = net.token_logits(h).masked_fill(~legal, float("-inf"))
    return F.cross_entropy(logits, targets)


def _sampled_softmax(
    net: GenerativeTransformer, h: torch.Tensor, targets: torch.Tensor, spec: LossSpec, hidden: torch.Tensor
) -> torch.Tensor:
    """UniGRF's retrieval loss for atomic ids: the target against uniformly sampled items (shared per batch)."""
    if not h.shape[0]:
        return _zero_like_graph(hidden)
    offset, size = spec.item_slice
    negatives = torch.randint(offset, offset + size, (spec.sampled_negatives,), device=h.device)
    weight = net.token_embedding.weight
    pos_logit = (h * weight[targets]).sum(-1, keepdim=True)
    neg_logits = h @ weight[negatives].T
    # a sampled "negative" that is the target itself is no negative
    neg_logits = neg_logits.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
    logits = torch.cat([pos_logit, neg_logits], dim=1)
    return F.cross_entropy(logits, torch.zeros(h.shape[0], dtype=torch.long, device=h.device))
