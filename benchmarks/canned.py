"""Canned AWS and ledger answers for the warm benchmark: recorded from the emulators, replayed.

Why: timing a create against moto in-process counts moto's CPU (parsing the request again,
emulating DynamoDB, deep copies of the table) as the handler's, CPU that in Lambda is a
network wait. So the warm-up runs each side against the emulators (moto for AWS, the tests'
fake QuickBooks for its API) and records every answer; the measured creates get those answers
back, byte for byte, without any emulator running. Both sides of a ratio (the handler and the
floor) see the same stub, so what differs between them is their own code.

- AWS: the stub takes the place of moto's ``BotocoreStubber`` (the ``before-send`` hook
  ``mock_aws`` puts in front of every botocore request) for as long as it is installed. So
  botocore still builds, serialises and signs each request, and parses, checks (CRC32) and
  retries each answer as it does in Lambda; only the network and the emulator are left out.
  Recording calls moto and keeps status, headers and body; replaying builds the same
  ``AWSResponse`` moto would, from the recording.
- Ledger HTTP: ``Stub.transport`` is an httpx transport in front of a fake's handler, doing
  the same for the provider's API: our httpx client builds the request and reads the answer,
  nothing listens.
- Answers are kept per side (a ``Recording``) and per call, keyed by AWS operation
  (``dynamodb.PutItem``) or HTTP method and path, in the order one create made them: the
  second UpdateItem of a create gets the second one recorded. Each recorded create replaces
  the answers of the calls it made and keeps the others, so a call the handler makes only now
  and then (an expired auth cache looks its key up again) still has its answer from the
  first warm-up create, or from a ``fallback`` side that made it.
- A call with no recorded answer during replay is never sent to moto: it raises
  ``Unanswered`` and is listed in ``Stub.unanswered``, so the benchmark stops rather than
  counting emulator CPU or timing an error path.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from botocore.awsrequest import AWSResponse
from moto.core.botocore_stubber import BotocoreStubber


class Unanswered(RuntimeError):
    """A call during replay that no recorded create made."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class Recording:
    """One side's recorded answers, by call, in the order one create made them.

    ``fallback`` answers the calls this side never made while recording: a create with an
    Idempotency-Key falls back to the same create without one, which ran first and so made
    the calls of a cold cache (the auth lookup, made again when the auth cache expires).
    """

    def __init__(self, fallback: Recording | None = None) -> None:
        self.fallback = fallback
        self._answers: dict[str, list[Answer]] = {}
        self._new: dict[str, list[Answer]] = {}
        self._next: Counter[str] = Counter()

    def begin(self) -> None:
        """Start recording one create."""
        self._new = {}
        self.rewind()

    def rewind(self) -> None:
        """Start replaying one create: its first call of each kind gets the first answer."""
        self._next.clear()
        if self.fallback:
            self.fallback.rewind()

    def record(self, key: str, answer: Answer) -> None:
        self._new.setdefault(key, []).append(answer)

    def end(self) -> None:
        self._answers.update(self._new)

    def answer(self, key: str) -> Answer | None:
        """The answer to this create's n-th call of ``key``: the recorded n-th, or the last one."""
        answers = self._answers.get(key)
        if not answers:
            return self.fallback.answer(key) if self.fallback else None
        index = self._next[key]
        self._next[key] += 1
        return answers[min(index, len(answers) - 1)]


class _Raw(io.BytesIO):
    """The body of a replayed AWS answer, readable as urllib3's response is (``stream``)."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        contents = self.read()
        if contents:
            yield contents


class Stub:
    """Records answers from the emulators into a Recording, or replays one; see the module doc."""

    def __init__(self) -> None:
        self._recording: Recording | None = None
        self._replaying: Recording | None = None
        self.unanswered: list[str] = []

    @contextmanager
    def installed(self) -> Iterator[Stub]:
        """Stand in for moto's stubber (moto answers through us while recording, never in replay)."""
        moto = BotocoreStubber.__call__

        def before_send(stubber: BotocoreStubber, event_name: str, request: Any, **kwargs: Any) -> Any:
            key = event_name.removeprefix("before-send.")
            if self._replaying is not None:
                answer = self._replay(key)
                return AWSResponse(request.url, answer.status, dict(answer.headers), _Raw(answer.body))
            response = moto(stubber, event_name, request, **kwargs)
            if self._recording is not None and response is not None:
                headers = list(response.headers.items())
                self._recording.record(key, Answer(response.status_code, headers, response.content))
            return response

        BotocoreStubber.__call__ = before_send  # type: ignore[method-assign]
        try:
            yield self
        finally:
            BotocoreStubber.__call__ = moto  # type: ignore[method-assign]

    def _replay(self, key: str) -> Answer:
        assert self._replaying is not None
        answer = self._replaying.answer(key)
        if answer is None:
            self.unanswered.append(key)
            raise Unanswered(f"{key}: no recorded answer")
        return answer

    @contextmanager
    def recording(self, recording: Recording) -> Iterator[None]:
        """Record the answers to one create (the emulators answer)."""
        recording.begin()
        self._recording = recording
        try:
            yield
        finally:
            self._recording = None
            recording.end()

    @contextmanager
    def replaying(self, recording: Recording) -> Iterator[None]:
        """Answer one create from ``recording``; nothing reaches an emulator."""
        recording.rewind()
        self._replaying = recording
        try:
            yield
        finally:
            self._replaying = None

    def transport(self, upstream: Callable[[httpx.Request], httpx.Response]) -> httpx.BaseTransport:
        """An httpx transport: ``upstream`` (a fake's handler) answers while recording."""
        return _Transport(self, upstream)


class _Transport(httpx.BaseTransport):
    def __init__(self, stub: Stub, upstream: Callable[[httpx.Request], httpx.Response]) -> None:
        self._stub, self._upstream = stub, upstream

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # what sending it would do
        key = f"{request.method} {request.url.path}"
        if self._stub._replaying is not None:
            answer = self._stub._replay(key)
            return httpx.Response(answer.status, headers=answer.headers, content=answer.body)
        response = self._upstream(request)
        response.read()
        if self._stub._recording is not None:
            headers = list(response.headers.multi_items())
            self._stub._recording.record(key, Answer(response.status_code, headers, response.content))
        return response
