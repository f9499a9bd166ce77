"""Identifiers.

Invoice ids are UUIDv7 (RFC 9562): time-ordered, so a connection's invoices sort in creation
order by id alone, which is what the list cursor pages over. Python 3.11 has no uuid7, so it
is built here: 48 bits of Unix milliseconds, then a 12-bit counter for ids made within the
same millisecond (monotonic within a process), then 62 random bits. The random bits and the
counter's starting value come from the OS (``os.urandom``), never from a seeded generator: copies
of one process (SnapStart restores of one snapshot) share a seeded generator's state, not the
kernel's, so their ids stay apart even in the same millisecond. ``reset`` is for such a copy.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> uuid.UUID:
    """A new time-ordered UUID; ids from one process never go backwards."""
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms, _counter = now_ms, int.from_bytes(os.urandom(2), "big") & 0x3FF
        else:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms, _counter = _last_ms + 1, 0
        ms, counter = _last_ms, _counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand
    return uuid.UUID(int=value)


def reset() -> None:
    """Forget the last millisecond and counter: the next id starts a fresh, random counter.

    For a process restored from a snapshot (``ledgerbridge.snapstart``), which must not carry on
    the counter every other restore of that snapshot carries on too.
    """
    global _last_ms, _counter
    with _lock:
        _last_ms, _counter = 0, 0


def derived_uuid7(unix_ms: int, seed: str) -> str:
    """A UUIDv7 for a fact that may be processed twice: the time is the fact's own, the other
    74 bits a hash of ``seed``, so a replay (a stream batch retried, a crash redone) makes the
    same id, while ids still sort by time.
    """
    digest = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:10], "big")
    counter, rand = (digest >> 62) & 0xFFF, digest & ((1 << 62) - 1)
    value = ((unix_ms & ((1 << 48) - 1)) << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand
    return str(uuid.UUID(int=value))


# Fixed namespace for reference ids, so a re-sync of the same remote record gives the same id.
REFERENCE_NAMESPACE = uuid.UUID("6c0f3f5e-8d1a-4b7e-9a57-3e0b8c1d2f40")


def reference_id(connection_id: str, kind: str, remote_id: str) -> str:
    """Stable Ledgerbridge id of a provider record (UUIDv5 of connection, kind, remote id)."""
    return str(uuid.uuid5(REFERENCE_NAMESPACE, f"{connection_id}/{kind}/{remote_id}"))
