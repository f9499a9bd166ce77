"""Webhook endpoints as the API and ``ledgerbridge-admin`` manage them: register, change, remove,
rotate the signing secret, send a test, read deliveries and retry one.

Decisions:

- The secret is shown once, in the answer that creates the endpoint (and in the answer of each
  rotation); every other view leaves it out, as API keys are shown once. It is stored only as
  KMS ciphertext (store/webhooks.py).
- A URL is checked when it is registered or changed (``urls.check_url``: https only when
  deployed, no private, loopback, link-local or metadata address), so a caller learns at once
  that it will never be delivered to; the sender checks it again at every attempt, because DNS
  can change. The refusal names the problem and is a 422 on ``url``.
- Events are named one by one (``events[i]``): each must be a subscribable type, listed once.
  ``ping`` is not subscribable: only the test route sends it, to one endpoint.
- At most ``MAX_ENDPOINTS`` per project. The count is read, not reserved, so two creates racing
  at the limit may both pass; the bound is there to keep fan-out cheap, and going one or two
  over it harms nothing.
- Rotation keeps the previous secret signing for ``ROTATION_GRACE_SECONDS`` (24 h), so
  receivers can switch without losing a delivery; secrets whose grace has ended are dropped,
  and at most ``MAX_SECRETS`` are kept (KMS encrypts at most 4 KB, and every secret kept adds a
  signature to each delivery). The blob is swapped conditionally: of two rotations at once,
  neither loses the other's secret; after a few lost races the caller is told to retry.
- A webhook or delivery id that is not one of ours, or another project's, is the same 404.
- Failures to reach DynamoDB or SQS are a 503: safe to retry. A retried test sends a second
  ping (a new event); a retried manual retry re-queues the same delivery, which is harmless.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from ledgerbridge.errors import ApiError, FieldError, bad_request, not_found, validation_error
from ledgerbridge.ids import uuid7
from ledgerbridge.models import format_date_time, now_text
from ledgerbridge.params import decode_cursor, encode_cursor
from ledgerbridge.store import webhooks as store
from ledgerbridge.store.dynamo import STORAGE_ERRORS, storage_unavailable
from ledgerbridge.webhooks import EVENT_TYPES, PING, dispatch, signing
from ledgerbridge.webhooks.urls import UnsafeUrl, check_url

MAX_ENDPOINTS = 20
MAX_DESCRIPTION = 500
ROTATION_GRACE_SECONDS = 24 * 3600
MAX_SECRETS = 5
_ROTATION_ATTEMPTS = 3
_CREATE_FIELDS = ("url", "events", "description")
_UPDATE_FIELDS = ("url", "events", "enabled", "description")


def _time_text(seconds: float) -> str:
    return format_date_time(datetime.fromtimestamp(int(seconds), UTC))


def _is_id(value: str) -> bool:
    """Ids we issue are canonical lower-case UUIDs; anything else names nothing."""
    try:
        return str(uuid.UUID(value)) == value
    except (ValueError, TypeError):
        return False


def view(endpoint: dict[str, Any]) -> dict[str, Any]:
    """An endpoint as every answer but the creating one shows it: never the secret."""
    return {
        "id": endpoint["webhook_id"],
        "url": endpoint["url"],
        "events": list(endpoint.get("events") or []),
        "description": endpoint.get("description") or "",
        "enabled": bool(endpoint.get("enabled")),
        "created_at": endpoint.get("created_at"),
        "modified_at": endpoint.get("modified_at"),
        "failing_since": endpoint.get("failing_since"),
        "disabled": endpoint.get("disabled"),
    }


def _attempt_view(attempt: dict[str, Any]) -> dict[str, Any]:
    status_code = attempt.get("status_code")
    return {
        "at": attempt.get("at"),
        "status_code": int(status_code) if status_code is not None else None,
        "latency_ms": int(attempt.get("latency_ms") or 0),
        "error": attempt.get("error"),
    }


def delivery_view(delivery: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": delivery["delivery_id"],
        "event_id": delivery["event_id"],
        "event_type": delivery["event_type"],
        "status": delivery["status"],
        "attempts": [_attempt_view(attempt) for attempt in delivery.get("attempts") or []],
        "next_attempt_at": delivery.get("next_attempt_at"),
        "created_at": delivery.get("created_at"),
    }


def _encrypt(webhook_id: str, entries: list[dict[str, Any]]) -> bytes:
    try:
        return store.encrypt_secrets(webhook_id, entries)
    except STORAGE_ERRORS as exc:  # KMS unreachable or throttling: nothing was stored, retry
        raise storage_unavailable() from exc


def _entries(endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        return store.secret_entries(endpoint)
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc


def _endpoint(project_id: str, webhook_id: str) -> dict[str, Any]:
    endpoint = store.get_endpoint(project_id, webhook_id) if _is_id(webhook_id) else None
    if endpoint is None:
        raise not_found("Webhook")
    return endpoint


# --- fields --------------------------------------------------------------------------------------


def _unknown(body: dict[str, Any], allowed: tuple[str, ...]) -> list[FieldError]:
    return [FieldError(name[:64], "unknown field") for name in sorted(set(body) - set(allowed))]


def _url(value: Any, problems: list[FieldError]) -> str | None:
    if not isinstance(value, str) or not value:
        problems.append(FieldError("url", "required: the https URL to deliver events to, as text"))
        return None
    try:
        return check_url(value).url
    except UnsafeUrl as exc:
        problems.append(FieldError("url", str(exc)))
        return None


def _events(value: Any, problems: list[FieldError]) -> list[str]:
    if not isinstance(value, list) or not value:
        problems.append(FieldError("events", "required: a non-empty list of event types"))
        return []
    if len(value) > len(EVENT_TYPES):  # each type at most once: a longer list is wrong as a whole
        problems.append(FieldError("events", f"at most {len(EVENT_TYPES)} event types, each listed once"))
        return []
    seen: set[str] = set()
    for index, name in enumerate(value):
        field = f"events[{index}]"
        if name == PING:
            problems.append(
                FieldError(field, "ping is sent only by the test route; it cannot be subscribed to")
            )
        elif not isinstance(name, str) or name not in EVENT_TYPES:
            problems.append(FieldError(field, f"unknown event type; one of: {', '.join(EVENT_TYPES)}"))
        elif name in seen:
            problems.append(FieldError(field, "listed twice"))
        else:
            seen.add(name)
    return list(value)


def _description(value: Any, problems: list[FieldError]) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        problems.append(FieldError("description", f"must be text of at most {MAX_DESCRIPTION} characters"))
        return ""
    return value


# --- endpoints -----------------------------------------------------------------------------------


def create_endpoint(project_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """201 body: the endpoint's view plus ``secret``, the only time the secret is shown."""
    problems = _unknown(body, _CREATE_FIELDS)
    url = _url(body.get("url"), problems)
    events = _events(body.get("events"), problems)
    description = _description(body.get("description"), problems)
    if problems:
        raise validation_error(problems)
    if len(store.list_endpoints(project_id)) >= MAX_ENDPOINTS:
        raise ApiError(
            409, "webhook_limit_reached", f"A project has at most {MAX_ENDPOINTS} webhooks; delete one first."
        )
    webhook_id, secret, now = str(uuid7()), signing.new_secret(), now_text()
    endpoint = {
        "webhook_id": webhook_id,
        "project_id": project_id,
        "url": url,
        "events": events,
        "description": description,
        "enabled": True,
        "created_at": now,
        "modified_at": now,
        "secrets_blob": _encrypt(webhook_id, [{"secret": secret, "expires_at": None}]),
    }
    store.put_endpoint(endpoint)
    return {**view(endpoint), "secret": secret}


def list_endpoints(project_id: str) -> list[dict[str, Any]]:
    return [view(endpoint) for endpoint in store.list_endpoints(project_id)]


def get_endpoint(project_id: str, webhook_id: str) -> dict[str, Any]:
    return view(_endpoint(project_id, webhook_id))


def update_endpoint(project_id: str, webhook_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """PATCH: any of url, events, enabled, description. Enabling clears ``disabled`` and
    ``failing_since``: the endpoint starts with a clean slate (its next failure starts the count)."""
    _endpoint(project_id, webhook_id)
    problems = _unknown(body, _UPDATE_FIELDS)
    if not problems and not set(body) & set(_UPDATE_FIELDS):
        problems.append(FieldError("body", f"send at least one of {', '.join(_UPDATE_FIELDS)}"))
    changes: dict[str, Any] = {}
    if "url" in body:
        changes["url"] = _url(body["url"], problems)
    if "events" in body:
        changes["events"] = _events(body["events"], problems)
    if "description" in body:
        changes["description"] = _description(body["description"], problems)
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            problems.append(FieldError("enabled", "must be true or false"))
        elif body["enabled"]:
            changes.update(enabled=True, disabled=None, failing_since=None)
        else:
            changes["enabled"] = False
    if problems:
        raise validation_error(problems)
    updated = store.update_endpoint(project_id, webhook_id, {**changes, "modified_at": now_text()})
    if updated is None:
        raise not_found("Webhook")
    return view(updated)


def delete_endpoint(project_id: str, webhook_id: str) -> None:
    if not _is_id(webhook_id) or not store.delete_endpoint(project_id, webhook_id):
        raise not_found("Webhook")


def rotate_secret(project_id: str, webhook_id: str, now: float | None = None) -> dict[str, Any]:
    """A new current secret; the one it replaces keeps signing for 24 hours."""
    now = time.time() if now is None else now
    for _ in range(_ROTATION_ATTEMPTS):
        endpoint = _endpoint(project_id, webhook_id)
        current, *older = _entries(endpoint)
        grace_ends = int(now) + ROTATION_GRACE_SECONDS
        secret = signing.new_secret()
        entries = [
            {"secret": secret, "expires_at": None},
            {"secret": current["secret"], "expires_at": grace_ends},
            *(entry for entry in older if entry.get("expires_at") is not None and entry["expires_at"] > now),
        ][:MAX_SECRETS]
        blob = _encrypt(webhook_id, entries)
        if store.replace_secrets(project_id, webhook_id, endpoint["secrets_blob"], blob, now_text()):
            return {"id": webhook_id, "secret": secret, "previous_secret_expires_at": _time_text(grace_ends)}
    raise ApiError(409, "rotation_in_progress", "The secret is being rotated by another request; retry.")


# --- test events and deliveries --------------------------------------------------------------------


def _enabled_endpoint(project_id: str, webhook_id: str) -> dict[str, Any]:
    endpoint = _endpoint(project_id, webhook_id)
    if not endpoint.get("enabled"):
        raise ApiError(
            409, "webhook_disabled", "The webhook is disabled; enable it first (PATCH enabled: true)."
        )
    return endpoint


def send_test(project_id: str, webhook_id: str) -> dict[str, Any]:
    """202 body ``{"event_id", "delivery_id"}``: a ``ping`` event queued for this endpoint alone,
    whatever it subscribed to."""
    endpoint = _enabled_endpoint(project_id, webhook_id)
    event = {
        "id": str(uuid7()),
        "type": PING,
        "created_at": now_text(),
        "project_id": project_id,
        "connection_id": None,
        "data": {"webhook_id": webhook_id},
    }
    try:
        [delivery] = dispatch.dispatch(event, [endpoint])
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
    return {"event_id": event["id"], "delivery_id": delivery["delivery_id"]}


def list_deliveries(project_id: str, webhook_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """``{"data": [...], "next_cursor"}``, newest first."""
    _endpoint(project_id, webhook_id)
    after = None
    if cursor is not None:
        direction, after = decode_cursor(cursor)
        if direction != "after":
            raise bad_request(
                "Query parameter cursor is not a cursor this API returned.",
                [FieldError("cursor", "not a cursor this API returned")],
            )
    deliveries, more = store.list_deliveries(webhook_id, limit, after)
    next_cursor = encode_cursor("after", deliveries[-1]["delivery_id"]) if more and deliveries else None
    return {"data": [delivery_view(delivery) for delivery in deliveries], "next_cursor": next_cursor}


def retry_delivery(project_id: str, webhook_id: str, delivery_id: str) -> dict[str, Any]:
    """Make the delivery pending again and queue it now, whatever its status was."""
    _enabled_endpoint(project_id, webhook_id)
    delivery = store.reopen_delivery(webhook_id, delivery_id) if _is_id(delivery_id) else None
    if delivery is None:
        raise not_found("Delivery")
    try:
        dispatch.enqueue(delivery)
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
    return delivery_view(delivery)
