"""Connect sessions and their OAuth ``state`` values, in the accounts table.

    PROJECT#<project_id>      CONNECT#<session_id>   end_user, providers, return_url, connection_id,
                                                     status, error, provider, expires_at, ttl,
                                                     token_blob (the new connection's token, KMS)
    CONNECTURL#<sha256>       CONNECTURL             project_id, session_id, expires_at, ttl
    CONNECTSTATE#<sha256>     CONNECTSTATE           project_id, session_id, provider, settings,
                                                     code_verifier, expires_at, ttl

Only hashes of the page token and of ``state`` are keys, as for API keys: nothing stored
opens a page or completes a consent. A ``state`` is taken with a conditional delete, so it
completes at most one callback however often the provider's redirect is replayed. The
connection token a completed session reveals is stored KMS-encrypted and only until the
session expires; DynamoDB's TTL then removes the item (``ttl``, epoch seconds), and the reads
here refuse what has expired even before TTL catches up. TTL may take a day or two, so a
session holding a token also carries ``pending = T`` (the accounts table's sparse
PendingIndex): the sweeper finds those past their expiry and removes the token at once.
"""

from __future__ import annotations

import time
from typing import Any

from ledgerbridge.config import settings
from ledgerbridge.store.dynamo import (
    STORAGE_ERRORS,
    conditional_write,
    dynamodb,
    from_item,
    put_new_items,
    query_pending_index,
    storage_unavailable,
    to_values,
)


def _table() -> str:
    return settings().accounts_table


def _session_key(project_id: str, session_id: str) -> dict[str, Any]:
    return to_values({"pk": f"PROJECT#{project_id}", "sk": f"CONNECT#{session_id}"})


def put_session(session: dict[str, Any], url_token_hash: str) -> None:
    """The session and its page token's lookup item, written together."""
    expires_at = session["expires_at"]
    put_new_items(
        _table(),
        [
            {"pk": f"PROJECT#{session['project_id']}", "sk": f"CONNECT#{session['session_id']}",
             **session, "ttl": int(expires_at)},
            {"pk": f"CONNECTURL#{url_token_hash}", "sk": "CONNECTURL", "project_id": session["project_id"],
             "session_id": session["session_id"], "expires_at": expires_at, "ttl": int(expires_at)},
        ],
    )  # fmt: skip


def get_session(project_id: str, session_id: str) -> dict[str, Any] | None:
    try:
        response = dynamodb().get_item(
            TableName=_table(), Key=_session_key(project_id, session_id), ConsistentRead=True
        )
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
    item = response.get("Item")
    return from_item(item) if item else None


def find_session_by_url_token(url_token_hash: str) -> dict[str, Any] | None:
    """The session a page token opens, or None (unknown or expired)."""
    try:
        response = dynamodb().get_item(
            TableName=_table(), Key=to_values({"pk": f"CONNECTURL#{url_token_hash}", "sk": "CONNECTURL"})
        )
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
    item = response.get("Item")
    pointer = from_item(item) if item else None
    if pointer is None or pointer["expires_at"] <= time.time():
        return None
    return get_session(pointer["project_id"], pointer["session_id"])


def finish_session(project_id: str, session_id: str, changes: dict[str, Any]) -> bool:
    """Settle a pending session (connected or failed); False if it was settled already."""
    names = {f"#f{i}": name for i, name in enumerate(changes)}
    values = {f":v{i}": value for i, value in enumerate(changes.values())}
    assignments = ", ".join(f"{name} = {value}" for name, value in zip(names, values, strict=True))
    settled = conditional_write(
        "update_item",
        TableName=_table(),
        Key=_session_key(project_id, session_id),
        UpdateExpression=f"SET {assignments}",
        ConditionExpression="#status = :pending",
        ExpressionAttributeNames={**names, "#status": "status"},
        ExpressionAttributeValues=to_values({**values, ":pending": "pending"}),
    )
    return settled is not None


def put_state(state_hash: str, record: dict[str, Any]) -> None:
    put_new_items(
        _table(),
        [
            {
                "pk": f"CONNECTSTATE#{state_hash}",
                "sk": "CONNECTSTATE",
                **record,
                "ttl": int(record["expires_at"]),
            }
        ],
    )


def take_state(state_hash: str) -> dict[str, Any] | None:
    """The ``state``'s record, deleted in the same call: a second take (a replay) finds None."""
    response = conditional_write(
        "delete_item",
        TableName=_table(),
        Key=to_values({"pk": f"CONNECTSTATE#{state_hash}", "sk": "CONNECTSTATE"}),
        ConditionExpression="attribute_exists(pk)",
        ReturnValues="ALL_OLD",
    )
    if response is None:
        return None
    record = from_item(response["Attributes"])
    return record if record["expires_at"] > time.time() else None


TOKEN_HELD = "T"  # the PendingIndex partition of sessions whose token is still stored


def sessions_holding_tokens(created_before: str, limit: int = 500) -> list[dict[str, Any]]:
    """Sessions created before ``created_before`` that still store a connection token (pk, sk)."""
    return query_pending_index(_table(), created_before, limit, value=TOKEN_HELD)


def forget_token(project_id: str, session_id: str) -> None:
    """Remove the session's stored connection token: from now on only its hash exists."""
    try:
        dynamodb().update_item(
            TableName=_table(),
            Key=_session_key(project_id, session_id),
            UpdateExpression="REMOVE token_blob, #pending",
            ExpressionAttributeNames={"#pending": "pending"},
        )
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
