"""Contacts created through Ledgerbridge: reference records of kind ``contact`` with a state.

    CONNECTION#<conn_id>   REF#contact#<uuid7>          name, fields, sync_status, sync_error, ...
    CONNECTION#<conn_id>   REMOTE#contact#<remote id>   id

The contact lives where synced contacts live (store/references.py), so ``resolve_references``
and ``GET /accounting/contacts`` see it from its first write. Its id is a UUIDv7 minted
before the ledger is called (it is the ledger's idempotency key), so it cannot be the
UUIDv5 a sync would derive from the remote id: settling writes the REMOTE# item in the same
transaction as the settled record, and the sync keeps the id it names. Settling, failing
and noting an attempt are conditional on ``sync_status = pending``, as for invoices.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from ledgerbridge.config import settings
from ledgerbridge.provider_types import RemoteReference
from ledgerbridge.store import references
from ledgerbridge.store.dynamo import (
    STORAGE_ERRORS,
    dynamodb,
    from_item,
    is_condition_failure,
    pack_json,
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


def create_pending(connection_id: str, contact_id: str, name: str | None, fields: dict, now: str) -> None:
    """The first write: the contact exists (pending) before the ledger sees it."""
    item = {
        "pk": f"CONNECTION#{connection_id}",
        "sk": f"REF#{KIND}#{contact_id}",
        "name": name,
        "fields": fields,
        "sync_status": "pending",
        "created_at": now,
        "modified_at": now,
    }
    try:
        dynamodb().put_item(
            TableName=_table(), Item=to_item(item), ConditionExpression="attribute_not_exists(pk)"
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
    sets = {
        "remote_id": remote.remote_id,
        "name": remote.name,
        "fields": fields,
        "remote_data_z": pack_json(remote.remote_data),
        "sync_status": "synced",
        "modified_at": now,
    }
    lookup = {**references.remote_key(connection_id, KIND, remote.remote_id), **to_values({"id": contact_id})}
    try:
        dynamodb().transact_write_items(
            TransactItems=[
                {"Update": _update_pending(connection_id, contact_id, sets, ("sync_error",))},
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


def mark_failed(connection_id: str, contact_id: str, reason: str, now: str) -> dict:
    """pending -> failed, keeping the ledger's (redacted) reason."""
    return _update(
        connection_id, contact_id, {"sync_status": "failed", "sync_error": reason, "modified_at": now}
    )


def record_attempt_error(connection_id: str, contact_id: str, reason: str, now: str) -> dict:
    """Keep a pending contact pending, noting why the ledger did not answer."""
    return _update(connection_id, contact_id, {"sync_error": reason, "modified_at": now})


def get(connection_id: str, contact_id: str) -> dict[str, Any] | None:
    try:
        response = dynamodb().get_item(
            TableName=_table(), Key=_key(connection_id, contact_id), ConsistentRead=True
        )
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
    item = response.get("Item")
    return references.unpack(from_item(item)) if item else None
