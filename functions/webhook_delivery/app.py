"""The webhook delivery function: one signed POST per message of the (standard) webhook queue.

Thin on purpose: the logic is ``ledgerbridge.webhooks.delivery``. Powertools Batch reports
the messages that failed, and only those come back. A failed attempt that will be retried
pushes its message's visibility out by the backoff first (as the retry function does); the
last failed attempt is reported without one, so the queue's redrive policy moves the message
to the dead-letter queue. A message that raises (storage unreachable) comes back after the
queue's visibility timeout.
"""

from __future__ import annotations

import json
import os

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from ledgerbridge.aws import client
from ledgerbridge.observability import logger
from ledgerbridge.webhooks import delivery

processor = BatchProcessor(event_type=EventType.SQS)
# A batch whose attempts all failed is still a normal answer (each message has its backoff):
# raising would count a customer's endpoint being down as errors of this function.
processor.raise_on_entire_batch_failure = False


class NotDelivered(Exception):
    """The message must come back (after its backoff) or, after the last attempt, go to the DLQ."""


def attempt(record: SQSRecord) -> str:
    outcome = delivery.deliver(json.loads(record.body), int(record.attributes.approximate_receive_count))
    if outcome.retry_after is not None:
        client("sqs").change_message_visibility(
            QueueUrl=os.environ["LEDGERBRIDGE_WEBHOOK_QUEUE_URL"],
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=outcome.retry_after,
        )
        raise NotDelivered(f"retry in {outcome.retry_after} s")
    if outcome.give_up:
        raise NotDelivered("gave up: the message goes to the dead-letter queue")
    return outcome.status


@logger.inject_lambda_context(clear_state=True)  # no key of one invocation in the next
def handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(event=event, record_handler=attempt, processor=processor, context=context)
