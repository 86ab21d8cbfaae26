"""SASRec's training loop: early stopping on a validation figure keeps the best epoch's weights; the windows it
trains on."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from unigrec.config import SASRecConfig
from unigrec.sasrec.training import train_sasrec, training_windows

SEQUENCES = [np.array([1 + (s + t) % 6 for t in range(5)]) for s in range(12)]
CFG = SASRecConfig(max_len=6, hidden=8, n_blocks=1, n_heads=1, dropout=0.0, loss="ce", epochs=20, batch_size=4,
                   lr=0.01, l2=0.0, seed=0, accelerator="cpu", patience=2, monitor_k=3,
                   train_windows="latest")


def test_stops_patience_epochs_after_the_best_and_returns_its_weights():
    figures = iter([0.1, 0.3, 0.2, 0.3, 0.1, 0.9])  # best at epoch 2; epoch 4 only ties it
    snapshots = []

    def monitor(net):
        assert not net.training  # scored in eval mode (no dropout)
        snapshots.append({k: v.clone() for k, v in net.state_dict().items()})
        return next(figures)

    net, record = train_sasrec(SEQUENCES, 6, CFG, torch.device("cpu"), monitor)
    assert (record.epochs_run, record.best_epoch, record.monitor) == (4, 2, [0.1, 0.3, 0.2, 0.3])
    kept = net.state_dict()
    assert all(torch.equal(kept[k], snapshots[1][k]) for k in kept)
    assert not all(torch.equal(kept[k], snapshots[3][k]) for k in kept)  # not simply the last epoch


def test_patience_without_a_monitor_is_refused():
    with pytest.raises(ValueError, match="no validation monitor"):
        train_sasrec(SEQUENCES, 6, CFG, torch.device("cpu"))


def _transitions(windows):
    return sorted((int(a), int(b)) for w in windows for a, b in itertools.pairwise(w))


@pytest.mark.parametrize("length", [0, 1, 2, 5, 6, 7, 13])
def test_all_windows_train_every_transition_once_and_latest_only_the_last_window(length):
    seq = np.arange(100, 100 + length)
    every = training_windows([seq], 5, "all")
    assert _transitions(every) == _transitions([seq]), "each transition exactly once"
    assert all(2 <= len(w) <= 6 for w in every), "a window holds at most max_len + 1 items"
    latest = training_windows([seq], 5, "latest")
    assert [w.tolist() for w in latest] == ([seq[-6:].tolist()] if length >= 2 else [])
    with pytest.raises(ValueError, match="'latest' or 'all'"):
        training_windows([seq], 5, "every")


def test_with_a_weight_average_the_monitor_and_the_kept_weights_are_the_average_and_training_is_unchanged():
    """One step an epoch (a batch holds every window), so the optimiser's weights at each epoch's end, taken
    from a run without the average, are every step's: the average is replayed from them."""
    import dataclasses

    from unigrec.averaging import ema_decay, ema_step_decay
    from unigrec.sasrec.net import SASRecNet

    cfg = dataclasses.replace(CFG, batch_size=len(SEQUENCES), epochs=4, patience=4)

    def run(c):
        figures, snapshots = iter([0.1, 0.2, 0.3, 0.4]), []

        def monitor(net):
            snapshots.append({k: v.clone() for k, v in net.named_parameters()})
            return next(figures)

        net, _ = train_sasrec(SEQUENCES, 6, c, torch.device("cpu"), monitor)
        return net, snapshots

    _, plain = run(cfg)
    net, averaged = run(dataclasses.replace(cfg, ema_epochs=2.0))
    torch.manual_seed(cfg.seed)  # the initial weights, as train_sasrec draws them
    init = dict(SASRecNet(6, cfg.max_len, cfg.hidden, cfg.n_blocks, cfg.n_heads, cfg.dropout).named_parameters())
    decay = ema_decay(2.0, 1)
    average = {k: v.detach().clone() for k, v in init.items()}
    for step, weights in enumerate(plain):
        w = 1.0 - ema_step_decay(decay, step)
        average = {k: average[k] + w * (weights[k] - average[k]) for k in average}
        assert all(torch.allclose(averaged[step][k], average[k], atol=1e-6) for k in average)
        if step > 0:  # the first update takes the weights whole
            assert not all(torch.allclose(averaged[step][k], weights[k]) for k in average)
    assert all(torch.allclose(dict(net.named_parameters())[k], average[k], atol=1e-6) for k in average)
