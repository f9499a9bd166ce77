"""Errors a caller can see.

Every failure that reaches the API is one of these, so the handler can always answer with
the documented JSON shape and never with a stack trace. Messages are written for the
caller; they never include secrets (keys, tokens, provider credentials).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str


@dataclass
class ApiError(Exception):
    status: int
    error: str
    message: str
    details: list[FieldError] = field(default_factory=list)
    invoice_id: str | None = None  # set when the invoice was stored, so the caller can GET it
    headers: dict[str, str] = field(default_factory=dict)  # e.g. Retry-After
    contact_id: str | None = None  # set when a created contact was stored, so the caller can find it

    def body(self) -> dict:
        body = {
            "statusCode": self.status,
            "error": self.error,
            "message": self.message,
            "details": [{"field": d.field, "reason": d.reason} for d in self.details],
        }
        if self.invoice_id:
            body["invoice_id"] = self.invoice_id
        if self.contact_id:
            body["contact_id"] = self.contact_id
        return body


def unauthorized() -> ApiError:
    """One answer for every auth failure, so keys and tokens cannot be probed."""
    return ApiError(401, "unauthorized", "Missing or invalid x-api-key or x-connection-token.")


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found.")


def bad_request(message: str, details: list[FieldError] | None = None) -> ApiError:
    return ApiError(400, "bad_request", message, details or [])


def validation_error(details: list[FieldError]) -> ApiError:
    fields = ", ".join(d.field for d in details[:5])
    return ApiError(422, "validation_error", f"Invalid fields: {fields}.", details)
