"""ExpiringCache: entries live for the seconds they were put with, on the monotonic clock."""

from __future__ import annotations

import pytest

from ledgerbridge import expiring
from ledgerbridge.expiring import ExpiringCache


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(expiring.time, "monotonic", lambda: now[0])
    return now


def test_an_entry_is_there_until_its_seconds_are_up(clock: list[float]) -> None:
    cache: ExpiringCache[str, int] = ExpiringCache(limit=10)
    cache.put("a", 1, seconds=60)
    clock[0] += 59.9
    assert cache.get("a") == 1
    clock[0] += 0.1
    assert cache.get("a") is None
    assert cache.get("never put") is None


def test_a_full_cache_starts_again_empty(clock: list[float]) -> None:
    cache: ExpiringCache[int, int] = ExpiringCache(limit=3)
    for key in range(3):
        cache.put(key, key, seconds=60)
    cache.put(3, 3, seconds=60)
    assert len(cache) == 1
    assert [cache.get(key) for key in range(4)] == [None, None, None, 3]
