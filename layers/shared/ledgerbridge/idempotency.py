"""``Idempotency-Key`` on POST: a retry returns the first answer and creates nothing new.

Built on Powertools Idempotency with a DynamoDB table (``<stack>-idempotency``, TTL 24 h).
Keys are scoped per connection; the request's fingerprint (a hash of the body and of the
query that shapes the answer) is the payload Powertools validates, so the same key with a
different body is refused rather than silently replayed. A key whose first request is
still running answers 409 with Retry-After. Only answers about a stored invoice or contact are kept
(201, 202, and the 409/422 that leave it failed): an answer given before anything was
stored (bad input, 503) lets the caller retry the same key with the mistake fixed.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from ledgerbridge.aws import client
from ledgerbridge.config import settings
from ledgerbridge.errors import ApiError, FieldError

KEEP_SECONDS = 24 * 60 * 60
IN_PROGRESS_RETRY_AFTER = "2"
_PRINTABLE = set(string.printable) - set("\t\n\r\x0b\x0c")


@dataclass(frozen=True)
class Answer:
    status: int
    body: str  # JSON text, exactly as first sent
    location: str | None = None
    replayed: bool = False


def check_key(key: str) -> str:
    if not key or len(key) > 255 or not set(key) <= _PRINTABLE:
        raise ApiError(
            400,
            "bad_request",
            "Idempotency-Key must be 1 to 255 printable ASCII characters.",
            [FieldError("Idempotency-Key", "1 to 255 printable ASCII characters")],
        )
    return key


def fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


@cache
def _persistence() -> Any:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return DynamoDBPersistenceLayer(table_name=settings().idempotency_table, boto3_client=client("dynamodb"))


def _config(lambda_context: Any) -> Any:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

    config = IdempotencyConfig(
        event_key_jmespath="[connection_id, idempotency_key]",
        payload_validation_jmespath="fingerprint",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=KEEP_SECONDS,
        response_hook=lambda response, _record: {**response, "replayed": True},
    )
    if lambda_context is not None:
        config.register_lambda_context(lambda_context)  # a crashed first attempt frees the key in time
    return config


def once(
    connection_id: str, key: str, request_fingerprint: str, lambda_context: Any, run: Callable[[], Answer]
) -> Answer:
    """``run()`` for the first request with this key; its stored answer for the others."""
    from aws_lambda_powertools.utilities.idempotency import idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    def first(request: dict[str, str]) -> dict[str, Any]:
        try:
            answer = run()
        except ApiError as exc:
            if exc.invoice_id is None and exc.contact_id is None:
                raise  # nothing stored: forget the key, the caller may fix and retry
            answer = Answer(exc.status, _error_text(exc))
        return {"status": answer.status, "body": answer.body, "location": answer.location}

    request = {"connection_id": connection_id, "idempotency_key": key, "fingerprint": request_fingerprint}
    store, config = _persistence(), _config(lambda_context)
    guarded = idempotent_function(
        first, data_keyword_argument="request", persistence_store=store, config=config
    )
    try:
        result = guarded(request=request)
    except IdempotencyValidationError:
        raise ApiError(
            422,
            "idempotency_mismatch",
            "This Idempotency-Key was used with a different request; use a new key for a new invoice.",
            [FieldError("Idempotency-Key", "used before with a different body")],
        ) from None
    except IdempotencyAlreadyInProgressError:
        raise ApiError(
            409,
            "idempotency_in_progress",
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            headers={"Retry-After": IN_PROGRESS_RETRY_AFTER},
        ) from None
    return Answer(
        int(result["status"]), str(result["body"]), result.get("location"), bool(result.get("replayed"))
    )


def _error_text(error: ApiError) -> str:
    from ledgerbridge import jsonutil

    return jsonutil.dumps(error.body())
