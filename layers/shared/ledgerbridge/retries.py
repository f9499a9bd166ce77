"""The retry queue: invoices and contacts the ledger did not take at once, delivered later, in order.

An SQS FIFO queue with one message group per connection: a connection's records go out in
the order they came and never two at a time, so a burst for one customer cannot push that
customer's ledger past its rate limit, while other connections proceed in parallel. A
message only names the record; the stored record is the truth, so a duplicate message
(the sweeper re-queuing one still in flight) finds it settled and does nothing.

Decisions:

- One queue for every kind, not a queue per kind: a contact and the invoices created after
  it share their connection's message group, so they reach the ledger in the order they
  were made, and there is one dead-letter queue, one alarm and one backoff to reason about.
- The message names its kind (``{"kind": "contact", ..., "contact_id": ...}``) and the id
  under ``<kind>_id``, so a message is readable on its own (in the dead-letter queue too).
  A message without ``kind`` is an invoice: messages queued before kinds existed are
  still in flight when this code is deployed, and must keep working.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from ledgerbridge.aws import client
from ledgerbridge.store import contacts, invoices

INVOICE, CONTACT = "invoice", "contact"

# How each kind remembers that a retry is in flight (the sweeper leaves such records alone).
_NOTE_QUEUED: dict[str, Callable[[str, str, str], None]] = {
    INVOICE: invoices.note_retry_queued,
    CONTACT: contacts.note_retry_queued,
}


@dataclass(frozen=True)
class Message:
    """What a retry message names: a stored record of one kind, of one connection."""

    kind: str
    project_id: str
    connection_id: str
    record_id: str

    def body(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "project_id": self.project_id,
                "connection_id": self.connection_id,
                f"{self.kind}_id": self.record_id,
            }
        )


class UnknownKind(ValueError):
    """A message names a kind this code does not deliver (a newer writer, or a corrupt body)."""


def parse(body: str) -> Message:
    """A queued message as written by ``enqueue``; without ``kind`` it is an invoice (older messages)."""
    fields = json.loads(body)
    kind = fields.get("kind", INVOICE)
    if kind not in _NOTE_QUEUED:
        raise UnknownKind(f"retry message of unknown kind {kind!r}")
    return Message(kind, fields["project_id"], fields["connection_id"], fields[f"{kind}_id"])


def enqueue(project_id: str, connection_id: str, record_id: str, now_text: str, kind: str = INVOICE) -> None:
    """Queue the record for delivery and note when, so the sweeper knows a retry is in flight.

    Every message gets its own deduplication id: a repeat (the sweeper re-queuing) must not
    be dropped as a duplicate, and is harmless, since delivery checks the stored record.
    """
    message = Message(kind, project_id, connection_id, record_id)
    client("sqs").send_message(
        QueueUrl=os.environ["LEDGERBRIDGE_RETRY_QUEUE_URL"],
        MessageBody=message.body(),
        MessageGroupId=connection_id,
        MessageDeduplicationId=f"{record_id}:{uuid.uuid4()}",
    )
    _NOTE_QUEUED[kind](connection_id, record_id, now_text)


def backoff_seconds(receive_count: int, jitter: float) -> int:
    """How long a failed delivery waits: 10 s doubling per attempt, capped at 15 minutes, jittered.

    LEDGERBRIDGE_RETRY_BACKOFF_SECONDS sets the first wait (0 retries at once, for tests).
    """
    first = float(os.environ.get("LEDGERBRIDGE_RETRY_BACKOFF_SECONDS", "10"))
    base = min(900.0, first * 2 ** max(0, receive_count - 1))
    return int(base / 2 + base / 2 * jitter)


def max_attempts() -> int:
    """Deliveries before giving up; template.yaml keeps it equal to the queue's maxReceiveCount."""
    return int(os.environ.get("LEDGERBRIDGE_RETRY_MAX_ATTEMPTS", "8"))
