"""The sandbox provider's books, in the accounts table.

    SANDBOX#<conn_id>   SEQUENCE           n (atomic counter: remote ids and numbers)
    SANDBOX#<conn_id>   REQUEST#<key>      record_z (the invoice, compressed JSON, keyed by idempotency key)
    SANDBOX#<conn_id>   NUMBER#<number>    remote_id (keeps invoice numbers unique)
    SANDBOX#<conn_id>   CONTACT#<key>      record_z (a created contact, keyed by idempotency key)

The request item and the number claim are written in one transaction, so a resend with
the same key finds the first invoice and a reused number is refused, never half-written.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from ledgerbridge.config import settings
from ledgerbridge.provider_types import NumberTaken, ProviderUnavailable
from ledgerbridge.store.dynamo import (
    STORAGE_ERRORS,
    dynamodb,
    from_item,
    is_condition_failure,
    pack_json,
    put_new_items,
    query_page,
    to_item,
    to_values,
    unpack_json,
)

MAX_CONTACTS_LISTED = 1000  # a sandbox company, not a real one


class DynamoSandboxLedger:
    """``SandboxLedger`` on DynamoDB. Storage trouble is the sandbox being unavailable."""

    def find(self, connection_id: str, request_key: str) -> dict[str, Any] | None:
        return self._record(connection_id, f"REQUEST#{request_key}")

    def _record(self, connection_id: str, sort_key: str) -> dict[str, Any] | None:
        """A stored invoice or contact record by its sort key, read consistently (resends read it)."""
        key = to_values({"pk": f"SANDBOX#{connection_id}", "sk": sort_key})
        try:
            item = dynamodb().get_item(TableName=settings().accounts_table, Key=key, ConsistentRead=True)
        except STORAGE_ERRORS as exc:
            raise ProviderUnavailable("sandbox ledger unavailable") from exc
        return unpack_json(from_item(item["Item"])["record_z"]) if "Item" in item else None

    def next_sequence(self, connection_id: str) -> int:
        try:
            response = dynamodb().update_item(
                TableName=settings().accounts_table,
                Key=to_values({"pk": f"SANDBOX#{connection_id}", "sk": "SEQUENCE"}),
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues=to_values({":one": 1}),
                ReturnValues="UPDATED_NEW",
            )
        except STORAGE_ERRORS as exc:
            raise ProviderUnavailable("sandbox ledger unavailable") from exc
        return int(from_item(response["Attributes"])["n"])

    def record(self, connection_id: str, request_key: str, record: dict[str, Any]) -> dict[str, Any]:
        partition = f"SANDBOX#{connection_id}"
        items = [
            {"pk": partition, "sk": f"REQUEST#{request_key}", "record_z": pack_json(record)},
            {"pk": partition, "sk": f"NUMBER#{record['invoice_number']}", "remote_id": record["id"]},
        ]
        try:
            put_new_items(settings().accounts_table, items)
        except ClientError as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons") or []]
            if reasons[:1] == ["ConditionalCheckFailed"]:  # same request key: a resend
                existing = self.find(connection_id, request_key)
                if existing is None:
                    raise ProviderUnavailable("sandbox ledger unavailable") from exc
                return existing
            if reasons[1:2] == ["ConditionalCheckFailed"]:
                raise NumberTaken(record["invoice_number"]) from exc
            raise ProviderUnavailable("sandbox ledger unavailable") from exc
        except STORAGE_ERRORS as exc:
            raise ProviderUnavailable("sandbox ledger unavailable") from exc
        return record

    def find_contact(self, connection_id: str, request_key: str) -> dict[str, Any] | None:
        return self._record(connection_id, f"CONTACT#{request_key}")

    def record_contact(self, connection_id: str, request_key: str, record: dict[str, Any]) -> dict[str, Any]:
        item = {
            "pk": f"SANDBOX#{connection_id}",
            "sk": f"CONTACT#{request_key}",
            "record_z": pack_json(record),
        }
        try:
            dynamodb().put_item(
                TableName=settings().accounts_table,
                Item=to_item(item),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            existing = self.find_contact(connection_id, request_key) if is_condition_failure(exc) else None
            if existing is None:
                raise ProviderUnavailable("sandbox ledger unavailable") from exc
            return existing  # same request key: a resend
        except STORAGE_ERRORS as exc:
            raise ProviderUnavailable("sandbox ledger unavailable") from exc
        return record

    def contacts(self, connection_id: str) -> list[dict[str, Any]]:
        request = {
            "TableName": settings().accounts_table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": to_values(
                {":pk": f"SANDBOX#{connection_id}", ":prefix": "CONTACT#"}
            ),
        }
        try:
            items, _ = query_page(request, MAX_CONTACTS_LISTED)
        except STORAGE_ERRORS as exc:
            raise ProviderUnavailable("sandbox ledger unavailable") from exc
        return [unpack_json(item["record_z"]) for item in items]
