"""The accounts table: projects, API keys, connections, tokens and synced references.

Single-table layout (pk / sk):

    PROJECT#<project_id>      PROJECT                 name, return_urls (connect)
    PROJECT#<project_id>      APIKEY#<key_id>         key_hash, revoked_at
    PROJECT#<project_id>      CONNECTION#<conn_id>    provider, settings, credentials (KMS blob)
    APIKEY#<sha256>           APIKEY                  project_id, key_id, revoked_at
    CONNTOKEN#<sha256>        CONNTOKEN               project_id, connection_id
    CONNECTION#<conn_id>      REF#<kind>#<uuid>       synced references (store/references.py)

Keys and tokens exist only as SHA-256 hashes: the lookup item is keyed by the hash, so
authentication is a GetItem and nothing stored can be replayed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ledgerbridge.config import settings
from ledgerbridge.store.dynamo import (
    STORAGE_ERRORS,
    conditional_write,
    dynamodb,
    from_item,
    put_new_items,
    storage_unavailable,
    to_values,
)


def _table() -> str:
    return settings().accounts_table


def _get(pk: str, sk: str) -> dict[str, Any] | None:
    try:
        response = dynamodb().get_item(TableName=_table(), Key=to_values({"pk": pk, "sk": sk}))
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
    item = response.get("Item")
    return from_item(item) if item else None


def _put_all(records: list[dict[str, Any]]) -> None:
    put_new_items(_table(), records)


def _query(pk: str, sk_prefix: str) -> list[dict[str, Any]]:
    request: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": to_values({":pk": pk, ":prefix": sk_prefix}),
    }
    records: list[dict[str, Any]] = []
    while True:
        response = dynamodb().query(**request)
        records.extend(from_item(item) for item in response["Items"])
        if "LastEvaluatedKey" not in response:
            return records
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


# --- projects and keys --------------------------------------------------------------------


def put_project(project_id: str, name: str, created_at: str) -> None:
    _put_all([{"pk": f"PROJECT#{project_id}", "sk": "PROJECT", "name": name, "created_at": created_at}])


def get_project(project_id: str) -> dict[str, Any] | None:
    return _get(f"PROJECT#{project_id}", "PROJECT")


def set_return_urls(project_id: str, return_urls: list[str]) -> None:
    """The connect return URLs a project registered (replacing the previous list)."""
    try:
        dynamodb().update_item(
            TableName=_table(),
            Key=to_values({"pk": f"PROJECT#{project_id}", "sk": "PROJECT"}),
            UpdateExpression="SET return_urls = :urls",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_values({":urls": return_urls}),
        )
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc


def put_api_key(project_id: str, key_id: str, key_hash: str, created_at: str) -> None:
    common = {"project_id": project_id, "key_id": key_id, "created_at": created_at}
    _put_all(
        [
            {"pk": f"APIKEY#{key_hash}", "sk": "APIKEY", **common},
            {"pk": f"PROJECT#{project_id}", "sk": f"APIKEY#{key_id}", "key_hash": key_hash, **common},
        ]
    )


def find_api_key(key_hash: str) -> dict[str, Any] | None:
    return _get(f"APIKEY#{key_hash}", "APIKEY")


def _scan_by_sort_key(sort_key: str) -> Iterator[dict[str, Any]]:
    """Admin-only listings; never on the request path."""
    request: dict[str, Any] = {
        "TableName": _table(),
        "FilterExpression": "sk = :sk",
        "ExpressionAttributeValues": to_values({":sk": sort_key}),
    }
    while True:
        response = dynamodb().scan(**request)
        yield from (from_item(item) for item in response["Items"])
        if "LastEvaluatedKey" not in response:
            return
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def find_api_key_by_id(key_id: str) -> dict[str, Any] | None:
    return next(_scan_by_sort_key(f"APIKEY#{key_id}"), None)


def revoke_api_key(project_id: str, key_id: str, key_hash: str, revoked_at: str) -> None:
    """Mark both the lookup item and the project's listing item revoked, together."""
    update = {
        "UpdateExpression": "SET revoked_at = :at",
        "ExpressionAttributeValues": to_values({":at": revoked_at}),
        "ConditionExpression": "attribute_exists(pk)",
    }
    keys = [("APIKEY#" + key_hash, "APIKEY"), (f"PROJECT#{project_id}", f"APIKEY#{key_id}")]
    dynamodb().transact_write_items(
        TransactItems=[
            {"Update": {"TableName": _table(), "Key": to_values({"pk": pk, "sk": sk}), **update}}
            for pk, sk in keys
        ]
    )


# --- connections --------------------------------------------------------------------------


def put_connection(connection: dict[str, Any], token_hash: str) -> None:
    """Store a connection and the hash of its token in one transaction."""
    project_id, connection_id = connection["project_id"], connection["connection_id"]
    _put_all(
        [
            {"pk": f"PROJECT#{project_id}", "sk": f"CONNECTION#{connection_id}", **connection},
            {
                "pk": f"CONNTOKEN#{token_hash}",
                "sk": "CONNTOKEN",
                "project_id": project_id,
                "connection_id": connection_id,
            },
        ]
    )


def find_connection_token(token_hash: str) -> dict[str, Any] | None:
    return _get(f"CONNTOKEN#{token_hash}", "CONNTOKEN")


def get_connection(project_id: str, connection_id: str) -> dict[str, Any] | None:
    return _get(f"PROJECT#{project_id}", f"CONNECTION#{connection_id}")


def list_connections(project_id: str) -> list[dict[str, Any]]:
    return _query(f"PROJECT#{project_id}", "CONNECTION#")


def list_projects() -> list[dict[str, Any]]:
    return list(_scan_by_sort_key("PROJECT"))


def mark_connection_deleted(project_id: str, connection_id: str, deleted_at: str) -> bool:
    """Deleted: its credentials gone, its token refused from now on (auth checks the status);
    False if there was no such connection. Its invoices stay where they are."""
    marked = conditional_write(
        "update_item",
        TableName=_table(),
        Key=to_values({"pk": f"PROJECT#{project_id}", "sk": f"CONNECTION#{connection_id}"}),
        UpdateExpression="SET #status = :deleted, deleted_at = :at REMOVE credentials",
        ConditionExpression="attribute_exists(pk)",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues=to_values({":deleted": "deleted", ":at": deleted_at}),
    )
    return marked is not None
