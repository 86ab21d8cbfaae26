"""``auto`` train keys take ``train.sizing``'s tier for the data's size; given values are kept."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import yaml
from support import REPO

from unigrec.config import ConfigError, TrainConfig, auto_keys, build_section, resolve_auto, size_tier
from unigrec.train.sizing import sized_for, train_event_count


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())["train"]


def _events(n_train: int) -> pd.DataFrame:
    return pd.DataFrame({"split": ["train"] * n_train + ["valid", "test", "gap"]})


def test_the_shipped_default_sizes_ml100k_small_and_ml1m_large(raw):
    cfg = build_section(TrainConfig, raw, "train")
    keys = auto_keys(cfg)
    assert set(keys) == set(cfg.sizing.values("small")) == set(cfg.sizing.values("large"))
    assert "trainer.strategy" not in keys, "Lightning's own auto is not sizing's"
    # the train splits of the roots the tiers were measured on (docs/experiments/2026-12-07-sized-default.md)
    assert size_tier(cfg.sizing, 86_486) == "small" and size_tier(cfg.sizing, 849_333) == "large"
    small, large = resolve_auto(cfg, "small"), resolve_auto(cfg, "large")
    assert (small.max_events, small.model.d_model, small.trainer.precision) == (50, 64, "32-true")
    assert (large.max_events, large.model.d_model, large.optim.schedule) == (100, 128, "cosine")
    # the weight average measured on the small tier's data only (2026-12-05-default-loop.md, session 53)
    assert (small.optim.ema_epochs, large.optim.ema_epochs) == (3.0, None)
    assert auto_keys(small) == auto_keys(large) == []
    assert small.trainer.strategy == large.trainer.strategy == "auto"


def test_a_tier_key_is_reachable_by_a_dotted_override_as_every_params_key_is(tmp_path):
    """The tiers are in params.yaml's shape, so `--set` / `dvc exp run -S` reach a tier's key by its path."""
    import shutil

    from unigrec.config import load_section
    from unigrec.pipeline import apply_param_overrides

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    apply_param_overrides(tmp_path, ["train.sizing.large.model.d_model=96"])
    cfg = load_section("train", tmp_path / "params.yaml")
    assert resolve_auto(cfg, "large").model.d_model == 96 and resolve_auto(cfg, "small").model.d_model == 64


def test_a_key_given_a_value_keeps_it_whatever_the_size(raw):
    raw["model"]["d_model"] = 96
    cfg = build_section(TrainConfig, raw, "train")
    sized, record = sized_for(cfg, _events(cfg.sizing.large_from_train_events))
    assert sized.model.d_model == 96 and sized.max_events == cfg.sizing.large["max_events"] == 100
    assert record["tier"] == "large" and "model.d_model" not in record["auto"]
    assert record["train_events"] == cfg.sizing.large_from_train_events
    below, record = sized_for(cfg, _events(cfg.sizing.large_from_train_events - 1))
    assert below.max_events == cfg.sizing.small["max_events"] and record["tier"] == "small"


def test_only_train_events_count_and_a_null_threshold_is_always_small(raw):
    assert train_event_count(_events(5)) == 5
    raw["sizing"]["large_from_train_events"] = None
    cfg = build_section(TrainConfig, raw, "train")
    assert size_tier(cfg.sizing, 10**9) == "small"


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["sizing"]["small"]["trainer"].pop("patience"),
     r"sizing.large: must set the keys small sets.*trainer.patience"),
    (lambda r: (r["sizing"]["small"]["trainer"].pop("patience"), r["sizing"]["large"]["trainer"].pop("patience")),
     r"trainer.patience set to auto but not in train.sizing"),
    (lambda r: r["sizing"]["large"]["model"].update(d_model="wide"), r"sizing.large.*model.d_model: 'wide'"),
    (lambda r: r["sizing"]["large"]["model"].update(d_model="auto"), r"not auto"),
    (lambda r: (r["sizing"]["small"]["model"].update(d_modle=1), r["sizing"]["large"]["model"].update(d_modle=1)),
     r"model.d_modle: not a train key that takes auto"),
    (lambda r: (r["sizing"]["small"]["trainer"].update(strategy="ddp"),
                r["sizing"]["large"]["trainer"].update(strategy="ddp")), r"trainer.strategy: not a train key"),
    (lambda r: r["sizing"].update({"large_from_train_events": 0}), r"large_from_train_events: must be null or >= 1"),
])
def test_a_bad_sizing_table_fails_at_load_with_the_key(raw, edit, message):
    bad = copy.deepcopy(raw)
    edit(bad)
    with pytest.raises(ConfigError, match=message):
        build_section(TrainConfig, bad, "train")


def test_training_refuses_a_config_not_yet_sized(raw):
    from unigrec.train.fit import prepare_training_data

    cfg = build_section(TrainConfig, raw, "train")
    with pytest.raises(ConfigError, match=r"max_events.*still auto.*sized_for"):
        prepare_training_data(cfg, _events(3), None, {}, (), None)  # type: ignore[arg-type]
