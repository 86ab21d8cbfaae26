"""Per-task losses of one teacher-forced pass over a batch of interleaved sequences.

Losses come back as a dict (``retrieval_rec``, ``retrieval_search``, ``ranking``) so a weighter can
combine them; nothing here knows the weights. Retrieval is either the full softmax over each target's
legal slice or a sampled softmax over negatives drawn from that slice (``train.retrieval_loss``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F

from unigrec.model.batch import SequenceBatch
from unigrec.model.tokenizer import LOSS_GROUPS, RANKING, RETRIEVAL_REC, RETRIEVAL_SEARCH
from unigrec.model.transformer import GenerativeTransformer, PrefixCache


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """What the loss needs besides the network and the batch."""

    legal: torch.Tensor  # (n_slots, vocab) bool, from Vocabulary.legal_mask()
    # None: the full softmax, each retrieval target against its whole legal slice; a number: the sampled
    # softmax against that many tokens drawn from the slice (:func:`sampled_softmax_loss`)
    sampled_negatives: int | None
    # sampled only: each target its own draw of negatives (True, HSTU's) or one draw per slice and batch;
    # from train.retrieval_loss.draw (fit.loss_spec), so the default is said in params.yaml alone
    per_position: bool
    # per-target draws from slices of up to this many tokens in all: logits from one product with those
    # tokens' rows (train.retrieval_loss.product_columns; 0: always gathered per target)
    product_columns: int


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
    hidden, cache = net.encode_batch(batch)
    return losses_from_states(net, batch, spec, hidden), hidden, cache


def losses_from_states(
    net: GenerativeTransformer,
    batch: SequenceBatch,
    spec: LossSpec,
    hidden: torch.Tensor,
    extra_negatives: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The task losses from the pass's hidden states: split from the pass so the enhancer can mine hard
    negatives from the same pass before the retrieval loss is taken.

    ``extra_negatives`` (B, T, m) token ids, -1 for none: more negatives for the sampled softmax of the
    target at each position (:func:`sampled_softmax_loss`). Only the sampled softmax takes them: in the
    full one every token of the slice already is a negative.
    """
    if extra_negatives is not None and spec.sampled_negatives is None:
        raise ValueError("extra retrieval negatives need the sampled softmax (train.retrieval_loss.softmax: "
                         "sampled); in the full softmax every item already is a negative")
    where = batch.groups >= 0
    h, targets, slots, groups = hidden[where], batch.targets[where], batch.slots[where], batch.groups[where]
    extra = extra_negatives[where] if extra_negatives is not None else None
    losses: dict[str, torch.Tensor] = {}
    for group in (RETRIEVAL_REC, RETRIEVAL_SEARCH):
        sel = groups == group
        if spec.sampled_negatives is None:
            losses[LOSS_GROUPS[group]] = _restricted_ce(net, h[sel], targets[sel], spec.legal[slots[sel]], hidden)
        else:
            losses[LOSS_GROUPS[group]] = _sampled_ce(net, h[sel], targets[sel], slots[sel], spec, hidden,
                                                     extra[sel] if extra is not None else None)
    # the ranking label has its own channel: in the `item` event layout an item's last code also predicts the
    # next item, so its target is not <pos|neg> (in the other layouts both say the same at the same positions)
    sel = batch.actions >= 0
    if sel.any():
        labels = batch.actions[sel].float()
        losses[LOSS_GROUPS[RANKING]] = F.binary_cross_entropy_with_logits(net.ranking_logit(hidden[sel]), labels)
    else:
        losses[LOSS_GROUPS[RANKING]] = _zero_like_graph(hidden)
    return losses


def targets_per_group(groups: torch.Tensor) -> torch.Tensor:
    """(len(LOSS_GROUPS),) how many targets each task's loss is the mean over, from a batch's ``groups``.

    What an enhancer term divides by to weigh each of its targets like one main-loss target; a tensor, so
    reading it costs no device sync.
    """
    return torch.bincount(groups[groups >= 0], minlength=len(LOSS_GROUPS))


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


def _sampled_ce(
    net: GenerativeTransformer,
    h: torch.Tensor,
    targets: torch.Tensor,
    slots: torch.Tensor,
    spec: LossSpec,
    hidden: torch.Tensor,
    extra_negatives: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`sampled_softmax_loss` with one draw of negatives per legal slice present (code level, or the
    catalogue for atomic ids), shared by the positions that predict from it, on the net's logit form;
    ``extra_negatives`` (P, m), -1 for none, join the rows' softmaxes (the enhancer's hard negatives)."""
    if not h.shape[0]:
        return _zero_like_graph(hidden)
    present, which = torch.unique(slots, return_inverse=True)
    count = spec.sampled_negatives
    columns = None
    if spec.per_position:
        negatives = torch.empty(h.shape[0], count, dtype=torch.long, device=h.device)
        for index, slot in enumerate(present.tolist()):
            rows = which == index
            negatives[rows] = sample_legal_tokens(spec.legal[slot], count, int(rows.sum()))
        which = None
        drawn_from = spec.legal[present].any(0).nonzero().squeeze(1)
        if drawn_from.numel() <= spec.product_columns:
            columns = drawn_from
    else:
        negatives = torch.stack([sample_legal_tokens(spec.legal[slot], count) for slot in present.tolist()])
    return sampled_softmax_loss(h, targets, net.token_table(), negatives, which,
                                net.dims.logits_temperature, net.dims.logits_l2_normalise, extra_negatives,
                                columns)


def sample_legal_tokens(legal: torch.Tensor, count: int, rows: int | None = None) -> torch.Tensor:
    """``count`` token ids drawn uniformly, with replacement, from those ``legal`` (vocab,) bool allows;
    (rows, count) independent draws when ``rows`` is given.

    Uniform draws need no log-Q correction: every token's sampling probability is the same constant. A
    slice smaller than ``count`` (a 64-code level against 128 negatives) repeats tokens; each repeat is
    one more sample of that negative, as sampling with replacement means.
    """
    allowed = legal.nonzero().squeeze(1)
    shape = (count,) if rows is None else (rows, count)
    return allowed[torch.randint(0, allowed.numel(), shape, device=legal.device)]


def sampled_softmax_loss(
    h: torch.Tensor,
    targets: torch.Tensor,
    embeddings: torch.Tensor,
    negatives: torch.Tensor,
    negative_set: torch.Tensor | None,
    temperature: float,
    l2_normalise: bool,
    extra_negatives: torch.Tensor | None = None,
    columns: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of each row's target against sampled negatives, in HSTU's form.

    ``h`` (P, d) hidden states, ``targets`` (P,) token ids, ``embeddings`` (V, d) the tied output table.
    ``negatives`` (S, N) holds S sets of N sampled token ids; row p is scored against set
    ``negative_set[p]`` (one set per code level, so each position's negatives come from the codebook it
    predicts). ``negative_set`` None: ``negatives`` is (P, N), each row's own draw, as HSTU draws them; a
    set shared by the rows (as the atomic sampled softmax always had it) costs one (P, S*N) product
    instead of gathering (P, N, d) embeddings, but each step then pushes down only S*N tokens. A negative
    equal to the row's target is no negative and is left out.

    ``extra_negatives`` (P, m) token ids, -1 for none, join the same softmax: the hook through which
    the enhancer's hard negatives (for codes, the hard-negative item's token at the row's level) can
    enter the retrieval loss itself. With a full softmax they would add nothing: every token of the
    slice is already a negative there.

    Logits are dot products, of L2-normalised vectors (cosines) when ``l2_normalise``, divided by
    ``temperature``.

    ``columns`` (C,) token ids holding every id the call reads (targets, negatives, extra negatives; -1
    extras aside): the logits then come from one (P, C) product of the states with those rows and are read
    per row, instead of gathering (P, N, d) rows per target. The same values; on a CPU a product over a few
    thousand columns is ~3x faster than the gather and its scattered backward.
    """
    if l2_normalise:
        h = F.normalize(h, dim=-1)
    per_row = negatives if negative_set is None else negatives[negative_set]  # (P, N) ids
    ids, left_out = _candidates(targets, per_row, extra_negatives)
    if columns is not None:
        logits = _logits_by_product(h, embeddings, ids, columns, l2_normalise, left_out)
    else:
        logits = _logits_by_rows(h, targets, embeddings, negatives, negative_set, extra_negatives, l2_normalise)
    logits = logits.masked_fill(left_out, float("-inf")) / temperature
    return F.cross_entropy(logits, torch.zeros(h.shape[0], dtype=torch.long, device=h.device))


def _candidates(
    targets: torch.Tensor, per_row: torch.Tensor, extra_negatives: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's candidate token ids (P, 1 + N [+ m]) in the softmax's column order [target, negatives,
    extras], and which of them are left out: a negative equal to its row's target, and an extra of -1
    (none, read as id 0 under the -inf it gets), are no negatives. Said once here so that both logit
    routes and the mask agree on the order."""
    ids = [targets[:, None], per_row]
    parts = [torch.zeros_like(targets[:, None], dtype=torch.bool), per_row == targets[:, None]]
    if extra_negatives is not None:
        ids.append(extra_negatives.clamp(min=0))
        parts.append((extra_negatives < 0) | (extra_negatives == targets[:, None]))
    return torch.cat(ids, dim=1), torch.cat(parts, dim=1)


def _logits_by_rows(
    h: torch.Tensor,
    targets: torch.Tensor,
    embeddings: torch.Tensor,
    negatives: torch.Tensor,
    negative_set: torch.Tensor | None,
    extra_negatives: torch.Tensor | None,
    l2_normalise: bool,
) -> torch.Tensor:
    """(P, 1 + N [+ m]) raw logits from the rows each target reads (a shared set by one product with it)."""
    reads = targets.numel() + negatives.numel() + (0 if extra_negatives is None else extra_negatives.numel())
    output_rows = _row_reader(embeddings, l2_normalise, reads)
    parts = [(h * output_rows(targets)).sum(-1, keepdim=True)]
    if negative_set is None:
        parts.append((output_rows(negatives) @ h[:, :, None]).squeeze(-1))  # (P, N, d) rows
    else:
        n_sets, n = negatives.shape
        shared = (h @ output_rows(negatives.reshape(-1)).T).view(-1, n_sets, n)
        parts.append(shared[torch.arange(h.shape[0], device=h.device), negative_set])
    if extra_negatives is not None:
        parts.append((output_rows(extra_negatives.clamp(min=0)) @ h[:, :, None]).squeeze(-1))  # (P, m, d)
    return torch.cat(parts, dim=1)


def _logits_by_product(
    h: torch.Tensor,
    embeddings: torch.Tensor,
    ids: torch.Tensor,
    columns: torch.Tensor,
    l2_normalise: bool,
    left_out: torch.Tensor,
) -> torch.Tensor:
    """(P, K) raw logits of the candidate ``ids`` (P, K), read from one (P, C) product of the states with
    the ``columns`` rows."""
    position = torch.full((embeddings.shape[0],), -1, dtype=torch.long, device=columns.device)
    position[columns] = torch.arange(columns.numel(), device=columns.device)
    table = embeddings[columns]
    scores = h @ (F.normalize(table, dim=-1) if l2_normalise else table).T  # (P, C)
    # every id read lies in the slices the columns are the union of (targets and draws by construction, the
    # enhancer's hard negatives are items' tokens at the row's level); only a left-out entry (an extra of -1)
    # may have none, and reads column 0 under the -inf it gets. Any other would fail the gather: never a
    # wrong logit
    return scores.gather(1, position[ids].masked_fill(left_out, 0))


def _row_reader(
    embeddings: torch.Tensor, l2_normalise: bool, reads: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A reader of output-table rows (ids of any shape), L2-normalised when asked, for a call that reads
    ``reads`` rows in all: the table is normalised once up front when it has no more rows than are read
    (each target's own negatives read ~P*N rows, and normalising the gathered copies instead was 3-4x
    slower on ML-1M), the rows read are normalised otherwise (an atomic catalogue's table can be far larger
    than a batch reads). The same values either way."""
    if not l2_normalise:
        return lambda ids: embeddings[ids]
    if embeddings.shape[0] <= reads:
        table = F.normalize(embeddings, dim=-1)
        return lambda ids: table[ids]
    return lambda ids: F.normalize(embeddings[ids], dim=-1)
