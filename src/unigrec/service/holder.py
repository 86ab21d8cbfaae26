"""The model the service answers with, and the poller that replaces it when the champion alias moves.

A request takes the current :class:`~unigrec.service.champion.Served` once and uses it to the end, so a
swap never changes the model under a request in flight: the new version is downloaded, loaded and tried
on one request first, then a single reference assignment makes it current. A failed load keeps the old
model serving (logged), and the next poll tries again.
"""

from __future__ import annotations

import logging
import threading

import pandas as pd

from unigrec.service.champion import ModelCache, RegistryVersion, Served, load_version

log = logging.getLogger(__name__)


class ModelHolder:
    """The current model plus, when it came from the registry's alias, a poller following the alias."""

    def __init__(self, served: Served, cache: ModelCache | None, max_k: int, follow_alias: bool) -> None:
        self._served = served
        self._cache = cache
        self._max_k = max_k
        self._follow = follow_alias and cache is not None
        self._predict_lock = threading.Lock()  # one decode at a time per process: torch already uses every core
        self._swap_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> Served:
        return self._served

    def predict(self, served: Served, requests: pd.DataFrame, k: int) -> pd.DataFrame:
        with self._predict_lock:
            return served.model.predict(requests, k)

    # ------------------------------------------------------------------ alias polling
    def check_alias(self) -> bool:
        """Swap in the version the alias names now, if it differs; True when a swap happened."""
        if not self._follow:
            return False
        assert self._cache is not None
        with self._swap_lock:
            found = self._cache.lookup(None)
            if found is None or found.key == self._served.key:
                return False
            fresh = self._load(found)
            old, self._served = self._served, fresh
        log.info("serving %s (was v%s)", fresh.description, old.version)
        return True

    def _load(self, found: RegistryVersion) -> Served:
        assert self._cache is not None
        fresh = load_version(self._cache, found, self._max_k)
        fresh.model.predict(pd.DataFrame({"user_id": [""], "kind": ["rec"], "query": [""]}), 1)  # works before it serves
        return fresh

    def start_polling(self, every_s: float) -> None:
        if not self._follow or every_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._poll, args=(every_s,), name="unigrec-alias-poll", daemon=True)
        self._thread.start()

    def _poll(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                self.check_alias()
            except Exception:  # the registry may be briefly unreachable or mid-write: keep serving
                log.warning("alias poll failed; still serving v%s", self._served.version, exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
