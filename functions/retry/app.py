"""The retry function: SQS FIFO messages naming queued invoices and contacts, one group at a time.

Thin on purpose: Powertools Batch reports which messages failed (only those come back), and
skips the rest of a failing connection's group so its records stay in order; the logic is
``ledgerbridge.redelivery``, which dispatches on the message's kind (retries.parse: a
message without one is an invoice, as every message was before contacts were queued). A
failed delivery pushes its message's next visibility out with exponential backoff; the
queue's redrive policy moves it to the dead-letter queue after the last attempt, by which
time the record is already marked failed with its last error. A message of a kind this
code does not know fails without a backoff, so it reaches the dead-letter queue after the
queue's last receive instead of holding its connection's group back for hours.
"""

from __future__ import annotations

import os
import random
import time

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from ledgerbridge import retries
from ledgerbridge.aws import client
from ledgerbridge.observability import logger, tracer
from ledgerbridge.redelivery import RetryLater, redeliver

SAFETY_MARGIN_SECONDS = 5.0
processor = SqsFifoPartialProcessor(skip_group_on_error=True)
# A batch whose deliveries all failed is still a normal answer (each message already has its
# backoff): raising would count a provider outage as errors of this function.
processor.raise_on_entire_batch_failure = False
_backed_off: set[str] = set()  # message ids of this invocation that got their own backoff


def deliver(record: SQSRecord, lambda_context: LambdaContext) -> str:
    message = retries.parse(record.body)
    attempt = int(record.attributes.approximate_receive_count)
    deadline = time.monotonic() + lambda_context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS
    try:
        outcome = redeliver(message, final=attempt >= retries.max_attempts(), deadline=deadline)
    except RetryLater:
        _set_visibility(record.receipt_handle, retries.backoff_seconds(attempt, random.random()))
        _backed_off.add(record.message_id)
        raise
    logger.info(
        "retry handled",
        extra={"kind": message.kind, f"{message.kind}_id": message.record_id, "outcome": outcome},
    )
    return outcome


def _set_visibility(receipt_handle: str, seconds: int) -> None:
    client("sqs").change_message_visibility(
        QueueUrl=os.environ["LEDGERBRIDGE_RETRY_QUEUE_URL"],
        ReceiptHandle=receipt_handle,
        VisibilityTimeout=seconds,
    )


def _release_skipped(event: dict, response: dict) -> None:
    """Messages skipped behind a failed one of their group go back at once, not after 6 minutes.

    FIFO keeps them in order anyway: the group stays blocked until the failed message,
    held back by its backoff, is delivered first.
    """
    failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
    for record in event.get("Records", []):
        if record["messageId"] in failed and record["messageId"] not in _backed_off:
            _set_visibility(record["receiptHandle"], 0)


@logger.inject_lambda_context(clear_state=True)  # no key of one invocation in the next
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> dict:
    _backed_off.clear()
    response = process_partial_response(
        event=event, record_handler=deliver, processor=processor, context=context
    )
    _release_skipped(event, response)
    return response
