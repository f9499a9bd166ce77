"""``Idempotency-Key`` on POST: a retry returns the first answer and creates nothing new.

One slim record per key in the idempotency table (``<stack>-idempotency``, TTL 24 h), written
once, by one conditional PutItem, before anything else: the scope and key, a fingerprint of
the request (a hash of the body and of the query that shapes the answer), the id the new
invoice or contact will have, the status a success answers, and until when the first request
may still be running. That is about 300 bytes, one write unit, and no second write: the
answer is not stored, the record it is about is. A retry with the key reads that record
(``stored``, one GetItem) and answers from it, so:

- the same status as the first answer; the body is the invoice (or contact) as it stands now,
  which is the first body unless it moved on since (``pending`` became ``synced``);
- a create that failed for good answers its 409/422 again: that answer is kept on the
  invoice itself, written with its ``failed`` state (the write it makes anyway);
- the same key with another fingerprint is 422 ``idempotency_mismatch``;
- while the first request is running (its record not stored, or stored but not answered yet)
  a retry answers 409 ``idempotency_in_progress`` with Retry-After. Running ends at the
  first request's Lambda deadline: past it, a retry takes the key over (a conditional write,
  so only one does) and carries on with the same id, which stores nothing twice.

An answer given before anything was stored (bad input, 503) deletes the record, so the key can
be retried once the mistake is fixed.

Why not Powertools Idempotency: it writes twice per key (an "in progress" PutItem, then the
whole answer by UpdateItem: three write units for an ordinary invoice), and here that was
the price of every keyed create; the record the answer is about is stored anyway, so this
module keeps only what is needed to find it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ledgerbridge.config import settings
from ledgerbridge.errors import ApiError, FieldError
from ledgerbridge.ids import uuid7
from ledgerbridge.store.dynamo import (
    STORAGE_ERRORS,
    conditional_write,
    dynamodb,
    from_item,
    is_condition_failure,
    storage_unavailable,
    to_item,
    to_values,
)

KEEP_SECONDS = 24 * 60 * 60
RUNNING_MS_WITHOUT_CONTEXT = 29_000  # the API function's timeout
IN_PROGRESS_RETRY_AFTER = "2"
# No commas: an HTTP API hands a header sent twice to the function as its values joined by
# commas, so "k1,k2" may be two keys; which one the client meant is refused, not guessed.
_KEY_CHARACTERS = set(string.printable) - set("\t\n\r\x0b\x0c,")


@dataclass(frozen=True)
class Answer:
    status: int
    body: str  # JSON text
    location: str | None = None
    replayed: bool = False


@dataclass(frozen=True)
class Stored:
    """A created record as a retry sees it: its answer now, and whether it was answered yet
    (False while the first request is still between storing and answering)."""

    answer: Answer
    answered: bool


def check_key(key: str) -> str:
    if not key or len(key) > 255 or not set(key) <= _KEY_CHARACTERS:
        raise ApiError(
            400,
            "bad_request",
            "Idempotency-Key must be one key of 1 to 255 printable ASCII characters, without commas"
            " (a header sent twice arrives as its values joined by commas).",
            [FieldError("Idempotency-Key", "one key: 1 to 255 printable ASCII characters, no commas")],
        )
    return key


def fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def error_answer(error: ApiError) -> Answer:
    """A final error about a stored record, as first answered and as replayed."""
    from ledgerbridge import jsonutil

    return Answer(error.status, jsonutil.dumps(error.body()))


def kept(error: ApiError) -> dict[str, Any]:
    """The final error a create answered, as the failed record keeps it for ``replayed``."""
    answer = error_answer(error)
    return {"status": answer.status, "body": answer.body}


def replayed(record: dict[str, Any], fresh: Answer) -> Stored:
    """A stored invoice or contact as a retry with its create's key sees it: the error its create
    answered (``kept``), else ``fresh`` (the success status, the record now). Answered unless it
    is still pending with no attempt noted: its create request has not answered yet."""
    final = record.get("create_answer")
    if final:
        return Stored(Answer(int(final["status"]), str(final["body"])), answered=True)
    answered = record.get("sync_status") != "pending" or record.get("sync_error") is not None
    return Stored(fresh, answered or fresh.status == 202)  # a 202 answers once it is stored


def once(
    scope: str,
    key: str,
    request_fingerprint: str,
    success_status: int,
    lambda_context: Any,
    run: Callable[[str], Answer],
    stored: Callable[[str, int], Stored | None],
) -> Answer:
    """``run(new_id)`` for the first request with this key; an answer from ``stored(id, status)``
    (None: not stored) for the others. See the module docstring."""
    now_ms = int(time.time() * 1000)
    claim = {
        "id": f"{scope}#{key}",
        "fingerprint": request_fingerprint,
        "resource_id": str(uuid7()),
        "success_status": success_status,
        "running_until": now_ms + _running_ms(lambda_context),
        "expiration": now_ms // 1000 + KEEP_SECONDS,
    }
    existing = _claim(claim, now_ms // 1000)
    if existing is None:
        return _first(claim, run)
    if existing["fingerprint"] != request_fingerprint:
        raise ApiError(
            422,
            "idempotency_mismatch",
            "This Idempotency-Key was used with a different request; use a new key for a new invoice.",
            [FieldError("Idempotency-Key", "used before with a different body")],
        )
    resource_id, status = str(existing["resource_id"]), int(existing["success_status"])
    running = now_ms < int(existing["running_until"])
    found = stored(resource_id, status)
    if found is not None and (found.answered or not running):
        return Answer(found.answer.status, found.answer.body, found.answer.location, replayed=True)
    if running or found is not None or not _take_over(existing, claim["running_until"]):
        raise ApiError(
            409,
            "idempotency_in_progress",
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            headers={"Retry-After": IN_PROGRESS_RETRY_AFTER},
        )
    return _first({**existing, "running_until": claim["running_until"]}, run)


def _running_ms(lambda_context: Any) -> int:
    if lambda_context is None:
        return RUNNING_MS_WITHOUT_CONTEXT
    return int(lambda_context.get_remaining_time_in_millis())


def _first(claim: dict[str, Any], run: Callable[[str], Answer]) -> Answer:
    try:
        return run(str(claim["resource_id"]))
    except ApiError as exc:
        if exc.invoice_id is None and exc.contact_id is None:
            _release(claim)  # nothing stored: the caller may fix the request and retry the key
            raise
        return error_answer(exc)


def _claim(claim: dict[str, Any], now_s: int) -> dict[str, Any] | None:
    """Write the record unless a live one holds the key; that one (None when written)."""
    try:
        dynamodb().put_item(
            TableName=settings().idempotency_table,
            Item=to_item(claim),
            ConditionExpression="attribute_not_exists(id) OR expiration < :now",
            ExpressionAttributeValues=to_values({":now": now_s}),  # TTL deletes lag: expired is free
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        if is_condition_failure(exc) and exc.response.get("Item"):
            return from_item(exc.response["Item"])
        raise storage_unavailable() from exc
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
    return None


def _take_over(existing: dict[str, Any], running_until: int) -> bool:
    """Hold a key whose first request ran out of time before storing anything; False if another
    retry took it first."""
    answer = conditional_write(
        "update_item",
        TableName=settings().idempotency_table,
        Key=to_values({"id": existing["id"]}),
        UpdateExpression="SET running_until = :until",
        ConditionExpression="running_until = :was",
        ExpressionAttributeValues=to_values({":until": running_until, ":was": existing["running_until"]}),
    )
    return answer is not None


def _release(claim: dict[str, Any]) -> None:
    """Forget a key whose request stored nothing. Best effort: a record left behind frees itself
    when its request's time is up (a retry then takes it over)."""
    with contextlib.suppress(STORAGE_ERRORS):
        dynamodb().delete_item(
            TableName=settings().idempotency_table,
            Key=to_values({"id": claim["id"]}),
            ConditionExpression="resource_id = :id",
            ExpressionAttributeValues=to_values({":id": claim["resource_id"]}),
        )
