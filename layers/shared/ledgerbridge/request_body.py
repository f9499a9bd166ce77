"""The front door for request bodies: the one place raw bytes become a JSON object.

Every route that takes a body calls :func:`read_json_object` *after* authentication, so a
caller without valid credentials learns nothing but 401, whatever it sends. What is checked,
in order, each with its own 4xx and never a 5xx:

1. Size: more than ``MAX_BODY_BYTES`` of UTF-8 → 413. Measured on the bytes, as sent.
2. Media type: ``application/json`` or any ``application/*+json``, with any parameters
   (RFC 9110 §8.3.1: type and subtype are case-insensitive tokens). Anything else → 415,
   including look-alikes that a prefix match would take (``application/jsonp``,
   ``application/json-seq``, ``application/json\\x00``) and ``multipart/form-data``. A missing
   Content-Type is read as JSON: curl and many SDKs omit it, and the body must still be JSON.
3. Encoding: strict UTF-8 (RFC 8259 §8.1) → otherwise 400. An event body that arrives as
   text is re-encoded strictly too, so a lone surrogate smuggled into the event is caught.
4. Syntax: RFC 8259 JSON, numbers as exact ``Decimal`` (integers too: a 40-digit integer is
   a number to validate, not a Python int that DynamoDB cannot store), ``NaN``/``Infinity``
   kept as Decimals so the model can name the field that held them, a number too large for
   ``Decimal`` at all → 400. Duplicate member names → 400: two parsers reading one invoice
   differently (first wins, last wins) is how amounts get swapped behind a proxy.
5. Shape: nesting deeper than ``MAX_DEPTH`` → 400 (Python's parser would otherwise recurse
   until it crashes); strings and names holding an unpaired UTF-16 surrogate (``"\\ud800"``,
   legal JSON syntax but not Unicode, refused by I-JSON, RFC 7493 §2.1, and unstorable in
   DynamoDB) → 400 naming the field; a top level that is not an object → 400.

What comes out is plain data for the model layer (``ledgerbridge.models``), whose only
failure is a validation error naming the field.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from ledgerbridge import errors
from ledgerbridge.errors import ApiError, FieldError

MAX_BODY_BYTES = 1_000_000
# An invoice is 4 deep (body → line_items → line → tracking_categories); 32 leaves room for
# any honest client and stops the parser long before Python's recursion limit.
MAX_DEPTH = 32

# RFC 9110 token characters; a media type is token "/" token, then ";"-separated parameters.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_MEDIA_TYPE = re.compile(rf"^\s*({_TOKEN})/({_TOKEN})\s*(;.*)?$", re.DOTALL)
_PARAMETERS = re.compile(rf'^(\s*;\s*{_TOKEN}=({_TOKEN}|"([^"\\\x00-\x1f\x7f]|\\[\t\x20-\x7e])*"))*\s*;?\s*$')


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` or ``application/*+json``, any parameters; absent counts as JSON."""
    if content_type is None:
        return True
    found = _MEDIA_TYPE.match(content_type)
    if not found or not _PARAMETERS.match(found.group(3) or ""):
        return False
    kind, subtype = found.group(1).lower(), found.group(2).lower()
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def read_json_object(body: str | None, is_base64: bool, content_type: str | None) -> dict[str, Any]:
    """The body of an API Gateway proxy event as a JSON object, or the ApiError that refuses it."""
    raw = _raw_bytes(body, is_base64)
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", "Request body is over 1 MB.")
    if not is_json_media_type(content_type):
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the body as JSON with Content-Type: application/json.",
            [FieldError("content-type", "must be application/json or application/*+json")],
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.bad_request(f"Request body is not UTF-8 (byte {exc.start} is not).") from None
    value = _parse(text)
    _check_shape(value)
    if not isinstance(value, dict):
        raise errors.bad_request("Request body must be a JSON object.")
    return value


def _raw_bytes(body: str | None, is_base64: bool) -> bytes:
    if not body:
        return b""
    if is_base64:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise errors.bad_request("Request body is not valid base64 as the event says.") from None
    try:
        return body.encode("utf-8")
    except UnicodeEncodeError:
        raise errors.bad_request("Request body is not UTF-8.") from None


class _Malformed(ValueError):
    """A body that is JSON-shaped but not acceptable; the message is for the caller."""


def _number(literal: str) -> Decimal:
    try:
        return Decimal(literal)
    except InvalidOperation:
        raise _Malformed(f"the number {literal[:20]}… is out of range") from None


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        names = [name for name, _ in pairs]
        duplicate = next(name for name in names if names.count(name) > 1)
        raise _Malformed(f"the member name {json.dumps(duplicate)[:80]} appears twice in one object")
    return value


def _parse(text: str) -> Any:
    if not text.strip():
        raise errors.bad_request("Request body is empty; send a JSON object.")
    try:
        return json.loads(text, parse_float=_number, parse_int=_number, parse_constant=Decimal,
                          object_pairs_hook=_object)  # fmt: skip
    except _Malformed as exc:
        raise errors.bad_request(f"Request body is not acceptable JSON: {exc}.") from None
    except RecursionError:
        raise errors.bad_request(f"Request body is nested more than {MAX_DEPTH} levels deep.") from None
    except ValueError as exc:  # json.JSONDecodeError and the digits limits are ValueErrors
        raise errors.bad_request(f"Request body is not valid JSON: {str(exc)[:120]}.") from None


def _check_shape(value: Any) -> None:
    """Depth and unpaired surrogates, walked without recursion so no input can exhaust the stack."""
    pending: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while pending:
        node, path = pending.pop()
        if len(path) > MAX_DEPTH:
            raise errors.bad_request(f"Request body is nested more than {MAX_DEPTH} levels deep.")
        if isinstance(node, str):
            _check_text(node, path)
        elif isinstance(node, dict):
            for name, item in node.items():
                _check_text(name, (*path, name))
                pending.append((item, (*path, name)))
        elif isinstance(node, list):
            pending.extend((item, (*path, str(index))) for index, item in enumerate(node))


def _check_text(text: str, path: tuple[str, ...]) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        field = ".".join(_printable(part) for part in path) or "body"
        raise errors.bad_request(
            "Request body holds a string that is not Unicode (an unpaired UTF-16 surrogate escape).",
            [FieldError(field, "unpaired UTF-16 surrogate escape")],
        ) from None


def _printable(part: str) -> str:
    """A member name fit to echo: surrogates become U+FFFD, and it is cut short."""
    return "".join("\ufffd" if 0xD800 <= ord(char) <= 0xDFFF else char for char in part[:64])
