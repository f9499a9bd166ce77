"""The webhook events function: the invoices and accounts tables' streams, fanned out to endpoints.

Thin on purpose: the logic is ``ledgerbridge.webhooks.events`` (which write is which event)
and ``webhooks.dispatch`` (store the event and its deliveries, queue each). Powertools Batch
reports the records that failed by sequence number, so Lambda retries from the first of them
(bisecting a failing batch) and the records before it are not redone; the ones after it are,
which is harmless: event and delivery ids derive from the record, so a replay stores nothing
new and only re-queues deliveries not yet succeeded. A record that still fails after the
event source's retries is sent to the webhook dead-letter queue (its alarm fires).
"""

from __future__ import annotations

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from ledgerbridge.observability import logger
from ledgerbridge.webhooks.events import fan_out

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    listed: dict[str, list[dict]] = {}  # each project's endpoints, read once for this batch

    def publish(record: DynamoDBRecord) -> int:
        return fan_out(record.raw_event, listed)

    return process_partial_response(event=event, record_handler=publish, processor=processor, context=context)
