"""Query results cached by the store's change stamp: fresh after every write, cheap between.

Opening the DuckDB file costs ~30-40 ms (more under a lock), and Grafana asks the same few
panels again and again; at a million usage rows every sidecar request reopened the file.
A result is kept under (db, sql, params, stamp); `Store.change_stamp()` changes after every
committed write in any process, so the next read after a write misses and sees it. Old
stamps are never asked for again and simply age out of the LRU.

`Reader` opens the DB only when one of its queries misses, and then once for all of them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from contextlib import ExitStack
from typing import Any

import pandas as pd

from copilot.store import Store

MAX_ENTRIES = 512
"""Results kept per process; a Grafana dashboard refresh asks for about a dozen."""
MAX_ROWS = 5_000
"""Larger results (exports, raw tables) are not kept: they would crowd out the panels."""

Key = tuple[str, str, tuple[Hashable, ...], str]


class ResultCache:
    """A thread-safe LRU of DataFrames; callers get copies, so nobody edits a shared one."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_rows: int = MAX_ROWS) -> None:
        self.max_entries = max_entries
        self.max_rows = max_rows
        self._frames: OrderedDict[Key, pd.DataFrame] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Key) -> pd.DataFrame | None:
        with self._lock:
            frame = self._frames.get(key)
            if frame is None:
                self.misses += 1
                return None
            self._frames.move_to_end(key)
            self.hits += 1
        return frame.copy()

    def put(self, key: Key, frame: pd.DataFrame) -> None:
        if len(frame) > self.max_rows:
            return
        with self._lock:
            self._frames[key] = frame.copy()
            self._frames.move_to_end(key)
            while len(self._frames) > self.max_entries:
                self._frames.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()


CACHE = ResultCache()
"""The process-wide cache the page, the CLI and the sidecar share."""


def _frozen(params: list[Any]) -> tuple[Hashable, ...]:
    return tuple(p if isinstance(p, Hashable) else repr(p) for p in params)


class Reader:
    """Reads for one request: the stamp is taken first, the DB opened on the first miss.

    Taking the stamp before querying is what keeps the cache honest: rows read after a
    concurrent commit may be cached under the older stamp (newer than needed), but rows older
    than a stamp are never cached under it.
    """

    def __init__(self, store: Store, cache: ResultCache | None = CACHE) -> None:
        self.store = store
        self.cache = cache
        self.stamp = store.change_stamp() if cache is not None else ""
        self._stack = ExitStack()
        self._session: Any = None

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def frame(self, sql: str, params: list[Any]) -> pd.DataFrame:
        key: Key = (self.store.cache_id, sql, _frozen(params), self.stamp)
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        frame: pd.DataFrame = self._connection().frame(sql, params)
        if self.cache is not None:
            self.cache.put(key, frame)
        return frame

    def _connection(self) -> Any:
        if self._session is None:
            self._session = self._stack.enter_context(self.store.read_session())
        return self._session
