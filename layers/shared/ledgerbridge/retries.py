"""The retry queue: invoices the provider did not take at once, delivered later, in order.

An SQS FIFO queue with one message group per connection: a connection's invoices go out in
the order they came and never two at a time, so a burst for one customer cannot push that
customer's ledger past its rate limit, while other connections proceed in parallel. A
message only names the invoice; the stored invoice is the truth, so a duplicate message
(the sweeper re-queuing one still in flight) finds it settled and does nothing.
"""

from __future__ import annotations

import json
import os
import uuid

from ledgerbridge.aws import client
from ledgerbridge.store import invoices


def enqueue(project_id: str, connection_id: str, invoice_id: str, now_text: str) -> None:
    """Queue the invoice for delivery and note when, so the sweeper knows a retry is in flight.

    Every message gets its own deduplication id: a repeat (the sweeper re-queuing) must not
    be dropped as a duplicate, and is harmless, since delivery checks the stored invoice.
    """
    client("sqs").send_message(
        QueueUrl=os.environ["LEDGERBRIDGE_RETRY_QUEUE_URL"],
        MessageBody=json.dumps(
            {"project_id": project_id, "connection_id": connection_id, "invoice_id": invoice_id}
        ),
        MessageGroupId=connection_id,
        MessageDeduplicationId=f"{invoice_id}:{uuid.uuid4()}",
    )
    invoices.note_retry_queued(connection_id, invoice_id, now_text)


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
