"""The per-version model cache (lookups and downloads happen once) and the alias poller's swap."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pandas as pd
import pytest
from support import REPO

from unigrec.config import load_section
from unigrec.service import champion, holder
from unigrec.service.champion import ModelCache, RegistryVersion, Served
from unigrec.service.holder import ModelHolder


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = load_section("register", REPO / "params.yaml")
    (tmp_path / "mlflow.db").write_bytes(b"registry")
    return ModelCache(cfg, tmp_path, tmp_path / ".cache")


def test_alias_lookup_is_asked_once_while_the_registry_file_is_unchanged(cache, tmp_path, monkeypatch):
    asked = []
    answers = iter([RegistryVersion("1", "k1"), RegistryVersion("2", "k2")])
    monkeypatch.setattr(ModelCache, "_ask_registry", lambda self, version: asked.append(version) or next(answers))
    assert cache.lookup() == RegistryVersion("1", "k1")
    assert ModelCache(cache.cfg, tmp_path, tmp_path / ".cache").lookup() == RegistryVersion("1", "k1")  # a new process
    assert asked == [None]
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"registry, then a registration")  # any write to the store invalidates the answer
    os.utime(db, ns=(1, 1))
    assert cache.lookup() == RegistryVersion("2", "k2") and asked == [None, None]


def test_no_registry_file_means_no_champion_without_asking(cache, tmp_path, monkeypatch):
    (tmp_path / "mlflow.db").unlink()
    monkeypatch.setattr(ModelCache, "_ask_registry", lambda self, version: pytest.fail("asked MLflow"))
    assert cache.lookup() is None


def test_a_version_is_downloaded_once_and_then_served_from_the_cache(cache, monkeypatch):
    downloads = []

    def fake_download(cfg, root, dest, version=None):
        downloads.append(version)
        folder = dest / "artifacts" / "model_dir"
        folder.mkdir(parents=True)
        (folder / "weights").write_text(f"v{version}")
        return folder

    monkeypatch.setattr("unigrec.registry.download.registered_model_dir", fake_download)
    found = RegistryVersion("3", "abc")
    first = cache.folder(found)
    assert (first / "weights").read_text() == "v3"
    assert cache.folder(found) == first and downloads == [3]
    assert cache.folder(RegistryVersion("3", "rebuilt-registry")) != first and downloads == [3, 3]


def test_a_relative_cache_dir_works_like_an_absolute_one(tmp_path, monkeypatch):
    """params give runtime.cache_dir relative to the project (`.cache/unigrec`); MLflow hands back absolute
    paths: the first download once failed comparing the two."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)

    def fake_download(cfg, root, dest, version=None):
        folder = (dest / "artifacts" / "model_dir").resolve()
        folder.mkdir(parents=True)
        return folder

    monkeypatch.setattr("unigrec.registry.download.registered_model_dir", fake_download)
    relative = ModelCache(load_section("register", REPO / "params.yaml"), Path("."), Path(".cache/unigrec"))
    folder = relative.folder(RegistryVersion("1", "k"))
    assert folder.is_dir() and folder.is_relative_to(tmp_path.resolve() / ".cache" / "unigrec" / "models")


def test_a_failed_download_leaves_no_folder_that_looks_complete(cache, monkeypatch):
    def failing(cfg, root, dest, version=None):
        (dest / "partial").write_text("half")
        raise OSError("disk full")

    monkeypatch.setattr("unigrec.registry.download.registered_model_dir", failing)
    with pytest.raises(OSError):
        cache.folder(RegistryVersion("4", "k"))
    assert champion._cached_folder(cache.base / cache.cfg.model_name / "v4-k") is None


class Model:
    def __init__(self, name: str, fail: bool = False) -> None:
        self.name, self.fail = name, fail

    def predict(self, requests: pd.DataFrame, k: int) -> pd.DataFrame:
        if self.fail:
            raise RuntimeError("broken version")
        return pd.DataFrame({"request": [0], "rank": [0], "item_id": [self.name], "score": [0.0]})


class FakeCache:
    def __init__(self) -> None:
        self.answer = RegistryVersion("1", "k1")

    def lookup(self, version=None):
        return self.answer


def test_the_poller_swaps_in_a_new_champion_and_requests_in_flight_keep_theirs(monkeypatch):
    fake = FakeCache()
    loaded = {"k2": Model("v2"), "k3": Model("v3", fail=True)}
    monkeypatch.setattr(holder, "load_version", lambda cache, found, max_k: Served(loaded[found.key], found.version,
                                                                                    "", found.key))
    held = ModelHolder(Served(Model("v1"), "1", "", "k1"), fake, max_k=10, follow_alias=True)
    assert held.check_alias() is False  # alias unchanged
    in_flight = held.current
    fake.answer = RegistryVersion("2", "k2")
    assert held.check_alias() is True
    assert held.current.version == "2" and in_flight.version == "1"
    assert held.predict(in_flight, pd.DataFrame(), 1)["item_id"].tolist() == ["v1"]
    fake.answer = RegistryVersion("3", "k3")  # a version that fails its trial request is never swapped in
    with pytest.raises(RuntimeError):
        held.check_alias()
    assert held.current.version == "2"


def test_a_pinned_model_is_never_swapped_and_polling_stops(monkeypatch):
    fake = FakeCache()
    fake.answer = RegistryVersion("2", "k2")
    pinned = ModelHolder(Served(Model("v1"), "1", "", "k1"), fake, max_k=10, follow_alias=False)
    assert pinned.check_alias() is False and pinned.current.version == "1"

    polls = threading.Event()
    following = ModelHolder(Served(Model("v1"), "1", "", "k1"), fake, max_k=10, follow_alias=True)
    monkeypatch.setattr(following, "check_alias", lambda: polls.set() or False)
    following.start_polling(0.01)
    assert polls.wait(5)
    following.stop()
    assert following._thread is None
