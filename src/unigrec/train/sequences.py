"""Teacher-forced training sequences from the users' TRAIN events (pure, no Lightning)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from unigrec.inference.prompts import UserEvents
from unigrec.model.tokenizer import SequenceSerialiser, TokenSequence


def training_sequences(
    users: Sequence[UserEvents], serialiser: SequenceSerialiser, windows: str = "latest",
    rec_at_searches: bool = False,
) -> list[TokenSequence]:
    """Teacher-forced sequences of the users' TRAIN events.

    ``latest``: one sequence per user, the most recent ``max_events`` events. ``all``: the whole train
    history cut into consecutive ``max_events`` windows counted back from the latest event, so long
    histories contribute all their events instead of only the last window. ``rec_at_searches``: see
    :meth:`SequenceSerialiser.training_sequence`.
    """
    if windows not in ("latest", "all"):
        raise ValueError(f"windows must be 'latest' or 'all', not {windows!r}")
    size = serialiser.max_events
    out = []
    for user in users:
        train = np.flatnonzero(user.splits == "train")
        ends = range(train.size, 0, -size) if windows == "all" else [train.size] if train.size else []
        for end in ends:
            window = user.events.take(train[max(end - size, 0) : end])
            out.append(serialiser.training_sequence(window, rec_at_searches))
    return out


def items_with_train_events(users: Sequence[UserEvents], n_items: int) -> np.ndarray:
    """(n_items,) bool: items with at least one TRAIN-split event (either stream, either label).

    The hybrid form keeps a learned embedding only for these. Other paths reach an item's row too (the
    alignment searches carry every catalogue item, the enhancer scores retrieved candidates), so without
    this mask a cold item could get an embedding fitted to no event of its own; and an item seen only in
    validation, test or gap events must stay cold, or the held-out data would decide who is cold.
    """
    out = np.zeros(n_items, dtype=bool)
    for user in users:
        out[user.events.items[user.splits == "train"]] = True
    return out
