"""Query parameters shared by every list and read route: flags and opaque cursors."""

from __future__ import annotations

import base64
import binascii
from uuid import UUID

from ledgerbridge import errors
from ledgerbridge.errors import FieldError


def parse_flag(value: str | None, name: str) -> bool:
    """``true``/``false``/``1``/``0`` (any case); absent is false; anything else is a 400."""
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise errors.bad_request(
        f"Query parameter {name} must be true, false, 1 or 0.",
        [FieldError(name, "must be true, false, 1 or 0")],
    )


def parse_limit(value: str | None, default: int = 50, most: int = 100) -> int:
    """A page size, 1 to ``most`` (absent: ``default``), for routes that read their own query
    (the API function's lists get the same rule from their OpenAPI parameters); else a 400."""
    if value is None:
        return default
    text = value.strip()
    if text.isascii() and text.isdigit() and 1 <= int(text) <= most:
        return int(text)
    raise errors.bad_request(
        f"Query parameter limit must be a whole number from 1 to {most}.",
        [FieldError("limit", f"must be a whole number from 1 to {most}")],
    )


def prefers_async(prefer: str | None) -> bool:
    """Whether a ``Prefer`` header (RFC 7240) asks for ``respond-async``.

    Preferences are comma-separated, case-insensitive tokens with optional values and
    parameters; unknown ones are ignored, as the RFC requires, so nothing here is an error.
    """
    if not prefer:
        return False
    tokens = (part.split(";", 1)[0].split("=", 1)[0].strip().lower() for part in prefer.split(","))
    return "respond-async" in tokens


def encode_cursor(direction: str, record_id: str) -> str:
    """An opaque cursor: page ``after`` or ``before`` the record with this id."""
    return base64.urlsafe_b64encode(f"{direction}:{record_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        direction, record_id = raw.split(":", 1)
        if direction not in ("after", "before"):
            raise ValueError(direction)
        return direction, str(UUID(record_id))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise errors.bad_request(
            "Query parameter cursor is not a cursor this API returned.",
            [FieldError("cursor", "not a cursor this API returned")],
        ) from None
