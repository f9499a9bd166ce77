"""Webhook delivery (ledgerbridge.webhooks.delivery and the delivery function), against moto and
a real receiver on 127.0.0.1.

Deliveries are queued by the real dispatch onto the template's webhook queue; each round
receives the queue's messages as the SQS event source would, runs the delivery function's
handler, and deletes what it did not report failed, as Lambda does. The backoff is scaled to 0
(``LEDGERBRIDGE_WEBHOOK_BACKOFF_SCALE``), so a failed attempt's message is back at once and its
receive count, the attempt number, goes up as it would over a day. The receiver
(tests/fakes/webhook_receiver.py) verifies every POST with the ``standardwebhooks`` package,
as a customer would.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from ledgerbridge.ids import uuid7
from ledgerbridge.local.stack import sqs_event
from ledgerbridge.local.template import Stack, function_environment
from ledgerbridge.models import format_date_time, now_text
from ledgerbridge.store import webhooks as store
from ledgerbridge.webhooks import PING, delivery
from ledgerbridge.webhooks.dispatch import dispatch, enqueue
from ledgerbridge.webhooks.signing import new_secret
from tests.fakes.server import serve
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration.test_retries import load

PROJECT = str(uuid7())


@pytest.fixture
def delivery_function(aws: Stack, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in function_environment(aws, "WebhookDeliveryFunction").items():
        if not name.startswith("POWERTOOLS_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("LEDGERBRIDGE_WEBHOOK_ALLOW_LOOPBACK", "true")
    monkeypatch.setenv("LEDGERBRIDGE_WEBHOOK_BACKOFF_SCALE", "0")
    return load("webhook_delivery")


@pytest.fixture
def receiver() -> Iterator[tuple[WebhookReceiver, str]]:
    """A customer's endpoint and its URL."""
    fake = WebhookReceiver()
    with serve(fake.handle) as base_url:
        yield fake, f"{base_url}/hooks/ledgerbridge"


def endpoint(url: str, secrets: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """An endpoint stored as the management API stores one; ``secret`` is its current secret."""
    webhook_id = str(uuid7())
    secrets = secrets or [{"secret": new_secret(), "expires_at": None}]
    record = {
        "webhook_id": webhook_id,
        "project_id": PROJECT,
        "url": url,
        "events": ["invoice.synced"],
        "description": "",
        "enabled": True,
        "created_at": now_text(),
        "modified_at": now_text(),
        "secrets_blob": store.encrypt_secrets(webhook_id, secrets),
        **extra,
    }
    store.put_endpoint(record)
    return {**record, "secret": secrets[0]["secret"]}


def queued(target: dict[str, Any]) -> dict[str, Any]:
    """A ping event dispatched to ``target`` (stored, its delivery stored and queued); the delivery."""
    event = {
        "id": str(uuid7()),
        "type": PING,
        "created_at": now_text(),
        "project_id": PROJECT,
        "connection_id": None,
        "data": {"webhook_id": target["webhook_id"]},
    }
    [stored] = dispatch(event, [target])
    return stored


def _queue_url() -> str:
    return os.environ["LEDGERBRIDGE_WEBHOOK_QUEUE_URL"]


def _receive(queue_url: str) -> list[dict[str, Any]]:
    response = boto3.client("sqs").receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
    )
    return response.get("Messages", [])


class Rounds:
    """The SQS event source mapping of the delivery function, one receive at a time."""

    def __init__(self, function: Any, context: Any) -> None:
        self.function, self.context = function, context
        self.arn = boto3.client("sqs").get_queue_attributes(
            QueueUrl=_queue_url(), AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.reported_failed: list[dict[str, Any]] = []  # messages left on the queue, last round's

    def step(self) -> int:
        """Hand the visible messages to the function; delete those it did not report failed.
        How many messages it was given."""
        messages = _receive(_queue_url())
        if not messages:
            return 0
        result = self.function.handler(sqs_event(messages, self.arn, "us-east-1"), self.context)
        failed = {item["itemIdentifier"] for item in result["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] not in failed:
                boto3.client("sqs").delete_message(
                    QueueUrl=_queue_url(), ReceiptHandle=message["ReceiptHandle"]
                )
        self.reported_failed = [message for message in messages if message["MessageId"] in failed]
        return len(messages)

    def drain(self, limit: int = 20) -> int:
        """Rounds until no message is visible; how many rounds handled one."""
        rounds = 0
        while rounds < limit and self.step():
            rounds += 1
        return rounds


@pytest.fixture
def rounds(delivery_function: Any, lambda_context: Any) -> Rounds:
    return Rounds(delivery_function, lambda_context)


def stored(item: dict[str, Any]) -> dict[str, Any]:
    found = store.get_delivery(item["webhook_id"], item["delivery_id"])
    assert found is not None
    return found


# --- delivering -----------------------------------------------------------------------------------


def test_a_delivery_is_signed_so_a_standard_webhooks_library_verifies_it(
    receiver: tuple[WebhookReceiver, str], rounds: Rounds
) -> None:
    fake, url = receiver
    target = endpoint(url)
    item = queued(target)

    assert rounds.drain() == 1

    [received] = fake.received
    payload = Webhook(target["secret"]).verify(received.body, received.headers)
    assert received.body == store.get_event_body(item["event_id"]).encode()  # the stored bytes, as they are
    assert received.webhook_id == payload["id"] == item["event_id"]
    assert (payload["type"], payload["data"]) == (PING, {"webhook_id": target["webhook_id"]})
    assert abs(int(received.headers["webhook-timestamp"]) - time.time()) < 300
    done = stored(item)
    assert done["status"] == "succeeded" and "next_attempt_at" not in done
    [attempt] = done["attempts"]
    assert (attempt["status_code"], attempt["error"]) == (200, None) and attempt["latency_ms"] >= 0


def test_a_receiver_failing_five_times_gets_the_same_event_six_times_and_six_attempts_are_listed(
    receiver: tuple[WebhookReceiver, str], rounds: Rounds
) -> None:
    fake, url = receiver
    target = endpoint(url)
    fake.fail_next(500, times=5)
    item = queued(target)

    assert rounds.step() == 1
    waiting = stored(item)
    assert waiting["status"] == "pending" and waiting["next_attempt_at"]
    assert store.get_endpoint(PROJECT, target["webhook_id"])["failing_since"]
    assert rounds.drain() == 5

    assert [r.answered for r in fake.received] == [500] * 5 + [200]
    assert {r.webhook_id for r in fake.received} == {item["event_id"]}
    assert len({r.body for r in fake.received}) == 1
    assert len(fake.verified(target["secret"])) == 6
    done = stored(item)
    assert done["status"] == "succeeded" and "next_attempt_at" not in done
    assert [a["status_code"] for a in done["attempts"]] == [500] * 5 + [200]
    assert [a["error"] for a in done["attempts"]] == ["HTTP 500"] * 5 + [None]
    assert all(a["latency_ms"] >= 0 and a["at"].endswith("Z") for a in done["attempts"])
    assert "failing_since" not in store.get_endpoint(PROJECT, target["webhook_id"])  # healthy again


def test_the_eighth_failed_attempt_marks_the_delivery_failed_and_the_message_goes_to_the_dead_letter_queue(
    receiver: tuple[WebhookReceiver, str], rounds: Rounds, aws: Stack
) -> None:
    fake, url = receiver
    target = endpoint(url)
    fake.fail_next(503, times=8)
    item = queued(target)

    assert rounds.drain() == delivery.MAX_ATTEMPTS == 8

    failed = stored(item)
    assert failed["status"] == "failed" and "next_attempt_at" not in failed
    assert [a["status_code"] for a in failed["attempts"]] == [503] * 8
    [left] = rounds.reported_failed  # reported failed, with no backoff: the redrive policy takes it
    sqs = boto3.client("sqs")
    sqs.change_message_visibility(
        QueueUrl=_queue_url(), ReceiptHandle=left["ReceiptHandle"], VisibilityTimeout=0
    )
    assert rounds.step() == 0  # its 9th receive moves it instead
    [dead] = _receive(aws.refs["WebhookDeadLetterQueue"])
    assert json.loads(dead["Body"])["delivery_id"] == item["delivery_id"]
    assert len(fake.received) == 8


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_connection_is_an_attempt_with_its_error_and_is_retried(rounds: Rounds) -> None:
    item = queued(endpoint(f"http://127.0.0.1:{free_port()}/hooks"))

    assert rounds.step() == 1

    waiting = stored(item)
    [attempt] = waiting["attempts"]
    assert (attempt["status_code"], attempt["error"]) == (None, "connection refused")
    assert waiting["status"] == "pending" and waiting["next_attempt_at"]
    assert len(rounds.reported_failed) == 1


def test_a_timeout_is_an_attempt_with_its_error_and_the_retry_delivers(
    receiver: tuple[WebhookReceiver, str], rounds: Rounds, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, url = receiver
    monkeypatch.setattr(delivery, "TIMEOUT_SECONDS", 0.3)
    fake.hang_next(1.0)
    item = queued(endpoint(url))

    assert rounds.step() == 1
    [first] = stored(item)["attempts"]
    assert (first["status_code"], first["error"]) == (None, "timed out after 0.3 s")
    assert stored(item)["status"] == "pending"

    rounds.drain()  # (a retry sent while the receiver still hangs times out too)
    *timed_out, last = stored(item)["attempts"]
    assert {attempt["error"] for attempt in timed_out} == {"timed out after 0.3 s"}
    assert (last["status_code"], last["error"], stored(item)["status"]) == (200, None, "succeeded")
    assert {r.webhook_id for r in fake.received} == {item["event_id"]}  # seen more than once: dedupe on it


def test_a_rotation_signs_with_both_secrets_and_leaves_the_expired_one_out(
    receiver: tuple[WebhookReceiver, str], rounds: Rounds
) -> None:
    fake, url = receiver
    now = time.time()
    current, previous, expired = new_secret(), new_secret(), new_secret()
    entries = [
        {"secret": current, "expires_at": None},
        {"secret": previous, "expires_at": int(now) + 3600},
        {"secret": expired, "expires_at": int(now) - 1},
    ]
    queued(endpoint(url, secrets=entries))

    rounds.drain()

    [received] = fake.received
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    assert fake.verified(current) == fake.verified(previous)
    with pytest.raises(WebhookVerificationError):
        fake.verified(expired)


# --- failing and gone endpoints ------------------------------------------------------------------


def days_ago(days: float) -> str:
    return format_date_time(datetime.now(UTC) - timedelta(days=days))


def test_an_endpoint_failing_longer_than_the_window_is_disabled_with_a_note(
    receiver: tuple[WebhookReceiver, str], rounds: Rounds
) -> None:
    fake, url = receiver
    since = days_ago(6)
    target = endpoint(url, failing_since=since)
    fake.fail_next(500, times=2)
    item = queued(target)

    assert rounds.drain() == 1  # not retried: the endpoint is off

    disabled = store.get_endpoint(PROJECT, target["webhook_id"])
    assert disabled["enabled"] is False and disabled["failing_since"] == since
    note = disabled["disabled"]
    assert set(note) == {"reason", "at", "message"} and note["reason"] == "webhook.disabled"
    assert since in note["message"] and "HTTP 500" in note["message"]
    assert stored(item)["status"] == "failed" and rounds.reported_failed == []

    later = queued(target)  # still queued for it (an event fanned out before it was disabled)
    assert rounds.drain() == 1
    assert len(fake.received) == 1  # no POST to a disabled endpoint
    [attempt] = stored(later)["attempts"]
    assert (attempt["status_code"], attempt["error"]) == (None, "endpoint disabled")
    assert stored(later)["status"] == "failed"


def test_an_endpoint_failing_for_less_than_the_window_stays_enabled(
    receiver: tuple[WebhookReceiver, str], rounds: Rounds
) -> None:
    fake, url = receiver
    target = endpoint(url, failing_since=days_ago(4))
    fake.fail_next(500)
    item = queued(target)

    assert rounds.step() == 1

    assert store.get_endpoint(PROJECT, target["webhook_id"])["enabled"] is True
    assert stored(item)["status"] == "pending"


def test_a_deleted_endpoints_delivery_ends_failed_without_a_post(
    receiver: tuple[WebhookReceiver, str], rounds: Rounds
) -> None:
    fake, url = receiver
    target = endpoint(url)
    item = queued(target)
    assert store.delete_endpoint(PROJECT, target["webhook_id"])

    assert rounds.drain() == 1

    assert fake.received == [] and rounds.reported_failed == []
    ended = stored(item)
    assert ended["status"] == "failed"
    [attempt] = ended["attempts"]
    assert (attempt["status_code"], attempt["error"]) == (None, "endpoint deleted")


def test_a_duplicate_message_for_a_succeeded_delivery_posts_nothing(
    receiver: tuple[WebhookReceiver, str], rounds: Rounds
) -> None:
    fake, url = receiver
    item = queued(endpoint(url))
    assert rounds.drain() == 1

    enqueue(item)  # a replayed stream batch, or SQS delivering a message twice
    assert rounds.drain() == 1

    assert len(fake.received) == 1
    assert len(stored(item)["attempts"]) == 1 and stored(item)["status"] == "succeeded"


# --- backoff ------------------------------------------------------------------------------------


def test_the_backoff_follows_the_schedule_jittered_and_scaled() -> None:
    schedule = [60, 300, 1800, 3600, 10800, 21600, 43200]
    assert list(delivery.BACKOFF_SECONDS) == schedule and delivery.MAX_ATTEMPTS == 8
    middle = [delivery.backoff_seconds(n, 0.5, 1) for n in range(1, 8)]
    assert middle == [*schedule[:6], delivery.MAX_BACKOFF_SECONDS]  # the last one held under SQS's 12 h
    assert sum(middle) > 22 * 3600  # a receiver down for most of a day misses nothing
    assert [delivery.backoff_seconds(n, 0.0, 1) for n in range(1, 7)] == [int(s * 0.8) for s in schedule[:6]]
    for n, seconds in enumerate(schedule, start=1):
        for jitter in (0.0, 0.25, 0.75, 0.999):
            assert (
                seconds * 0.8
                <= delivery.backoff_seconds(n, jitter, 1)
                <= min(seconds * 1.2, delivery.MAX_BACKOFF_SECONDS)
            )
    assert delivery.backoff_seconds(6, 0.999, 1) > 21600 > delivery.backoff_seconds(6, 0.25, 1)
    assert [delivery.backoff_seconds(n, 0.5, 0.5) for n in range(1, 4)] == [30, 150, 900]
    assert {delivery.backoff_seconds(n, 0.999, 0) for n in range(1, 8)} == {0}
