"""The ranking-driven enhancer: events read right, scores exact, positives never negatives, off = plain loss."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from support import synthetic_train_data as syn

from unigrec.config import (
    DistillConfig,
    EnhancerConfig,
    EnhancerWarmupConfig,
    ExtraTargetsConfig,
    HardNegativesConfig,
    ModelConfig,
    OptimConfig,
    RankingNegativesConfig,
    WeighterConfig,
)
from unigrec.inference.prompts import group_user_events, query_table_texts
from unigrec.inference.retrieval import id_spaces
from unigrec.model.batch import collate_sequences
from unigrec.model.decoding import beam_search, candidate_code_scores, score_candidates
from unigrec.model.item_codes import item_codes_from_frame
from unigrec.model.tokenizer import LOSS_GROUPS, SequenceSerialiser
from unigrec.model.transformer import GenerativeTransformer
from unigrec.model.vocabulary import PAD, Vocabulary
from unigrec.train.enhancer import (
    EnhancerTokens,
    RankingDrivenEnhancer,
    batch_events,
    context_prompts,
    contrastive_retrieval_loss,
    distillation_loss,
    excluded_candidates,
    positive_items,
    prefix_at,
    select_candidates,
)
from unigrec.train.fit import loss_spec, transformer_dims
from unigrec.train.losses import sequence_losses, sequence_losses_and_states
from unigrec.train.sequences import training_sequences
from unigrec.train.weighter import TaskWeighter

MAX_EVENTS = 10


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclasses.dataclass
class Toy:
    vocab: Vocabulary
    net: GenerativeTransformer
    batch: object
    spaces: dict
    spec: object
    tokens: EnhancerTokens
    users: list


def _make_toy(layout: str, past_action_input: bool = False, rec_at_searches: bool = False) -> Toy:
    cfg = ModelConfig(item_representation="semantic_ids", d_model=32, n_layers=2, n_heads=2, d_ff=64,
                      dropout=0.1, attention_dropout=0.1, n_query_tokens=2,
                      embedding_init="gpt2", positions="learned", event_layout=layout,
                      past_action_input=past_action_input)
    items = item_codes_from_frame(syn.ids_frame())
    vocab = Vocabulary.from_codebooks(syn.CODEBOOKS)
    events = syn.events_frame(n_users=6, min_events=8, max_events=MAX_EVENTS)
    queries = query_table_texts(events)
    ser = SequenceSerialiser(vocab, items, cfg.n_query_tokens, max_events=MAX_EVENTS, layout=layout)
    users = group_user_events(events, items, queries)
    seqs = training_sequences(users, ser, rec_at_searches=rec_at_searches)
    table = np.random.default_rng(0).normal(size=(max(len(queries), 1), 8)).astype(np.float32)
    batch = collate_sequences(seqs, table, cfg.n_query_tokens, vocab.token(PAD))
    torch.manual_seed(0)
    dims = transformer_dims(cfg, syn.FULL_SOFTMAX, vocab, ser.max_length, table.shape[1])
    net = GenerativeTransformer(dims)
    tokens = EnhancerTokens.for_vocabulary(vocab)
    return Toy(vocab, net, batch, id_spaces(vocab, items), loss_spec(syn.FULL_SOFTMAX, vocab), tokens, users)


@pytest.fixture(scope="module")
def toy() -> Toy:
    return _make_toy("behaviour_item_action")


@pytest.fixture(scope="module")
def item_toy() -> Toy:
    """The default's layout: a recommendation event is its codes alone (the previous event's last code
    predicts it), actions are input at the next token, and a search's <src_query> also predicts its item
    as a recommendation target: the three ways an event start could be misread."""
    return _make_toy("item", past_action_input=True, rec_at_searches=True)


def _enhancer_cfg(**parts: bool) -> EnhancerConfig:
    on = {name: parts.get(name, False) for name in ("hard", "extra", "distill", "ranking")}
    return EnhancerConfig(
        enabled=True, every_n_steps=1, contexts_per_step=12, top_k=8,
        warmup=EnhancerWarmupConfig(epochs=0, min_valid_auc=None), target_weighting="context_mean",
        candidate_score="ranking",
        hard_negatives=HardNegativesConfig(enabled=on["hard"], count=3, into="contrastive", temperature=1.0,
                                           weight=1.0),
        extra_targets=ExtraTargetsConfig(enabled=on["extra"], alpha=0.5, weight=0.5),
        distill=DistillConfig(enabled=on["distill"], temperature=2.0, weight=1.0),
        ranking_negatives=RankingNegativesConfig(enabled=on["ranking"], count=3, weight=1.0),
    )


@pytest.mark.parametrize("layout", ["toy", "item_toy"])
def test_batch_events_recover_every_training_event(layout, request):
    toy = request.getfixturevalue(layout)
    rows_items: dict[int, list[tuple[int, int]]] = {}
    for search, space in toy.spaces.items():
        ev = batch_events(toy.batch, search, toy.tokens.first_code_slot[search], space)
        for r, p, i, lab in zip(ev.rows.tolist(), ev.positions.tolist(), ev.items.tolist(), ev.labels.tolist()):
            rows_items.setdefault(r, []).append((p, i, lab, search))
    for row, user in enumerate(toy.users):
        train = user.events.take(np.flatnonzero(user.splits == "train")).most_recent(MAX_EVENTS)
        got = sorted(rows_items[row])
        assert [g[1] for g in got] == train.items.tolist()
        assert [g[2] for g in got] == train.labels.tolist()
        assert [g[3] for g in got] == train.is_search.tolist()


@pytest.mark.parametrize("layout", ["toy", "item_toy"])
def test_scores_from_the_training_cache_equal_inference_scoring(layout, request):
    """prefix_at + candidate_code_scores (with grad) == score_candidates on re-encoded prompts (eval mode);
    in the item layout with past actions only if the cut carries the previous event's action."""
    toy = request.getfixturevalue(layout)
    net = toy.net.eval()
    for search, space in toy.spaces.items():
        ev = batch_events(toy.batch, search, toy.tokens.first_code_slot[search], space)
        ev = ev.take(torch.arange(0, len(ev), 3))
        _, hidden, cache = sequence_losses_and_states(net, toy.batch, toy.spec)
        prompts = context_prompts(toy.batch, ev.rows, ev.positions)
        cands, _ = beam_search(net, prompts, space, 5)
        items = torch.cat([ev.items[:, None], cands.clamp(min=0)], 1)
        cut = prefix_at(cache, ev.rows, ev.positions, toy.batch.actions)
        ours, logits = candidate_code_scores(net, hidden[ev.rows, ev.positions], cut, items, space)
        ref_scores, ref_probs = score_candidates(net, prompts, items, space)
        assert ours.requires_grad
        assert torch.allclose(ours, ref_scores, atol=1e-5)
        assert torch.allclose(torch.sigmoid(logits), ref_probs, atol=1e-5)
    net.train()


def test_selection_never_uses_a_positive_as_negative(toy):
    """Hard and ranking negatives exclude the target and every label-1 item of the context's sequence."""
    net = toy.net.eval()
    events = [batch_events(toy.batch, s, toy.tokens.first_code_slot[s], sp) for s, sp in toy.spaces.items()]
    n_items = int(toy.spaces[False].codes.shape[0])
    positives = positive_items(events, len(toy.batch), n_items, torch.device("cpu"))
    cfg = _enhancer_cfg(hard=True, extra=True, ranking=True)
    cfg = dataclasses.replace(cfg, hard_negatives=dataclasses.replace(cfg.hard_negatives, count=20),
                              ranking_negatives=dataclasses.replace(cfg.ranking_negatives, count=20))
    checked = 0
    for search, space in toy.spaces.items():
        ev = events[int(search)]
        # the full catalogue as candidates, so positives are certainly among them
        cands, _ = beam_search(net, context_prompts(toy.batch, ev.rows, ev.positions), space, n_items)
        probs = torch.rand(cands.shape, generator=torch.Generator().manual_seed(1))
        sel = select_candidates(cands, ev.items, positives[ev.rows], probs, cfg)
        rows = torch.arange(len(ev))[:, None]
        for index, valid in ((sel.hard_index, sel.hard_valid), (sel.ranking_index, sel.ranking_valid)):
            chosen = cands[rows, index]
            bad = (chosen == ev.items[:, None]) | positives[ev.rows[:, None], chosen.clamp(min=0)] | (chosen < 0)
            assert not (bad & valid).any()
            assert valid.any()
            checked += int(valid.sum())
        # extra targets are confident non-positives, and never also negatives
        extra_items = torch.where(sel.extra_targets, cands, -1)
        assert not ((extra_items == ev.items[:, None]) & sel.extra_targets).any()
        assert (probs[sel.extra_targets] > cfg.extra_targets.alpha).all()
        hard_items = cands[rows, sel.hard_index].masked_fill(~sel.hard_valid, -2)
        assert not (hard_items[:, :, None] == extra_items[:, None, :]).any()
        # hard negatives are the lowest-ranked eligible ones: no eligible candidate left out scores lower
        # than the highest-scored one chosen (eligible = not excluded, not an extra target)
        excluded = excluded_candidates(cands, ev.items, positives[ev.rows])
        eligible = ~excluded & ~sel.extra_targets & (probs <= cfg.extra_targets.alpha)
        chosen = torch.zeros_like(eligible).scatter_(1, sel.hard_index, sel.hard_valid)
        worst_chosen = probs.masked_fill(~chosen, float("-inf")).max(1).values
        best_left_out = probs.masked_fill(~(eligible & ~chosen), float("inf")).min(1).values
        assert (worst_chosen <= best_left_out).all()
    assert positives.any() and checked > 0
    net.train()


def test_hard_negatives_are_the_lowest_ranked_eligible_candidates_by_hand():
    """(a) in UniGRF's sense: retrieved (so high retrieval score) but LOW ranking score. The target, the
    sequence's positives and the confident candidates (> alpha: extra targets) are never negatives."""
    cfg = _enhancer_cfg(hard=True, extra=True, ranking=True)
    cfg = dataclasses.replace(cfg, hard_negatives=dataclasses.replace(cfg.hard_negatives, count=2),
                              extra_targets=dataclasses.replace(cfg.extra_targets, alpha=0.8))
    candidates = torch.tensor([[10, 11, 12, 13, 14, 15, 16]])  # in retrieval order
    probs = torch.tensor([[0.05, 0.5, 0.1, 0.7, 0.3, 0.95, 0.02]])
    positives = torch.zeros(1, 20, dtype=torch.bool)
    positives[0, 16] = True  # a liked item of the sequence: lowest score, yet never a negative
    sel = select_candidates(candidates, torch.tensor([10]), positives, probs, cfg)  # 10 is the target
    hard = candidates[0, sel.hard_index[0]][sel.hard_valid[0]].tolist()
    assert hard == [12, 14]  # eligible 11 (0.5), 12 (0.1), 13 (0.7), 14 (0.3): the two lowest, lowest first
    assert candidates[0][sel.extra_targets[0]].tolist() == [15]
    ranking = candidates[0, sel.ranking_index[0]][sel.ranking_valid[0]].tolist()
    assert ranking == [11, 12, 13, 14][: cfg.ranking_negatives.count]  # (d): the best-retrieved eligible ones


def test_distillation_teaches_retrieval_only():
    """(c) is a stop-gradient on the ranker: its logits are the teacher, so no gradient may reach them
    through this term, while the retrieval scores (the student) get one."""
    retrieval = torch.tensor([[1.0, 2.0, 0.5], [0.3, -1.0, 0.2]], requires_grad=True)
    ranking = torch.tensor([[-1.0, 0.5, 2.0], [1.0, 0.0, -2.0]], requires_grad=True)
    loss = distillation_loss(retrieval, ranking, torch.ones(2, 3, dtype=torch.bool), temperature=2.0)
    loss.backward()
    assert ranking.grad is None or not ranking.grad.any()
    assert retrieval.grad is not None and retrieval.grad.abs().sum() > 0


def test_loss_pieces_behave():
    t = torch.tensor([0.0, 0.0])
    negs = torch.tensor([[-5.0, -6.0], [3.0, 0.0]])
    valid = torch.tensor([[True, True], [True, False]])
    loss = contrastive_retrieval_loss(t, negs, valid, temperature=1.0)
    # row 0's target already wins by far, row 1's loses to its one valid negative
    expected = (torch.log1p(torch.exp(torch.tensor(-5.0)) + torch.exp(torch.tensor(-6.0)))
                + torch.log1p(torch.exp(torch.tensor(3.0)))) / 2
    assert torch.allclose(loss, expected)
    assert contrastive_retrieval_loss(t, negs, torch.zeros_like(valid), 1.0) is None
    same = torch.tensor([[1.0, 2.0, 0.5]])
    all_valid = torch.ones_like(same, dtype=torch.bool)
    assert distillation_loss(same, same, all_valid, 2.0).abs() < 1e-6
    assert distillation_loss(same, -same, all_valid, 2.0) > 0.01


def _module(toy, enhancer_cfg: EnhancerConfig | None):
    from unigrec.train.lightning_module import GenerativeRecModule

    weighter = TaskWeighter(WeighterConfig(mode="fixed", tasks="three", temperature=2.0, update_every=1, baseline_updates=0, loss_smoothing=0.9,
                                           gradnorm_alpha=1.5, lr=0.01, min_weight=0.05, log_grad_norms=False),
                            [1.0, 1.0, 1.0])
    enhancer = RankingDrivenEnhancer(enhancer_cfg, toy.tokens) if enhancer_cfg is not None else None
    return GenerativeRecModule(toy.net, toy.spec, weighter, OptimConfig(1e-3, 0.0, 1, "constant", 0.1, 1.0), toy.spaces,
                               beam_size=5, k=5, enhancer=enhancer)


def _plain_joint_loss(toy) -> torch.Tensor:
    losses = sequence_losses(toy.net, toy.batch, toy.spec)
    return sum(1.0 * value for value in losses.values())


def _objective(module, toy) -> torch.Tensor:
    return module.training_objective(toy.batch)[0]


@pytest.mark.parametrize("part", [None, "hard", "extra", "distill", "ranking"])
def test_switching_parts_off_reproduces_the_plain_joint_loss_exactly(toy, part):
    """Fixed batch and seed, dropout on: off means bit-identical; each part on changes the loss."""
    toy.net.train()
    torch.manual_seed(5)
    plain = _plain_joint_loss(toy)
    for cfg in (None, dataclasses.replace(_enhancer_cfg(hard=True, extra=True, distill=True, ranking=True),
                                          enabled=False), _enhancer_cfg()):
        torch.manual_seed(5)
        assert torch.equal(_objective(_module(toy, cfg), toy), plain)
    if part is not None:
        torch.manual_seed(5)
        module = _module(toy, _enhancer_cfg(**{part: True}))
        total, losses, tasks, stats = module.training_objective(toy.batch)
        assert not torch.equal(total, plain)
        assert stats["enhancer/contexts"] > 0
        # each part changes the task it is a term of, and only that one: (a)-(c) retrieval, (d) ranking
        changed = {n for n in LOSS_GROUPS if not torch.equal(tasks[n], losses[n])}
        if part == "ranking":
            assert changed == {"ranking"} and stats["enhancer/ranking_negatives"] > 0
        else:
            assert changed and changed <= {"retrieval_rec", "retrieval_search"}
        if part == "hard":
            assert stats["enhancer/hard_negatives"] > 0
        if part == "extra":
            assert stats["enhancer/extra_targets"] > 0
        total.backward()
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in toy.net.parameters())
        toy.net.zero_grad()
