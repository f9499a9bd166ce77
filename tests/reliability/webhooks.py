"""Webhooks under injected faults: the events and delivery functions run as AWS runs them.

Used by the nothing-lost test once the invoices' retries went quiet. Every piece is the real one
except the two things AWS does: the event source mappings.

- ``StreamMapping`` is Lambda's mapping of one ``Type: DynamoDB`` event of the events function:
  its stream read from TRIM_HORIZON, in order, in batches of the template's BatchSize shaped as
  Lambda sends them (the local stack's ``stream_record``). It reads moto's record of the stream
  directly, as the local stack's poller does: GetRecords would serialize every image, which
  costs seconds per thousand invoice records. A batch whose handler reports failed records
  is sent again from the first of them; one whose handler dies or raises (a function error) is
  sent again whole, halved first (BisectBatchOnFunctionError). Past the template's
  MaximumRetryAttempts, invocations in a row that consumed nothing, Lambda would send the
  batch's description to the on-failure destination (the webhook dead-letter queue) and move
  on: that is modelled, so a record given up shows as a dead letter and as lost events.
- The delivery function's SQS mapping is ``Rounds`` of the delivery tests (receive, invoke,
  delete what was not reported failed). The backoff is scaled to 0, so a failed message is
  visible again at once and its receive count, the attempt number, climbs as it would over a day.
- ``DispatchFaults`` makes the events function fail inside fan-out, seeded: it dies before
  anything is stored, or after the event and its delivery are stored but before the SQS send,
  or the send is refused (an ordinary error: the record is reported failed).
- ``FlakyReceiver`` is the customer's endpoint (tests/fakes/webhook_receiver.py) served on one
  port of 127.0.0.1, with seeded faults per POST (500, 503, a hang past the sender's timeout)
  and stretches of delivery rounds during which it is not served at all (connection refused),
  then served again on the same port. It verifies each POST with ``standardwebhooks`` as it
  arrives, as a customer does: the check refuses a ``webhook-timestamp`` more than five minutes
  old, so verifying everything at the end of a run this long could refuse the first POSTs. A stretch is at
  most ``MAX_DOWN_ROUNDS`` rounds and stretches are ``DOWN_COOLDOWN_ROUNDS`` apart, so no message
  should use up its 8 attempts: a dead letter means a delivery that should not have been given up.
- Hangs are real: the receiver really holds the request (``time.sleep``, which the test's
  world fixture records instead of sleeping, is the real one again for this phase, see
  ``real_sleep``), and the sender's deadline is the real mechanism. The deadline the delivery
  code passes to ``sender.post`` (``delivery.TIMEOUT_SECONDS``, 10 s deployed) is patched to
  ``TIMEOUT_SECONDS`` so that a hang costs half a second, not ten. The test server answers one
  request at a time, so the POST after a hang waits for it: a hang lasts only a little longer
  than the timeout and never follows a hang, so that waiting POST is still answered in time.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from standardwebhooks import Webhook, WebhookVerificationError

from ledgerbridge.local.stack import failed_message_ids, stream_record
from ledgerbridge.local.template import Stack, StreamEvent, stream_events
from ledgerbridge.store import webhooks as store
from ledgerbridge.webhooks import dispatch, events
from tests.fakes.server import serve
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration.test_webhook_delivery import Rounds

TIMEOUT_SECONDS = 0.4  # what the delivery code gives one attempt here (10 s deployed)
HANG_SECONDS = 0.5  # a hang: past the timeout, and the POST queued behind it still answered in time
MAX_DOWN_ROUNDS = 3  # delivery rounds a receiver-down stretch lasts at most
DOWN_COOLDOWN_ROUNDS = 6  # rounds served between two stretches
EVENTS_FUNCTION = "WebhookEventsFunction"
# Shares of the events dispatched (each draw again when its batch is sent again).
DISPATCH_FAULTS = {"crash before store": 0.005, "crash before enqueue": 0.005, "queue refused send": 0.005}
RECEIVER_FAULTS = {"500": 0.04, "503": 0.03, "hang": 0.005}  # shares of POSTs
DOWN_SHARE = 0.04  # share of delivery rounds after which the receiver stops being served

real_sleep = time.sleep  # taken at import, before any fixture replaces time.sleep


class DispatchFaults:
    """Seeded faults inside the events function's fan-out, one draw per event dispatched.

    ``crash`` is the test's simulated Lambda death (a BaseException: no handler catches it, so
    the whole invocation fails, as when the runtime dies). Installed by patching
    ``events.dispatch`` (a crash there is before anything is stored) and ``dispatch.enqueue``
    (reached after the event and the delivery are stored, before the SQS send).
    """

    def __init__(self, rng: random.Random, crash: type[BaseException]) -> None:
        self.rng, self.crash = rng, crash
        self.injected: Counter[str] = Counter()
        self._armed: str | None = None

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_dispatch, real_enqueue = events.dispatch, dispatch.enqueue

        def faulty_dispatch(event: dict[str, Any], endpoints: list[dict[str, Any]]) -> list[dict[str, Any]]:
            names = list(DISPATCH_FAULTS)
            weights = [DISPATCH_FAULTS[name] for name in names]
            fault = self.rng.choices([*names, None], [*weights, 1 - sum(weights)])[0]
            if fault:
                self.injected[fault] += 1
            if fault == "crash before store":
                raise self.crash()
            self._armed = fault
            try:
                return real_dispatch(event, endpoints)
            finally:
                self._armed = None

        def faulty_enqueue(stored: dict[str, Any]) -> None:
            fault, self._armed = self._armed, None
            if fault == "crash before enqueue":
                raise self.crash()
            if fault == "queue refused send":
                error = {"Code": "ServiceUnavailable", "Message": "Service is unavailable, try again"}
                raise ClientError({"Error": error}, "SendMessage")
            real_enqueue(stored)

        monkeypatch.setattr(events, "dispatch", faulty_dispatch)
        monkeypatch.setattr(dispatch, "enqueue", faulty_enqueue)


@dataclass
class StreamTally:
    records: int = 0  # read from the streams
    invocations: int = 0
    function_errors: int = 0  # crashed or raised: the whole batch again (halved)
    reported_failed: int = 0  # answered with failed records: again from the first of them
    given_up: int = 0  # records Lambda would have sent to the on-failure destination


class StreamMapping:
    """Lambda's event source mapping of one ``Type: DynamoDB`` event of the events function."""

    def __init__(
        self, event: StreamEvent, stack: Stack, function: Any, context: Any,
        crash: type[BaseException], tally: StreamTally,
    ) -> None:  # fmt: skip
        self.event, self.function, self.context = event, function, context
        self.crash, self.tally = crash, tally
        self.arn = stack.resolve(event.stream)
        self.dead_letters = stack.refs["WebhookDeadLetterQueue"]  # the template's OnFailure destination
        self._region = stack.region
        self._read_through = 0  # how many of the shard's records were read (TRIM_HORIZON: none)
        self._unconsumed: list[dict[str, Any]] = []  # read, not yet consumed by the function
        self._limit = event.batch_size
        self._failures = 0  # invocations in a row that consumed nothing

    @classmethod
    def all(
        cls, stack: Stack, function: Any, context: Any, crash: type[BaseException]
    ) -> list[StreamMapping]:
        """One mapping per stream event of the events function, as the template declares them."""
        tally = StreamTally()
        found = [event for event in stream_events(stack.template) if event.function == EVENTS_FUNCTION]
        return [cls(event, stack, function, context, crash, tally) for event in found]

    def _shard(self) -> Any:
        """moto's record of the stream (read directly: GetRecords would serialize every image)."""
        from moto.dynamodb.models import dynamodb_backends

        _, _, _, region, account, resource = self.arn.split(":", 5)
        return dynamodb_backends[account][region].tables[resource.split("/")[1]].stream_shard

    def _read(self) -> None:
        wanted = self._limit - len(self._unconsumed)
        if wanted > 0:
            items = self._shard().items[self._read_through : self._read_through + wanted]
            self._unconsumed += [stream_record(item.to_json(), self.arn, self._region) for item in items]
            self._read_through += len(items)
            self.tally.records += len(items)

    def step(self) -> bool:
        """One invocation with the records at the front of the stream; False when there were none."""
        self._read()
        batch = self._unconsumed[: self._limit]
        if not batch:
            return False
        self.tally.invocations += 1
        try:
            result = self.function.handler({"Records": batch}, self.context)
        except (Exception, self.crash):  # a function error: Lambda sends the batch again
            self.tally.function_errors += 1
            consumed = 0
            if self.event.bisect_batch_on_function_error and len(batch) > 1:
                self._limit = math.ceil(len(batch) / 2)
        else:
            numbers = [record["dynamodb"]["SequenceNumber"] for record in batch]
            failed = failed_message_ids(result, numbers, self.event.report_batch_item_failures)
            consumed = min((numbers.index(number) for number in failed), default=len(batch))
            if consumed < len(batch):
                self.tally.reported_failed += 1
        if consumed:
            self._failures, self._limit = 0, self.event.batch_size
        else:
            self._failures += 1
            if self._failures > self.event.maximum_retry_attempts >= 0:
                consumed = self._give_up(batch)
        del self._unconsumed[:consumed]
        return True

    def _give_up(self, batch: list[dict[str, Any]]) -> int:
        """What Lambda does past MaximumRetryAttempts: describe the batch to the on-failure
        destination and move on. Returns how many records that skips."""
        numbers = [record["dynamodb"]["SequenceNumber"] for record in batch]
        description = {"DDBStreamBatchInfo": {
            "shardId": self._shard().id, "streamArn": self.arn, "batchSize": len(batch),
            "startSequenceNumber": numbers[0], "endSequenceNumber": numbers[-1],
        }}  # fmt: skip
        boto3.client("sqs").send_message(QueueUrl=self.dead_letters, MessageBody=json.dumps(description))
        self.tally.given_up += len(batch)
        self._failures, self._limit = 0, self.event.batch_size
        return len(batch)


def complete(request: httpx.Request) -> bool:
    """Whether the whole body arrived: a sender whose timeout ran out between writing the headers
    and the body (the 0.4 s attempts here, on a loaded machine) leaves a request cut short, which
    was never a delivery and is not counted as one."""
    return len(request.content) == int(request.headers.get("content-length") or 0)


class FlakyReceiver:
    """The customer's endpoint on 127.0.0.1, failing now and then (see the module docstring)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.receiver = WebhookReceiver()
        self.secret = ""  # the endpoint's, once it is registered
        self.verified: list[dict[str, Any] | None] = []  # per POST: its payload (None: not verified)
        self.injected: Counter[str] = Counter()
        self._serving = ExitStack()
        self._port = 0
        self._down_rounds = 0
        self._served_rounds = DOWN_COOLDOWN_ROUNDS
        self._after_hang = False
        self.url = f"{self._serve()}/hooks/ledgerbridge"

    def _serve(self) -> str:
        base_url = self._serving.enter_context(serve(self.handle, self._port))
        self._port = int(base_url.rsplit(":", 1)[1])
        return base_url

    def close(self) -> None:
        self._serving.close()

    def handle(self, request: httpx.Request) -> httpx.Response:
        if not complete(request):
            return httpx.Response(400)  # the sender gave up mid-request (its timeout): nobody reads this
        headers = {name.lower(): value for name, value in request.headers.items()}
        try:
            self.verified.append(Webhook(self.secret).verify(request.content, headers))
        except WebhookVerificationError:
            self.verified.append(None)
        names = [name for name in RECEIVER_FAULTS if not (name == "hang" and self._after_hang)]
        weights = [RECEIVER_FAULTS[name] for name in names]
        fault = self.rng.choices([*names, None], [*weights, 1 - sum(weights)])[0]
        self._after_hang = fault == "hang"
        if fault == "hang":
            self.receiver.hang_next(HANG_SECONDS)
        elif fault:
            self.receiver.fail_next(int(fault))
        if fault:
            self.injected[fault] += 1
        return self.receiver.handle(request)

    def next_round(self) -> None:
        """Before a delivery round: maybe stop being served for a stretch, or come back."""
        if self._down_rounds:
            self._down_rounds -= 1
            if not self._down_rounds:
                self._serve()  # the same port: the endpoint's URL is unchanged
            return
        self._served_rounds += 1
        if self._served_rounds > DOWN_COOLDOWN_ROUNDS and self.rng.random() < DOWN_SHARE:
            self._serving.close()
            self._down_rounds, self._served_rounds = self.rng.randint(1, MAX_DOWN_ROUNDS), 0
            self.injected["down stretches"] += 1

    def served(self) -> None:
        """Served again (the run is over)."""
        if self._down_rounds:
            self._down_rounds = 0
            self._serve()


def run_until_quiet(streams: list[StreamMapping], rounds: Rounds, receiver: FlakyReceiver) -> None:
    """Both functions until no stream record is left and the webhook queue is empty: a batch from
    each stream, then delivery rounds until the queue is empty, and again. Deliveries keep up
    with the stream, so a batch sent again (after a crash) finds some of its deliveries already
    succeeded."""
    budget = 20_000  # invocations in all: far more than a run needs
    while budget > 0:
        fed = [mapping.step() for mapping in streams]
        budget -= len(streams)
        while budget > 0:
            budget -= 1
            receiver.next_round()
            if not rounds.step():
                break
        if not any(fed):
            receiver.served()
            return
    raise AssertionError("the webhook pipeline never went quiet")


@dataclass
class Outcome:
    """What the receiver got and what the webhooks table says, once everything is quiet."""

    posts: int  # every POST the receiver saw
    unverified: int  # POSTs whose signature did not verify
    events: dict[str, dict[str, Any]]  # distinct events answered 2xx, by id (= webhook-id)
    duplicate_posts: int  # POSTs of an event id seen before (all identical to the first)
    deliveries: list[dict[str, Any]]
    attempt_errors: Counter[str] = field(default_factory=Counter)  # failed attempts by error
    dead_letters: int = 0
    queued: int = 0  # messages still on the webhook queue

    @property
    def by_invoice(self) -> Counter[tuple[str, str]]:
        """How many distinct events were delivered for each (type, invoice id)."""
        return Counter((event["type"], event["data"]["id"]) for event in self.events.values())


def _first_difference(differing: dict[str, list[bytes]]) -> str:
    """Where two bodies sent under one webhook-id part ways, for the failure message."""
    webhook_id, (first, second, *_) = next(iter(differing.items()))
    at = next(
        (n for n, (a, b) in enumerate(zip(first, second, strict=False)) if a != b),
        min(map(len, (first, second))),
    )
    before, after = first[at - 80 : at + 80], second[at - 80 : at + 80]
    return f"{webhook_id}: lengths {len(first)}/{len(second)}, from byte {at}: {before!r} vs {after!r}"


def outcome(receiver: FlakyReceiver, webhook_id: str, stack: Stack) -> Outcome:
    received, verified = list(receiver.receiver.received), list(receiver.verified)
    assert len(received) == len(verified)
    bodies: dict[str, set[bytes]] = {}
    events: dict[str, dict[str, Any]] = {}
    for item, payload in zip(received, verified, strict=True):
        bodies.setdefault(item.webhook_id, set()).add(item.body)
        if payload is None:
            continue
        assert item.webhook_id == payload["id"], "webhook-id is the event id"
        if item.answered is not None and item.answered < 300:
            events.setdefault(payload["id"], payload)
    differing = {key: sorted(sent) for key, sent in bodies.items() if len(sent) > 1}
    assert not differing, f"an event sent again with another body: {_first_difference(differing)}"
    deliveries = _deliveries(webhook_id)
    errors = Counter(a["error"] for d in deliveries for a in d["attempts"] if a["error"])
    return Outcome(
        posts=len(received),
        unverified=verified.count(None),
        events=events,
        duplicate_posts=len(received) - len(bodies),
        deliveries=deliveries,
        attempt_errors=errors,
        dead_letters=_messages(stack.refs["WebhookDeadLetterQueue"]),
        queued=_messages(os.environ["LEDGERBRIDGE_WEBHOOK_QUEUE_URL"]),
    )


def _deliveries(webhook_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page, more = store.list_deliveries(webhook_id, 100, cursor)
        found += page
        if not more:
            return found
        cursor = page[-1]["delivery_id"]


def _messages(queue_url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    counts = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
              "ApproximateNumberOfMessagesDelayed")  # fmt: skip
    return sum(int(attributes[name]) for name in counts)
