"""The hybrid item form (train.model.item_representation: hybrid): codes plus a learned per-item embedding
at each event's last code, for items with training events only (docs/design.md §4)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from support import synthetic_train_data as syn

from unigrec.config import ModelConfig
from unigrec.inference.prompts import group_user_events, query_table_texts
from unigrec.model.batch import SequenceBatch, collate_sequences
from unigrec.model.card import load_model, model_card, save_model
from unigrec.model.decoding import beam_search, build_id_space, candidate_code_scores
from unigrec.model.item_codes import ItemCodes, atomic_item_codes, item_codes_from_frame
from unigrec.model.tokenizer import RANKING, EventSeq, SequenceSerialiser, id_kind
from unigrec.model.transformer import GenerativeTransformer, TransformerDims
from unigrec.model.vocabulary import COLLABORATIVE, PAD, SEMANTIC, Vocabulary
from unigrec.train.fit import loss_spec, transformer_dims
from unigrec.train.losses import sequence_losses
from unigrec.train.sequences import items_with_train_events, training_sequences

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_QUERY_TOKENS = 2
MAX_EVENTS = 8
QUERY_DIM = 8
D_MODEL = 32
SPREAD = 0.5  # weight std of the random nets: peaked distributions, so a change shows in every output


def _model_cfg(representation: str) -> ModelConfig:
    return ModelConfig(item_representation=representation, d_model=D_MODEL, n_layers=2, n_heads=2, d_ff=64,
                       dropout=0.0, attention_dropout=0.0, n_query_tokens=N_QUERY_TOKENS,
                       embedding_init="gpt2", positions="learned", event_layout="behaviour_item_action")


@dataclasses.dataclass
class Setup:
    vocab: Vocabulary
    serialiser: SequenceSerialiser
    n_items: int
    events: pd.DataFrame
    batch: SequenceBatch  # right-padded training sequences of a few users
    table: np.ndarray
    items: ItemCodes


def _setup(atomic: bool = False) -> Setup:
    if atomic:
        items, codebooks = atomic_item_codes(syn.item_ids())
    else:
        items, codebooks = item_codes_from_frame(syn.ids_frame()), syn.CODEBOOKS
    vocab = Vocabulary.from_codebooks(codebooks)
    events = syn.events_frame(n_users=4, min_events=6, max_events=8)
    queries = query_table_texts(events)
    ser = SequenceSerialiser(vocab, items, N_QUERY_TOKENS, max_events=MAX_EVENTS)
    seqs = training_sequences(group_user_events(events, items, queries), ser)
    table = np.random.default_rng(0).normal(size=(max(len(queries), 1), QUERY_DIM)).astype(np.float32)
    batch = collate_sequences(seqs, table, N_QUERY_TOKENS, vocab.token(PAD), pad_left=False)
    return Setup(vocab, ser, items.n_items, events, batch, table, items)


def _net(s: Setup, representation: str, seed: int = 0, spread: bool = True) -> GenerativeTransformer:
    torch.manual_seed(seed)
    dims = transformer_dims(_model_cfg(representation), syn.FULL_SOFTMAX, s.vocab, s.serialiser.max_length,
                            QUERY_DIM, s.n_items)
    net = GenerativeTransformer(dims).eval()
    if spread:
        for p in net.parameters():
            torch.nn.init.normal_(p, std=SPREAD)
    if dims.item_embedding:
        net.item_has_events.fill_(True)
    return net


def _nudge() -> torch.Tensor:
    """A change of one embedding row. Not a constant vector: every LayerNorm removes a uniform shift."""
    return torch.randn(D_MODEL, generator=torch.Generator().manual_seed(3))


def _encode(net: GenerativeTransformer, batch: SequenceBatch, item_refs: torch.Tensor | None) -> torch.Tensor:
    return net.encode(batch.tokens, batch.valid, batch.query_refs, batch.query_vectors, item_refs)[0]


# ------------------------------------------------------------------------------------------ plumbing
def _last_code_positions(ser: SequenceSerialiser, events: EventSeq) -> list[int]:
    """By hand: after <bos>, each event is prefix, codes, action; its last code ends the codes."""
    at, out = 1, []
    for search in events.is_search:
        prefix = 2 + ser.n_query_tokens if search else 1
        levels = ser.vocab.n_levels(id_kind(bool(search)))
        out.append(at + prefix + levels - 1)
        at += prefix + levels + 1
    return out


def test_item_refs_mark_exactly_each_events_last_code_in_training_sequences_and_prompts():
    s = _setup()
    events = EventSeq(np.array([5, 17, 5, 30]), np.array([False, True, True, False]), np.array([1, 0, 1, 1]),
                      np.array([-1, 0, 1, -1]))
    train = s.serialiser.training_sequence(events)
    expected = np.full(len(train), -1)
    expected[_last_code_positions(s.serialiser, events)] = events.items
    assert train.item_refs.tolist() == expected.tolist()
    # the last code is the position trained on the action: the item is never where a code is predicted
    assert np.flatnonzero(train.item_refs >= 0).tolist() == np.flatnonzero(train.groups == RANKING).tolist()
    # a prompt writes its history as training does; its target event ends with its behaviour prefix
    prompt = s.serialiser.prompt(events, is_search=True, query=2)
    assert len(prompt) > len(train)
    assert prompt.item_refs[: len(train)].tolist() == expected.tolist() and (prompt.item_refs[len(train) :] == -1).all()
    # collate keeps them where their tokens go, left- or right-padded
    short = s.serialiser.prompt(events.take(slice(0, 1)), is_search=False)
    for left in (True, False):
        batch = collate_sequences([prompt, short], s.table, N_QUERY_TOKENS, s.vocab.token(PAD), pad_left=left)
        for row, seq in enumerate((prompt, short)):
            at = slice(batch.tokens.shape[1] - len(seq), None) if left else slice(0, len(seq))
            assert batch.item_refs[row, at].tolist() == seq.item_refs.tolist()
            assert (batch.item_refs[row][~batch.valid[row]] == -1).all()


# ------------------------------------------------------------------------------------------ leak-free
def test_an_items_embedding_reaches_its_last_code_and_later_never_the_positions_predicting_its_codes():
    s = _setup()
    net = _net(s, "hybrid")
    refs = s.batch.item_refs
    row, first = 0, int(torch.nonzero(refs[0] >= 0)[0])
    item = int(refs[row, first])
    first = int(torch.nonzero(refs[row] == item)[0])  # the item's first event in the row
    before = _encode(net, s.batch, refs)
    with torch.no_grad():
        net.item_embedding.weight[item] += _nudge()
    after = _encode(net, s.batch, refs)
    # every position up to the item's last code predicts its codes (or earlier events'): untouched
    assert torch.equal(before[row, :first], after[row, :first])
    logits = net.token_logits
    assert torch.equal(logits(before[row, :first]), logits(after[row, :first]))
    # the ranking read-out at the last code, and later events, see the item itself
    assert not torch.allclose(net.ranking_logit(before[row, first]), net.ranking_logit(after[row, first]))
    assert not torch.allclose(before[row, first + 1 :], after[row, first + 1 :])
    # a row that never holds the item is untouched everywhere
    others = [r for r in range(len(s.batch)) if not (refs[r] == item).any()]
    assert others and all(torch.equal(before[r], after[r]) for r in others)


def test_a_cold_item_is_written_by_its_codes_alone():
    s = _setup()
    net = _net(s, "hybrid")
    codes_only = _encode(net, s.batch, None)
    assert not torch.equal(_encode(net, s.batch, s.batch.item_refs), codes_only)  # warm items add theirs
    net.item_has_events.fill_(False)  # every item cold: no item adds anything
    assert torch.equal(_encode(net, s.batch, s.batch.item_refs), codes_only)
    # and the codes-only input is exactly the semantic-ID net's on the same weights
    plain = _net(s, "semantic_ids")
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("item_")})
    assert torch.equal(_encode(plain, s.batch, s.batch.item_refs), codes_only)
    # one cold item: only its events lose their embedding
    net.item_has_events.fill_(True)
    cold = int(s.batch.item_refs[0][s.batch.item_refs[0] >= 0][0])
    net.item_has_events[cold] = False
    with torch.no_grad():
        net.item_embedding.weight[cold] += _nudge()  # whatever its row holds
    vectors = net._item_vectors(s.batch.item_refs)
    assert (vectors[s.batch.item_refs == cold] == 0).all() and (vectors[s.batch.item_refs < 0] == 0).all()
    assert (vectors[(s.batch.item_refs >= 0) & (s.batch.item_refs != cold)] != 0).any(-1).all()


def test_the_has_events_mask_counts_train_split_events_only():
    items, _ = atomic_item_codes(["a", "b", "c", "d", "e"])
    rows = [("u1", "a", "train"), ("u1", "b", "valid"), ("u1", "c", "test"), ("u2", "d", "gap"),
            ("u2", "b", "test"), ("u2", "a", "train")]
    events = pd.DataFrame({
        "user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows], "split": [r[2] for r in rows],
        "timestamp": range(len(rows)), "order": range(len(rows)), "kind": "rec", "query": None, "label": 1,
    })
    # b, c and d have events, none in train: cold, as e (no events at all) is
    mask = items_with_train_events(group_user_events(events, items, ()), items.n_items)
    assert mask.tolist() == [True, False, False, False, False]
    events.loc[events["item_id"] == "b", "split"] = "train"
    assert items_with_train_events(group_user_events(events, items, ()), items.n_items).tolist()[1]


# ------------------------------------------------------------------------------------------ decoding
def test_candidate_scores_add_the_candidates_embedding_to_ranking_not_to_retrieval():
    s = _setup()
    net = _net(s, "hybrid")
    space = build_id_space(s.vocab, s.items, COLLABORATIVE)
    history = EventSeq(np.array([3, 12, 25]), np.array([False, False, True]), np.array([1, 1, 0]),
                       np.array([-1, -1, 0]))
    prompts = collate_sequences([s.serialiser.prompt(history, is_search=False)], s.table, N_QUERY_TOKENS,
                                s.vocab.token(PAD))
    hidden, prefix = net.encode(prompts.tokens, prompts.valid, prompts.query_refs, prompts.query_vectors,
                                prompts.item_refs)
    candidates = torch.tensor([[7, 8, 31]])
    retrieval, ranking = candidate_code_scores(net, hidden[:, -1], prefix, candidates, space)
    # the score equals the teacher-forced training pass over history + candidate (the item at its last code)
    for c, item in enumerate(candidates[0].tolist()):
        seq = s.serialiser.training_sequence(EventSeq(np.r_[history.items, item], np.r_[history.is_search, False],
                                                      np.r_[history.labels, 1], np.r_[history.queries, -1]))
        full = collate_sequences([seq], s.table, N_QUERY_TOKENS, s.vocab.token(PAD), pad_left=False)
        last = int(np.flatnonzero(seq.item_refs >= 0)[-1])
        h = _encode(net, full, full.item_refs)
        torch.testing.assert_close(net.ranking_logit(h[0, last]), ranking[0, c], rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        net.item_embedding.weight[8] += _nudge()
    retrieval2, ranking2 = candidate_code_scores(net, hidden[:, -1], prefix, candidates, space)
    assert torch.equal(retrieval2, retrieval)  # the last code is fed after every code is scored
    assert ranking2[0, 1] != ranking[0, 1]
    assert torch.equal(ranking2[0, [0, 2]], ranking[0, [0, 2]])
    # every item cold: exactly the codes-only net on the same weights, history and candidates alike
    net.item_has_events.fill_(False)
    plain = _net(s, "semantic_ids")
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("item_")})
    scored = []
    for model in (net, plain):
        h, cache = model.encode(prompts.tokens, prompts.valid, prompts.query_refs, prompts.query_vectors,
                                prompts.item_refs)
        scored.append(candidate_code_scores(model, h[:, -1], cache, candidates, space))
    assert all(torch.equal(a, b) for a, b in zip(*scored, strict=True))


@pytest.mark.parametrize("kind", [SEMANTIC, COLLABORATIVE])
def test_beam_search_on_a_hybrid_net_returns_catalogue_items(kind):
    s = _setup()
    net = _net(s, "hybrid")
    rng = np.random.default_rng(0)
    prompts = []
    for n in (1, 5, 8):
        search = rng.random(n) < 0.4
        ev = EventSeq(rng.integers(s.n_items, size=n), search, rng.integers(0, 2, n), np.where(search, 0, -1))
        prompts.append(s.serialiser.prompt(ev, is_search=kind == SEMANTIC, query=0))
    batch = collate_sequences(prompts, s.table, N_QUERY_TOKENS, s.vocab.token(PAD))
    space = build_id_space(s.vocab, s.items, kind)
    found, scores = beam_search(net, batch, space, beam_size=10)
    assert ((found >= 0) & (found < s.n_items)).all()
    assert (space.trie.lookup(space.codes[found]) == found).all()
    # the beam's score is the candidates' retrieval score: the item embedding touches neither
    hidden, prefix = net.encode(batch.tokens, batch.valid, batch.query_refs, batch.query_vectors, batch.item_refs)
    retrieval, _ = candidate_code_scores(net, hidden[:, -1], prefix, found, space)
    torch.testing.assert_close(retrieval, scores, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------ other forms
@pytest.mark.parametrize("representation", ["semantic_ids", "atomic"])
def test_other_forms_ignore_item_refs_bit_for_bit(representation):
    s = _setup(atomic=representation == "atomic")
    net = _net(s, representation)
    assert not any(k.startswith("item_") for k in net.state_dict())  # old cards' state dicts still load
    refs = s.batch.item_refs
    assert (refs >= 0).any()
    assert torch.equal(_encode(net, s.batch, refs), _encode(net, s.batch, None))
    no_refs = dataclasses.replace(s.batch, item_refs=torch.full_like(refs, -1))
    # a few training steps: the same losses with or without the refs
    spec = loss_spec(syn.FULL_SOFTMAX, s.vocab)
    runs = []
    for batch in (s.batch, no_refs):
        torch.manual_seed(1)
        net = _net(s, representation, spread=False).train()
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        trace = []
        for _ in range(3):
            total = sum(sequence_losses(net, batch, spec).values())
            opt.zero_grad()
            total.backward()
            opt.step()
            trace.append(total.item())
        runs.append(trace)
    assert runs[0] == runs[1]


def test_a_zero_initialised_hybrid_net_starts_as_the_codes_only_net_of_its_seed():
    s = _setup()
    hybrid, plain = _net(s, "hybrid", spread=False), _net(s, "semantic_ids", spread=False)
    assert (hybrid.item_embedding.weight == 0).all()
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in hybrid.state_dict().items()
               if not k.startswith("item_"))
    assert torch.equal(_encode(hybrid, s.batch, s.batch.item_refs), _encode(plain, s.batch, s.batch.item_refs))


def test_transformer_dims_of_hybrid_need_the_catalogue_size():
    s = _setup()
    with pytest.raises(ValueError, match="hybrid"):
        transformer_dims(_model_cfg("hybrid"), syn.FULL_SOFTMAX, s.vocab, s.serialiser.max_length, QUERY_DIM)
    dims = transformer_dims(_model_cfg("semantic_ids"), syn.FULL_SOFTMAX, s.vocab, 10, QUERY_DIM, s.n_items)
    assert not dims.item_embedding and dims.n_items == 0 and not dims.ranking_head
    assert not transformer_dims(_model_cfg("hybrid"), syn.FULL_SOFTMAX, s.vocab, 10, QUERY_DIM, 3).ranking_head


# ------------------------------------------------------------------------------------------ card, training
def test_a_hybrid_model_card_round_trips_with_its_table_and_mask(tmp_path):
    s = _setup()
    net = _net(s, "hybrid")
    net.item_has_events[::3] = False
    card = model_card(net.dims, s.vocab, s.serialiser, "hybrid")
    save_model(tmp_path, net, s.items, card)
    loaded = load_model(tmp_path)
    assert loaded.card["item_representation"] == "hybrid" and loaded.net.dims == net.dims
    assert torch.equal(loaded.net.item_has_events, net.item_has_events)
    assert torch.equal(loaded.net.item_embedding.weight, net.item_embedding.weight)
    assert torch.equal(_encode(loaded.net, s.batch, s.batch.item_refs), _encode(net, s.batch, s.batch.item_refs))
    # a card written before the hybrid fields existed loads as a codes-only net
    old = {k: v for k, v in card["dims"].items() if k not in ("item_embedding", "n_items")}
    assert not TransformerDims(**old).item_embedding


def test_the_event_layout_round_trips_through_the_card_and_an_old_card_loads_the_default(tmp_path):
    s = _setup()
    short = SequenceSerialiser(s.vocab, s.items, N_QUERY_TOKENS, MAX_EVENTS, layout="behaviour_item")
    net = _net(s, "semantic_ids")
    card = model_card(net.dims, s.vocab, short, "semantic_ids")
    save_model(tmp_path / "new", net, s.items, card)
    assert load_model(tmp_path / "new").serialiser.layout == "behaviour_item"
    del card["event_layout"]  # as written before layouts existed
    save_model(tmp_path / "old", net, s.items, card)
    assert load_model(tmp_path / "old").serialiser.layout == "behaviour_item_action"


def test_a_tiny_hybrid_run_learns_and_leaves_cold_rows_at_zero():
    s = _setup()
    net = _net(s, "hybrid", spread=False).train()
    cold = torch.ones(s.n_items, dtype=torch.bool)
    cold[s.batch.item_refs[s.batch.item_refs >= 0]] = False
    cold[int(s.batch.item_refs[0][s.batch.item_refs[0] >= 0][0])] = True  # one item with events made cold
    net.item_has_events.copy_(~cold)
    spec = loss_spec(syn.FULL_SOFTMAX, s.vocab)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.01)
    losses = []
    for _ in range(40):
        total = sum(sequence_losses(net, s.batch, spec).values())
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(total.item())
    assert losses[-1] < 0.7 * losses[0]
    table = net.item_embedding.weight.detach()
    assert (table[cold] == 0).all()  # no gradient ever reached a cold row
    assert (table[~cold] != 0).any(-1).all()  # every warm item in the batch learned one
