"""Retrieval loss options (train.retrieval_loss): the sampled softmax against hand-computed values, its
negatives drawn from each position's legal slice, and the full softmax / old atomic sampled softmax
reproduced bit for bit."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from support import synthetic_train_data as syn
from support.tiny_training import tiny_net, tiny_training

from unigrec.config import RetrievalLossConfig
from unigrec.model.batch import SequenceBatch
from unigrec.model.decoding import build_id_space, level_log_probs
from unigrec.model.tokenizer import LOSS_GROUPS, RETRIEVAL_REC, RETRIEVAL_SEARCH
from unigrec.model.transformer import GenerativeTransformer, TransformerDims
from unigrec.model.vocabulary import SEMANTIC, Vocabulary
from unigrec.train import losses
from unigrec.train.fit import loss_spec
from unigrec.train.losses import LossSpec, sample_legal_tokens, sampled_softmax_loss, sequence_losses

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HSTU = RetrievalLossConfig(softmax="sampled", negatives=16, draw="position", l2_normalise=True, temperature=0.05,
                           product_columns=16384)

# 3 rows of width 2 against a 6-token table; targets 0, 1, 2
H = [[1.0, 0.5], [-0.3, 2.0], [0.8, -1.2]]
E = [[1.0, 0.0], [0.0, 1.0], [0.6, -0.8], [-1.0, 1.0], [2.0, 2.0], [0.5, -0.5]]
TARGETS = [0, 1, 2]


def _expected_ce(h, e, targets, negatives_per_row, temperature, l2_normalise) -> float:
    """The mean CE by hand (numpy, one row at a time): the target's logit against its row's negatives,
    those equal to the target left out."""
    h, e = np.asarray(h, dtype=np.float64), np.asarray(e, dtype=np.float64)
    if l2_normalise:
        h = h / np.linalg.norm(h, axis=1, keepdims=True)
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
    total = 0.0
    for row, target in enumerate(targets):
        kept = [n for n in negatives_per_row[row] if n != target]
        logits = np.array([h[row] @ e[target], *(h[row] @ e[n] for n in kept)]) / temperature
        total += math.log(np.exp(logits).sum()) - logits[0]
    return total / len(targets)


def _loss(negatives, negative_set, temperature=1.0, l2_normalise=False, extra=None, columns=None) -> torch.Tensor:
    return sampled_softmax_loss(
        torch.tensor(H), torch.tensor(TARGETS), torch.tensor(E), torch.tensor(negatives),
        None if negative_set is None else torch.tensor(negative_set),
        temperature, l2_normalise, None if extra is None else torch.tensor(extra),
        None if columns is None else torch.tensor(columns),
    )


# the logits read from one product over these token rows (a non-contiguous set that holds every id read
# below, in no sorted order) instead of gathered per row
COLUMNS = [5, 0, 3, 1, 4, 2]


@pytest.mark.parametrize(("temperature", "l2_normalise"),
                         [(1.0, False), (0.05, True), (0.5, False), (1.0, True)])
def test_sampled_softmax_equals_the_hand_computed_cross_entropy(temperature, l2_normalise):
    # one shared set (atomic form) ...
    negatives = [3, 4, 5]
    got = _loss([negatives], [0, 0, 0], temperature, l2_normalise).item()
    want = _expected_ce(H, E, TARGETS, [negatives] * 3, temperature, l2_normalise)
    assert got == pytest.approx(want, rel=1e-5)
    # ... and one set per code level: rows 0 and 2 score set 1, row 1 set 0
    sets = [[3, 4], [5, 1]]
    got = _loss(sets, [1, 0, 1], temperature, l2_normalise).item()
    want = _expected_ce(H, E, TARGETS, [sets[1], sets[0], sets[1]], temperature, l2_normalise)
    assert got == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("columns", [None, COLUMNS])
@pytest.mark.parametrize(("temperature", "l2_normalise"), [(1.0, False), (0.05, True)])
def test_each_row_scored_against_its_own_draw_equals_the_hand_computed_cross_entropy(temperature, l2_normalise,
                                                                                      columns):
    # draw: position: no set shared, every row its own negatives (row 1 draws its own target: left out),
    # gathered per row or read from one product over the columns
    own = [[3, 4, 5], [5, 1, 0], [1, 1, 3]]
    got = _loss(own, None, temperature, l2_normalise, columns=columns).item()
    assert got == pytest.approx(_expected_ce(H, E, TARGETS, own, temperature, l2_normalise), rel=1e-5)


def test_the_product_route_gives_the_gathered_loss_and_gradients_extra_negatives_included():
    own, extra = [[3, 4, 5], [5, 1, 0], [1, 1, 3]], [[4, -1], [1, 2], [-1, -1]]
    grads = []
    for columns in (None, COLUMNS, list(range(6))):
        h, e = torch.tensor(H, requires_grad=True), torch.tensor(E, requires_grad=True)
        loss = sampled_softmax_loss(h, torch.tensor(TARGETS), e, torch.tensor(own), None, 0.05, True,
                                    torch.tensor(extra), None if columns is None else torch.tensor(columns))
        loss.backward()
        grads.append((loss.detach(), h.grad, e.grad))
    want = _expected_ce(H, E, TARGETS, [[3, 4, 5, 4], [5, 0, 2], [1, 1, 3]], 0.05, True)
    for loss, h_grad, e_grad in grads:
        assert loss.item() == pytest.approx(want, rel=1e-5)
        torch.testing.assert_close(h_grad, grads[0][1])
        torch.testing.assert_close(e_grad, grads[0][2])


def test_a_sampled_negative_equal_to_the_target_is_no_negative():
    # row 1's target (1) is drawn among the negatives: that row scores as if it had not been
    with_target = _loss([[3, 1, 4]], [0, 0, 0], 0.05, True).item()
    # rows 0 and 2: token 1 is a real negative
    want = _expected_ce(H, E, TARGETS, [[3, 1, 4], [3, 4], [3, 1, 4]], 0.05, True)
    assert with_target == pytest.approx(want, rel=1e-5)
    single = sampled_softmax_loss(torch.tensor([H[0]]), torch.tensor([0]), torch.tensor(E),
                                  torch.tensor([[0, 0]]), torch.tensor([0]), 1.0, False)
    assert single.item() == 0.0  # every negative was the target: nothing to compete with


def test_extra_negatives_join_the_same_softmax_and_minus_one_is_none():
    base = _loss([[3, 5]], [0, 0, 0], 0.05, True)
    # row 0 (h ~ (1, .5)) gets token 4 (direction (1, 1)), which outscores many: the loss must rise
    extra = [[4, -1], [-1, -1], [-1, -1]]
    with_extra = _loss([[3, 5]], [0, 0, 0], 0.05, True, extra)
    assert with_extra.item() > base.item() + 0.1
    want = _expected_ce(H, E, TARGETS, [[3, 5, 4], [3, 5], [3, 5]], 0.05, True)
    assert with_extra.item() == pytest.approx(want, rel=1e-5)
    # all -1: exactly the loss without extra negatives; an extra equal to the row's target is left out too
    assert torch.equal(_loss([[3, 5]], [0, 0, 0], 0.05, True, [[-1, -1]] * 3), base)
    assert torch.equal(_loss([[3, 5]], [0, 0, 0], 0.05, True, [[0, -1], [1, -1], [2, 2]]), base)


def test_gradients_reach_the_hidden_state_and_every_scored_embedding():
    h = torch.tensor(H, requires_grad=True)
    e = torch.tensor(E, requires_grad=True)
    loss = sampled_softmax_loss(h, torch.tensor(TARGETS), e, torch.tensor([[3, 4]]), torch.tensor([0, 0, 0]),
                                1.0, True, torch.tensor([[5], [-1], [-1]]))
    loss.backward()
    assert h.grad.abs().sum() > 0
    scored = e.grad.abs().sum(1) > 0
    assert scored.tolist() == [True, True, True, True, True, True]


# --------------------------------------------------------------------------- on a tiny net
def _tiny(representation: str, retrieval: RetrievalLossConfig, seed: int = 0):
    setup = tiny_training(representation, n_layers=1)
    net, spec = tiny_net(setup, retrieval, seed)
    return net, setup.batch, spec, setup.vocab, setup.items


def _retrieval_rows(net: GenerativeTransformer, batch: SequenceBatch, group: int):
    hidden, _ = net.encode(batch.tokens, batch.valid, batch.query_refs, batch.query_vectors)
    sel = batch.groups == group
    return hidden[sel], batch.targets[sel], batch.slots[sel]


@pytest.mark.parametrize("representation", ["semantic_ids", "atomic"])
def test_the_full_softmax_is_bit_for_bit_the_restricted_softmax_it_always_was(representation):
    # l2_normalise and temperature are the sampled softmax's: the full one keeps raw dot products
    net, batch, spec, _, _ = _tiny(representation, syn.FULL_SOFTMAX)
    assert spec.sampled_negatives is None
    assert (net.dims.logits_l2_normalise, net.dims.logits_temperature) == (False, 1.0)
    got = sequence_losses(net, batch, spec)
    for group in (RETRIEVAL_REC, RETRIEVAL_SEARCH):
        h, targets, slots = _retrieval_rows(net, batch, group)
        logits = (h @ net.token_embedding.weight.T).masked_fill(~spec.legal[slots], float("-inf"))
        assert torch.equal(got[LOSS_GROUPS[group]], F.cross_entropy(logits, targets))


def _old_atomic_sampled_softmax(net, h, targets, item_slice, count):
    """train/losses.py's ``_sampled_softmax`` as ``train.model.atomic_negatives`` ran it, verbatim."""
    offset, size = item_slice
    negatives = torch.randint(offset, offset + size, (count,), device=h.device)
    weight = net.token_embedding.weight
    pos_logit = (h * weight[targets]).sum(-1, keepdim=True)
    neg_logits = h @ weight[negatives].T
    neg_logits = neg_logits.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
    logits = torch.cat([pos_logit, neg_logits], dim=1)
    return F.cross_entropy(logits, torch.zeros(h.shape[0], dtype=torch.long, device=h.device))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_the_old_atomic_sampled_config_reproduces_the_old_loss_under_a_fixed_seed(seed):
    net, batch, spec, vocab, _ = _tiny("atomic", syn.OLD_ATOMIC_SAMPLED)
    assert spec.sampled_negatives == syn.OLD_ATOMIC_SAMPLED.negatives
    level = vocab.level(SEMANTIC, 0)
    torch.manual_seed(seed)
    got = sequence_losses(net, batch, spec)
    torch.manual_seed(seed)
    for group in (RETRIEVAL_REC, RETRIEVAL_SEARCH):  # the old loop's order: the same draws
        h, targets, _ = _retrieval_rows(net, batch, group)
        old = _old_atomic_sampled_softmax(net, h, targets, (level.offset, level.size), spec.sampled_negatives)
        assert torch.equal(got[LOSS_GROUPS[group]], old)


@pytest.mark.parametrize("draw", ["position", "batch"])
@pytest.mark.parametrize("representation", ["semantic_ids", "atomic"])
def test_every_position_draws_its_negatives_from_its_own_legal_slice(representation, draw, monkeypatch):
    net, batch, spec, _, _ = _tiny(representation, dataclasses.replace(HSTU, draw=draw))
    seen = []

    def record(h, targets, embeddings, negatives, negative_set, *args, **kwargs):
        seen.append((targets, negatives, negative_set))
        return sampled_softmax_loss(h, targets, embeddings, negatives, negative_set, *args, **kwargs)

    monkeypatch.setattr(losses, "sampled_softmax_loss", record)
    for seed in range(25):
        torch.manual_seed(seed)
        with torch.no_grad():
            sequence_losses(net, batch, spec)
    # code tokens are legal in exactly one slot: the level (or the catalogue) they belong to
    slot_of = spec.legal.float().argmax(0)
    levels_seen = set()
    assert seen
    for targets, negatives, negative_set in seen:
        assert negatives.shape[1] == HSTU.negatives
        if draw == "position":  # HSTU's: every target its own draw, so two rows' negatives differ
            assert negative_set is None and negatives.shape[0] == targets.shape[0]
            per_row = negatives
            assert len({tuple(row) for row in per_row.tolist()}) == per_row.shape[0]
        else:
            per_row = negatives[negative_set]  # (P, N)
            # one draw per slice present, never two sets for one level
            assert len(set(slot_of[negatives[:, 0]].tolist())) == negatives.shape[0]
        assert (slot_of[per_row] == slot_of[targets][:, None]).all()
        assert spec.legal[slot_of[targets][:, None], per_row].all()
        levels_seen |= set(slot_of[targets].tolist())
    assert len(levels_seen) == (1 if representation == "atomic" else 5)  # shared_0, sem/col_1, sem/col_dedup


@pytest.mark.parametrize("representation", ["semantic_ids", "atomic"])
def test_per_target_draws_read_from_one_product_when_the_slices_are_small_and_the_loss_is_the_same(
        representation, monkeypatch):
    net, batch, spec, _, _ = _tiny(representation, HSTU)
    columns_seen = []

    def record(*args, **kwargs):
        columns_seen.append(args[8] if len(args) > 8 else kwargs.get("columns"))
        return sampled_softmax_loss(*args, **kwargs)

    monkeypatch.setattr(losses, "sampled_softmax_loss", record)
    results = {}
    for product_columns in (spec.legal.shape[1], 0):  # every slice fits / always gathered
        torch.manual_seed(7)  # the same draws
        results[product_columns] = sequence_losses(net, batch, dataclasses.replace(spec, product_columns=product_columns))
    fits, gathered = columns_seen[: len(columns_seen) // 2], columns_seen[len(columns_seen) // 2 :]
    assert fits and all(c is not None for c in fits) and all(c is None for c in gathered)
    # the columns are the union of the legal slices the batch's targets predict from
    for columns in fits:
        assert spec.legal[:, columns].any(0).all()
    for name in (LOSS_GROUPS[RETRIEVAL_REC], LOSS_GROUPS[RETRIEVAL_SEARCH]):
        torch.testing.assert_close(results[spec.legal.shape[1]][name], results[0][name])


def test_sample_legal_tokens_stays_in_a_non_contiguous_slice_and_reaches_all_of_it():
    legal = torch.zeros(20, dtype=torch.bool)
    legal[[2, 3, 9, 15]] = True
    torch.manual_seed(0)
    drawn = sample_legal_tokens(legal, 400)
    assert set(drawn.tolist()) == {2, 3, 9, 15}


def test_the_net_decodes_with_the_logits_it_trains_on():
    # cosine / temperature in training -> the same in beam search's per-level log-probabilities
    net, _, _, vocab, items = _tiny("semantic_ids", HSTU)
    assert (net.dims.logits_l2_normalise, net.dims.logits_temperature) == (True, HSTU.temperature)
    space = build_id_space(vocab, items, SEMANTIC)
    hidden = torch.randn(3, net.dims.d_model)
    weight = net.token_embedding.weight[space.offsets[1] : space.offsets[1] + space.sizes[1]]
    cosine = F.normalize(hidden, dim=-1) @ F.normalize(weight, dim=-1).T
    want = torch.log_softmax(cosine / HSTU.temperature, dim=-1)
    got = level_log_probs(net, hidden, space, 1)[:, : space.sizes[1]]
    torch.testing.assert_close(got, want)


def test_cards_without_the_logit_form_load_as_raw_dot_products():
    net, *_ = _tiny("semantic_ids", HSTU)
    card_dims = dataclasses.asdict(net.dims)
    for key in ("logits_l2_normalise", "logits_temperature"):
        del card_dims[key]
    old = TransformerDims(**card_dims)
    assert (old.logits_l2_normalise, old.logits_temperature) == (False, 1.0)


@pytest.mark.parametrize("representation", ["semantic_ids", "atomic"])
def test_a_few_sampled_softmax_steps_lower_the_retrieval_loss(representation):
    net, batch, spec, _, _ = _tiny(representation, HSTU)
    names = [LOSS_GROUPS[RETRIEVAL_REC], LOSS_GROUPS[RETRIEVAL_SEARCH]]

    def retrieval_loss() -> float:
        torch.manual_seed(123)  # the same negatives before and after
        with torch.no_grad():
            values = sequence_losses(net, batch, spec)
        return sum(values[name].item() for name in names)

    before = retrieval_loss()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(40):
        values = sequence_losses(net, batch, spec)
        opt.zero_grad()
        sum(values[name] for name in names).backward()
        opt.step()
    after = retrieval_loss()
    assert after < 0.7 * before, (before, after)


def test_loss_spec_reads_the_softmax_choice():
    vocab = Vocabulary.from_codebooks(syn.CODEBOOKS)
    assert loss_spec(syn.FULL_SOFTMAX, vocab).sampled_negatives is None
    spec = loss_spec(HSTU, vocab)
    assert isinstance(spec, LossSpec) and spec.sampled_negatives == HSTU.negatives
    assert torch.equal(spec.legal, vocab.legal_mask())


def test_output_rows_are_the_same_whether_the_table_or_the_rows_are_normalised_first():
    table = torch.tensor(E)
    want = table / table.norm(dim=-1, keepdim=True)
    many = torch.tensor([[0, 1, 2, 3], [4, 5, 5, 0]])  # 8 rows read from a 6-row table: the table first
    few = torch.tensor([5, 2])  # 2 rows: the rows first
    assert torch.allclose(losses._row_reader(table, True, many.numel())(many), want[many])
    assert torch.allclose(losses._row_reader(table, True, few.numel())(few), want[few])
    assert torch.equal(losses._row_reader(table, False, many.numel())(many), table[many])


def test_an_unsized_temperature_is_refused_with_what_to_do_not_divided_by():
    """temperature: auto takes train.sizing's tier; a network built before sizing would divide logits by a string."""
    from unigrec.config import ConfigError
    from unigrec.train.fit import retrieval_logit_form

    assert retrieval_logit_form(HSTU) == (True, 0.05)
    with pytest.raises(ConfigError, match="temperature is still auto: size the config"):
        retrieval_logit_form(dataclasses.replace(HSTU, temperature="auto"))
    assert retrieval_logit_form(dataclasses.replace(HSTU, softmax="full", temperature="auto")) == (False, 1.0)
