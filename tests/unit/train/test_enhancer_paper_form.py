"""The enhancer in UniGRF's form (issue 39): warm-up gate, per-target weighting, label-consistent mining,
P(next) * P(<pos>) as the "low score", and hard negatives inside the main loss's sampled softmax."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch
from support import synthetic_train_data as syn
from support.tiny_training import tiny_net, tiny_training

from unigrec.config import (
    DistillConfig,
    EnhancerConfig,
    EnhancerWarmupConfig,
    ExtraTargetsConfig,
    HardNegativesConfig,
    OptimConfig,
    RankingNegativesConfig,
    RetrievalLossConfig,
    WeighterConfig,
)
from unigrec.inference.retrieval import id_spaces
from unigrec.model.batch import SequenceBatch
from unigrec.model.decoding import beam_search, candidate_code_scores
from unigrec.model.tokenizer import LOSS_GROUPS, RANKING, RETRIEVAL_REC, RETRIEVAL_SEARCH
from unigrec.model.transformer import GenerativeTransformer
from unigrec.model.vocabulary import Vocabulary
from unigrec.train import enhancer as enhancer_module
from unigrec.train import losses as losses_module
from unigrec.train.enhancer import (
    STREAM_TASK,
    EnhancerTokens,
    RankingDrivenEnhancer,
    batch_events,
    context_prompts,
    enhancer_ready,
    positive_items,
    prefix_at,
    select_candidates,
    softmax_hard_negatives,
)
from unigrec.train.lightning_module import ENHANCER_GATE, GenerativeRecModule
from unigrec.train.losses import (
    losses_from_states,
    sampled_softmax_loss,
    sequence_losses_and_states,
    targets_per_group,
)
from unigrec.train.weighter import TaskWeighter

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SAMPLED = RetrievalLossConfig(softmax="sampled", negatives=8, draw="position", l2_normalise=True, temperature=0.05,
                              product_columns=16384)
NO_WARMUP = EnhancerWarmupConfig(epochs=0, min_valid_auc=None)


def _cfg(hard: bool = False, extra: bool = False, distill: bool = False, ranking: bool = False, *,
         weighting: str = "context_mean", score: str = "ranking", into: str = "contrastive",
         warmup: EnhancerWarmupConfig = NO_WARMUP, top_k: int = 6, count: int = 3, alpha: float = 0.5,
         weight: float = 0.7) -> EnhancerConfig:
    return EnhancerConfig(
        enabled=True, every_n_steps=1, contexts_per_step=1000, top_k=top_k, warmup=warmup,
        target_weighting=weighting, candidate_score=score,
        hard_negatives=HardNegativesConfig(enabled=hard, count=count, into=into, temperature=2.0, weight=weight),
        extra_targets=ExtraTargetsConfig(enabled=extra, alpha=alpha, weight=weight),
        distill=DistillConfig(enabled=distill, temperature=3.0, weight=weight),
        ranking_negatives=RankingNegativesConfig(enabled=ranking, count=count, weight=weight),
    )


@dataclasses.dataclass
class Toy:
    vocab: Vocabulary
    net: GenerativeTransformer
    batch: SequenceBatch
    spaces: dict
    spec: object
    tokens: EnhancerTokens


def _toy(retrieval: RetrievalLossConfig) -> Toy:
    """A 2-layer net (dropout off: every number reproducible) over 4 users' training sequences."""
    setup = tiny_training()
    net, spec = tiny_net(setup, retrieval)
    vocab = setup.vocab
    tokens = EnhancerTokens.for_vocabulary(vocab)
    return Toy(vocab, net.eval(), setup.batch, id_spaces(vocab, setup.items), spec, tokens)


@pytest.fixture(scope="module")
def toy() -> Toy:
    return _toy(syn.FULL_SOFTMAX)


@pytest.fixture(scope="module")
def sampled_toy() -> Toy:
    return _toy(SAMPLED)


def _module(toy: Toy, cfg: EnhancerConfig | None) -> GenerativeRecModule:
    weighter = TaskWeighter(WeighterConfig(mode="fixed", tasks="three", temperature=2.0, update_every=1, baseline_updates=0,
                                           loss_smoothing=0.9, gradnorm_alpha=1.5, lr=0.01, min_weight=0.05,
                                           log_grad_norms=False), [1.0, 1.0, 1.0])
    enhancer = RankingDrivenEnhancer(cfg, toy.tokens) if cfg is not None else None
    return GenerativeRecModule(toy.net, toy.spec, weighter, OptimConfig(1e-3, 0.0, 1, "constant", 0.1, 1.0),
                               toy.spaces, beam_size=5, k=5, enhancer=enhancer)


def _events(toy: Toy) -> dict:
    return {s: batch_events(toy.batch, s, toy.tokens.first_code_slot[s], sp) for s, sp in toy.spaces.items()}


# ------------------------------------------------------------------------------------------------ 1. warm-up
@pytest.mark.parametrize(("epochs", "min_auc", "epoch", "auc", "ready"), [
    (0, None, 0, None, True),  # no warm-up: from the first step
    (2, None, 1, None, False),  # one epoch done of two
    (2, None, 2, None, True),
    (0, 0.6, 0, None, False),  # an AUC gate and no validation yet
    (0, 0.6, 3, 0.59, False),
    (0, 0.6, 3, 0.6, True),  # reaching the threshold is enough
    (3, 0.6, 2, 0.9, False),  # both gates must pass
    (3, 0.6, 3, 0.9, True),
])
def test_enhancer_ready_waits_for_both_gates(epochs, min_auc, epoch, auc, ready):
    assert enhancer_ready(epoch, auc, EnhancerWarmupConfig(epochs=epochs, min_valid_auc=min_auc)) is ready


def test_the_module_adds_no_enhancer_term_before_the_warm_up_and_one_after(toy, caplog):
    module = _module(toy, _cfg(hard=True, warmup=EnhancerWarmupConfig(epochs=1, min_valid_auc=0.7)))
    with torch.no_grad():
        _, losses, tasks, stats = module.training_objective(toy.batch)
        assert stats == {} and all(torch.equal(tasks[n], losses[n]) for n in LOSS_GROUPS)
        assert not module.update_enhancer_gate(0, 0.9)  # no epoch finished yet
        assert not module.update_enhancer_gate(1, 0.65)  # the ranker is not good enough yet
        with caplog.at_level(logging.INFO, logger="unigrec.train.lightning_module"):
            assert module.update_enhancer_gate(2, 0.71)
        assert "enhancer on from epoch 3" in caplog.text
        _, losses, tasks, stats = module.training_objective(toy.batch)
        assert stats["enhancer/contexts"] > 0
        assert any(not torch.equal(tasks[n], losses[n]) for n in LOSS_GROUPS)
        assert module.update_enhancer_gate(3, 0.5)  # latched: a worse epoch later does not switch it off
    saved: dict = {}
    module.on_save_checkpoint(saved)  # a resumed run does not warm up again
    fresh = _module(toy, _cfg(hard=True, warmup=EnhancerWarmupConfig(epochs=1, min_valid_auc=0.7)))
    assert not fresh._enhancer_on
    fresh.on_load_checkpoint(saved)
    assert saved[ENHANCER_GATE] == {"on": True, "last_valid_auc": None} and fresh._enhancer_on


def test_no_warm_up_runs_from_the_first_step(toy):
    assert _module(toy, _cfg(hard=True))._enhancer_on
    assert not _module(toy, None)._enhancer_on


# ------------------------------------------------------------------------------------------------ 2. weighting
@torch.no_grad()
def _by_hand_per_target(toy: Toy, cfg: EnhancerConfig) -> dict[str, float]:
    """Each part's SUM over its targets, times its weight, over the main loss's targets of its task,
    rebuilt from the candidates' scores with plain torch (log-sum-exp, sigmoid), not the loss pieces."""
    _, hidden, cache = sequence_losses_and_states(toy.net, toy.batch, toy.spec)
    events = _events(toy)
    positives = positive_items(list(events.values()), len(toy.batch), int(toy.spaces[False].codes.shape[0]),
                               torch.device("cpu"))
    main = {name: float((toy.batch.groups == g).sum()) for g, name in enumerate(LOSS_GROUPS)}
    assert targets_per_group(toy.batch.groups).tolist() == list(main.values())
    sums: dict[str, float] = {}
    ranking_bce = 0.0
    for search, ev in events.items():
        space = toy.spaces[search]
        cands, _ = beam_search(toy.net, context_prompts(toy.batch, ev.rows, ev.positions), space, cfg.top_k)
        items = torch.cat([ev.items[:, None], cands.clamp(min=0)], dim=1)
        scores, logits = candidate_code_scores(toy.net, hidden[ev.rows, ev.positions],
                                               prefix_at(cache, ev.rows, ev.positions, toy.batch.actions), items, space)
        probs = torch.sigmoid(logits[:, 1:])
        sel = select_candidates(cands, ev.items, positives[ev.rows], probs, cfg, scores[:, 1:])
        total = 0.0
        for i in range(len(ev)):
            negs = scores[i, 1:][sel.hard_index[i][sel.hard_valid[i]]]
            if cfg.hard_negatives.enabled and negs.numel():
                z = torch.cat([scores[i, :1], negs]) / cfg.hard_negatives.temperature
                total += cfg.hard_negatives.weight * float(torch.logsumexp(z, 0) - z[0])
            if cfg.extra_targets.enabled:
                total += cfg.extra_targets.weight * float(-scores[i, 1:][sel.extra_targets[i]].sum())
            if cfg.ranking_negatives.enabled:
                chosen = logits[i, 1:][sel.ranking_index[i][sel.ranking_valid[i]]]
                ranking_bce += cfg.ranking_negatives.weight * float(-torch.log(1 - torch.sigmoid(chosen)).sum())
        task = STREAM_TASK[search]
        sums[task] = sums.get(task, 0.0) + total / main[task]
    if cfg.ranking_negatives.enabled:
        sums[LOSS_GROUPS[RANKING]] = ranking_bce / main[LOSS_GROUPS[RANKING]]
    return sums


@pytest.mark.parametrize("parts", [{"hard": True}, {"extra": True}, {"ranking": True},
                                   {"hard": True, "extra": True, "ranking": True}])
def test_per_target_terms_are_sums_over_targets_divided_by_the_main_loss_targets(toy, parts):
    # alpha 0.45 lets (b) find extra targets in the untrained net, whose P(<pos>) is about 0.5
    cfg = _cfg(**parts, weighting="per_target", alpha=0.45)
    with torch.no_grad():
        _, hidden, cache = sequence_losses_and_states(toy.net, toy.batch, toy.spec)
        out = RankingDrivenEnhancer(cfg, toy.tokens)(toy.net, toy.batch, hidden, cache, toy.spaces)
    want = _by_hand_per_target(toy, cfg)
    assert {t for t, v in want.items() if v} == set(out.losses)
    for task, value in out.losses.items():
        assert value.item() == pytest.approx(want[task], rel=1e-4), task
    if parts.get("extra"):
        assert out.stats["enhancer/extra_targets"] > 0


def test_context_mean_through_the_module_is_the_old_flow_bit_for_bit(toy):
    """Default knobs: the task losses first, then the enhancer on the same pass, its terms added: every
    number (and the gradient) as before the paper-form knobs existed."""
    cfg = _cfg(hard=True, extra=True, ranking=True, alpha=0.45)
    module = _module(toy, cfg)
    toy.net.train()
    try:
        torch.manual_seed(3)
        total, _, _, _ = module.training_objective(toy.batch)
        torch.manual_seed(3)
        losses, hidden, cache = sequence_losses_and_states(toy.net, toy.batch, toy.spec)
        out = RankingDrivenEnhancer(cfg, toy.tokens)(toy.net, toy.batch, hidden, cache, toy.spaces)
        old = sum(losses[n] + out.losses.get(n, 0.0) for n in LOSS_GROUPS)
    finally:
        toy.net.eval()
    assert torch.equal(total, old)


# ------------------------------------------------------------------------------------------------ 3. mining
@pytest.mark.parametrize("score", ["ranking", "next_and_like"])
def test_a_future_positive_of_the_sequence_is_never_a_negative(toy, score, monkeypatch):
    """Every catalogue item is a candidate and every eligible one is taken, so a label-1 item the user
    meets LATER in the sequence would be mined as a hard or ranking negative if it were not excluded."""
    n_items = int(toy.spaces[False].codes.shape[0])
    cfg = _cfg(hard=True, ranking=True, score=score, top_k=n_items, count=n_items, alpha=1.0)
    seen = []

    def spy(candidates, targets, positives, probs, cfg, retrieval_scores=None):
        sel = select_candidates(candidates, targets, positives, probs, cfg, retrieval_scores)
        seen.append((candidates, sel))
        return sel

    monkeypatch.setattr(enhancer_module, "select_candidates", spy)
    with torch.no_grad():
        _, hidden, cache = sequence_losses_and_states(toy.net, toy.batch, toy.spec)
        RankingDrivenEnhancer(cfg, toy.tokens)(toy.net, toy.batch, hidden, cache, toy.spaces)
    events = _events(toy)
    both = list(events.values())
    checked = 0
    for (search, ev), (cands, sel) in zip(events.items(), seen, strict=True):
        rows = torch.arange(len(ev))[:, None]
        for i in range(len(ev)):
            row, position = int(ev.rows[i]), int(ev.positions[i])
            future = {int(e.items[j]) for e in both for j in range(len(e))
                      if int(e.rows[j]) == row and int(e.positions[j]) > position and int(e.labels[j]) == 1}
            future.discard(int(ev.items[i]))
            assert future <= set(cands[i].tolist())  # the whole catalogue was retrieved
            for index, valid in ((sel.hard_index, sel.hard_valid), (sel.ranking_index, sel.ranking_valid)):
                mined = set(cands[rows, index][i][valid[i]].tolist())
                assert mined and not mined & future
            checked += len(future)
    assert checked > 0  # the toy has future positives to get wrong


def test_next_and_like_picks_another_hard_negative_than_the_ranking_score():
    candidates = torch.tensor([[10, 11, 12, 13]])
    probs = torch.tensor([[0.1, 0.2, 0.5, 0.9]])  # P(<pos>); 13 is above alpha: an extra target either way
    retrieval = torch.tensor([[-0.5, -6.0, -1.0, -7.0]])  # log P(next): 10 is very likely to come next
    positives = torch.zeros(1, 20, dtype=torch.bool)
    picked = {}
    for score in ("ranking", "next_and_like"):
        cfg = _cfg(hard=True, extra=True, score=score, count=1, alpha=0.8)
        sel = select_candidates(candidates, torch.tensor([19]), positives, probs, cfg, retrieval)
        picked[score] = candidates[0, sel.hard_index[0]][sel.hard_valid[0]].tolist()
        assert candidates[0][sel.extra_targets[0]].tolist() == [13]  # (b) is P(<pos>) > alpha either way
    # ranking: 10 has the lowest P(<pos>). next_and_like: 10 scores e^-0.5 * 0.1 = 0.061, 11 e^-6 * 0.2 = 0.0005
    assert picked == {"ranking": [10], "next_and_like": [11]}
    with pytest.raises(ValueError, match="next_and_like needs the candidates' retrieval scores"):
        select_candidates(candidates, torch.tensor([19]), positives, probs, _cfg(hard=True, score="next_and_like"))


# ------------------------------------------------------------------------------------------------ 4. sampled softmax
def test_a_hard_negative_enters_at_its_first_level_that_differs_from_the_target():
    target = torch.tensor([[3, 5, 7]])
    negatives = torch.tensor([[[3, 9, 2], [4, 5, 7], [3, 5, 8], [3, 9, 1], [1, 1, 1]]])
    valid = torch.tensor([[True, True, True, True, False]])
    offsets = torch.tensor([100, 200, 300])
    got = softmax_hard_negatives(target, negatives, valid, offsets)  # (1, L, m)
    assert got[0].tolist() == [
        [-1, 104, -1, -1, -1],  # level 0: only (4, 5, 7) leaves the target's first code
        [209, -1, -1, -1, -1],  # level 1: (3, 9, 2); (3, 9, 1) shares the token and enters once; invalid: none
        [-1, -1, 308, -1, -1],  # level 2: (3, 5, 8); below a divergence the softmax is another item's
    ]
    atomic = softmax_hard_negatives(torch.tensor([[4]]), torch.tensor([[[4], [6]]]), torch.tensor([[True, True]]),
                                    torch.tensor([50]))
    assert atomic[0].tolist() == [[-1, 56]]  # the target itself is no negative


def test_the_mined_hard_negatives_join_the_main_sampled_softmax(sampled_toy, monkeypatch):
    toy = sampled_toy
    # the same draws twice: the first `count` legal tokens of each slice, for every target (draw: position)
    def first_tokens(legal: torch.Tensor, count: int, rows: int | None = None) -> torch.Tensor:
        drawn = legal.nonzero().squeeze(1).repeat(count)[:count]
        return drawn if rows is None else drawn.expand(rows, count)

    monkeypatch.setattr(losses_module, "sample_legal_tokens", first_tokens)
    cfg = _cfg(hard=True, into="sampled_softmax", weighting="per_target", count=2, score="next_and_like")
    module = _module(toy, cfg)
    captured = []
    mine = RankingDrivenEnhancer.__call__

    def record(self, *args):
        captured.append(mine(self, *args))
        return captured[-1]

    monkeypatch.setattr(RankingDrivenEnhancer, "__call__", record)
    with torch.no_grad():
        _, losses, tasks, stats = module.training_objective(toy.batch)
        (out,) = captured
        extra = out.softmax_negatives
        assert out.losses == {}  # no contrastive term: the negatives are in the softmax
        assert stats["enhancer/softmax_negatives"] > 0 and extra.shape[:2] == toy.batch.tokens.shape
        used = extra >= 0
        assert used.any()
        # only at retrieval targets, and each a code of the level the position predicts, not the target
        slots = toy.batch.slots[:, :, None].expand_as(extra)
        assert (toy.batch.groups[:, :, None].expand_as(extra)[used] != RANKING).all()
        assert toy.spec.legal[slots[used], extra[used]].all()
        assert (extra != toy.batch.targets[:, :, None])[used].all()
        hidden, _ = toy.net.encode_batch(toy.batch)
        for group in (RETRIEVAL_REC, RETRIEVAL_SEARCH):
            sel = toy.batch.groups == group
            negatives = torch.stack([first_tokens(toy.spec.legal[s], SAMPLED.negatives)
                                     for s in toy.batch.slots[sel].tolist()])  # (P, N): each target its own
            args = (hidden[sel], toy.batch.targets[sel], toy.net.token_embedding.weight, negatives, None,
                    SAMPLED.temperature, SAMPLED.l2_normalise)
            by_hand = sampled_softmax_loss(*args, extra[sel])
            assert torch.allclose(losses[LOSS_GROUPS[group]], by_hand, rtol=1e-6, atol=0), group
            assert torch.equal(tasks[LOSS_GROUPS[group]], losses[LOSS_GROUPS[group]])
            if bool(used[sel].any()):
                assert not torch.equal(by_hand, sampled_softmax_loss(*args))  # the hard negatives changed it


def test_hard_negatives_into_the_full_softmax_are_refused(toy):
    cfg = _cfg(hard=True, into="sampled_softmax")
    with pytest.raises(ValueError, match=r"hard_negatives\.into: sampled_softmax needs train\.retrieval_loss\.softmax"):
        _module(toy, cfg)
    hidden, _ = toy.net.encode_batch(toy.batch)
    with pytest.raises(ValueError, match="need the sampled softmax"):
        losses_from_states(toy.net, toy.batch, toy.spec, hidden, torch.full((*toy.batch.tokens.shape, 1), -1))


# ------------------------------------------------------------------------------------------------ 5. the overlay
def test_the_unigrf_paper_overlay_is_the_papers_form():
    import yaml
    from support import REPO

    from unigrec.config import params_from_dict

    def merge(base: dict, over: dict) -> dict:
        return {**base, **{k: merge(base[k], v) if isinstance(v, dict) else v for k, v in over.items()}}

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    overlay = yaml.safe_load((REPO / "configs" / "experiments" / "unigrf-paper.yaml").read_text())
    train = params_from_dict(merge(raw, overlay)).train
    e = train.enhancer
    assert e.enabled and e.feeds_sampled_softmax and train.retrieval_loss.softmax == "sampled"
    assert e.warmup.epochs >= 1 and e.target_weighting == "per_target" and e.candidate_score == "next_and_like"
    assert e.hard_negatives.enabled and e.extra_targets.enabled
    assert not e.distill.enabled and not e.ranking_negatives.enabled
    w = train.weighter
    assert (w.mode, w.tasks, w.update_every, w.temperature) == ("dwa", "two", "epoch", 0.1)
