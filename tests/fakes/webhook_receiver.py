"""A SaaS backend's webhook endpoint: records every POST, verifies it the way a customer would.

Written as ``handle(httpx.Request) -> httpx.Response`` like the provider fakes, so it runs over
real HTTP with ``tests.fakes.server.serve`` (the delivery function must really connect).
Verification goes through the ``standardwebhooks`` package, never through our own signing
code, so a test that passes proves a customer's verifier accepts what we send.

Fault injection: ``fail_next(status, times)`` answers the next POSTs with that status;
``hang_next(seconds, times)`` holds the next POSTs that long before answering 200 (longer than
the sender's timeout: the sender gives up, so the receiver saw the request but it was not
delivered). A receiver that refuses connections is simply one not being served yet.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import httpx
from standardwebhooks import Webhook


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # lower-case names
    body: bytes
    answered: int | None  # the status this receiver answered; None: it hung past the sender's timeout

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class WebhookReceiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self._faults: deque[tuple[str, float]] = deque()
        self._lock = threading.Lock()

    def fail_next(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._faults.extend([("status", float(status))] * times)

    def hang_next(self, seconds: float, times: int = 1) -> None:
        with self._lock:
            self._faults.extend([("hang", seconds)] * times)

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        status = int(fault[1]) if fault and fault[0] == "status" else 200
        headers = {name.lower(): value for name, value in request.headers.items()}
        hang = fault[1] if fault and fault[0] == "hang" else 0.0
        self.received.append(Received(headers, request.content, None if hang else status))
        time.sleep(hang)
        return httpx.Response(status, json={"received": True})

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Every POST received, verified with the secret (raises on the first that does not verify)."""
        verifier = Webhook(secret)
        return [verifier.verify(item.body, item.headers) for item in list(self.received)]

    def events(self, secret: str) -> dict[str, dict[str, Any]]:
        """The distinct events received (verified), by event id; a duplicate must be identical."""
        by_id: dict[str, dict[str, Any]] = {}
        for item, payload in zip(list(self.received), self.verified(secret), strict=True):
            assert item.webhook_id == payload["id"], "webhook-id is the event id"
            assert by_id.setdefault(payload["id"], payload) == payload, "a duplicate differs"
        return by_id

    def types(self, secret: str) -> Counter[str]:
        """How many distinct events of each type were delivered (answered 2xx in time)."""
        delivered = {item.webhook_id for item in list(self.received) if item.answered and item.answered < 300}
        return Counter(payload["type"] for key, payload in self.events(secret).items() if key in delivered)

    def wait_for(self, secret: str, expected: Counter[str], timeout: float = 60) -> Counter[str]:
        """Poll until at least ``expected`` distinct events of each type arrived (or the timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.types(secret)
            if all(seen[name] >= count for name, count in expected.items()) or time.monotonic() > deadline:
                return seen
            time.sleep(0.2)
