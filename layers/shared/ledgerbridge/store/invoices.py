"""The invoices table: one item per invoice, partition = connection, sort = UUIDv7 id.

Because ids are time-ordered, a connection's invoices are one Query in creation order and
a cursor is just the last id seen. Amounts are DynamoDB Numbers (Decimals in, Decimals
out). The provider's own record is kept as zlib-compressed JSON: it is opaque to us,
often as large as the invoice itself, and compresses tenfold, which keeps big invoices
under the 400 KB item limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ledgerbridge.config import settings
from ledgerbridge.errors import ApiError
from ledgerbridge.store.dynamo import (
    STORAGE_ERRORS,
    dynamodb,
    from_item,
    is_condition_failure,
    pack_json,
    query_page,
    storage_unavailable,
    to_item,
    to_values,
    unpack_json,
)


class InvoiceConflict(Exception):
    """The item is not in the state the write expected (e.g. settled twice)."""


@dataclass(frozen=True)
class Page:
    records: list[dict[str, Any]]
    has_more: bool


def _decode(item: dict[str, Any]) -> dict[str, Any]:
    return _unpack(from_item(item))


def _unpack(record: dict[str, Any]) -> dict[str, Any]:
    packed = record.pop("remote_data_z", None)
    record["remote_data"] = unpack_json(packed) if packed else None
    return record


def _table() -> str:
    return settings().invoices_table


def _too_large(error: ClientError) -> bool:
    details = error.response.get("Error", {})
    return details.get("Code") == "ValidationException" and "size" in details.get("Message", "")


def create_pending(record: dict[str, Any]) -> None:
    """The first write of the write path: the invoice exists before any provider sees it.

    An invoice over DynamoDB's 400 KB item limit is refused here (413) rather than stored
    in part; large invoices are offloaded in a later version.
    """
    try:
        dynamodb().put_item(
            TableName=_table(),
            Item=to_item(record),
            ConditionExpression="attribute_not_exists(id)",
        )
    except ClientError as exc:
        if _too_large(exc):
            raise ApiError(413, "invoice_too_large", "The invoice is over 400 KB once stored.") from exc
        raise storage_unavailable() from exc
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc


def _update(connection_id: str, invoice_id: str, changes: dict[str, Any], expected_status: str) -> dict:
    """Set ``changes`` (None removes the attribute) if the invoice is still ``expected_status``."""
    names = {f"#f{i}": key for i, key in enumerate(changes)}
    sets = [f"#f{i} = :v{i}" for i, value in enumerate(changes.values()) if value is not None]
    removes = [f"#f{i}" for i, value in enumerate(changes.values()) if value is None]
    values = {f":v{i}": value for i, value in enumerate(changes.values()) if value is not None}
    values[":expected"] = expected_status
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    try:
        response = dynamodb().update_item(
            TableName=_table(),
            Key=to_values({"connection_id": connection_id, "id": invoice_id}),
            UpdateExpression=expression,
            ConditionExpression="sync_status = :expected",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_values(values),
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if is_condition_failure(exc):
            raise InvoiceConflict(invoice_id) from exc
        raise storage_unavailable() from exc
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
    return _decode(response["Attributes"])


def settle(connection_id: str, invoice_id: str, changes: dict[str, Any], remote_data: Any) -> dict:
    """pending -> synced, with what the provider answered."""
    changes = {**changes, "sync_status": "synced", "remote_data_z": pack_json(remote_data)}
    return _update(connection_id, invoice_id, changes, expected_status="pending")


def mark_failed(connection_id: str, invoice_id: str, reason: str, modified_at: str) -> dict:
    """pending -> failed, keeping the provider's reason for the caller to read."""
    changes = {"sync_status": "failed", "sync_error": reason, "modified_at": modified_at}
    return _update(connection_id, invoice_id, changes, expected_status="pending")


def record_attempt_error(connection_id: str, invoice_id: str, reason: str, modified_at: str) -> dict:
    """Keep a pending invoice pending, noting why the last forward did not get through."""
    changes = {"sync_error": reason, "modified_at": modified_at}
    return _update(connection_id, invoice_id, changes, expected_status="pending")


def get(connection_id: str, invoice_id: str) -> dict[str, Any] | None:
    try:
        response = dynamodb().get_item(
            TableName=_table(),
            Key=to_values({"connection_id": connection_id, "id": invoice_id}),
            ConsistentRead=True,
        )
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
    item = response.get("Item")
    return _decode(item) if item else None


def query(connection_id: str, limit: int, after_id: str | None = None, before_id: str | None = None) -> Page:
    """Up to ``limit`` invoices after (or before) an id, always returned oldest first."""
    forward = before_id is None
    anchor = after_id if forward else before_id
    request: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "connection_id = :c",
        "ExpressionAttributeValues": to_values({":c": connection_id}),
        "ScanIndexForward": forward,
    }
    if anchor:
        request["ExclusiveStartKey"] = to_values({"connection_id": connection_id, "id": anchor})
    try:
        records, has_more = query_page(request, limit)
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
    records = [_unpack(record) for record in records]
    if not forward:
        records.reverse()
    return Page(records=records, has_more=has_more)
