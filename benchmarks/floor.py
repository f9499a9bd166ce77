"""The floor of an invoice create: what any correct handler must do, with bare boto3.

Validate the body with the project's model, store it (PutItem), record the ledger's answer
(UpdateItem). ``make bench`` times it cold (a fresh process that also imports boto3, creates
its client and imports this module, so pydantic and ``ledgerbridge.models``) and warm,
against the same DynamoDB as the handler.
"""

from __future__ import annotations

import uuid
from typing import Any

from ledgerbridge import jsonutil
from ledgerbridge.models import InvoiceInput


def create(dynamodb: Any, table: str, connection_id: str, body: str | bytes) -> str:
    invoice = InvoiceInput.model_validate(jsonutil.loads(body))
    key = {"connection_id": {"S": connection_id}, "id": {"S": str(uuid.uuid4())}}
    dynamodb.put_item(TableName=table, Item={**key, "invoice": {"S": invoice.model_dump_json()}})
    dynamodb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET sync_status = :s",
        ExpressionAttributeValues={":s": {"S": "synced"}},
    )
    return jsonutil.dumps({"id": key["id"]["S"]})
