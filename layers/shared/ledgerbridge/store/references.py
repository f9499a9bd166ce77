"""Synced provider records that invoices point at (contacts, items, accounts, tracking).

    CONNECTION#<conn_id>   REF#<kind>#<uuid>   remote_id, name, fields_json, remote_data_z,
                                               created_at, modified_at

    CONNECTION#<conn_id>   REMOTE#<kind>#<remote id>   id (the Ledgerbridge id a created record keeps)

The uuid is UUIDv5 of (connection, kind, remote id), so a re-sync updates the same item and
ids handed to users stay valid. Listing one kind is one Query on the sort-key prefix.

A record created through Ledgerbridge (a contact, store/contacts.py) has a UUIDv7 instead,
minted before the ledger answered; its REMOTE# item, written when it settles, tells the
sync to keep that id for that remote id (``known_ids``) instead of minting a UUIDv5 twin.
Such a record also carries ``sync_status`` (and ``sync_error``), and has no remote_id or
remote data until the ledger has it.

A record's unified fields (an item's ``unit_price``, a contact's addresses) are one JSON
string, ``fields_json``, as a created contact's custom fields are (``field_mappings_json``):
DynamoDB trims a Number's trailing zeros (an item's ``99.00`` came back ``99`` on AWS, and
stayed ``99.00`` in moto), JSON keeps the digits the ledger or the caller sent. Items written
before with a ``fields`` map still read (``unpack``); the next write replaces it.
"""

from __future__ import annotations

from typing import Any

from ledgerbridge import jsonutil
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
        ":fields": jsonutil.dumps(reference.fields),
        ":now": synced_at,
        ":data": pack_json(reference.remote_data),
    }
    dynamodb().update_item(
        TableName=_table(),
        Key=_key(connection_id, reference.kind, reference_id),
        UpdateExpression="SET remote_id = :remote_id, #name = :name, fields_json = :fields,"
        " remote_data_z = :data, modified_at = :now, created_at = if_not_exists(created_at, :now)"
        " REMOVE #fields",
        ExpressionAttributeNames={"#name": "name", "#fields": "fields"},
        ExpressionAttributeValues=to_values(values),
    )


def stored_json(record: dict[str, Any], *names: str) -> dict[str, Any]:
    """``record`` with each of ``names`` (when not None) as the ``<name>_json`` string it is kept
    as (the module docstring says why)."""
    kept = {name: record[name] for name in names if record.get(name) is not None}
    rest = {key: value for key, value in record.items() if key not in names}
    return {**rest, **{f"{name}_json": jsonutil.dumps(value) for name, value in kept.items()}}


def unpack(record: dict[str, Any]) -> dict[str, Any]:
    """A stored item as the service reads it: kind and id split out, remote_data inflated, JSON
    fields parsed (or read as the maps items written before hold)."""
    _, record["kind"], record["id"] = record.pop("sk").split("#", 2)
    record.pop("pk")
    packed = record.pop("remote_data_z", None)  # a created record has none until it settles
    record["remote_data"] = unpack_json(packed) if packed else None
    for name in ("fields", "field_mappings"):
        if f"{name}_json" in record:
            record[name] = jsonutil.loads(record.pop(f"{name}_json"))
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
