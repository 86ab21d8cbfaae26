"""UniGRF's ranking-driven enhancer: the ranking head teaches retrieval, retrieval feeds the ranker.

Every N training steps, at a sample of the batch's event starts (the positions that predict an event's
first code: its behaviour token, or in the ``item`` layout the token before a recommendation event), the
current model retrieves its top-K items by trie-constrained beam search; the
K candidates and the true target are then scored from the SAME forward pass the joint loss already ran
(its key/value cache, truncated at the action position, is extended by the candidates' codes), which
gives each candidate a retrieval score with gradient (summed code log-probabilities) and a ranking
score P(<pos>) that is used under stop-gradient to decide:

(a) hard negatives: the m non-positive candidates scored lowest (high retrieval, low ranking: P(<pos>), or
    P(next) * P(<pos>) with ``candidate_score: next_and_like``) meet the target in a sequence-level
    contrastive retrieval loss, or join the main retrieval loss's sampled softmax as extra negatives at
    the target's code positions (``hard_negatives.into: sampled_softmax``, the paper's HSTU-style form);
(b) extra targets: candidates the ranker scores above alpha become down-weighted retrieval targets;
(c) [ours] distillation: KL from the ranker's distribution over the K candidates to the retrieval one;
(d) [ours] ranking negatives: the best-retrieved non-positives become extra label-0 ranking examples.

(a) and (b) are UniGRF's; (c) and (d) are our additions, off unless they measure better.

"Positive" means the context's target or any item with label 1 anywhere in the same training sequence,
before the context or after it: those are never used as negatives, so an item the user goes on to like is
never pushed down. The terms come back per task (retrieval of the context's stream, ranking) so the
weighter weighs them with the task they train; ``target_weighting`` says whether a term is a mean over
the step's contexts or weighs each of its targets like one main-loss target. The enhancer starts after
its warm-up (:func:`enhancer_ready`): a ranker near chance would mine noise.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from unigrec.config import EnhancerConfig, EnhancerWarmupConfig
from unigrec.model.batch import SequenceBatch
from unigrec.model.decoding import IdSpace, beam_search, candidate_code_scores
from unigrec.model.tokenizer import (
    IGNORE,
    LOSS_GROUPS,
    NO_GROUP,
    RANKING,
    RETRIEVAL_REC,
    RETRIEVAL_SEARCH,
    id_kind,
)
from unigrec.model.transformer import GenerativeTransformer, PrefixCache
from unigrec.model.vocabulary import Vocabulary
from unigrec.train.losses import targets_per_group

STREAM_TASK = {False: LOSS_GROUPS[RETRIEVAL_REC], True: LOSS_GROUPS[RETRIEVAL_SEARCH]}
RANKING_TASK = LOSS_GROUPS[RANKING]


@dataclasses.dataclass(frozen=True)
class EnhancerTokens:
    """What the enhancer finds events by: the legal slot of each stream's first code (is_search -> slot).

    Why slots and not a behaviour token: in the ``item`` layout a recommendation event has no token of its
    own before its codes (the previous event's last code predicts it), but in every layout the position
    that predicts an event's first code carries that code's slot and its stream's loss group.
    """

    first_code_slot: Mapping[bool, int]

    @classmethod
    def for_vocabulary(cls, vocab: Vocabulary) -> EnhancerTokens:
        """Each stream's first-code slot in ``vocab``: a search target is written with its semantic ID, a
        recommendation one with its collaborative ID (:func:`~unigrec.model.tokenizer.id_kind`)."""
        return cls({search: vocab.code_slot(id_kind(search), 0) for search in (False, True)})


@dataclasses.dataclass(frozen=True)
class BatchEvents:
    """The complete events of one stream in a training batch, one entry per event."""

    rows: torch.Tensor  # (E,) batch row
    positions: torch.Tensor  # (E,) index of the behaviour token, which predicts the first code
    items: torch.Tensor  # (E,) catalogue index
    labels: torch.Tensor  # (E,) 1 = positive action

    def take(self, index: torch.Tensor) -> BatchEvents:
        return BatchEvents(self.rows[index], self.positions[index], self.items[index], self.labels[index])

    def __len__(self) -> int:
        return int(self.rows.shape[0])


@dataclasses.dataclass
class EnhancerOutput:
    losses: dict[str, torch.Tensor]  # task name -> extra loss term (only tasks that got one)
    stats: dict[str, float]  # diagnostics for the step log
    # (B, T, m) token ids, -1 = none: (a)'s hard negatives for the main loss's sampled softmax at each
    # position (hard_negatives.into: sampled_softmax), None otherwise
    softmax_negatives: torch.Tensor | None = None


# ---------------------------------------------------------------------------------------------- warm-up
def enhancer_ready(epoch: int, last_auc: float | None, cfg: EnhancerWarmupConfig) -> bool:
    """Whether the warm-up is over at the start of training epoch ``epoch`` (0-based = epochs completed).

    ``last_auc``: the validation ranking AUC after the last finished epoch (None before the first). Why
    wait: (a) mines the candidates the ranker scores LOWEST, and a ranker near chance makes that choice
    noise; both gates must pass. The caller latches the answer: once on, the enhancer stays on.
    """
    if epoch < cfg.epochs:
        return False
    if cfg.min_valid_auc is None:
        return True
    return last_auc is not None and last_auc >= cfg.min_valid_auc


# ---------------------------------------------------------------------------------------------- events
def batch_events(batch: SequenceBatch, search: bool, first_code_slot: int, space: IdSpace) -> BatchEvents:
    """Locate every complete event of one stream in a teacher-forced batch and read its item and label.

    An event starts at a position whose target is its stream's first code and whose next token is that
    code (``rec_targets_at_searches`` also gives a search's ``<src_query>`` a first-code target, but the
    query follows it, not the code); its label is the action at its last code (``batch.actions``), which
    every layout writes there.
    """
    depth = space.depth
    t = batch.tokens.shape[1]
    group = RETRIEVAL_SEARCH if search else RETRIEVAL_REC
    hit = (batch.groups == group) & (batch.slots == first_code_slot) & batch.valid
    hit[:, :-1] &= batch.targets[:, :-1] == batch.tokens[:, 1:]
    hit[:, t - depth :] = False  # an event's last code must lie inside the window
    rows, positions = torch.nonzero(hit, as_tuple=True)
    code_pos = positions[:, None] + 1 + torch.arange(depth, device=positions.device)
    offsets = torch.as_tensor(space.offsets, device=positions.device)
    codes = batch.tokens[rows[:, None], code_pos] - offsets
    items = space.trie.lookup(codes)
    labels = batch.actions[rows, positions + depth]
    keep = (items >= 0) & (labels >= 0)  # a window cut inside an event leaves an event with no last code
    return BatchEvents(rows[keep], positions[keep], items[keep], labels[keep])


def positive_items(events: list[BatchEvents], n_rows: int, n_items: int, device: torch.device) -> torch.Tensor:
    """(n_rows, n_items) bool: items with label 1 anywhere in each row's sequence, any stream."""
    out = torch.zeros(n_rows, n_items, dtype=torch.bool, device=device)
    for ev in events:
        pos = ev.labels == 1
        out[ev.rows[pos], ev.items[pos]] = True
    return out


# ---------------------------------------------------------------------------------------------- contexts
def context_prompts(batch: SequenceBatch, rows: torch.Tensor, positions: torch.Tensor) -> SequenceBatch:
    """Each (row, position) prefix as a left-padded prompt ending at the position (what beam search reads)."""
    width = int(positions.max()) + 1
    shift = width - 1 - positions
    src = torch.arange(width, device=rows.device)[None, :] - shift[:, None]
    inside = src >= 0
    src = src.clamp(min=0)
    tokens = batch.tokens[rows].gather(1, src)
    valid = batch.valid[rows].gather(1, src) & inside
    refs = batch.query_refs[rows].gather(1, src).masked_fill(~inside, -1)
    items = batch.item_refs[rows].gather(1, src).masked_fill(~inside, -1)
    actions = batch.actions[rows].gather(1, src).masked_fill(~inside, -1)  # input, as in any prompt
    first = int(torch.nonzero(valid.any(0)).min())  # drop columns that are padding in every prompt
    tokens, valid, refs, items = tokens[:, first:], valid[:, first:], refs[:, first:], items[:, first:]
    actions = actions[:, first:]
    return SequenceBatch(
        tokens=tokens,
        valid=valid,
        targets=torch.full_like(tokens, IGNORE),
        slots=torch.full_like(tokens, -1),
        groups=torch.full_like(tokens, NO_GROUP),
        query_refs=refs,
        item_refs=items,
        actions=actions,
        query_vectors=batch.query_vectors,
    )


def prefix_at(
    cache: PrefixCache, rows: torch.Tensor, positions: torch.Tensor, actions: torch.Tensor | None = None
) -> PrefixCache:
    """The training pass's cache cut after each (row, position): causal attention makes it exact.

    ``actions``: the batch's (B, T) action channel. The token appended after the cut reads the action at
    the cut as its past action (``train.model.past_action_input``): in the ``item`` layout the cut is the
    previous event's last code, whose action a candidate's first code must see as the next event would.
    """
    t = cache.valid.shape[1]
    keep = cache.valid[rows] & (torch.arange(t, device=rows.device)[None, :] <= positions[:, None])
    return PrefixCache(
        keys=[k[rows] for k in cache.keys],
        values=[v[rows] for v in cache.values],
        valid=keep,
        next_position=keep.long().sum(1),
        last_action=actions[rows, positions] if actions is not None else None,
    )


# ---------------------------------------------------------------------------------------------- selection
def excluded_candidates(
    candidates: torch.Tensor, targets: torch.Tensor, positives: torch.Tensor
) -> torch.Tensor:
    """(n, K) bool: candidates that may be neither negatives nor extra targets (empty slot, target, positive).

    ``positives`` is (n, n_items), the positive items of each context's sequence.
    """
    empty = candidates < 0
    safe = candidates.clamp(min=0)
    return empty | (candidates == targets[:, None]) | positives.gather(1, safe)


def pick_lowest(key: torch.Tensor, eligible: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (n, count) of the ``count`` eligible entries with the lowest ``key`` per row, and their validity."""
    count = min(count, key.shape[1])
    masked = key.masked_fill(~eligible, float("inf"))
    values, index = masked.topk(count, dim=1, largest=False)
    return index, torch.isfinite(values)


def hard_negative_key(
    ranking_probs: torch.Tensor, retrieval_scores: torch.Tensor | None, candidate_score: str
) -> torch.Tensor:
    """What (a) takes the lowest of, per candidate (n, K): ``ranking`` = P(<pos>), the paper's "low ranking
    score"; ``next_and_like`` = P(next) * P(<pos>), P(next) = exp(summed code log-probabilities, detached).

    Why the product: the ranker predicts "liked", retrieval "next" (about half of the retrieval targets
    are label 0), so P(<pos>) alone pushes down items the user may well watch next. Ranked in log space,
    log P(next) + log P(<pos>), the same order without the underflow of a product of small probabilities.
    """
    if candidate_score == "ranking":
        return ranking_probs
    if candidate_score != "next_and_like":
        raise ValueError(f"enhancer candidate_score must be 'ranking' or 'next_and_like', not {candidate_score!r}")
    if retrieval_scores is None:
        raise ValueError("enhancer candidate_score next_and_like needs the candidates' retrieval scores")
    tiny = torch.finfo(ranking_probs.dtype).tiny  # log(0) would read as "no candidate" in pick_lowest
    return retrieval_scores.detach().to(ranking_probs.dtype) + torch.log(ranking_probs.clamp(min=tiny))


def select_hard_negatives(key: torch.Tensor, eligible: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(a): among retrieved (hence high-retrieval) eligible candidates, the ``count`` of lowest ``key``."""
    return pick_lowest(key, eligible, count)


def select_ranking_negatives(eligible: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(d): the ``count`` best-retrieved eligible candidates (candidates come in retrieval order)."""
    order = torch.arange(eligible.shape[1], device=eligible.device, dtype=torch.float32).expand(eligible.shape)
    return pick_lowest(order, eligible, count)


@dataclasses.dataclass(frozen=True)
class CandidateSelection:
    """What the ranker's stop-gradient scores decide about each context's K retrieved candidates."""

    retrieved: torch.Tensor  # (n, K) a real item fills the slot
    hard_index: torch.Tensor  # (n, m) candidate slots of (a)'s hard negatives ...
    hard_valid: torch.Tensor  # ... and whether each is real (fewer eligible candidates than m)
    extra_targets: torch.Tensor  # (n, K) (b)'s extra retrieval targets
    ranking_index: torch.Tensor  # (n, count) candidate slots of (d)'s ranking negatives ...
    ranking_valid: torch.Tensor


def select_candidates(
    candidates: torch.Tensor,
    targets: torch.Tensor,
    positives: torch.Tensor,
    ranking_probs: torch.Tensor,
    cfg: EnhancerConfig,
    retrieval_scores: torch.Tensor | None = None,
) -> CandidateSelection:
    """Split the retrieved candidates (n, K, in retrieval order) by positives and ranking score.

    A candidate the ranker scores above alpha is an extra target, never a negative: the two uses are
    disjoint, and neither ever takes the target or another positive of the context's sequence (past or
    future). ``retrieval_scores`` (n, K) summed code log-probabilities: needed by ``candidate_score:
    next_and_like`` only.
    """
    excluded = excluded_candidates(candidates, targets, positives)
    confident = ranking_probs > cfg.extra_targets.alpha
    eligible = ~excluded & ~confident
    key = hard_negative_key(ranking_probs, retrieval_scores, cfg.candidate_score)
    hard_index, hard_valid = select_hard_negatives(key, eligible, cfg.hard_negatives.count)
    ranking_index, ranking_valid = select_ranking_negatives(eligible, cfg.ranking_negatives.count)
    return CandidateSelection(
        retrieved=candidates >= 0,
        hard_index=hard_index,
        hard_valid=hard_valid,
        extra_targets=~excluded & confident,
        ranking_index=ranking_index,
        ranking_valid=ranking_valid,
    )


# ---------------------------------------------------------------------------------------------- losses
# ``reduction``: "mean" over the part's targets (target_weighting: context_mean) or "sum" (per_target: the
# driver divides the sum by the main loss's target count, so each target weighs like one of the main loss's)
def contrastive_retrieval_loss(
    target_scores: torch.Tensor,
    negative_scores: torch.Tensor,
    valid: torch.Tensor,
    temperature: float,
    reduction: str = "mean",
) -> torch.Tensor | None:
    """Softmax cross-entropy of the target against its negatives, on sequence log-probabilities; one
    target per context that has a negative."""
    rows = valid.any(1)
    if not rows.any():
        return None
    logits = torch.cat([target_scores[:, None], negative_scores.masked_fill(~valid, float("-inf"))], dim=1)
    logits = logits[rows] / temperature
    zeros = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, zeros, reduction=reduction)


def extra_target_loss(scores: torch.Tensor, mask: torch.Tensor, depth: int, reduction: str = "mean") -> torch.Tensor | None:
    """Negative log-probability per code of the extra targets (the teacher-forced CE's scale): its mean, or
    its sum over every code of every extra target (an extra item is ``depth`` targets, as in the main loss)."""
    if not mask.any():
        return None
    if reduction == "sum":
        return -scores[mask].sum()
    return -(scores[mask] / depth).mean()


def distillation_loss(
    retrieval_scores: torch.Tensor,
    ranking_logits: torch.Tensor,
    valid: torch.Tensor,
    temperature: float,
    reduction: str = "mean",
) -> torch.Tensor | None:
    """KL(ranker || retriever) over each context's valid candidates, both softened by ``temperature``.

    The ranker's logits are detached (stop-gradient): only retrieval learns from this term. Scaled by
    temperature^2 so its gradient keeps its size as the temperature changes (Hinton et al. 2015). One
    target per context with two or more candidates.
    """
    rows = valid.sum(1) >= 2  # a distribution over one candidate carries no information
    if not rows.any():
        return None
    v = valid[rows]
    teacher_logits = (ranking_logits.detach()[rows] / temperature).masked_fill(~v, float("-inf"))
    student_logits = (retrieval_scores[rows] / temperature).masked_fill(~v, float("-inf"))
    teacher = torch.softmax(teacher_logits, dim=1)
    log_teacher = torch.log_softmax(teacher_logits, dim=1)
    log_student = torch.log_softmax(student_logits, dim=1)
    terms = torch.where(v, teacher * (log_teacher - log_student), torch.zeros_like(teacher))
    per_context = terms.sum(1)
    return (per_context.sum() if reduction == "sum" else per_context.mean()) * temperature**2


def softmax_hard_negatives(
    target_codes: torch.Tensor, negative_codes: torch.Tensor, valid: torch.Tensor, offsets: torch.Tensor
) -> torch.Tensor:
    """(n, L, m) token ids, -1 for none: where each hard negative enters the target's code-by-code softmax.

    ``target_codes`` (n, L), ``negative_codes`` (n, m, L), ``valid`` (n, m), ``offsets`` (L,) the levels'
    token offsets. The teacher-forced softmax at level l is conditioned on the TARGET's first l codes, so a
    hard-negative item competes there only at its first level that differs from the target's: above it
    it shares the target's code (no negative), below it the softmax's prefix is no longer the item's, and
    its code there would stand for another item. Atomic ids (L = 1): the item's own token. A token two
    hard negatives share at a position enters once.
    """
    m = negative_codes.shape[1]
    same = negative_codes == target_codes[:, None, :]
    prefix_same = torch.ones_like(same)
    prefix_same[..., 1:] = same[..., :-1].long().cumprod(-1).bool()
    first_difference = prefix_same & ~same & valid[..., None]
    tokens = (negative_codes + offsets).masked_fill(~first_difference, -1).transpose(1, 2)  # (n, L, m)
    earlier = torch.ones(m, m, dtype=torch.bool, device=tokens.device).tril(-1)  # [k, j]: j before k
    repeat = ((tokens[..., :, None] == tokens[..., None, :]) & earlier).any(-1) & (tokens >= 0)
    return tokens.masked_fill(repeat, -1)


def per_position_negatives(
    placed: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], batch_tokens: torch.Tensor
) -> torch.Tensor:
    """(B, T, m) extra-negative tokens for the main loss (-1 = none), ``batch_tokens`` (B, T), from each
    stream's contexts: rows (n, 1), the positions predicting their targets' codes (n, L) and the tokens
    there (n, L, m_s)."""
    m = max((tokens.shape[-1] for _, _, tokens in placed), default=0)
    out = torch.full((*batch_tokens.shape, m), -1, dtype=torch.long, device=batch_tokens.device)
    for rows, positions, tokens in placed:
        out[rows, positions, : tokens.shape[-1]] = tokens
    return out


# ---------------------------------------------------------------------------------------------- driver
class RankingDrivenEnhancer:
    """Runs (a)-(d) on a training batch; see the module docstring."""

    def __init__(self, cfg: EnhancerConfig, tokens: EnhancerTokens) -> None:
        if cfg.every_n_steps < 1 or cfg.top_k < 1 or cfg.contexts_per_step < 1:
            raise ValueError("enhancer: every_n_steps, top_k and contexts_per_step must be >= 1")
        self.cfg = cfg
        self.tokens = tokens

    @property
    def any_part(self) -> bool:
        c = self.cfg
        return c.hard_negatives.enabled or c.extra_targets.enabled or c.distill.enabled or c.ranking_negatives.enabled

    @property
    def feeds_sampled_softmax(self) -> bool:
        """(a)'s hard negatives go into the main loss (:attr:`EnhancerOutput.softmax_negatives`), so the
        caller must run the enhancer before it takes the retrieval loss."""
        return self.cfg.feeds_sampled_softmax

    def active_at(self, step: int) -> bool:
        return self.cfg.enabled and self.any_part and step % self.cfg.every_n_steps == 0

    def __call__(
        self,
        net: GenerativeTransformer,
        batch: SequenceBatch,
        hidden: torch.Tensor,
        cache: PrefixCache,
        spaces: Mapping[bool, IdSpace],
    ) -> EnhancerOutput:
        started = time.perf_counter()
        events = {s: batch_events(batch, s, self.tokens.first_code_slot[s], sp) for s, sp in spaces.items()}
        n_items = max(int(sp.codes.shape[0]) for sp in spaces.values())
        positives = positive_items(list(events.values()), len(batch), n_items, hidden.device)
        chosen = self._sample(events)
        sums: dict[str, list[torch.Tensor]] = {}
        ranking_negatives: list[torch.Tensor] = []  # logits of (d), pooled over both streams
        # (a) into the sampled softmax: (rows (n, 1), code positions (n, L), tokens (n, L, m)) per stream
        placed: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = [] if self.feeds_sampled_softmax else None
        counts = {"contexts": 0.0, "target_in_top_k": 0.0, "hard_negatives": 0.0, "extra_targets": 0.0,
                  "ranking_negatives": 0.0, "candidate_pos_prob": 0.0}
        if placed is not None:
            counts["softmax_negatives"] = 0.0
        for search, ev in chosen.items():
            if len(ev):
                self._stream_terms(net, batch, hidden, cache, spaces[search], ev, positives, search, sums, counts,
                                   ranking_negatives, placed)
        if ranking_negatives:
            logits = torch.cat(ranking_negatives)
            loss = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction=self._reduction)
            sums.setdefault(RANKING_TASK, []).append(self.cfg.ranking_negatives.weight * loss)
        n = max(counts.pop("contexts"), 1.0)
        stats = {f"enhancer/{k}": v / n for k, v in counts.items()}
        stats["enhancer/contexts"] = n
        stats["enhancer/seconds"] = time.perf_counter() - started
        losses = {task: torch.stack(parts).sum() for task, parts in sums.items()}
        if self.cfg.target_weighting == "per_target":
            # each term is a sum over its targets: divided by the main loss's targets of the task it joins,
            # one enhancer target weighs ``weight`` main-loss targets (the main loss is a mean over them)
            main = targets_per_group(batch.groups).clamp(min=1)
            losses = {task: value / main[LOSS_GROUPS.index(task)] for task, value in losses.items()}
        softmax_negatives = per_position_negatives(placed, batch.tokens) if placed is not None else None
        return EnhancerOutput(losses, stats, softmax_negatives)

    @property
    def _reduction(self) -> str:
        return "sum" if self.cfg.target_weighting == "per_target" else "mean"

    def _sample(self, events: Mapping[bool, BatchEvents]) -> dict[bool, BatchEvents]:
        """A uniform sample of ``contexts_per_step`` events over both streams (it bounds the cost)."""
        sizes = {s: len(ev) for s, ev in events.items()}
        total = sum(sizes.values())
        if not total:
            return {}
        device = next(iter(events.values())).rows.device
        pick = torch.randperm(total, device=device)[: self.cfg.contexts_per_step]
        out, start = {}, 0
        for search, ev in events.items():
            local = pick[(pick >= start) & (pick < start + sizes[search])] - start
            out[search] = ev.take(local.sort().values)
            start += sizes[search]
        return out

    def _stream_terms(
        self,
        net: GenerativeTransformer,
        batch: SequenceBatch,
        hidden: torch.Tensor,
        cache: PrefixCache,
        space: IdSpace,
        ev: BatchEvents,
        positives: torch.Tensor,
        search: bool,
        sums: dict[str, list[torch.Tensor]],
        counts: dict[str, float],
        ranking_negatives: list[torch.Tensor],
        placed: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None,
    ) -> None:
        cfg, reduction = self.cfg, self._reduction
        was_training = net.training
        net.eval()  # retrieval as the model would serve it: no dropout noise in the candidate list
        candidates, _ = beam_search(net, context_prompts(batch, ev.rows, ev.positions), space, cfg.top_k)
        net.train(was_training)
        items = torch.cat([ev.items[:, None], candidates.clamp(min=0)], dim=1)
        scores, logits = candidate_code_scores(
            net, hidden[ev.rows, ev.positions], prefix_at(cache, ev.rows, ev.positions, batch.actions), items, space
        )
        target_scores, cand_scores, cand_logits = scores[:, 0], scores[:, 1:], logits[:, 1:]
        probs = torch.sigmoid(cand_logits.detach())
        sel = select_candidates(candidates, ev.items, positives[ev.rows], probs, cfg, cand_scores.detach())
        retrieval_task, rows = STREAM_TASK[search], torch.arange(len(ev), device=items.device)[:, None]
        counts["contexts"] += len(ev)
        counts["target_in_top_k"] += float((candidates == ev.items[:, None]).any(1).sum())
        if sel.retrieved.any():
            counts["candidate_pos_prob"] += float(probs[sel.retrieved].mean()) * len(ev)
        if cfg.hard_negatives.enabled:
            counts["hard_negatives"] += float(sel.hard_valid.sum())
            if placed is not None:
                tokens = self._softmax_negatives(space, ev, candidates[rows, sel.hard_index], sel.hard_valid)
                counts["softmax_negatives"] += float((tokens >= 0).sum())
                code_positions = ev.positions[:, None] + torch.arange(space.depth, device=items.device)
                placed.append((ev.rows[:, None], code_positions, tokens))
            else:
                loss = contrastive_retrieval_loss(target_scores, cand_scores[rows, sel.hard_index], sel.hard_valid,
                                                  cfg.hard_negatives.temperature, reduction)
                if loss is not None:
                    sums.setdefault(retrieval_task, []).append(cfg.hard_negatives.weight * loss)
        if cfg.extra_targets.enabled:
            loss = extra_target_loss(cand_scores, sel.extra_targets, space.depth, reduction)
            counts["extra_targets"] += float(sel.extra_targets.sum())
            if loss is not None:
                sums.setdefault(retrieval_task, []).append(cfg.extra_targets.weight * loss)
        if cfg.distill.enabled:
            loss = distillation_loss(cand_scores, cand_logits, sel.retrieved, cfg.distill.temperature, reduction)
            if loss is not None:
                sums.setdefault(retrieval_task, []).append(cfg.distill.weight * loss)
        if cfg.ranking_negatives.enabled:
            counts["ranking_negatives"] += float(sel.ranking_valid.sum())
            if sel.ranking_valid.any():
                ranking_negatives.append(cand_logits[rows, sel.ranking_index][sel.ranking_valid])

    @staticmethod
    def _softmax_negatives(space: IdSpace, ev: BatchEvents, hard_items: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(n, L, m) tokens of the hard negatives at each code position of the contexts' targets."""
        offsets = torch.as_tensor(space.offsets, device=hard_items.device)
        return softmax_hard_negatives(space.codes[ev.items], space.codes[hard_items.clamp(min=0)], valid, offsets)
