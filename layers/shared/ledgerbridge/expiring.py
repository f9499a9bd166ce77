"""A per-container map whose entries expire: what a warm container may remember for a while.

Lambda reuses a container for many requests, so what one request looked up (who a key belongs
to, which ledger record a reference names) can spare the next one a read, for as long as
being that much behind is harmless; each user says how long (``put``) and why. Times are
``time.monotonic``: a wall clock set back cannot keep an entry alive. A full cache is cleared
whole rather than ordered by use: a container serves few callers, the limit only bounds memory.
"""

from __future__ import annotations

import time
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ExpiringCache(Generic[K, V]):
    def __init__(self, limit: int) -> None:
        self._entries: dict[K, tuple[float, V]] = {}
        self._limit = limit

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    def put(self, key: K, value: V, seconds: float) -> None:
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + seconds, value)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
