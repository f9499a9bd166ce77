"""SnapStart: environments restored from one snapshot draw their own ids and randomness, and
open their own connections.

A restore is simulated with ``os.fork()``: each child starts from the parent's memory as each
restored environment starts from the snapshot's. Fork is kinder than a restore in one way:
Python re-seeds ``random`` in a forked child (``os.register_at_fork``), which nothing does after
a restore, so each child first puts back the generator state the parent had, the state a
snapshot would hold. Without that step the tests below could not fail.

The clock the ids read is frozen, so both restores make their ids in the same millisecond
as the ids init made and, without the hooks, carry on the same counter: the worst case, made
certain instead of likely. Init makes enough ids to take the counter past any fresh starting
value, so a restore that carried it on is told from one that started afresh.

What the tests protect:

- after the hooks (``ledgerbridge.snapstart.AFTER_RESTORE``), two restores never make the
  same invoice id, each starts a fresh id counter, their ``random`` streams differ, and
  nothing they use holds a client, a connection or an auth cache entry of the snapshot's;
- without the hooks, two restores share one ``random`` stream and carry on one id counter:
  the hazard is real and the harness reproduces it. Invoice ids stay apart even then,
  because they draw on the OS (``os.urandom``), not on process state: should ids ever draw on
  ``random`` or any seeded generator, restores would make the same ids (the last test shows
  that they do, and that the hooks are what keeps them apart).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from ledgerbridge import auth, aws, connections, ids, snapstart
from ledgerbridge.auth import Principal
from ledgerbridge.providers import http

IDS_PER_RESTORE = 5_000  # more than the 4,096 one millisecond's counter holds
IDS_AT_INIT = 1_100  # takes the counter past 0x3FF, the largest value a fresh counter starts at
FRESH_COUNTER_MAX = 0x3FF


def _counter(text: str) -> int:
    return (uuid.UUID(text).int >> 64) & 0xFFF


def _restore_twice(produce: Callable[[], Any], *, run_hooks: bool) -> list[Any]:
    """Fork two children from the current state (the snapshot); each restores, optionally runs
    the after-restore hooks, then sends back what ``produce`` returns (JSON) through a pipe."""
    snapshot_random = random.getstate()
    results = []
    for _ in range(2):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # a restored environment: report through the pipe, never return into pytest
            status = 1
            try:
                os.close(read_end)
                random.setstate(snapshot_random)  # undo fork's re-seed: a restore has none
                if run_hooks:
                    for hook in snapstart.AFTER_RESTORE:
                        hook()
                with os.fdopen(write_end, "w") as pipe:
                    json.dump(produce(), pipe)
                status = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(status)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            received = pipe.read()
        _, wait_status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(wait_status) == 0, "the restored child failed (its stderr says why)"
        results.append(json.loads(received))
    return results


_CACHED = (aws.client, http.shared_client)


@pytest.fixture
def snapshot(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Init as the snapshot would hold it: ids made on a frozen clock, clients, a cached principal."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    ids.reset()  # earlier ids may have borrowed milliseconds ahead of the clock
    frozen_ns = time.time_ns()
    monkeypatch.setattr(ids, "time", SimpleNamespace(time_ns=lambda: frozen_ns))
    at_init = [ids.uuid7() for _ in range(IDS_AT_INIT)]
    for cached in _CACHED:
        cached.cache_clear()
    held = {
        "last id counter": _counter(str(at_init[-1])),
        "dynamodb": aws.client("dynamodb"),
        "http": http.shared_client(),
    }
    principal = Principal("project-1", "connection-1", "sandbox")
    auth._cache.put(("key-hash", "token-hash"), principal, 60)
    connections._resolved.put(("connection-1", "contact", "contact-1"), {"remote_id": "C-1"}, 60)
    monkeypatch.setitem(connections._token_sources, "connection-1", object())
    yield held
    for cached in _CACHED:
        cached.cache_clear()
    ids.reset()


def _after_restore(held: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    def produce() -> dict[str, Any]:
        return {
            "ids": [str(ids.uuid7()) for _ in range(IDS_PER_RESTORE)],
            "random": [random.random() for _ in range(8)],
            "new": {
                "dynamodb client": aws.client("dynamodb") is not held["dynamodb"],
                "httpx client": http.shared_client() is not held["http"],
            },
            "cached principals": len(auth._cache),
            "resolved references": len(connections._resolved),
            "token sources": len(connections._token_sources),
        }

    return produce


def test_two_restores_make_their_own_ids_randomness_and_connections(snapshot: dict[str, Any]) -> None:
    first, second = _restore_twice(_after_restore(snapshot), run_hooks=True)
    assert len(set(first["ids"])) == len(set(second["ids"])) == IDS_PER_RESTORE
    assert not set(first["ids"]) & set(second["ids"])
    assert first["ids"][0][:13] == second["ids"][0][:13]  # the same millisecond: the worst case
    assert snapshot["last id counter"] > FRESH_COUNTER_MAX
    assert _counter(first["ids"][0]) <= FRESH_COUNTER_MAX and _counter(second["ids"][0]) <= FRESH_COUNTER_MAX
    assert first["random"] != second["random"]
    for restored in (first, second):
        assert restored["new"] == dict.fromkeys(restored["new"], True)
        held = ("cached principals", "resolved references", "token sources")
        assert [restored[name] for name in held] == [0, 0, 0]


def test_without_the_hooks_restores_share_the_snapshot_state_but_not_invoice_ids(
    snapshot: dict[str, Any],
) -> None:
    first, second = _restore_twice(_after_restore(snapshot), run_hooks=False)
    assert first["random"] == second["random"]  # what reseed_random is for
    assert _counter(first["ids"][0]) == _counter(second["ids"][0]) == snapshot["last id counter"] + 1
    assert first["new"] == second["new"] == dict.fromkeys(first["new"], False)
    assert first["cached principals"] == first["resolved references"] == first["token sources"] == 1
    assert not set(first["ids"]) & set(second["ids"])  # OS randomness, not process state


def test_ids_drawn_from_process_state_would_collide_unless_the_hooks_run(
    snapshot: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same harness against an id generator whose randomness is process state (``random``)."""
    process_state = ModuleType("os")
    process_state.urandom = random.randbytes  # type: ignore[attr-defined]
    monkeypatch.setattr(ids, "os", process_state)

    def produce() -> list[str]:
        return [str(ids.uuid7()) for _ in range(IDS_PER_RESTORE)]

    first, second = _restore_twice(produce, run_hooks=False)
    assert first == second
    first, second = _restore_twice(produce, run_hooks=True)
    assert not set(first) & set(second)


def test_the_hooks_are_handed_to_lambdas_runtime_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    after_restore: list[Callable[[], None]] = []
    before_snapshot: list[Callable[[], None]] = []
    runtime = ModuleType("snapshot_restore_py")
    runtime.register_after_restore = after_restore.append  # type: ignore[attr-defined]
    runtime.register_before_snapshot = before_snapshot.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)
    assert snapstart.register() is True
    assert tuple(after_restore) == snapstart.AFTER_RESTORE
    assert before_snapshot == []


def test_without_lambdas_runtime_nothing_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import raises ImportError
    assert snapstart.register() is False
