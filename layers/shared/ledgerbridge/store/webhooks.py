"""The webhooks table: a project's endpoints, the events sent to them, and each delivery.

Single-table layout (pk / sk), TTL on ``expires_at`` (epoch seconds):

    PROJECT#<project_id>      WEBHOOK#<webhook_id>     url, events, description, enabled, created_at,
                                                       modified_at, secrets_blob (KMS), failing_since,
                                                       disabled
    EVENT#<event_id>          EVENT                    type, project_id, body (the exact JSON sent),
                                                       expires_at (30 days)
    WEBHOOK#<webhook_id>      DELIVERY#<delivery_id>   project_id, event_id, event_type, status,
                                                       attempts, next_attempt_at, created_at,
                                                       expires_at (30 days)

Decisions:

- A table of its own, not more item kinds in the accounts table: deliveries are written on
  every state change of every invoice, and their volume, TTL and stream must not touch the
  table that authenticates every request.
- A project's endpoints are one partition (one Query fans out all of a stream batch's events
  of that project); a webhook's deliveries are another, sorted by their UUIDv7 id, so "newest
  first" is a reverse Query.
- Writes that a retry may repeat are idempotent: an event is stored once (its body, computed
  once, is what every attempt sends), and a delivery's id is derived from (event, endpoint),
  so storing it again returns the first one, with its status.
- Signing secrets are KMS ciphertext bound to the endpoint by encryption context (a blob
  copied to another endpoint does not decrypt), with the credentials key. The plaintext is a
  JSON list, current secret first, older ones with the epoch second they stop signing. A
  warm container decrypts each blob once: ``endpoint_secrets`` caches by ciphertext, so a
  rotation (a new blob) is seen at once and no KMS call is made per delivery.
- The store knows nothing of HTTP or queues. Reads and writes the API makes raise the 503
  ``storage_unavailable`` when DynamoDB fails; a conditional write that finds its item gone
  answers None (or an empty dict, where the result is the item).
"""

from __future__ import annotations

import time
from typing import Any

from ledgerbridge.config import settings
from ledgerbridge.store.credentials import decrypt_json, encrypt_json
from ledgerbridge.store.dynamo import (
    STORAGE_ERRORS,
    conditional_write,
    dynamodb,
    from_item,
    query_page,
    storage_unavailable,
    to_item,
    to_values,
)

RETENTION_SECONDS = 30 * 24 * 3600  # events and deliveries: readable for 30 days, then TTL
_SECRETS_CACHE_LIMIT = 256  # decrypted secret lists per container; only bounds memory
_secrets_cache: dict[bytes, list[dict[str, Any]]] = {}


def _table() -> str:
    return settings().webhooks_table


def _endpoint_key(project_id: str, webhook_id: str) -> dict[str, Any]:
    return to_values({"pk": f"PROJECT#{project_id}", "sk": f"WEBHOOK#{webhook_id}"})


def _delivery_key(webhook_id: str, delivery_id: str) -> dict[str, Any]:
    return to_values({"pk": f"WEBHOOK#{webhook_id}", "sk": f"DELIVERY#{delivery_id}"})


def _decode(item: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored item as a plain dict without its keys; binary attributes as bytes."""
    if not item:
        return None
    record = {key: value for key, value in from_item(item).items() if key not in ("pk", "sk")}
    if "secrets_blob" in record:
        record["secrets_blob"] = _bytes(record["secrets_blob"])
    return record


def _bytes(value: Any) -> bytes:
    """A stored binary attribute (boto3 hands back ``Binary``) as bytes."""
    return bytes(getattr(value, "value", value))


def _get(key: dict[str, Any]) -> dict[str, Any] | None:
    try:
        response = dynamodb().get_item(TableName=_table(), Key=key, ConsistentRead=True)
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
    return _decode(response.get("Item"))


def _update(
    key: dict[str, Any], expression: str, values: dict[str, Any], names: dict[str, str]
) -> dict | None:
    """One conditional update of an existing item; its new image, or None when it does not exist."""
    request: dict[str, Any] = {
        "TableName": _table(),
        "Key": key,
        "UpdateExpression": expression,
        "ConditionExpression": "attribute_exists(pk)",
        "ReturnValues": "ALL_NEW",
    }
    if values:
        request["ExpressionAttributeValues"] = to_values(values)
    if names:
        request["ExpressionAttributeNames"] = names
    response = conditional_write("update_item", **request)
    return None if response is None else _decode(response.get("Attributes"))


def _put_new(record: dict[str, Any]) -> bool:
    """Write ``record`` unless an item with its key exists; whether it was written."""
    written = conditional_write(
        "put_item",
        TableName=_table(),
        Item=to_item(record),
        ConditionExpression="attribute_not_exists(pk)",
    )
    return written is not None


# --- endpoints ----------------------------------------------------------------------------------


def encrypt_secrets(webhook_id: str, entries: list[dict[str, Any]]) -> bytes:
    """``[{"secret": "whsec_...", "expires_at": None | epoch seconds}, ...]`` (current first) as the
    endpoint's ``secrets_blob``."""
    return encrypt_json({"webhook_id": webhook_id}, entries)


def secret_entries(endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    """The decrypted secret list of an endpoint, expired ones included (cached per container)."""
    blob = _bytes(endpoint["secrets_blob"])
    entries = _secrets_cache.get(blob)
    if entries is None:
        entries = decrypt_json({"webhook_id": endpoint["webhook_id"]}, blob)
        if len(_secrets_cache) >= _SECRETS_CACHE_LIMIT:
            _secrets_cache.pop(next(iter(_secrets_cache)))
        _secrets_cache[blob] = entries
    return [dict(entry) for entry in entries]


def endpoint_secrets(endpoint: dict[str, Any], now: float) -> list[str]:
    """The secrets that sign a delivery at ``now``: the current one first, then any previous one
    still inside its grace period (a receiver mid-rotation verifies with either)."""
    return [
        entry["secret"]
        for entry in secret_entries(endpoint)
        if entry.get("expires_at") is None or entry["expires_at"] > now
    ]


def put_endpoint(endpoint: dict[str, Any]) -> None:
    """A new endpoint (``webhook_id`` is new, so an existing item is a bug, not a retry)."""
    record = {
        "pk": f"PROJECT#{endpoint['project_id']}",
        "sk": f"WEBHOOK#{endpoint['webhook_id']}",
        **endpoint,
    }
    if not _put_new(record):
        raise storage_unavailable()


def get_endpoint(project_id: str, webhook_id: str) -> dict[str, Any] | None:
    return _get(_endpoint_key(project_id, webhook_id))


def list_endpoints(project_id: str) -> list[dict[str, Any]]:
    """The project's endpoints, oldest first (ids are time-ordered)."""
    request: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": to_values({":pk": f"PROJECT#{project_id}", ":prefix": "WEBHOOK#"}),
        "ConsistentRead": True,
    }
    records: list[dict[str, Any]] = []
    try:
        while True:
            response = dynamodb().query(**request)
            records.extend(_decode(item) or {} for item in response["Items"])
            if "LastEvaluatedKey" not in response:
                return records
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc


def subscribed_endpoints(
    project_id: str, event_type: str, listed: dict[str, list[dict[str, Any]]] | None = None
) -> list[dict[str, Any]]:
    """The project's enabled endpoints that asked for ``event_type``.

    ``listed`` (project id -> its endpoints) keeps what was read for the next call: a stream
    batch passes one for all its records, so a project's endpoints are one Query per batch
    however many of its events the batch holds."""
    listed = {} if listed is None else listed
    if project_id not in listed:
        listed[project_id] = list_endpoints(project_id)
    return [
        endpoint
        for endpoint in listed[project_id]
        if endpoint.get("enabled") and event_type in (endpoint.get("events") or [])
    ]


def update_endpoint(project_id: str, webhook_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
    """Set each attribute of ``changes`` (a None value removes it); the new endpoint, or None if
    there is no such endpoint."""
    if not changes:
        return get_endpoint(project_id, webhook_id)
    names = {f"#a{i}": name for i, name in enumerate(changes)}
    sets = [f"#a{i} = :a{i}" for i, value in enumerate(changes.values()) if value is not None]
    removes = [f"#a{i}" for i, value in enumerate(changes.values()) if value is None]
    values = {f":a{i}": value for i, value in enumerate(changes.values()) if value is not None}
    expression = " ".join(
        part
        for part in (
            f"SET {', '.join(sets)}" if sets else "",
            f"REMOVE {', '.join(removes)}" if removes else "",
        )
        if part
    )
    return _update(_endpoint_key(project_id, webhook_id), expression, values, names)


def replace_secrets(
    project_id: str, webhook_id: str, expected_blob: bytes, new_blob: bytes, modified_at: str
) -> dict[str, Any] | None:
    """Swap the secrets blob only if it is still ``expected_blob``: two rotations at once cannot
    both keep "the previous" secret and lose the other's new one. The new endpoint, or None when
    the blob changed meanwhile (or the endpoint is gone)."""
    response = conditional_write(
        "update_item",
        TableName=_table(),
        Key=_endpoint_key(project_id, webhook_id),
        UpdateExpression="SET secrets_blob = :new, modified_at = :at",
        ConditionExpression="secrets_blob = :old",
        ExpressionAttributeValues=to_values({":new": new_blob, ":old": expected_blob, ":at": modified_at}),
        ReturnValues="ALL_NEW",
    )
    return None if response is None else _decode(response.get("Attributes"))


def delete_endpoint(project_id: str, webhook_id: str) -> bool:
    """Remove the endpoint; False if there was none. Its deliveries stay until their TTL: one
    still queued finds the endpoint gone and is marked failed."""
    deleted = conditional_write(
        "delete_item",
        TableName=_table(),
        Key=_endpoint_key(project_id, webhook_id),
        ConditionExpression="attribute_exists(pk)",
    )
    return deleted is not None


def note_failing(project_id: str, webhook_id: str, since: str) -> dict[str, Any]:
    """Mark the endpoint failing from ``since`` unless it already is (the first failure counts);
    the endpoint as it is now, or an empty dict if it is gone."""
    updated = _update(
        _endpoint_key(project_id, webhook_id),
        "SET failing_since = if_not_exists(failing_since, :since)",
        {":since": since},
        {},
    )
    return updated or {}


def clear_failing(project_id: str, webhook_id: str) -> None:
    """A delivery succeeded: the endpoint is healthy again."""
    _update(_endpoint_key(project_id, webhook_id), "REMOVE failing_since", {}, {})


def disable_endpoint(project_id: str, webhook_id: str, note: dict[str, Any]) -> None:
    """Stop sending to the endpoint; ``note`` (``{"reason", "at", "message"}``) says why."""
    _update(
        _endpoint_key(project_id, webhook_id),
        "SET enabled = :false, disabled = :note",
        {":false": False, ":note": note},
        {},
    )


# --- events ------------------------------------------------------------------------------------


def put_event(event: dict[str, Any], body: str) -> None:
    """Store the event and the exact body every delivery attempt sends; a repeat (a replayed
    stream record, a retried request) keeps the first."""
    _put_new(
        {
            "pk": f"EVENT#{event['id']}",
            "sk": "EVENT",
            "event_id": event["id"],
            "type": event["type"],
            "project_id": event["project_id"],
            "body": body,
            "expires_at": int(time.time()) + RETENTION_SECONDS,
        }
    )


def get_event_body(event_id: str) -> str | None:
    event = _get(to_values({"pk": f"EVENT#{event_id}", "sk": "EVENT"}))
    return event["body"] if event else None


# --- deliveries --------------------------------------------------------------------------------


def put_delivery(delivery: dict[str, Any]) -> dict[str, Any]:
    """Store a delivery unless one with its id exists; the stored one either way (so a second
    fan-out of the same event sees that the first already succeeded)."""
    record = {
        "pk": f"WEBHOOK#{delivery['webhook_id']}",
        "sk": f"DELIVERY#{delivery['delivery_id']}",
        **delivery,
    }
    if _put_new(record):
        return _decode(to_item(record)) or {}
    stored = get_delivery(delivery["webhook_id"], delivery["delivery_id"])
    return stored if stored is not None else _decode(to_item(record)) or {}


def get_delivery(webhook_id: str, delivery_id: str) -> dict[str, Any] | None:
    return _get(_delivery_key(webhook_id, delivery_id))


def record_attempt(
    webhook_id: str, delivery_id: str, attempt: dict[str, Any], status: str, next_attempt_at: str | None
) -> dict[str, Any]:
    """Append ``attempt`` (``{"at", "status_code", "latency_ms", "error"}``) and set the status and
    when the next attempt is due (None: no further attempt). The delivery as it is now, or an
    empty dict if it is gone (nothing is written then)."""
    expression = "SET attempts = list_append(if_not_exists(attempts, :none), :attempt), #status = :status"
    values: dict[str, Any] = {":none": [], ":attempt": [attempt], ":status": status}
    if next_attempt_at is None:
        expression += " REMOVE next_attempt_at"
    else:
        expression += ", next_attempt_at = :next"
        values[":next"] = next_attempt_at
    updated = _update(_delivery_key(webhook_id, delivery_id), expression, values, {"#status": "status"})
    return updated or {}


def reopen_delivery(webhook_id: str, delivery_id: str) -> dict[str, Any] | None:
    """A manual retry: the delivery is ``pending`` again (whatever it was), due now."""
    return _update(
        _delivery_key(webhook_id, delivery_id),
        "SET #status = :pending REMOVE next_attempt_at",
        {":pending": "pending"},
        {"#status": "status"},
    )


def list_deliveries(webhook_id: str, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` deliveries newest first, after the delivery id ``cursor``; whether more follow."""
    request: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": to_values({":pk": f"WEBHOOK#{webhook_id}", ":prefix": "DELIVERY#"}),
        "ScanIndexForward": False,
    }
    if cursor:
        request["ExclusiveStartKey"] = _delivery_key(webhook_id, cursor)
    try:
        records, more = query_page(request, limit)
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
    return [{k: v for k, v in record.items() if k not in ("pk", "sk")} for record in records], more
