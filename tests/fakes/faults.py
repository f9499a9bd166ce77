"""Scripted failures, the same in every provider fake: answers, and timeouts before or after the work."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from ledgerbridge import jsonutil


@dataclass(frozen=True)
class Fault:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    timeout: bool = False
    after_processing: bool = False

    def response(self, default_headers: dict[str, str] | None = None) -> httpx.Response:
        """The scripted answer: its status, headers and JSON body (empty when none was given)."""
        content = b"" if self.body is None else jsonutil.dumps(self.body).encode()
        return httpx.Response(
            self.status, headers={**(default_headers or {}), **self.headers}, content=content
        )


class Faults:
    """A fake's queue of failures, each consumed by the next request it sees."""

    def __init__(self, provider: str):
        self._provider = provider
        self._queue: deque[Fault] = deque()

    def fail(
        self, status: int, headers: dict[str, str] | None = None, times: int = 1, body: Any = None
    ) -> None:
        self._queue.extend(Fault(status, dict(headers or {}), body) for _ in range(times))

    def timeout(self, times: int = 1, after_processing: bool = False) -> None:
        self._queue.extend(Fault(timeout=True, after_processing=after_processing) for _ in range(times))

    def take(self, request: httpx.Request, work: Callable[[], Any]) -> Fault | None:
        """The next failure to answer with, if any; a timeout is raised here, after ``work`` if it asks."""
        fault = self._queue.popleft() if self._queue else None
        if fault and fault.timeout:
            if fault.after_processing:
                work()  # the provider did it; only the answer is lost
            raise httpx.ReadTimeout(f"fake {self._provider} did not answer in time", request=request)
        return fault
