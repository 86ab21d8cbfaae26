"""UniGRF's ranking-driven enhancer: the ranking head teaches retrieval, retrieval feeds the ranker.

Every N training steps, at a sample of the batch's action positions (the behaviour tokens that predict an
event's first code), the current model retrieves its top-K items by trie-constrained beam search; the
K candidates and the true target are then scored from the SAME forward pass the joint loss already ran
(its key/value cache, truncated at the action position, is extended by the candidates' codes), which
gives each candidate a retrieval score with gradient (summed code log-probabilities) and a ranking
score P(<pos>) that is used under stop-gradient to decide:

(a) hard negatives: the m non-positive candidates the ranker scores lowest (high retrieval, low ranking)
    meet the target in a sequence-level contrastive retrieval loss;
(b) extra targets: candidates the ranker scores above alpha become down-weighted retrieval targets;
(c) distillation: KL from the ranker's distribution over the K candidates to the retrieval distribution;
(d) ranking negatives: the best-retrieved non-positives become extra label-0 ranking examples.

"Positive" means the context's target or any item with label 1 in the same training sequence: those
are never used as negatives. The terms come back per task (retrieval of the context's stream, ranking)
so the weighter weighs them with the task they train.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from unigrec.config import EnhancerConfig
from unigrec.model.batch import SequenceBatch
from unigrec.model.decoding import IdSpace, beam_search, candidate_code_scores
from unigrec.model.tokenizer import IGNORE, LOSS_GROUPS, NO_GROUP, RANKING, RETRIEVAL_REC, RETRIEVAL_SEARCH
from unigrec.model.transformer import GenerativeTransformer, PrefixCache

STREAM_TASK = {False: LOSS_GROUPS[RETRIEVAL_REC], True: LOSS_GROUPS[RETRIEVAL_SEARCH]}
RANKING_TASK = LOSS_GROUPS[RANKING]


@dataclasses.dataclass(frozen=True)
class EnhancerTokens:
    """Token ids the enhancer reads events by: behaviour token per stream (is_search) and <pos>."""

    behaviour: Mapping[bool, int]
    pos_token: int


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


# ---------------------------------------------------------------------------------------------- events
def batch_events(batch: SequenceBatch, behaviour_token: int, pos_token: int, space: IdSpace) -> BatchEvents:
    """Locate every event of one stream in a teacher-forced batch and read its item and label."""
    depth = space.depth
    t = batch.tokens.shape[1]
    hit = (batch.tokens == behaviour_token) & batch.valid
    hit[:, t - depth - 1 :] = False  # a behaviour token too close to the end starts no complete event
    rows, positions = torch.nonzero(hit, as_tuple=True)
    code_pos = positions[:, None] + 1 + torch.arange(depth, device=positions.device)
    offsets = torch.as_tensor(space.offsets, device=positions.device)
    codes = batch.tokens[rows[:, None], code_pos] - offsets
    items = space.trie.lookup(codes)
    labels = (batch.tokens[rows, positions + 1 + depth] == pos_token).long()
    keep = items >= 0  # padding never matches a behaviour token, but a truncated window could cut an event
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
    first = int(torch.nonzero(valid.any(0)).min())  # drop columns that are padding in every prompt
    tokens, valid, refs, items = tokens[:, first:], valid[:, first:], refs[:, first:], items[:, first:]
    return SequenceBatch(
        tokens=tokens,
        valid=valid,
        targets=torch.full_like(tokens, IGNORE),
        slots=torch.full_like(tokens, -1),
        groups=torch.full_like(tokens, NO_GROUP),
        query_refs=refs,
        item_refs=items,
        query_vectors=batch.query_vectors,
    )


def prefix_at(cache: PrefixCache, rows: torch.Tensor, positions: torch.Tensor) -> PrefixCache:
    """The training pass's cache cut after each (row, position): causal attention makes it exact."""
    t = cache.valid.shape[1]
    keep = cache.valid[rows] & (torch.arange(t, device=rows.device)[None, :] <= positions[:, None])
    return PrefixCache(
        keys=[k[rows] for k in cache.keys],
        values=[v[rows] for v in cache.values],
        valid=keep,
        next_position=keep.long().sum(1),
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


def select_hard_negatives(
    ranking_probs: torch.Tensor, eligible: torch.Tensor, count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(a): among retrieved (hence high-retrieval) eligible candidates, the ``count`` the ranker scores lowest."""
    return pick_lowest(ranking_probs, eligible, count)


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
) -> CandidateSelection:
    """Split the retrieved candidates (n, K, in retrieval order) by positives and ranking score.

    A candidate the ranker scores above alpha is an extra target, never a negative: the two uses are
    disjoint, and neither ever takes the target or another positive of the context's sequence.
    """
    excluded = excluded_candidates(candidates, targets, positives)
    confident = ranking_probs > cfg.extra_targets.alpha
    eligible = ~excluded & ~confident
    hard_index, hard_valid = select_hard_negatives(ranking_probs, eligible, cfg.hard_negatives.count)
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
def contrastive_retrieval_loss(
    target_scores: torch.Tensor, negative_scores: torch.Tensor, valid: torch.Tensor, temperature: float
) -> torch.Tensor | None:
    """Softmax cross-entropy of the target against its negatives, on sequence log-probabilities."""
    rows = valid.any(1)
    if not rows.any():
        return None
    logits = torch.cat([target_scores[:, None], negative_scores.masked_fill(~valid, float("-inf"))], dim=1)
    logits = logits[rows] / temperature
    return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device))


def extra_target_loss(scores: torch.Tensor, mask: torch.Tensor, depth: int) -> torch.Tensor | None:
    """Mean negative log-probability per code of the extra targets (the scale of the teacher-forced CE)."""
    if not mask.any():
        return None
    return -(scores[mask] / depth).mean()


def distillation_loss(
    retrieval_scores: torch.Tensor, ranking_logits: torch.Tensor, valid: torch.Tensor, temperature: float
) -> torch.Tensor | None:
    """KL(ranker || retriever) over each context's valid candidates, both softened by ``temperature``.

    The ranker's logits are detached (stop-gradient): only retrieval learns from this term. Scaled by
    temperature^2 so its gradient keeps its size as the temperature changes (Hinton et al. 2015).
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
    return terms.sum(1).mean() * temperature**2


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
        events = {s: batch_events(batch, self.tokens.behaviour[s], self.tokens.pos_token, sp) for s, sp in spaces.items()}
        n_items = max(int(sp.codes.shape[0]) for sp in spaces.values())
        positives = positive_items(list(events.values()), len(batch), n_items, hidden.device)
        chosen = self._sample(events)
        sums: dict[str, list[torch.Tensor]] = {}
        ranking_negatives: list[torch.Tensor] = []  # logits of (d), pooled over both streams
        counts = {"contexts": 0.0, "target_in_top_k": 0.0, "hard_negatives": 0.0, "extra_targets": 0.0,
                  "ranking_negatives": 0.0, "candidate_pos_prob": 0.0}
        for search, ev in chosen.items():
            if len(ev):
                self._stream_terms(net, batch, hidden, cache, spaces[search], ev, positives, search, sums, counts,
                                   ranking_negatives)
        if ranking_negatives:
            logits = torch.cat(ranking_negatives)
            loss = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
            sums.setdefault(RANKING_TASK, []).append(self.cfg.ranking_negatives.weight * loss)
        n = max(counts.pop("contexts"), 1.0)
        stats = {f"enhancer/{k}": v / n for k, v in counts.items()}
        stats["enhancer/contexts"] = n
        stats["enhancer/seconds"] = time.perf_counter() - started
        return EnhancerOutput({task: torch.stack(parts).sum() for task, parts in sums.items()}, stats)

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
    ) -> None:
        cfg = self.cfg
        was_training = net.training
        net.eval()  # retrieval as the model would serve it: no dropout noise in the candidate list
        candidates, _ = beam_search(net, context_prompts(batch, ev.rows, ev.positions), space, cfg.top_k)
        net.train(was_training)
        items = torch.cat([ev.items[:, None], candidates.clamp(min=0)], dim=1)
        scores, logits = candidate_code_scores(
            net, hidden[ev.rows, ev.positions], prefix_at(cache, ev.rows, ev.positions), items, space
        )
        target_scores, cand_scores, cand_logits = scores[:, 0], scores[:, 1:], logits[:, 1:]
        probs = torch.sigmoid(cand_logits.detach())
        sel = select_candidates(candidates, ev.items, positives[ev.rows], probs, cfg)
        retrieval_task, rows = STREAM_TASK[search], torch.arange(len(ev), device=items.device)[:, None]
        counts["contexts"] += len(ev)
        counts["target_in_top_k"] += float((candidates == ev.items[:, None]).any(1).sum())
        if sel.retrieved.any():
            counts["candidate_pos_prob"] += float(probs[sel.retrieved].mean()) * len(ev)
        if cfg.hard_negatives.enabled:
            loss = contrastive_retrieval_loss(target_scores, cand_scores[rows, sel.hard_index], sel.hard_valid,
                                              cfg.hard_negatives.temperature)
            counts["hard_negatives"] += float(sel.hard_valid.sum())
            if loss is not None:
                sums.setdefault(retrieval_task, []).append(cfg.hard_negatives.weight * loss)
        if cfg.extra_targets.enabled:
            loss = extra_target_loss(cand_scores, sel.extra_targets, space.depth)
            counts["extra_targets"] += float(sel.extra_targets.sum())
            if loss is not None:
                sums.setdefault(retrieval_task, []).append(cfg.extra_targets.weight * loss)
        if cfg.distill.enabled:
            loss = distillation_loss(cand_scores, cand_logits, sel.retrieved, cfg.distill.temperature)
            if loss is not None:
                sums.setdefault(retrieval_task, []).append(cfg.distill.weight * loss)
        if cfg.ranking_negatives.enabled:
            counts["ranking_negatives"] += float(sel.ranking_valid.sum())
            if sel.ranking_valid.any():
                ranking_negatives.append(cand_logits[rows, sel.ranking_index][sel.ranking_valid])

