"""A few synthetic users' training sequences as one batch, and a small network over them: the setup that
loss, enhancer and training tests share. Dropout is off, so every number a test checks is reproducible."""

from __future__ import annotations

import dataclasses

import numpy as np

from support import synthetic_train_data as syn
from unigrec.config import ModelConfig, RetrievalLossConfig
from unigrec.inference.prompts import group_user_events, query_table_texts
from unigrec.model.batch import SequenceBatch, collate_sequences
from unigrec.model.item_codes import ItemCodes, atomic_item_codes, item_codes_from_frame
from unigrec.model.tokenizer import SequenceSerialiser
from unigrec.model.transformer import GenerativeTransformer
from unigrec.model.vocabulary import PAD, Vocabulary
from unigrec.train.fit import transformer_dims
from unigrec.train.losses import LossSpec
from unigrec.train.sequences import training_sequences

QUERY_DIM = 8  # width of the random query vectors


@dataclasses.dataclass
class TinyTraining:
    cfg: ModelConfig
    vocab: Vocabulary
    items: ItemCodes
    serialiser: SequenceSerialiser
    batch: SequenceBatch  # left-padded training sequences (collate_sequences' default)
    table: np.ndarray  # the query vectors the batch reads


def tiny_training(
    representation: str = "semantic_ids",
    d_model: int = 32,
    n_layers: int = 2,
    d_ff: int = 64,
    n_users: int = 4,
    events_per_user: tuple[int, int] = (6, 8),
    event_layout: str = "behaviour_item_action",
    past_action_input: bool = False,
) -> TinyTraining:
    """Synthetic users' training sequences (``events_per_user`` min, max) for a ``representation`` net."""
    cfg = ModelConfig(item_representation=representation, d_model=d_model, n_layers=n_layers, n_heads=2, d_ff=d_ff,
                      dropout=0.0, attention_dropout=0.0, n_query_tokens=2,
                      embedding_init="gpt2", positions="learned", event_layout=event_layout,
                      past_action_input=past_action_input)
    if representation == "atomic":
        items, codebooks = atomic_item_codes(syn.item_ids())
    else:
        items, codebooks = item_codes_from_frame(syn.ids_frame()), syn.CODEBOOKS
    vocab = Vocabulary.from_codebooks(codebooks)
    low, high = events_per_user
    events = syn.events_frame(n_users=n_users, min_events=low, max_events=high)
    queries = query_table_texts(events)
    ser = SequenceSerialiser(vocab, items, cfg.n_query_tokens, max_events=high, layout=event_layout)
    seqs = training_sequences(group_user_events(events, items, queries), ser)
    table = np.random.default_rng(0).normal(size=(max(len(queries), 1), QUERY_DIM)).astype(np.float32)
    batch = collate_sequences(seqs, table, cfg.n_query_tokens, vocab.token(PAD))
    return TinyTraining(cfg, vocab, items, ser, batch, table)


def tiny_net(setup: TinyTraining, retrieval: RetrievalLossConfig, seed: int = 0) -> tuple[GenerativeTransformer, LossSpec]:
    """A freshly initialised network (torch seed ``seed``) over ``setup`` and its loss spec."""
    import torch

    from unigrec.train.fit import loss_spec

    torch.manual_seed(seed)
    dims = transformer_dims(setup.cfg, retrieval, setup.vocab, setup.serialiser.max_length, setup.table.shape[1])
    return GenerativeTransformer(dims), loss_spec(retrieval, setup.vocab)
