"""Teacher-forced training sequences from the users' TRAIN events (pure, no Lightning)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from unigrec.inference.prompts import UserEvents
from unigrec.model.tokenizer import SequenceSerialiser, TokenSequence


def training_sequences(
    users: Sequence[UserEvents], serialiser: SequenceSerialiser, windows: str = "latest"
) -> list[TokenSequence]:
    """Teacher-forced sequences of the users' TRAIN events.

    ``latest``: one sequence per user, the most recent ``max_events`` events. ``all``: the whole train
    history cut into consecutive ``max_events`` windows counted back from the latest event, so long
    histories contribute all their events instead of only the last window.
    """
    if windows not in ("latest", "all"):
        raise ValueError(f"windows must be 'latest' or 'all', not {windows!r}")
    size = serialiser.max_events
    out = []
    for user in users:
        train = np.flatnonzero(user.splits == "train")
        ends = range(train.size, 0, -size) if windows == "all" else [train.size] if train.size else []
        for end in ends:
            out.append(serialiser.training_sequence(user.events.take(train[max(end - size, 0) : end])))
    return out
