"""The joint loss can drive one small batch to (near) zero: the model, targets and masks are wired right."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from support import synthetic_train_data as syn
from support.tiny_training import tiny_net, tiny_training

from unigrec.inference.prompts import group_user_events, query_table_texts
from unigrec.model.item_codes import atomic_item_codes
from unigrec.model.tokenizer import SequenceSerialiser
from unigrec.model.vocabulary import Vocabulary
from unigrec.train.fit import capped_loss_weights, overweighted_targets, targets_per_task
from unigrec.train.losses import sequence_losses
from unigrec.train.sequences import training_sequences

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_targets_per_task_counts_each_loss_groups_training_targets():
    # the train stage logs these so a user sees when one task is rare (its loss is a mean over few targets)
    items, codebooks = atomic_item_codes(syn.item_ids())
    events = syn.events_frame(n_users=4, min_events=6, max_events=8)
    queries = query_table_texts(events)
    ser = SequenceSerialiser(Vocabulary.from_codebooks(codebooks), items, 2, max_events=8)
    counts = targets_per_task(training_sequences(group_user_events(events, items, queries), ser))
    train = events[events["split"] == "train"]
    # atomic IDs: one retrieval target per training event of its stream, one ranking label per event
    assert counts == {"retrieval_rec": int((train["kind"] == "rec").sum()),
                      "retrieval_search": int((train["kind"] == "search").sum()), "ranking": len(train)}
    assert targets_per_task([]) == {"retrieval_rec": 0, "retrieval_search": 0, "ranking": 0}


def test_overweighted_targets_flags_a_rare_task_until_its_weight_comes_down():
    # the ML-1M 1%-search root's counts per batch (x10 to keep them integers)
    counts = {"retrieval_rec": 23_993, "retrieval_search": 109, "ranking": 24_102}
    ones = {"retrieval_rec": 1.0, "retrieval_search": 1.0, "ranking": 1.0}
    flagged = overweighted_targets(counts, ones, max_ratio=50)
    assert list(flagged) == ["retrieval_search"]
    ratio, common = flagged["retrieval_search"]
    assert common == "ranking" and ratio == pytest.approx(24_102 / 109)
    assert overweighted_targets(counts, {**ones, "retrieval_search": 0.1}, max_ratio=50) == {}  # 22x
    assert overweighted_targets(counts, {**ones, "retrieval_search": 0.0}, max_ratio=50) == {}  # switched off
    assert overweighted_targets({**counts, "retrieval_search": 0}, ones, max_ratio=50) == {}  # no searches
    assert overweighted_targets({"retrieval_rec": 10, "ranking": 0}, ones, max_ratio=1) == {}  # one task


def test_a_rare_tasks_weight_is_lowered_to_the_bound_and_a_common_enough_one_is_left_alone():
    ones = {"retrieval_rec": 1.0, "retrieval_search": 1.0, "ranking": 1.0}
    # ML-1M with 1% searches (per-batch counts x10): one search target weighed ~221x one ranking target
    rare = {"retrieval_rec": 23_993, "retrieval_search": 109, "ranking": 24_102}
    capped = capped_loss_weights(ones, rare, max_ratio=20)
    assert capped["retrieval_rec"] == 1.0 and capped["ranking"] == 1.0
    assert capped["retrieval_search"] == pytest.approx(20 * 109 / 24_102)
    ratio = (capped["retrieval_search"] / 109) / (capped["ranking"] / 24_102)
    assert ratio == pytest.approx(20)  # exactly at the bound, not below it
    assert overweighted_targets(rare, capped, max_ratio=20 * (1 + 1e-9)) == {}
    # ml-100k's 25% searches (1,105 / 172 / 1,277 a batch): ~7x, within the bound, so the same loss as before
    assert capped_loss_weights(ones, {"retrieval_rec": 1105, "retrieval_search": 172, "ranking": 1277}, 20) == ones
    # a weight given lower than the bound needs is kept; no bound keeps everything
    assert capped_loss_weights({**ones, "retrieval_search": 0.01}, rare, 20)["retrieval_search"] == 0.01
    assert capped_loss_weights(ones, rare, None) == ones


def test_training_data_carries_the_capped_weights(caplog):
    from support import synthetic_train_data as syn

    from unigrec.config import load_section
    from unigrec.inference.prompts import query_table_texts
    from unigrec.model.item_codes import atomic_item_codes
    from unigrec.train.fit import prepare_training_data
    from unigrec.train.sizing import sized_for

    items, codebooks = atomic_item_codes(syn.item_ids())
    events = syn.events_frame(n_users=6)
    cfg, _ = sized_for(load_section("train", "params.yaml"), events)
    cfg = dataclasses.replace(cfg, max_target_weight_ratio=1.5)
    texts = list(query_table_texts(events))
    table = np.zeros((max(len(texts), 1), 8), dtype=np.float32)
    with caplog.at_level("INFO", logger="unigrec.train.fit"):
        data = prepare_training_data(cfg, events, items, codebooks, texts, table)
    counts = targets_per_task(data.train_sequences)
    expected = capped_loss_weights(dataclasses.asdict(cfg.loss_weights), counts, 1.5)
    assert dataclasses.asdict(data.loss_weights) == expected
    assert expected["retrieval_search"] < cfg.loss_weights.retrieval_search  # the synthetic searches are rarer
    assert "train.max_target_weight_ratio" in caplog.text



def test_rec_targets_at_searches_add_one_rec_target_per_training_search_and_none_to_alignment():
    from support import synthetic_train_data as syn

    from unigrec.config import load_section
    from unigrec.inference.prompts import query_table_texts
    from unigrec.model.item_codes import atomic_item_codes
    from unigrec.train.fit import prepare_training_data
    from unigrec.train.sizing import sized_for

    items, codebooks = atomic_item_codes(syn.item_ids())
    events = syn.events_frame(n_users=6)
    base, _ = sized_for(load_section("train", "params.yaml"), events)
    texts = list(query_table_texts(events)) + ["an alignment query"]
    table = np.zeros((len(texts), 8), dtype=np.float32)
    alignment = [(items.item_ids[0], "an alignment query")]
    off, on = (prepare_training_data(dataclasses.replace(base, rec_targets_at_searches=flag), events, items,
                                     codebooks, texts, table, alignment) for flag in (False, True))
    before, after = targets_per_task(off.train_sequences), targets_per_task(on.train_sequences)
    searches = int(((events["split"] == "train") & (events["kind"] == "search")).sum())
    assert searches > 0
    assert after["retrieval_rec"] - before["retrieval_rec"] == searches
    assert {k: after[k] for k in ("retrieval_search", "ranking")} == {
        k: before[k] for k in ("retrieval_search", "ranking")}
    assert [a.targets.tolist() for a in on.alignment_sequences] == [a.targets.tolist() for a in off.alignment_sequences]

def test_the_ranking_loss_from_the_action_channel_is_the_loss_from_the_pos_neg_targets():
    # in the default layout both say the same thing at the same positions; only `item` needs the channel
    from unigrec.model.tokenizer import RANKING
    from unigrec.model.vocabulary import POS

    setup = tiny_training("semantic_ids")
    net, spec = tiny_net(setup, syn.FULL_SOFTMAX)
    net.eval()
    with torch.no_grad():
        channel = sequence_losses(net, setup.batch, spec)
        hidden, _ = net.encode_batch(setup.batch)
        at = setup.batch.groups == RANKING
        labels = (setup.batch.targets[at] == setup.vocab.token(POS)).float()
        targets = torch.nn.functional.binary_cross_entropy_with_logits(net.ranking_logit(hidden[at]), labels)
    assert channel["ranking"].item() > 0
    assert channel["ranking"].item() == pytest.approx(targets.item(), rel=1e-6)


def test_the_item_layout_keeps_every_ranking_label_and_every_rec_target():
    items, codebooks = atomic_item_codes(syn.item_ids())
    events = syn.events_frame(n_users=4, min_events=6, max_events=8)
    users = group_user_events(events, items, query_table_texts(events))
    vocab = Vocabulary.from_codebooks(codebooks)
    full, item = (targets_per_task(training_sequences(users, SequenceSerialiser(vocab, items, 2, 8, layout)))
                  for layout in ("behaviour_item_action", "item"))
    assert item == full, "the same targets, written at fewer positions"


@pytest.mark.parametrize("representation,event_layout,past_actions", [
    ("semantic_ids", "behaviour_item_action", False), ("atomic", "behaviour_item_action", False),
    ("semantic_ids", "item", False), ("atomic", "item", True),
])
def test_overfits_one_small_batch(representation, event_layout, past_actions):
    # atomic: the sampled softmax as train.model.atomic_negatives: 16 set it up (codes: the full softmax).
    # item: an item's last code predicts the next item and its own action, both learnable from one state
    # (with past actions, the next event reads the action: it must not let the action's own target leak)
    retrieval = syn.OLD_ATOMIC_SAMPLED if representation == "atomic" else syn.FULL_SOFTMAX
    setup = tiny_training(representation, d_model=64, d_ff=128, event_layout=event_layout,
                          past_action_input=past_actions)
    net, spec = tiny_net(setup, retrieval)
    batch = setup.batch
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for _ in range(300):
        losses = sequence_losses(net, batch, spec)
        total = sum(losses.values())
        first = first if first is not None else {k: v.item() for k, v in losses.items()}
        opt.zero_grad()
        total.backward()
        opt.step()
    final = {k: v.item() for k, v in sequence_losses(net, batch, spec).items()}
    assert set(final) == {"retrieval_rec", "retrieval_search", "ranking"}
    for name, value in final.items():
        assert value < 0.05, f"{name}: {first[name]:.3f} -> {value:.3f}"
