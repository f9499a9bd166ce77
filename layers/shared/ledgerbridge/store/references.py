"""Synced provider records that invoices point at (contacts, items, accounts, tracking).

    CONNECTION#<conn_id>   REF#<kind>#<uuid>   remote_id, name, fields, remote_data_z, created_at, modified_at

    CONNECTION#<conn_id>   REMOTE#<kind>#<remote id>   id (the Ledgerbridge id a created record keeps)

The uuid is UUIDv5 of (connection, kind, remote id), so a re-sync updates the same item and
ids handed to users stay valid. Listing one kind is one Query on the sort-key prefix.

A record created through Ledgerbridge (a contact, store/contacts.py) has a UUIDv7 instead,
minted before the ledger answered; its REMOTE# item, written when it settles, tells the
sync to keep that id for that remote id (``known_ids``) instead of minting a UUIDv5 twin.
Such a record also carries ``sync_status`` (and ``sync_error``), and has no remote_id or
remote data until the ledger has it.
"""

from __future__ import annotations

from typing import Any

from ledgerbridge.config import settings
from ledgerbridge.provider_types import RemoteReference
from ledgerbridge.store.dynamo import (
    STORAGE_ERRORS,
    dynamodb,
    from_item,
    pack_json,
    query_page,
    storage_unavailable,
    to_values,
    unpack_json,
)

BATCH_GET_LIMIT = 100


def _table() -> str:
    return settings().accounts_table


def _key(connection_id: str, kind: str, reference_id: str) -> dict[str, Any]:
    return to_values({"pk": f"CONNECTION#{connection_id}", "sk": f"REF#{kind}#{reference_id}"})


def remote_key(connection_id: str, kind: str, remote_id: str) -> dict[str, Any]:
    return to_values({"pk": f"CONNECTION#{connection_id}", "sk": f"REMOTE#{kind}#{remote_id}"})


def known_ids(connection_id: str) -> dict[tuple[str, str], str]:
    """(kind, remote id) -> Ledgerbridge id of every record created through Ledgerbridge."""
    request: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": to_values({":pk": f"CONNECTION#{connection_id}", ":prefix": "REMOTE#"}),
    }
    known: dict[tuple[str, str], str] = {}
    while True:
        try:
            response = dynamodb().query(**request)
        except STORAGE_ERRORS as exc:
            raise storage_unavailable() from exc
        for item in response["Items"]:
            record = from_item(item)
            _, kind, remote_id = record["sk"].split("#", 2)
            known[(kind, remote_id)] = record["id"]
        if "LastEvaluatedKey" not in response:
            return known
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def put(connection_id: str, reference_id: str, reference: RemoteReference, synced_at: str) -> None:
    """Upsert, keeping the first sync's created_at."""
    values = {
        ":remote_id": reference.remote_id,
        ":name": reference.name,
        ":fields": reference.fields,
        ":now": synced_at,
        ":data": pack_json(reference.remote_data),
    }
    dynamodb().update_item(
        TableName=_table(),
        Key=_key(connection_id, reference.kind, reference_id),
        UpdateExpression="SET remote_id = :remote_id, #name = :name, #fields = :fields,"
        " remote_data_z = :data, modified_at = :now, created_at = if_not_exists(created_at, :now)",
        ExpressionAttributeNames={"#name": "name", "#fields": "fields"},
        ExpressionAttributeValues=to_values(values),
    )


def unpack(record: dict[str, Any]) -> dict[str, Any]:
    """A stored item as the service reads it: kind and id split out, remote_data inflated."""
    _, record["kind"], record["id"] = record.pop("sk").split("#", 2)
    record.pop("pk")
    packed = record.pop("remote_data_z", None)  # a created record has none until it settles
    record["remote_data"] = unpack_json(packed) if packed else None
    return record


def get_many(connection_id: str, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Records for (kind, uuid) pairs of one connection; unknown pairs are absent."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), BATCH_GET_LIMIT):
        batch = unique[start : start + BATCH_GET_LIMIT]
        pending = {_table(): {"Keys": [_key(connection_id, kind, ref) for kind, ref in batch]}}
        while pending:
            try:
                response = dynamodb().batch_get_item(RequestItems=pending)
            except STORAGE_ERRORS as exc:
                raise storage_unavailable() from exc
            for item in response["Responses"].get(_table(), []):
                record = unpack(from_item(item))
                found[(record["kind"], record["id"])] = record
            pending = response.get("UnprocessedKeys") or {}
    return found


def page(
    connection_id: str, kind: str, limit: int, after_id: str | None
) -> tuple[list[dict[str, Any]], bool]:
    """One kind's records in id order, after ``after_id``."""
    request: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": to_values(
            {":pk": f"CONNECTION#{connection_id}", ":prefix": f"REF#{kind}#"}
        ),
    }
    if after_id:
        request["ExclusiveStartKey"] = _key(connection_id, kind, after_id)
    try:
        records, has_more = query_page(request, limit)
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
    return [unpack(record) for record in records], has_more
