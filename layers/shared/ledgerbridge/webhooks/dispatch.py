"""Fan an event out to endpoints: store the event, store one delivery per endpoint, queue each.

Decisions:

- Store first, send second. The event (with the exact body every attempt will send) and each
  delivery are in DynamoDB before any message names them, so a message never points at
  nothing. A crash between the two is redone by whoever called: the stream's batch retry, or
  the API client's retry of the test route.
- Replays are harmless. The delivery id is ``derived_uuid7(event time, "<event>/<webhook>")``, so
  fanning the same event out again finds the same delivery: one event item, one delivery per
  endpoint. A delivery that already succeeded is not queued again; any other is, and a
  duplicate message is harmless because delivery reads the stored status first.
- The queue is a standard SQS queue (``LEDGERBRIDGE_WEBHOOK_QUEUE_URL``): deliveries to
  different endpoints must not wait behind each other, and at-least-once is what webhooks
  promise anyway. The message only names the delivery; the table is the truth.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

from ledgerbridge import jsonutil
from ledgerbridge.aws import client
from ledgerbridge.ids import derived_uuid7
from ledgerbridge.models import now_text
from ledgerbridge.store import webhooks as store

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"


def event_ms(event_id: str) -> int:
    """The Unix milliseconds a UUIDv7 event id carries (its first 48 bits)."""
    return uuid.UUID(event_id).int >> 80


def delivery_id(event_id: str, webhook_id: str) -> str:
    """The one delivery of an event to an endpoint, however often the event is fanned out."""
    return derived_uuid7(event_ms(event_id), f"{event_id}/{webhook_id}")


def new_delivery(event: dict[str, Any], endpoint: dict[str, Any]) -> dict[str, Any]:
    return {
        "delivery_id": delivery_id(event["id"], endpoint["webhook_id"]),
        "webhook_id": endpoint["webhook_id"],
        "project_id": event["project_id"],
        "event_id": event["id"],
        "event_type": event["type"],
        "status": PENDING,
        "attempts": [],
        "created_at": now_text(),
        "expires_at": int(time.time()) + store.RETENTION_SECONDS,
    }


def dispatch(event: dict[str, Any], endpoints: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Store ``event`` and a delivery for each endpoint, queue every delivery not yet succeeded;
    the stored deliveries, in the order of ``endpoints``. No endpoints: nothing is stored."""
    if not endpoints:
        return []
    store.put_event(event, jsonutil.dumps(event))
    deliveries = []
    for endpoint in endpoints:
        stored = store.put_delivery(new_delivery(event, endpoint))
        if stored.get("status") != SUCCEEDED:
            enqueue(stored)
        deliveries.append(stored)
    return deliveries


def enqueue(delivery: dict[str, Any]) -> None:
    """Ask the delivery function to attempt ``delivery`` now."""
    body = {key: delivery[key] for key in ("project_id", "webhook_id", "delivery_id")}
    client("sqs").send_message(
        QueueUrl=os.environ["LEDGERBRIDGE_WEBHOOK_QUEUE_URL"], MessageBody=json.dumps(body)
    )
