"""Delivering a webhook: one signed POST per queue message, retried for about a day.

The webhook delivery function receives ``{"project_id", "webhook_id", "delivery_id"}`` messages
(webhooks/dispatch.py queues them) and calls ``deliver`` for each. The stored delivery is the
truth; the message only says "try it now".

Decisions:

- The stored status decides first: a delivery that is gone (TTL) or already ``succeeded`` is
  done, so a duplicate message (a stream batch replayed, a queue's at-least-once) never POSTs
  twice what a receiver acknowledged. Any other status is attempted: a manual retry reopens
  the delivery and queues it again.
- Attempt n is the message's receive count (``ApproximateReceiveCount``). The queue's redrive
  policy counts the same receives (maxReceiveCount 8 = ``MAX_ATTEMPTS``), so the attempt this
  code treats as the last is the last SQS will hand over. A manual retry is a new message and
  a new series of 8; the delivery's ``attempts`` keep every one.
- Backoff after failed attempt n (1..7): ``BACKOFF_SECONDS[n-1]`` (1 min, 5 min, 30 min, 1 h,
  3 h, 6 h, 12 h: about 22.6 h in all, so a receiver down for most of a day misses nothing)
  times ``LEDGERBRIDGE_WEBHOOK_BACKOFF_SCALE`` (1; tests use 0), jittered x0.8..1.2 so
  deliveries failing together do not come back together, and never past SQS's limit (a
  visibility ends at most 12 h after the message was received; 5 minutes are kept for the
  attempt itself). It is applied as the retry function does: the message's visibility is
  pushed out and the message reported failed (a standard queue has no other per-message
  delay once received).
- The 8th attempt failing marks the delivery ``failed`` and reports the message failed
  without a backoff: the redrive policy moves it to the dead-letter queue, whose alarm says
  that deliveries are being given up.
- Every attempt sends the same bytes (the body stored once with the event) with
  ``webhook-id`` = the event id (a receiver deduplicates on it) and ``webhook-timestamp`` =
  the time of this attempt: Standard Webhooks libraries refuse a timestamp more than five
  minutes off, so a retry hours later must carry its own (the signature covers it). Every
  unexpired secret signs, so a receiver mid-rotation verifies with either.
- An attempt is ``{"at", "status_code", "latency_ms", "error"}``: a refused connection, a
  timeout or an unsafe URL is an attempt with no status code and the sender's short error;
  neither the body nor a signature is recorded or logged.
- Failing endpoints: the first failed attempt sets ``failing_since``, a success clears it. A
  failure when ``failing_since`` is older than ``LEDGERBRIDGE_WEBHOOK_DISABLE_AFTER_DAYS`` (5)
  disables the endpoint with a note saying why (reason ``webhook.disabled``) and ends the
  delivery ``failed``. Deliveries still queued for a disabled or deleted endpoint end
  ``failed`` ("endpoint disabled" / "endpoint deleted") without a POST; turning it back on
  is the customer's choice (PATCH ``enabled: true``), not something a retry guesses.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledgerbridge.models import format_date_time
from ledgerbridge.observability import logger
from ledgerbridge.store import webhooks as store
from ledgerbridge.webhooks import sender
from ledgerbridge.webhooks.dispatch import FAILED, PENDING, SUCCEEDED
from ledgerbridge.webhooks.signing import signature_headers

BACKOFF_SECONDS = (60, 300, 1800, 3600, 10800, 21600, 43200)
MAX_ATTEMPTS = len(BACKOFF_SECONDS) + 1  # = WebhookQueue's maxReceiveCount in template.yaml
# SQS refuses a visibility reaching past 12 h from the message's receipt, and the backoff is set
# up to the function's timeout (120 s) after it: 5 minutes are kept in hand.
MAX_BACKOFF_SECONDS = 12 * 3600 - 300
DISABLED_REASON = "webhook.disabled"
TIMEOUT_SECONDS = sender.TOTAL_TIMEOUT_SECONDS  # one attempt, connect to last byte


@dataclass(frozen=True)
class Outcome:
    """What became of one message: the delivery's status now, and what the queue should do."""

    status: str  # succeeded | pending | failed | skipped (nothing to do)
    retry_after: int | None = None  # pending: seconds until the message should come back
    give_up: bool = False  # the last attempt failed: let the message go to the dead-letter queue


def backoff_seconds(attempt: int, jitter: float, scale: float) -> int:
    """The wait after failed attempt ``attempt`` (1..7): the schedule's value times ``scale``,
    times 0.8..1.2 (``jitter`` in [0, 1)), at most ``MAX_BACKOFF_SECONDS``."""
    base = BACKOFF_SECONDS[min(max(attempt, 1), len(BACKOFF_SECONDS)) - 1] * scale
    return min(MAX_BACKOFF_SECONDS, int(base * (0.8 + 0.4 * jitter)))


def backoff_scale() -> float:
    """LEDGERBRIDGE_WEBHOOK_BACKOFF_SCALE: 1 deployed, 0 in tests (every retry at once)."""
    return float(os.environ.get("LEDGERBRIDGE_WEBHOOK_BACKOFF_SCALE", "1"))


def disable_after_seconds() -> float:
    """LEDGERBRIDGE_WEBHOOK_DISABLE_AFTER_DAYS (5): how long an endpoint may fail before it is disabled."""
    return float(os.environ.get("LEDGERBRIDGE_WEBHOOK_DISABLE_AFTER_DAYS", "5")) * 86400


def deliver(message: dict[str, Any], attempt: int, now: float | None = None) -> Outcome:
    """Attempt the delivery ``message`` names (``attempt`` = the message's receive count)."""
    now = time.time() if now is None else now
    project_id, webhook_id = message["project_id"], message["webhook_id"]
    delivery = store.get_delivery(webhook_id, message["delivery_id"])
    if delivery is None or delivery.get("status") == SUCCEEDED:
        return Outcome("skipped")
    logger.append_keys(webhook_id=webhook_id, delivery_id=delivery["delivery_id"])
    endpoint = store.get_endpoint(project_id, webhook_id)
    if endpoint is None:
        return _end_without_post(delivery, now, "endpoint deleted")
    if not endpoint.get("enabled"):
        return _end_without_post(delivery, now, "endpoint disabled")
    body = store.get_event_body(delivery["event_id"])
    if body is None:
        return _end_without_post(delivery, now, "event expired")
    secrets = store.endpoint_secrets(endpoint, now)
    headers = signature_headers(delivery["event_id"], int(now), body, secrets)
    result = sender.post(endpoint["url"], body.encode(), headers, total_timeout=TIMEOUT_SECONDS)
    record = {
        "at": _text(now),
        "status_code": result.status_code,
        "latency_ms": result.latency_ms,
        "error": result.error,
    }
    logger.info(
        "webhook attempt", extra={k: v for k, v in record.items() if k != "at"} | {"attempt": attempt}
    )
    if result.ok:
        store.record_attempt(webhook_id, delivery["delivery_id"], record, SUCCEEDED, None)
        if endpoint.get("failing_since"):
            store.clear_failing(project_id, webhook_id)
        return Outcome(SUCCEEDED)
    disabled = _note_failure(project_id, webhook_id, now, result.error)
    if disabled or attempt >= MAX_ATTEMPTS:
        store.record_attempt(webhook_id, delivery["delivery_id"], record, FAILED, None)
        return Outcome(FAILED, give_up=not disabled)
    wait = backoff_seconds(attempt, random.random(), backoff_scale())
    store.record_attempt(webhook_id, delivery["delivery_id"], record, PENDING, _text(now + wait))
    return Outcome(PENDING, retry_after=wait)


def _end_without_post(delivery: dict[str, Any], now: float, error: str) -> Outcome:
    """Nothing will be sent: recorded as a last attempt that reached no one."""
    attempt = {"at": _text(now), "status_code": None, "latency_ms": 0, "error": error}
    store.record_attempt(delivery["webhook_id"], delivery["delivery_id"], attempt, FAILED, None)
    logger.info("webhook delivery ended without a POST", extra={"reason": error})
    return Outcome(FAILED)


def _note_failure(project_id: str, webhook_id: str, now: float, error: str | None) -> bool:
    """Remember the endpoint is failing; disable it once it has failed for longer than allowed.
    Whether it was disabled now."""
    endpoint = store.note_failing(project_id, webhook_id, _text(now))
    since = endpoint.get("failing_since")
    if not since or now - datetime.fromisoformat(since).timestamp() < disable_after_seconds():
        return False
    days = disable_after_seconds() / 86400
    note = {
        "reason": DISABLED_REASON,
        "at": _text(now),
        "message": f"Disabled: no delivery has succeeded since {since} (more than {days:g} days);"
        f" the last attempt: {error or 'failed'}. Fix the endpoint, then enable it again.",
    }
    store.disable_endpoint(project_id, webhook_id, note)
    logger.warning("webhook endpoint disabled", extra={"failing_since": since})
    return True


def _text(seconds: float) -> str:
    return format_date_time(datetime.fromtimestamp(seconds, UTC))
