"""Webhook events, read from the invoices and accounts tables' DynamoDB Streams.

Each stream record is one committed write; ``events_from_record`` says which state change, if
any, it is, and ``fan_out`` hands each event to the project's subscribed endpoints.

Decisions:

- Events come from the streams, not from the code that writes. Every writer (the API, the
  retry function, the sweeper, the connect flow, the admin CLI) is covered without knowing of
  webhooks, and an event exists exactly when its write was committed: one sent from the
  request path would be lost when the Lambda dies after the write, and sent twice when a
  retry repeats it.
- A state change is read from the old and the new image together, never from one image, so a
  write that changes nothing a receiver cares about emits nothing: a retry or the sweeper
  noting a settled record, a references re-sync, a refreshed token. Each change is one event:
      invoice.synced / invoice.failed        sync_status pending -> synced / failed
      invoice.pending                        retry_queued_at appears on a pending invoice: the
                                             ledger did not answer in time (or the caller asked
                                             ``respond-async``) and a retry is queued. An invoice
                                             the ledger takes at once only gets invoice.synced.
      contact.synced / contact.failed        a created contact's sync_status pending -> ...
      connection.created                     a connection item is inserted
      connection.needs_reauthorization       its status becomes needs_reauthorization
      connection.deleted                     its status becomes deleted
      connect_session.completed / .failed    a session's status pending -> connected / failed
- Ids are derived from the stream record: ``derived_uuid7(record time, "<eventID>/<type>")``.
  A batch that is retried (a Lambda error, a crash) makes the same events, hence the same
  deliveries (their ids derive from the event's), and a receiver sees the same
  ``webhook-id``. ``created_at`` is the record's time too, so a replay also makes the same
  body.
- ``data`` is what the API's GET of the object answers, made by the same view functions
  (``service.to_invoice``, ``contacts.to_contact``, ``connect.connection_view``,
  ``connect.session_view``) without ``remote_data`` (the ledger's own record: large, and
  fetched with ``?remote_data=true``). Nothing secret is in those views: no credentials, and a
  session's connection token only ever through GET /connect/sessions/{id}.
- Lambda hands images over as JSON, binary values base64-encoded; they are turned back into
  what boto3 reads (bytes) and decoded by the stores' own decoders. An invoice's remote data
  is left out before decoding (no S3 read for what is not sent); line items offloaded to S3
  are read, as the GET reads them. The classification reads the few attributes it needs from
  the raw image, so the many records that are no state change decode nothing.
- Which table a record comes from: the table name in its ``eventSourceARN`` compared with the
  configured table names. Records of any other table make no event.
- A project's endpoints are read once per stream batch (the events function hands ``fan_out``
  one ``listed`` dict per invocation), not once per event: a batch of a busy project's writes
  is one Query, not up to a hundred (BatchSize 100). An endpoint created, changed or removed
  while a batch is being fanned out is seen from the next batch on (the function's 60 s
  timeout bounds how long that is); nothing is kept across invocations, so a retried batch
  reads afresh too.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ledgerbridge import connect, contacts, service
from ledgerbridge.config import settings
from ledgerbridge.ids import derived_uuid7
from ledgerbridge.models import format_date_time
from ledgerbridge.observability import logger
from ledgerbridge.store import invoices, references
from ledgerbridge.store import webhooks as store
from ledgerbridge.store.contacts import KIND as CONTACT
from ledgerbridge.store.credentials import NEEDS_REAUTHORIZATION
from ledgerbridge.store.dynamo import from_item
from ledgerbridge.webhooks.dispatch import dispatch

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_REMOTE_DATA = ("remote_data_z", "remote_data_s3")  # never sent: left out before decoding

Image = dict[str, Any]  # DynamoDB JSON as Lambda passes it (binary values base64 text)


@dataclass(frozen=True)
class _Change:
    type: str
    project_id: str
    connection_id: str | None
    data: dict[str, Any]


def events_from_record(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The webhook events one stream record (as Lambda passes it) stands for: none, or one."""
    stream = record.get("dynamodb") or {}
    old, new = stream.get("OldImage") or None, stream.get("NewImage") or None
    if new is None:  # a removal (TTL, a deleted state): no state change a receiver is told of
        return []
    table = _table_name(record.get("eventSourceARN") or "")
    classify: Callable[[Image | None, Image], list[_Change]] | None = {
        settings().invoices_table: _invoice_changes,
        settings().accounts_table: _account_changes,
    }.get(table)
    if classify is None:
        return []
    changes = classify(old, new)
    if not changes:
        return []
    unix_ms = _unix_ms(stream["ApproximateCreationDateTime"])
    created_at = format_date_time(_EPOCH + timedelta(milliseconds=unix_ms))
    return [
        {
            "id": derived_uuid7(unix_ms, f"{record['eventID']}/{change.type}"),
            "type": change.type,
            "created_at": created_at,
            "project_id": change.project_id,
            "connection_id": change.connection_id,
            "data": change.data,
        }
        for change in changes
    ]


def fan_out(record: dict[str, Any], listed: dict[str, list[dict[str, Any]]] | None = None) -> int:
    """Store and queue a delivery of each of the record's events to every endpoint subscribed to
    it; how many deliveries. An event no endpoint asked for is not stored at all. ``listed``: the
    endpoints already read in this batch, by project (``store.subscribed_endpoints``)."""
    count = 0
    for event in events_from_record(record):
        endpoints = store.subscribed_endpoints(event["project_id"], event["type"], listed)
        if endpoints:
            count += len(dispatch(event, endpoints))
        logger.info(
            "webhook event",
            extra={"event_id": event["id"], "event_type": event["type"], "deliveries": len(endpoints)},
        )
    return count


# --- the invoices table ---------------------------------------------------------------------------


def _invoice_changes(old: Image | None, new: Image) -> list[_Change]:
    was, now = _text(old, "sync_status"), _text(new, "sync_status")
    if was == "pending" and now in ("synced", "failed"):
        event_type = f"invoice.{now}"
    elif now == "pending" and _text(new, "retry_queued_at") and not _text(old, "retry_queued_at"):
        event_type = "invoice.pending"
    else:
        return []
    record = invoices.decode(_decodable(new, _REMOTE_DATA))
    data = _view(service.to_invoice(record, include_remote_data=False).model_dump())
    return [_Change(event_type, record["project_id"], record["connection_id"], data)]


# --- the accounts table ---------------------------------------------------------------------------


def _account_changes(old: Image | None, new: Image) -> list[_Change]:
    pk, sk = _text(new, "pk") or "", _text(new, "sk") or ""
    if pk.startswith("CONNECTION#") and sk.startswith(f"REF#{CONTACT}#"):
        return _contact_changes(old, new, pk.removeprefix("CONNECTION#"))
    if pk.startswith("PROJECT#") and sk.startswith("CONNECTION#"):
        return _connection_changes(old, new, pk.removeprefix("PROJECT#"))
    if pk.startswith("PROJECT#") and sk.startswith("CONNECT#"):
        return _session_changes(old, new, pk.removeprefix("PROJECT#"))
    return []


def _contact_changes(old: Image | None, new: Image, connection_id: str) -> list[_Change]:
    was, now = _text(old, "sync_status"), _text(new, "sync_status")
    if was != "pending" or now not in ("synced", "failed"):
        return []
    record = references.unpack(from_item(_decodable(new, _REMOTE_DATA)))
    data = _view(contacts.to_contact(record, include_remote_data=False).model_dump())
    return [_Change(f"contact.{now}", record["project_id"], connection_id, data)]


def _connection_changes(old: Image | None, new: Image, project_id: str) -> list[_Change]:
    was, now = _text(old, "status"), _text(new, "status")
    if old is None:
        event_type = "connection.created"
    elif now == NEEDS_REAUTHORIZATION and was != NEEDS_REAUTHORIZATION:
        event_type = "connection.needs_reauthorization"
    elif now == "deleted" and was != "deleted":
        event_type = "connection.deleted"
    else:
        return []
    view = connect.connection_view(from_item(_decodable(new)))
    return [_Change(event_type, project_id, view["id"], view)]


def _session_changes(old: Image | None, new: Image, project_id: str) -> list[_Change]:
    was, now = _text(old, "status"), _text(new, "status")
    if was != "pending" or now not in ("connected", "failed"):
        return []
    session = from_item(_decodable(new))
    event_type = "connect_session.completed" if now == "connected" else "connect_session.failed"
    # The connection the session made or reconnected (for a failed reconnect: the one it was for).
    return [_Change(event_type, project_id, session.get("connection_id"), connect.session_view(session))]


# --- reading stream records -----------------------------------------------------------------------


def _table_name(stream_arn: str) -> str:
    """arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label> -> <name>."""
    resource = stream_arn.split(":", 5)[-1]
    parts = resource.split("/")
    return parts[1] if len(parts) > 1 and parts[0] == "table" else ""


def _unix_ms(value: Any) -> int:
    """ApproximateCreationDateTime: epoch seconds in a Lambda event (a datetime when read with
    boto3's dynamodbstreams client)."""
    if isinstance(value, datetime):
        return (value - _EPOCH) // timedelta(milliseconds=1)
    return int(Decimal(str(value)) * 1000)


def _decodable(image: Image, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """The image as boto3 would read the item (binary as bytes), for the stores' decoders."""
    return {name: _binary_as_bytes(value) for name, value in image.items() if name not in leave_out}


def _binary_as_bytes(value: dict[str, Any]) -> dict[str, Any]:
    """One attribute value with base64 text (how Lambda's JSON carries binary) made bytes."""
    [(kind, inner)] = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner) if isinstance(inner, str) else inner}
    if kind == "BS":
        return {"BS": [base64.b64decode(item) if isinstance(item, str) else item for item in inner]}
    if kind == "M":
        return {"M": {name: _binary_as_bytes(item) for name, item in inner.items()}}
    if kind == "L":
        return {"L": [_binary_as_bytes(item) for item in inner]}
    return value


def _text(image: Image | None, name: str) -> str | None:
    """A string attribute read straight from the raw image (None when absent or not a string)."""
    return (image or {}).get(name, {}).get("S")


def _view(dumped: dict[str, Any]) -> dict[str, Any]:
    """The API's answer for the object, without ``remote_data``."""
    dumped.pop("remote_data", None)
    return dumped
