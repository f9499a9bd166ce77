"""Contacts created through Ledgerbridge: reference records of kind ``contact`` with a state.

    CONNECTION#<conn_id>   REF#contact#<uuid7>          name, fields_json, sync_status, sync_error,
                                                        project_id, field_mappings_json, pending,
                                                        retry_queued_at, ...
    CONNECTION#<conn_id>   REMOTE#contact#<remote id>   id

The contact lives where synced contacts live (store/references.py), so ``resolve_references``
and ``GET /accounting/contacts`` see it from its first write. Its id is a UUIDv7 minted
before the ledger is called (it is the ledger's idempotency key), so it cannot be the
UUIDv5 a sync would derive from the remote id: settling writes the REMOTE# item in the same
transaction as the settled record, and the sync keeps the id it names. Settling, failing
and noting an attempt are conditional on ``sync_status = pending``, as for invoices.

A pending contact carries ``pending = P``, removed when it settles or fails: the accounts
table's sparse PendingIndex (pending, created_at) then holds only pending contacts, so the
sweeper finds the ones a crashed Lambda left behind with one Query, never a scan of the
table (which holds every synced reference of every connection). It projects
``project_id`` (stored on the contact for the retry message) and ``retry_queued_at``. The
index costs a write only when a contact enters or leaves pending, and nothing for the other
items of the table, which never carry ``pending``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from botocore.exceptions import ClientError

from ledgerbridge.config import settings
from ledgerbridge.provider_types import RemoteReference
from ledgerbridge.store import references
from ledgerbridge.store.dynamo import (
    PENDING_KEY,
    PENDING_VALUE,
    STORAGE_ERRORS,
    dynamodb,
    from_item,
    is_condition_failure,
    pack_json,
    query_pending_index,
    storage_unavailable,
    to_item,
    to_values,
)

KIND = "contact"


class ContactConflict(Exception):
    """The contact is no longer pending (settled or failed by another writer)."""


def _table() -> str:
    return settings().accounts_table


def _key(connection_id: str, contact_id: str) -> dict[str, Any]:
    return to_values({"pk": f"CONNECTION#{connection_id}", "sk": f"REF#{KIND}#{contact_id}"})


def create_pending(
    project_id: str,
    connection_id: str,
    contact_id: str,
    name: str | None,
    fields: dict,
    now: str,
    field_mappings: dict | None = None,
) -> None:
    """The first write: the contact exists (pending, in the sweeper's index) before the ledger sees it.

    ``field_mappings`` (the caller's custom fields) are kept beside ``fields`` for a retry's resend.
    """
    item = {
        "pk": f"CONNECTION#{connection_id}",
        "sk": f"REF#{KIND}#{contact_id}",
        "project_id": project_id,
        "name": name,
        "fields": fields,
        "sync_status": "pending",
        PENDING_KEY: PENDING_VALUE,
        "created_at": now,
        "modified_at": now,
        "field_mappings": field_mappings or None,
    }
    try:
        dynamodb().put_item(
            TableName=_table(),
            Item=to_item(references.stored_json(item, "fields", "field_mappings")),
            ConditionExpression="attribute_not_exists(pk)",
        )
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc


def _update_pending(
    connection_id: str, contact_id: str, sets: dict[str, Any], removes: tuple[str, ...]
) -> dict:
    names = {f"#f{i}": key for i, key in enumerate([*sets, *removes])}
    assigns = [f"#f{i} = :v{i}" for i in range(len(sets))]
    expression = "SET " + ", ".join(assigns)
    if removes:
        expression += " REMOVE " + ", ".join(f"#f{len(sets) + i}" for i in range(len(removes)))
    values = {f":v{i}": value for i, value in enumerate(sets.values())}
    return {
        "TableName": _table(),
        "Key": _key(connection_id, contact_id),
        "UpdateExpression": expression,
        "ConditionExpression": "sync_status = :pending",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": to_values({**values, ":pending": "pending"}),
    }


def _update(connection_id: str, contact_id: str, sets: dict[str, Any], removes: tuple[str, ...] = ()) -> dict:
    try:
        response = dynamodb().update_item(
            **_update_pending(connection_id, contact_id, sets, removes), ReturnValues="ALL_NEW"
        )
    except ClientError as exc:
        if is_condition_failure(exc):
            raise ContactConflict(contact_id) from exc
        raise storage_unavailable() from exc
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
    return references.unpack(from_item(response["Attributes"]))


def settle(connection_id: str, contact_id: str, remote: RemoteReference, fields: dict, now: str) -> dict:
    """pending -> synced with the ledger's id and record, and the REMOTE# item the sync honours."""
    sets = references.stored_json(
        {
            "remote_id": remote.remote_id,
            "name": remote.name,
            "fields": fields,
            "remote_data_z": pack_json(remote.remote_data),
            "sync_status": "synced",
            "modified_at": now,
        },
        "fields",
    )
    lookup = {**references.remote_key(connection_id, KIND, remote.remote_id), **to_values({"id": contact_id})}
    try:
        dynamodb().transact_write_items(
            TransactItems=[
                {
                    "Update": _update_pending(
                        connection_id, contact_id, sets, ("sync_error", PENDING_KEY, "fields")
                    )
                },
                {"Put": {"TableName": _table(), "Item": lookup}},
            ]
        )
    except ClientError as exc:
        reasons = [reason.get("Code") for reason in exc.response.get("CancellationReasons") or []]
        if reasons[:1] == ["ConditionalCheckFailed"]:
            raise ContactConflict(contact_id) from exc
        raise storage_unavailable() from exc
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
    record = get(connection_id, contact_id)
    if record is None:
        raise storage_unavailable()
    return record


def mark_failed(
    connection_id: str, contact_id: str, reason: str, now: str, create_answer: dict | None = None
) -> dict:
    """pending -> failed, keeping the ledger's (redacted) reason (and out of the sweeper's index),
    and the error its create request answered (``{"status", "body"}``) when that request fails it."""
    sets = {"sync_status": "failed", "sync_error": reason, "modified_at": now}
    if create_answer is not None:
        sets["create_answer"] = create_answer
    return _update(connection_id, contact_id, sets, (PENDING_KEY,))


def record_attempt_error(connection_id: str, contact_id: str, reason: str, now: str) -> dict:
    """Keep a pending contact pending, noting why the ledger did not answer."""
    return _update(connection_id, contact_id, {"sync_error": reason, "modified_at": now})


def note_retry_queued(connection_id: str, contact_id: str, queued_at: str) -> None:
    """Remember that a retry message is on its way (the sweeper leaves such contacts alone)."""
    with contextlib.suppress(ContactConflict):  # settled meanwhile: nothing left to note
        _update(connection_id, contact_id, {"retry_queued_at": queued_at})


def pending_since(cutoff: str, limit: int = 500) -> list[dict[str, Any]]:
    """Pending contacts created before ``cutoff``: id, connection_id, project_id, retry_queued_at."""
    return [
        {
            "id": item["sk"].removeprefix(f"REF#{KIND}#"),
            "connection_id": item["pk"].removeprefix("CONNECTION#"),
            "project_id": item.get("project_id"),
            "retry_queued_at": item.get("retry_queued_at"),
        }
        for item in query_pending_index(_table(), cutoff, limit)
    ]


def get(connection_id: str, contact_id: str) -> dict[str, Any] | None:
    try:
        response = dynamodb().get_item(
            TableName=_table(), Key=_key(connection_id, contact_id), ConsistentRead=True
        )
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
    item = response.get("Item")
    return references.unpack(from_item(item)) if item else None
