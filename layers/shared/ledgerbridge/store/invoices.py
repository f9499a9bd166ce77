"""The invoices table: one item per invoice, partition = connection, sort = UUIDv7 id.

Because ids are time-ordered, a connection's invoices are one Query in creation order and
a cursor is just the last id seen.

Money keeps the digits it was sent with: DynamoDB trims a Number's trailing zeros (10.50 is
read back as 10.5; moto keeps them, so only AWS showed it), so the invoice's amounts are
stored as strings (``_stored_amounts``), and its line items and custom fields as one JSON
string each (``_stored_lines``, ``field_mappings_json``), their numbers exact literals; reads
give Decimals back. Items written before with Numbers, or a list of maps, still read. The
provider's own record is kept as zlib-compressed JSON: it is opaque to us, often as large as
the invoice itself, and compresses tenfold, which keeps big invoices under the 400 KB item
limit.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from ledgerbridge import jsonutil
from ledgerbridge.config import settings
from ledgerbridge.ids import uuid7
from ledgerbridge.store import offload
from ledgerbridge.store.dynamo import (
    PENDING_KEY,
    STORAGE_ERRORS,
    dynamodb,
    from_item,
    is_condition_failure,
    pack_json,
    query_page,
    query_pending_index,
    storage_unavailable,
    to_item,
    to_values,
    unpack_json,
)

# The sweeper's sparse index key: present (and "P") only while an invoice (or contact) is pending.


class InvoiceConflict(Exception):
    """The item is not in the state the write expected (e.g. settled twice)."""


@dataclass(frozen=True)
class Page:
    records: list[dict[str, Any]]
    has_more: bool


def decode(item: dict[str, Any]) -> dict[str, Any]:
    """A stored item (or a stream image of one) as the service reads it: remote data and
    offloaded line items inflated."""
    return _unpack(from_item(item))


def _unpack(record: dict[str, Any]) -> dict[str, Any]:
    packed = record.pop("remote_data_z", None)
    record["remote_data"] = unpack_json(packed) if packed else None
    if "remote_data_s3" in record:
        record["remote_data"] = offload.get(record.pop("remote_data_s3"))
    for name in _AMOUNTS:
        if isinstance(record.get(name), str):
            record[name] = Decimal(record[name])
    if "field_mappings_json" in record:
        record["field_mappings"] = jsonutil.loads(record.pop("field_mappings_json"))
    if "line_items_json" in record:
        record["line_items"] = jsonutil.loads(record.pop("line_items_json"))
    if "line_items_s3" in record:
        record["line_items"] = offload.get(record.pop("line_items_s3"))
    return record


_AMOUNTS = ("exchange_rate", "total_discount", "sub_total", "total_tax_amount", "total_amount", "balance")


def _stored_amounts(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with its amounts as strings and its custom fields as JSON (the module docstring
    says why); line items are ``_stored_lines``'."""
    stored = {name: str(record[name]) for name in _AMOUNTS if isinstance(record.get(name), Decimal)}
    if record.get("field_mappings") is not None:
        stored.update(field_mappings=None, field_mappings_json=jsonutil.dumps(record["field_mappings"]))
    return {**record, **stored} if stored else record


def _stored_lines(record: dict[str, Any], connection_id: str, invoice_id: str) -> dict[str, Any]:
    """``record`` with its line items as the item keeps them: one JSON string
    (``line_items_json``) or, too big for the item, an S3 object (a new object per write: settle
    adds remote ids). The other forms are None: removed by an update, left out of a new item.

    One string, not a DynamoDB list of maps: nothing reads a line inside the item (every read
    decodes whole invoices), and botocore serialises and signs, and DynamoDB stores, one value
    instead of five or more per line (~30 µs less CPU per write of a two-line invoice,
    ``make bench``). Items written with a list of maps (``line_items``) still read as before.
    """
    if "line_items" not in record:
        return record
    text = jsonutil.dumps(record["line_items"])
    if len(text) <= offload.INLINE_LIMIT:
        return {**record, "line_items": None, "line_items_json": text, "line_items_s3": None}
    key = f"invoices/{connection_id}/{invoice_id}/line-items-{uuid7()}.json.gz"
    stored = offload.put_json(key, text)
    return {**record, "line_items": None, "line_items_json": None, "line_items_s3": stored}


# The stored forms of remote data and line items: a decoded record has none of them.
_PACKED = {"remote_data_z", "remote_data_s3", "line_items_json", "line_items_s3", "field_mappings_json"}


def _table() -> str:
    return settings().invoices_table


def create_pending(record: dict[str, Any]) -> None:
    """The first write of the write path: the invoice exists before any provider sees it.

    Line items too big for a DynamoDB item are written to S3 first (store/offload.py).
    """
    try:
        item = to_item(_stored_amounts(_stored_lines(record, record["connection_id"], record["id"])))
        dynamodb().put_item(TableName=_table(), Item=item, ConditionExpression="attribute_not_exists(id)")
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc


def _update(connection_id: str, invoice_id: str, changes: dict[str, Any], expected_status: str) -> dict:
    """Set ``changes`` (None removes the attribute) if the invoice is still ``expected_status``;
    the item as it is after the write."""
    response = _write(connection_id, invoice_id, changes, expected_status, return_values="ALL_NEW")
    return decode(response["Attributes"])


def _write(
    connection_id: str, invoice_id: str, changes: dict[str, Any], expected_status: str, return_values: str
) -> dict:
    names = {f"#f{i}": key for i, key in enumerate(changes)}
    sets = [f"#f{i} = :v{i}" for i, value in enumerate(changes.values()) if value is not None]
    removes = [f"#f{i}" for i, value in enumerate(changes.values()) if value is None]
    values = {f":v{i}": value for i, value in enumerate(changes.values()) if value is not None}
    values[":expected"] = expected_status
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    try:
        return dynamodb().update_item(
            TableName=_table(),
            Key=to_values({"connection_id": connection_id, "id": invoice_id}),
            UpdateExpression=expression,
            ConditionExpression="sync_status = :expected",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_values(values),
            ReturnValues=return_values,
        )
    except ClientError as exc:
        if is_condition_failure(exc):
            raise InvoiceConflict(invoice_id) from exc
        raise storage_unavailable() from exc
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc


def settle(pending: dict[str, Any], changes: dict[str, Any], remote_data: Any) -> dict:
    """pending -> synced, with what the provider answered (and out of the sweeper's index).

    ``pending`` is the invoice as stored (as ``create_pending`` wrote it, or as read). The
    answer is ``pending`` with the changes applied, computed here, not read back with
    ``ReturnValues=ALL_NEW``: parsing the whole item again was a fifth of a warm create's CPU
    (``make bench``). It is exact because the write's condition holds only while the invoice is
    pending, and the only other writes to a pending invoice set what this one overwrites or
    removes (``modified_at``, ``sync_error``) or what no answer shows (``retry_queued_at``).
    """
    connection_id, invoice_id = pending["connection_id"], pending["id"]
    try:
        lines = _stored_amounts(_stored_lines(changes, connection_id, invoice_id))
        stored = {**lines, **_remote_data(connection_id, invoice_id, remote_data)}
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
    stored = {**stored, "sync_status": "synced", PENDING_KEY: None}
    _write(connection_id, invoice_id, stored, expected_status="pending", return_values="NONE")
    settled = {**pending, **stored, **changes, "remote_data": remote_data}
    return {key: value for key, value in settled.items() if value is not None and key not in _PACKED}


def _remote_data(connection_id: str, invoice_id: str, remote_data: Any) -> dict[str, Any]:
    packed = pack_json(remote_data)
    if len(packed) <= offload.INLINE_LIMIT:
        return {"remote_data_z": packed}
    key = f"invoices/{connection_id}/{invoice_id}/remote-data-{uuid7()}.json.gz"
    return {"remote_data_z": None, "remote_data_s3": offload.put(key, remote_data)}


def mark_failed(
    connection_id: str, invoice_id: str, reason: str, modified_at: str, create_answer: dict | None = None
) -> dict:
    """pending -> failed, keeping the provider's reason for the caller to read, and the error its
    create request answered (``{"status", "body"}``) when that request is the one failing it."""
    changes = {"sync_status": "failed", "sync_error": reason, "modified_at": modified_at, PENDING_KEY: None}
    if create_answer is not None:
        changes["create_answer"] = create_answer
    return _update(connection_id, invoice_id, changes, expected_status="pending")


def note_retry_queued(connection_id: str, invoice_id: str, queued_at: str) -> None:
    """Remember that a retry message is on its way (the sweeper leaves such invoices alone)."""
    with contextlib.suppress(InvoiceConflict):  # settled meanwhile: nothing left to note
        _update(connection_id, invoice_id, {"retry_queued_at": queued_at}, expected_status="pending")


def pending_since(cutoff: str, limit: int = 500) -> list[dict[str, Any]]:
    """Pending invoices created before ``cutoff`` (sparse PendingIndex: only pending ones are in it)."""
    return query_pending_index(_table(), cutoff, limit)


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
    return decode(item) if item else None


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


def last_created_at(connection_id: str) -> str | None:
    """When the connection's newest invoice was stored (ids are time-ordered UUIDv7s: one item,
    newest first), or None: what GET /connections reports as the connection's last use."""
    try:
        response = dynamodb().query(
            TableName=_table(),
            KeyConditionExpression="connection_id = :c",
            ExpressionAttributeValues=to_values({":c": connection_id}),
            ProjectionExpression="created_at",
            ScanIndexForward=False,
            Limit=1,
        )
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
    items = response.get("Items") or []
    return str(from_item(items[0])["created_at"]) if items else None
