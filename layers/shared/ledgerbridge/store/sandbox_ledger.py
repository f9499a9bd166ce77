"""The sandbox provider's books, in the accounts table.

    SANDBOX#<conn_id>   INVOICE#<number>   record_z (the invoice, compressed JSON), external_id
    SANDBOX#<conn_id>   CONTACT#<key>      record_z (a created contact, keyed by idempotency key)

An invoice is one item, keyed by its number and written once with one conditional PutItem:
the key keeps numbers unique, and the item's ``external_id`` (the Ledgerbridge invoice id, the
sandbox's idempotency key) tells a resend (the same id: the first record comes back, from the
failed write's ``ALL_OLD``) from a reused number (another id: ``NumberTaken``). The sandbox
derives the numbers it assigns from the invoice id (providers/sandbox.py), so a resend finds
the first invoice by number without an index, and a create costs one write and no read: no
counter item, no transaction. (A counter and a two-item transaction cost a read, three writes
and five write units per create, and moto copied the whole table on every transaction.)
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
    query_page,
    to_item,
    to_values,
    unpack_json,
)

MAX_CONTACTS_LISTED = 1000  # a sandbox company, not a real one


class DynamoSandboxLedger:
    """``SandboxLedger`` on DynamoDB. Storage trouble is the sandbox being unavailable."""

    def find(self, connection_id: str, number: str) -> dict[str, Any] | None:
        return self._record(connection_id, f"INVOICE#{number}")

    def _record(self, connection_id: str, sort_key: str) -> dict[str, Any] | None:
        """A stored invoice or contact record by its sort key, read consistently (resends read it)."""
        key = to_values({"pk": f"SANDBOX#{connection_id}", "sk": sort_key})
        try:
            item = dynamodb().get_item(TableName=settings().accounts_table, Key=key, ConsistentRead=True)
        except STORAGE_ERRORS as exc:
            raise ProviderUnavailable("sandbox ledger unavailable") from exc
        return unpack_json(from_item(item["Item"])["record_z"]) if "Item" in item else None

    def record(self, connection_id: str, record: dict[str, Any]) -> dict[str, Any]:
        item = {
            "pk": f"SANDBOX#{connection_id}",
            "sk": f"INVOICE#{record['invoice_number']}",
            "external_id": record["external_id"],
            "record_z": pack_json(record),
        }
        try:
            dynamodb().put_item(
                TableName=settings().accounts_table,
                Item=to_item(item),
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise ProviderUnavailable("sandbox ledger unavailable") from exc
            existing = from_item(exc.response.get("Item") or {})
            if existing.get("external_id") != record["external_id"]:
                raise NumberTaken(record["invoice_number"]) from exc
            return unpack_json(existing["record_z"])  # the same invoice id: a resend
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
