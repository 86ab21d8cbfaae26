"""The ranking-driven enhancer: pieces and the driver's terms and statistics on exact values, what
tests/unit/train/test_enhancer.py left open, found by mutation testing (tools/mutation.py;
docs/experiments/2026-12-03-mutation-testing.md names the mutants each test kills)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from support import synthetic_train_data as syn
from support.tiny_training import tiny_net, tiny_training

from unigrec.config import (
    DistillConfig,
    EnhancerConfig,
    EnhancerWarmupConfig,
    ExtraTargetsConfig,
    HardNegativesConfig,
    RankingNegativesConfig,
)
from unigrec.inference.retrieval import id_spaces
from unigrec.model.batch import SequenceBatch
from unigrec.model.decoding import beam_search, candidate_code_scores
from unigrec.model.item_codes import item_codes_from_frame
from unigrec.model.tokenizer import IGNORE, NO_GROUP, RANKING, RETRIEVAL_REC
from unigrec.model.transformer import GenerativeTransformer
from unigrec.model.vocabulary import POS, REC_ITEM, Vocabulary
from unigrec.train.enhancer import (
    RANKING_TASK,
    STREAM_TASK,
    BatchEvents,
    EnhancerTokens,
    RankingDrivenEnhancer,
    batch_events,
    context_prompts,
    contrastive_retrieval_loss,
    distillation_loss,
    excluded_candidates,
    extra_target_loss,
    positive_items,
    prefix_at,
    select_candidates,
)
from unigrec.train.losses import sequence_losses_and_states

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cfg(top_k: int = 8, contexts: int = 1000, hard: bool = False, extra: bool = False, distill: bool = False,
         ranking: bool = False, every: int = 1, weight: float = 1.0) -> EnhancerConfig:
    return EnhancerConfig(
        enabled=True, every_n_steps=every, contexts_per_step=contexts, top_k=top_k,
        warmup=EnhancerWarmupConfig(epochs=0, min_valid_auc=None), target_weighting="context_mean",
        candidate_score="ranking",
        hard_negatives=HardNegativesConfig(enabled=hard, count=3, into="contrastive", temperature=2.0, weight=weight),
        extra_targets=ExtraTargetsConfig(enabled=extra, alpha=0.5, weight=weight),
        distill=DistillConfig(enabled=distill, temperature=3.0, weight=weight),
        ranking_negatives=RankingNegativesConfig(enabled=ranking, count=3, weight=weight),
    )


# ------------------------------------------------------------------------------------------ pieces
def _hand_batch(tokens: list[list[int]], valid: list[list[bool]]) -> SequenceBatch:
    t = torch.tensor(tokens)
    return SequenceBatch(tokens=t, valid=torch.tensor(valid), targets=torch.full_like(t, IGNORE),
                         slots=torch.full_like(t, -1), groups=torch.full_like(t, NO_GROUP),
                         query_refs=torch.arange(t.numel()).reshape(t.shape),
                         item_refs=100 + torch.arange(t.numel()).reshape(t.shape), actions=torch.full_like(t, -1),
                         query_vectors=torch.zeros(1, 4))


def _space_and_tokens():
    vocab = Vocabulary.from_codebooks(syn.CODEBOOKS)
    items = item_codes_from_frame(syn.ids_frame())
    space = id_spaces(vocab, items)[False]
    return space, EnhancerTokens.for_vocabulary(vocab).first_code_slot[False], vocab.token(REC_ITEM), vocab.token(POS)


def _event(space, slot: int, behaviour: int, pos: int, item: int) -> dict[str, list[int]]:
    """One liked recommendation event as the serialiser writes it in the 3-token layout, channel by channel."""
    codes = [int(c) + o for c, o in zip(space.codes[item].tolist(), space.offsets, strict=True)]
    depth = len(codes)
    return {"tokens": [behaviour, *codes, pos], "targets": [*codes, pos, IGNORE],
            "slots": [slot] + [slot + 1] * (depth - 1) + [99, -1],  # only the first code's slot matters here
            "groups": [RETRIEVAL_REC] * depth + [RANKING, NO_GROUP], "actions": [-1] * depth + [1, -1]}


def test_batch_events_ignore_padding_a_query_start_and_an_event_cut_by_the_window_end():
    space, slot, behaviour, pos = _space_and_tokens()
    event = _event(space, slot, behaviour, pos, 7)  # 5 tokens: behaviour, 3 codes, <pos>
    # a <src_query>-like start: it predicts a first code (rec_targets_at_searches) but a query token follows
    query = {"tokens": [behaviour, 4], "targets": [event["targets"][0], IGNORE], "slots": [slot, -1],
             "groups": [RETRIEVAL_REC, NO_GROUP], "actions": [-1, -1]}
    # a real event, the same event in padding, the query start, then an event cut after two of its codes
    row = {k: event[k] + event[k] + query[k] + event[k][:3] for k in event}
    valid = [True] * 5 + [False] * 5 + [True] * 5
    batch = dataclasses.replace(_hand_batch([row["tokens"]], [valid]), targets=torch.tensor([row["targets"]]),
                                slots=torch.tensor([row["slots"]]), groups=torch.tensor([row["groups"]]),
                                actions=torch.tensor([row["actions"]]))
    ev = batch_events(batch, False, slot, space)
    assert ev.positions.tolist() == [0] and ev.items.tolist() == [7] and ev.labels.tolist() == [1]


def test_context_prompts_are_the_left_padded_prefixes_up_to_each_position():
    batch = _hand_batch([[9, 1, 2, 3, 4], [9, 5, 6, 7, 8]], [[True] * 5] * 2)
    out = context_prompts(batch, torch.tensor([0, 1]), torch.tensor([3, 1]))
    assert out.tokens.tolist() == [[9, 1, 2, 3], [9, 9, 9, 5]]  # width 4; row 1 shifted right by 2
    assert out.valid.tolist() == [[True] * 4, [False, False, True, True]]
    assert out.query_refs.tolist() == [[0, 1, 2, 3], [-1, -1, 5, 6]]
    assert out.item_refs.tolist() == [[100, 101, 102, 103], [-1, -1, 105, 106]]  # the hybrid form's items too
    assert out.actions.tolist() == [[-1] * 4] * 2  # no action in this history: none invented
    assert out.targets.tolist() == [[IGNORE] * 4] * 2
    assert out.slots.tolist() == [[-1] * 4] * 2 and out.groups.tolist() == [[NO_GROUP] * 4] * 2
    assert out.query_vectors is batch.query_vectors


def test_context_prompts_carry_the_history_actions_as_input():
    # past_action_input reads each event's action at the token after it: a mined context must see the same
    # actions the training pass saw, or its beam (and so its hard negatives) comes from another model
    batch = dataclasses.replace(
        _hand_batch([[9, 1, 2, 3, 4], [9, 5, 6, 7, 8]], [[True] * 5] * 2),
        actions=torch.tensor([[-1, 1, -1, 0, -1], [-1, 0, 1, -1, -1]]),
    )
    out = context_prompts(batch, torch.tensor([0, 1]), torch.tensor([3, 2]))
    assert out.actions.tolist() == [[-1, 1, -1, 0], [-1, -1, 0, 1]]  # row 1 shifted right by 1, padding -1


def test_context_prompts_drop_columns_that_are_padding_in_every_prompt():
    batch = _hand_batch([[9, 1, 2, 3, 4]], [[False, True, True, True, True]])
    out = context_prompts(batch, torch.tensor([0]), torch.tensor([3]))
    assert out.tokens.tolist() == [[1, 2, 3]] and out.valid.tolist() == [[True, True, True]]
    assert out.item_refs.tolist() == [[101, 102, 103]]


def test_contrastive_loss_divides_by_the_temperature():
    loss = contrastive_retrieval_loss(torch.tensor([0.0]), torch.tensor([[2.0, 4.0]]), torch.tensor([[True, True]]), 2.0)
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.e + math.e**2)), rel=1e-6)


def test_distillation_is_the_mean_kl_over_rows_times_t_squared_from_two_candidates():
    retrieval = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]])
    ranking = torch.tensor([[-1.0, 0.5, 9.0], [1.0, 0.0, -2.0]])
    valid = torch.tensor([[True, True, False], [True, True, True]])  # row 0 has exactly two candidates
    t = 3.0
    expected = []
    for r in range(2):
        v = valid[r]
        p = torch.softmax(ranking[r][v] / t, 0)
        q = torch.softmax(retrieval[r][v] / t, 0)
        expected.append((p * (p.log() - q.log())).sum())
    loss = distillation_loss(retrieval, ranking, valid, t)
    assert loss.item() == pytest.approx(float(torch.stack(expected).mean()) * t**2, rel=1e-4)
    one = distillation_loss(retrieval[:1], ranking[:1], valid[:1], t)
    assert one.item() == pytest.approx(float(expected[0]) * t**2, rel=1e-4)


def test_extra_target_loss_is_the_mean_negative_log_probability_per_code():
    loss = extra_target_loss(torch.tensor([[-3.0, -6.0], [-9.0, -1.0]]), torch.tensor([[True, False], [True, False]]), 3)
    assert loss.item() == pytest.approx(2.0)


def test_item_zero_is_a_real_candidate():
    candidates = torch.tensor([[0, 1, -1, 2]])
    positives = torch.zeros(1, 4, dtype=torch.bool)
    positives[0, 1] = True
    excluded = excluded_candidates(candidates, torch.tensor([2]), positives)
    assert excluded.tolist() == [[False, True, True, True]]
    sel = select_candidates(candidates, torch.tensor([2]), positives, torch.tensor([[0.5, 0.9, 0.0, 0.1]]), _cfg())
    assert sel.retrieved.tolist() == [[True, True, False, True]]
    assert not sel.extra_targets.any()  # 0.5 is alpha itself, not above it: item 0 stays eligible
    assert candidates[0, sel.hard_index[0]][sel.hard_valid[0]].tolist() == [0]


def test_positive_items_take_label_one_events_only():
    ev = BatchEvents(torch.tensor([0, 0, 1]), torch.tensor([1, 6, 1]), torch.tensor([2, 3, 1]), torch.tensor([1, 0, 1]))
    assert positive_items([ev], 2, 4, torch.device("cpu")).tolist() == [[False, False, True, False],
                                                                       [False, True, False, False]]
    taken = ev.take(torch.tensor([2, 0]))
    assert taken.rows.tolist() == [1, 0] and taken.items.tolist() == [1, 2] and taken.labels.tolist() == [1, 1]
    assert taken.positions.tolist() == [1, 1] and len(taken) == 2


@pytest.mark.parametrize("field", ["every_n_steps", "top_k", "contexts_per_step"])
def test_each_count_must_be_at_least_one(field):
    tokens = EnhancerTokens({False: 1, True: 2})
    RankingDrivenEnhancer(dataclasses.replace(_cfg(), **{field: 1}), tokens)  # 1 is allowed
    with pytest.raises(ValueError, match="^enhancer: every_n_steps, top_k and contexts_per_step must be >= 1$"):
        RankingDrivenEnhancer(dataclasses.replace(_cfg(), **{field: 0}), tokens)


def test_the_enhancer_runs_on_every_nth_step():
    enhancer = RankingDrivenEnhancer(_cfg(hard=True, every=3), EnhancerTokens({False: 1, True: 2}))
    assert [s for s in range(8) if enhancer.active_at(s)] == [0, 3, 6]


# ------------------------------------------------------------------------------------------ the driver
@dataclasses.dataclass
class Toy:
    net: GenerativeTransformer
    batch: SequenceBatch
    spaces: dict
    tokens: EnhancerTokens
    hidden: torch.Tensor
    cache: object


@pytest.fixture(scope="module")
def toy() -> Toy:
    setup = tiny_training()
    net, spec = tiny_net(setup, syn.FULL_SOFTMAX)
    net, batch, vocab, items = net.eval(), setup.batch, setup.vocab, setup.items
    with torch.no_grad():
        _, hidden, cache = sequence_losses_and_states(net, batch, spec)
    tokens = EnhancerTokens.for_vocabulary(vocab)
    return Toy(net, batch, id_spaces(vocab, items), tokens, hidden, cache)


@torch.no_grad()
def _oracle(toy: Toy, cfg: EnhancerConfig) -> tuple[dict[str, float], dict[str, float]]:
    """The driver's terms and statistics rebuilt from its tested pieces, every event of both streams taken."""
    events = {s: batch_events(toy.batch, s, toy.tokens.first_code_slot[s], sp) for s, sp in toy.spaces.items()}
    n_items = int(toy.spaces[False].codes.shape[0])
    positives = positive_items(list(events.values()), len(toy.batch), n_items, torch.device("cpu"))
    losses: dict[str, float] = {}
    counts = dict.fromkeys(("target_in_top_k", "hard_negatives", "extra_targets", "ranking_negatives",
                            "candidate_pos_prob"), 0.0)
    ranking_logits = []
    n = 0
    for search, ev in events.items():
        space = toy.spaces[search]
        cands, _ = beam_search(toy.net, context_prompts(toy.batch, ev.rows, ev.positions), space, cfg.top_k)
        items = torch.cat([ev.items[:, None], cands.clamp(min=0)], dim=1)
        scores, logits = candidate_code_scores(toy.net, toy.hidden[ev.rows, ev.positions],
                                               prefix_at(toy.cache, ev.rows, ev.positions, toy.batch.actions), items, space)
        probs = torch.sigmoid(logits[:, 1:])
        sel = select_candidates(cands, ev.items, positives[ev.rows], probs, cfg)
        rows = torch.arange(len(ev))[:, None]
        task = STREAM_TASK[search]
        n += len(ev)
        counts["target_in_top_k"] += float((cands == ev.items[:, None]).any(1).sum())
        counts["candidate_pos_prob"] += float(probs[sel.retrieved].mean()) * len(ev)
        counts["hard_negatives"] += float(sel.hard_valid.sum()) if cfg.hard_negatives.enabled else 0.0
        counts["extra_targets"] += float(sel.extra_targets.sum()) if cfg.extra_targets.enabled else 0.0
        counts["ranking_negatives"] += float(sel.ranking_valid.sum()) if cfg.ranking_negatives.enabled else 0.0
        terms = []
        if cfg.hard_negatives.enabled:
            terms.append(contrastive_retrieval_loss(scores[:, 0], scores[:, 1:][rows, sel.hard_index], sel.hard_valid,
                                                    cfg.hard_negatives.temperature))
        if cfg.extra_targets.enabled:
            terms.append(extra_target_loss(scores[:, 1:], sel.extra_targets, space.depth))
        if cfg.distill.enabled:
            terms.append(distillation_loss(scores[:, 1:], logits[:, 1:], sel.retrieved, cfg.distill.temperature))
        terms = [cfg.hard_negatives.weight * t for t in terms if t is not None]  # one weight for all parts here
        if terms:
            losses[task] = losses.get(task, 0.0) + float(sum(terms))
        if cfg.ranking_negatives.enabled and sel.ranking_valid.any():
            ranking_logits.append(logits[:, 1:][rows, sel.ranking_index][sel.ranking_valid])
    if ranking_logits:
        logits = torch.cat(ranking_logits)
        bce = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
        losses[RANKING_TASK] = cfg.ranking_negatives.weight * float(bce)
    stats = {f"enhancer/{k}": v / n for k, v in counts.items()}
    stats["enhancer/contexts"] = float(n)
    return losses, stats


@pytest.mark.parametrize("parts", [{"hard": True}, {"extra": True}, {"distill": True}, {"ranking": True},
                                   {"hard": True, "extra": True, "distill": True, "ranking": True}])
def test_the_driver_adds_each_parts_weighted_term_and_reports_per_context_statistics(toy, parts):
    cfg = _cfg(top_k=6, weight=0.7, **parts)
    with torch.no_grad():
        out = RankingDrivenEnhancer(cfg, toy.tokens)(toy.net, toy.batch, toy.hidden, toy.cache, toy.spaces)
    losses, stats = _oracle(toy, cfg)
    assert set(out.losses) == set(losses)
    for task, value in losses.items():
        assert out.losses[task].item() == pytest.approx(value, rel=1e-4), task
    seconds = out.stats.pop("enhancer/seconds")
    assert 0.0 <= seconds < 60.0
    assert out.stats == pytest.approx(stats, rel=1e-5)


def test_every_event_is_a_context_when_the_sample_is_large_enough(toy):
    enhancer = RankingDrivenEnhancer(_cfg(hard=True), toy.tokens)
    events = {s: batch_events(toy.batch, s, toy.tokens.first_code_slot[s], sp) for s, sp in toy.spaces.items()}
    sampled = enhancer._sample(events)
    for search, ev in events.items():
        assert torch.equal(sampled[search].rows, ev.rows) and torch.equal(sampled[search].positions, ev.positions)


def test_one_context_is_counted_as_one(toy):
    with torch.no_grad():
        out = RankingDrivenEnhancer(_cfg(contexts=1, hard=True), toy.tokens)(toy.net, toy.batch, toy.hidden,
                                                                             toy.cache, toy.spaces)
    assert out.stats["enhancer/contexts"] == 1.0
    assert 0.0 <= out.stats["enhancer/target_in_top_k"] <= 1.0
