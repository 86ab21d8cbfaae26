"""Query-to-ID alignment: every catalogue item becomes a search target, its own text the query, and the
alignment loss joins the search-retrieval task (and only it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from support import synthetic_train_data as syn

from unigrec.config import ConfigError, ModelConfig, OptimConfig, WeighterConfig
from unigrec.inference.prompts import group_user_events, query_table_texts
from unigrec.inference.retrieval import id_spaces
from unigrec.model.batch import collate_sequences
from unigrec.model.item_codes import item_codes_from_frame
from unigrec.model.tokenizer import LOSS_GROUPS, RANKING, RETRIEVAL_SEARCH, SequenceSerialiser
from unigrec.model.transformer import GenerativeTransformer
from unigrec.model.vocabulary import PAD, SEMANTIC, Vocabulary
from unigrec.train.alignment import alignment_pairs, alignment_sequences, indexed_pairs
from unigrec.train.datamodule import SplitDataModule
from unigrec.train.fit import loss_spec, targets_per_task, transformer_dims
from unigrec.train.losses import sequence_losses
from unigrec.train.sequences import training_sequences
from unigrec.train.weighter import TaskWeighter

pytestmark = pytest.mark.usefixtures("one_torch_thread")
MAX_EVENTS = 10

ITEMS = pd.DataFrame({
    "item_id": ["1", "2", "3"],
    "title": ["Toy Story", "Heat", "Untitled"],
    "text": ["Toy Story (1995). 1990s. Genres: Animation, Comedy.", "Heat (1995). 1990s. Genres: Action.", "Untitled."],
    "category": ["Animation|Comedy", "Action", None],
})


def test_every_view_of_every_item_that_has_its_columns():
    pairs = alignment_pairs(ITEMS, ["text", "title", "genres", "genres_decade"])
    assert pairs == [
        ("1", "Toy Story (1995). 1990s. Genres: Animation, Comedy."), ("1", "toy story"),
        ("1", "animation comedy"), ("1", "animation comedy 1990s"),
        ("2", "Heat (1995). 1990s. Genres: Action."), ("2", "heat"), ("2", "action"), ("2", "action 1990s"),
        # no category and no year: only the text and title views exist for it
        ("3", "Untitled."), ("3", "untitled"),
    ]
    assert alignment_pairs(ITEMS, []) == []


def test_a_view_that_repeats_another_for_an_item_gives_one_pair():
    items = pd.DataFrame({"item_id": ["9"], "title": ["drama"], "text": ["drama"], "category": ["Drama"]})
    assert alignment_pairs(items, ["text", "title", "genres"]) == [("9", "drama")]


def test_an_unknown_view_is_refused_by_name():
    with pytest.raises(ConfigError, match="train.alignment.views: unknown view.*titel"):
        alignment_pairs(ITEMS, ["titel"])


def _toy():
    items = item_codes_from_frame(syn.ids_frame())
    vocab = Vocabulary.from_codebooks(syn.CODEBOOKS)
    ser = SequenceSerialiser(vocab, items, 2, max_events=MAX_EVENTS)
    return items, vocab, ser


def test_an_alignment_sequence_is_one_search_whose_retrieval_targets_are_the_items_semantic_id():
    _items, _vocab, ser = _toy()
    (seq,) = alignment_sequences([(7, 3)], ser)
    retrieval = seq.groups == RETRIEVAL_SEARCH
    assert np.array_equal(seq.targets[retrieval], ser.item_tokens[SEMANTIC][7])
    assert set(seq.query_ids[seq.query_ids >= 0]) == {3}
    assert set(seq.groups[seq.groups >= 0]) == {RETRIEVAL_SEARCH, RANKING}


def test_items_never_searched_in_training_become_search_targets():
    """What the lever is for: without it the search head is never trained to emit these items."""
    items, _vocab, ser = _toy()
    events = syn.events_frame(n_users=6, min_events=8, max_events=MAX_EVENTS)
    searched = set(events.loc[(events["kind"] == "search") & (events["split"] == "train"), "item_id"])
    never = [i for i in syn.item_ids() if i not in searched]
    assert never, "the toy data must have items nobody searched"
    catalogue = pd.DataFrame({"item_id": syn.item_ids(), "text": syn.item_ids()})
    pairs = alignment_pairs(catalogue, ["text"])
    index = {q: i for i, q in enumerate({q for _, q in pairs})}
    seqs = alignment_sequences(indexed_pairs(pairs, items.index(), index), ser)
    first_codes = {int(s.targets[s.groups == RETRIEVAL_SEARCH][0]) for s in seqs}
    for item in never:
        assert int(ser.item_tokens[SEMANTIC][items.index()[item]][0]) in first_codes
    assert len(seqs) == len(syn.item_ids())
    assert indexed_pairs([("unknown", "q")], items.index(), {"q": 0}) == []


def test_the_datamodule_pairs_each_user_batch_with_an_alignment_batch_covering_the_catalogue_once():
    items, vocab, ser = _toy()
    events = syn.events_frame(n_users=12, min_events=8, max_events=MAX_EVENTS)
    users = training_sequences(group_user_events(events, items, query_table_texts(events)), ser)
    aligned = alignment_sequences([(i, 0) for i in range(items.n_items)], ser)
    table = np.zeros((4, 8), dtype=np.float32)
    module = SplitDataModule(users, aligned, [], table, 2, vocab.token(PAD), items.n_items, 4, 4, 0)
    loaders = module.train_dataloader()
    assert set(loaders) == {"users", "alignment"}
    assert len(loaders["users"]) == len(loaders["alignment"])
    assert sum(len(b) for b in loaders["alignment"]) == items.n_items
    plain = SplitDataModule(users, [], [], table, 2, vocab.token(PAD), items.n_items, 4, 4, 0)
    assert not isinstance(plain.train_dataloader(), dict)
    assert targets_per_task(aligned)["retrieval_search"] == items.n_items * 3


def test_the_alignment_loss_joins_search_retrieval_times_its_weight_and_nothing_else():
    from unigrec.train.lightning_module import GenerativeRecModule

    items, vocab, ser = _toy()
    cfg = ModelConfig(item_representation="semantic_ids", d_model=32, n_layers=2, n_heads=2, d_ff=64,
                      dropout=0.0, attention_dropout=0.0, n_query_tokens=2,
                      embedding_init="gpt2", positions="learned", event_layout="behaviour_item_action")
    events = syn.events_frame(n_users=6, min_events=8, max_events=MAX_EVENTS)
    queries = query_table_texts(events)
    table = np.random.default_rng(0).normal(size=(len(queries) + 1, 8)).astype(np.float32)
    batch = collate_sequences(training_sequences(group_user_events(events, items, queries), ser), table, 2,
                              vocab.token(PAD))
    aligned = collate_sequences(alignment_sequences([(i, len(queries)) for i in range(5)], ser), table, 2,
                                vocab.token(PAD))
    torch.manual_seed(0)
    dims = transformer_dims(cfg, syn.FULL_SOFTMAX, vocab, ser.max_length, table.shape[1])
    net = GenerativeTransformer(dims).eval()
    spec = loss_spec(syn.FULL_SOFTMAX, vocab)
    weighter_cfg = WeighterConfig(mode="fixed", tasks="three", temperature=2.0, update_every=1, baseline_updates=0, loss_smoothing=0.9,
                                  gradnorm_alpha=1.5, lr=0.01, min_weight=0.05, log_grad_norms=False)

    def objective(weight: float, with_alignment: bool):
        module = GenerativeRecModule(net, spec, TaskWeighter(weighter_cfg, [1.0, 1.0, 1.0]),
                                     OptimConfig(1e-3, 0.0, 1, "constant", 0.1, 1.0), id_spaces(vocab, items),
                                     beam_size=5, k=5, alignment_weight=weight)
        return module.training_objective(batch, aligned if with_alignment else None)

    total, losses, tasks, _ = objective(0.5, True)
    plain_total, _, plain_tasks, _ = objective(0.5, False)
    expected = sequence_losses(net, aligned, spec)[LOSS_GROUPS[RETRIEVAL_SEARCH]]
    search = LOSS_GROUPS[RETRIEVAL_SEARCH]
    assert torch.allclose(tasks[search], plain_tasks[search] + 0.5 * expected)
    assert torch.allclose(total, plain_total + 0.5 * expected)
    for name in LOSS_GROUPS:
        assert torch.allclose(losses[name], plain_tasks[name])  # the plain losses stay the users' own
        if name != search:
            assert torch.allclose(tasks[name], plain_tasks[name])
    assert torch.allclose(objective(0.0, True)[0], plain_total)
