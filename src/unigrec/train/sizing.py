"""The model's size for the data it trains on: ``auto`` train keys take ``train.sizing``'s tier.

Why here and not in ``config``: the tier depends on the train split, which only the train stage (and scripts that
train as it does) has read; ``config`` keeps the pure rule (:func:`unigrec.config.resolve_auto`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from unigrec.config import TrainConfig, auto_keys, resolve_auto, size_tier, train_keys

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def train_event_count(events: pd.DataFrame) -> int:
    """Events of the train split, recommendations and searches alike: what the sizing threshold counts."""
    return int((events["split"].astype(str) == "train").sum())


def sized_for(cfg: TrainConfig, events: pd.DataFrame) -> tuple[TrainConfig, dict[str, Any]]:
    """``cfg`` with its ``auto`` keys set for ``events``' train split, and what was chosen (for the stage's
    metrics, so a run says which recipe it trained)."""
    count = train_event_count(events)
    tier = size_tier(cfg.sizing, count)
    keys = auto_keys(cfg)
    resolved = resolve_auto(cfg, tier)
    values = train_keys(resolved)
    chosen = {key: values[key][0] for key in keys}
    if keys:
        log.info("sizing: %s train events -> the %s tier (train.sizing, from %s): %s", f"{count:,}", tier,
                 cfg.sizing.large_from_train_events, ", ".join(f"{k}={v}" for k, v in chosen.items()))
    return resolved, {"train_events": count, "tier": tier, "auto": chosen}
