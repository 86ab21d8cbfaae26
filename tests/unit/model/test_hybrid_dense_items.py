"""The hybrid_dense item form (train.model.item_representation: hybrid_dense): one token per item whose row is
composed of its dual IDs' code embeddings plus its own row for items with training events, scored densely
over the whole catalogue."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from support import synthetic_train_data as syn

from unigrec.config import ModelConfig
from unigrec.errors import ContractViolation
from unigrec.inference.prompts import group_user_events, query_table_texts
from unigrec.model.batch import collate_sequences
from unigrec.model.card import load_model, model_card, save_model
from unigrec.model.decoding import build_id_space, level_log_probs
from unigrec.model.item_codes import atomic_item_codes, code_composition, item_codes_from_frame
from unigrec.model.tokenizer import SequenceSerialiser
from unigrec.model.transformer import GenerativeTransformer, TransformerDims
from unigrec.model.vocabulary import COLLABORATIVE, PAD, Vocabulary
from unigrec.train.fit import loss_spec, transformer_dims
from unigrec.train.losses import sequence_losses
from unigrec.train.sequences import training_sequences

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_QUERY_TOKENS = 2
QUERY_DIM = 8
D_MODEL = 32


def _model_cfg(representation: str) -> ModelConfig:
    return ModelConfig(item_representation=representation, d_model=D_MODEL, n_layers=2, n_heads=2, d_ff=64,
                       dropout=0.0, attention_dropout=0.0, n_query_tokens=N_QUERY_TOKENS,
                       embedding_init="gpt2", positions="learned", event_layout="item", past_action_input=True)


def _composition():
    return code_composition(item_codes_from_frame(syn.ids_frame()), syn.CODEBOOKS, syn.item_ids())


def _setup():
    items, codebooks = atomic_item_codes(syn.item_ids())
    vocab = Vocabulary.from_codebooks(codebooks)
    events = syn.events_frame(n_users=4, min_events=6, max_events=8)
    queries = query_table_texts(events)
    ser = SequenceSerialiser(vocab, items, N_QUERY_TOKENS, max_events=8, layout="item")
    seqs = training_sequences(group_user_events(events, items, queries), ser)
    table = np.random.default_rng(0).normal(size=(max(len(queries), 1), QUERY_DIM)).astype(np.float32)
    batch = collate_sequences(seqs, table, N_QUERY_TOKENS, vocab.token(PAD), pad_left=False)
    return vocab, ser, items, batch


def _net(representation: str, vocab: Vocabulary, ser: SequenceSerialiser, n_items: int) -> GenerativeTransformer:
    torch.manual_seed(0)
    composition = _composition() if representation == "hybrid_dense" else None
    dims = transformer_dims(_model_cfg(representation), syn.FULL_SOFTMAX, vocab, ser.max_length, QUERY_DIM,
                            n_items, composition)
    net = GenerativeTransformer(dims).eval()
    if composition is not None:
        net.item_code_index.copy_(torch.from_numpy(composition.index))
        net.item_has_events.fill_(True)
    return net


def _encode(net: GenerativeTransformer, batch) -> torch.Tensor:
    return net.encode_batch(batch)[0]


# ------------------------------------------------------------------------------------------ composition
def test_the_composition_takes_each_quantised_level_once_and_leaves_the_dedup_levels_out():
    frame = syn.ids_frame()
    comp = _composition()
    assert comp.levels == ("shared_0", "sem_1", "col_1")
    assert comp.table_size == syn.N_CLUSTERS + 12 + 12
    semantic = np.stack(frame["semantic_id"].map(np.asarray).tolist())
    collaborative = np.stack(frame["collaborative_id"].map(np.asarray).tolist())
    expected = np.stack([semantic[:, 0], syn.N_CLUSTERS + semantic[:, 1],
                         syn.N_CLUSTERS + 12 + collaborative[:, 1]], axis=1)
    assert comp.index.tolist() == expected.tolist()
    # rows follow the order asked for, not the ID table's
    order = syn.item_ids()[::-1]
    assert code_composition(item_codes_from_frame(frame), syn.CODEBOOKS, order).index.tolist() == expected[::-1].tolist()


def test_a_shared_level_whose_codes_differ_between_kinds_is_refused():
    frame = syn.ids_frame()
    frame["collaborative_id"] = [[(c[0] + 1) % syn.N_CLUSTERS, *c[1:]] for c in frame["collaborative_id"]]
    with pytest.raises(ContractViolation, match="'shared_0' is shared by both ID kinds"):
        code_composition(item_codes_from_frame(frame), syn.CODEBOOKS, syn.item_ids())


def test_transformer_dims_of_hybrid_dense_need_the_composition_and_read_out_ranking_like_atomic():
    vocab, ser, items, _ = _setup()
    with pytest.raises(ValueError, match="composition"):
        transformer_dims(_model_cfg("hybrid_dense"), syn.FULL_SOFTMAX, vocab, ser.max_length, QUERY_DIM,
                         items.n_items)
    dims = transformer_dims(_model_cfg("hybrid_dense"), syn.FULL_SOFTMAX, vocab, ser.max_length, QUERY_DIM,
                            items.n_items, _composition())
    assert dims.ranking_head and dims.composed_levels == 3 and dims.code_table_size == syn.N_CLUSTERS + 24
    assert dims.n_items == items.n_items and not dims.item_embedding


# ------------------------------------------------------------------------------------------ the table
def test_a_zero_initialised_hybrid_dense_net_starts_as_the_atomic_net_of_its_seed():
    vocab, ser, items, batch = _setup()
    dense, atomic = _net("hybrid_dense", vocab, ser, items.n_items), _net("atomic", vocab, ser, items.n_items)
    assert (dense.code_embedding.weight == 0).all()
    shared = {k: v for k, v in dense.state_dict().items() if k in atomic.state_dict()}
    assert shared.keys() == atomic.state_dict().keys()
    assert all(torch.equal(v, atomic.state_dict()[k]) for k, v in shared.items())
    assert torch.equal(_encode(dense, batch), _encode(atomic, batch))
    assert torch.equal(dense.token_table(), atomic.token_embedding.weight)


def test_an_items_row_is_its_codes_plus_its_own_and_a_cold_items_its_codes_alone():
    vocab, ser, items, batch = _setup()
    net = _net("hybrid_dense", vocab, ser, items.n_items)
    torch.nn.init.normal_(net.code_embedding.weight)
    comp = _composition()
    cold = 5
    net.item_has_events[cold] = False
    table = net.token_table()
    offset = vocab.level(COLLABORATIVE, 0).offset
    codes = net.code_embedding.weight[torch.from_numpy(comp.index)].sum(1)
    own = net.token_embedding.weight[offset:]
    torch.testing.assert_close(table[offset + cold], codes[cold])
    warm = torch.arange(items.n_items) != cold
    torch.testing.assert_close(table[offset:][warm], own[warm] + codes[warm])
    assert torch.equal(table[:offset], net.token_embedding.weight[:offset])  # special tokens untouched
    # retrieval scores the catalogue with the same rows the inputs are written with
    hidden = _encode(net, batch)[:, -1]
    space = build_id_space(vocab, items, COLLABORATIVE)
    expected = torch.log_softmax(net.output_logits(hidden, table[offset:]), -1)
    torch.testing.assert_close(level_log_probs(net, hidden, space, 0), expected)


def test_a_tiny_hybrid_dense_run_learns_its_codes_and_never_a_cold_items_own_row():
    vocab, ser, items, batch = _setup()
    net = _net("hybrid_dense", vocab, ser, items.n_items).train()
    offset = vocab.level(COLLABORATIVE, 0).offset
    cold = int(batch.item_refs[batch.item_refs >= 0][0])  # an item the batch trains on, made cold
    net.item_has_events[cold] = False
    spec = loss_spec(syn.FULL_SOFTMAX, vocab)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    start = net.token_table()[offset + cold].detach().clone()
    own_before = net.token_embedding.weight[offset + cold].detach().clone()
    losses = []
    for _ in range(30):
        total = sum(sequence_losses(net, batch, spec).values())
        opt.zero_grad()
        total.backward()
        assert (net.token_embedding.weight.grad[offset + cold] == 0).all()
        opt.step()
        losses.append(total.item())
    assert losses[-1] < 0.7 * losses[0]
    assert torch.equal(net.token_embedding.weight[offset + cold], own_before)  # Adam without decay: untouched
    assert not torch.allclose(net.token_table()[offset + cold], start)  # its codes learned from other items


# ------------------------------------------------------------------------------------------ card
def test_a_hybrid_dense_model_card_round_trips_with_its_codes_and_mask(tmp_path):
    vocab, ser, items, batch = _setup()
    net = _net("hybrid_dense", vocab, ser, items.n_items)
    torch.nn.init.normal_(net.code_embedding.weight)
    net.item_has_events[::3] = False
    save_model(tmp_path, net, items, model_card(net.dims, vocab, ser, "hybrid_dense"))
    loaded = load_model(tmp_path)
    assert loaded.card["item_representation"] == "hybrid_dense" and loaded.net.dims == net.dims
    assert torch.equal(loaded.net.item_code_index, net.item_code_index)
    assert torch.equal(loaded.net.item_has_events, net.item_has_events)
    assert torch.equal(_encode(loaded.net, batch), _encode(net, batch))
    # a card written before the fields existed loads as a net without composition
    old = {k: v for k, v in dataclasses.asdict(net.dims).items() if k not in ("composed_levels", "code_table_size")}
    assert not TransformerDims(**old).composed_levels


def test_an_items_frame_without_an_id_is_named():
    with pytest.raises(ContractViolation, match="no identifier"):
        code_composition(item_codes_from_frame(syn.ids_frame()), syn.CODEBOOKS, [*syn.item_ids(), "new"])

