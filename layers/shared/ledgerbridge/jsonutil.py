"""JSON that keeps money exact.

The standard library parses ``0.1`` into a float and writes Decimals only through a
``default`` hook that must return another Python object, so a Decimal can never come out
as a bare JSON number. Money must round-trip digit for digit, so we parse numbers into
``Decimal`` and write Decimals as number literals with a small encoder of our own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID


def _non_finite(literal: str) -> Decimal:
    # Keep NaN/Infinity as Decimals so model validation can name the field that held them.
    return Decimal(literal)


def loads(text: str | bytes) -> Any:
    """Parse JSON with every non-integer number as ``Decimal``."""
    return json.loads(text, parse_float=Decimal, parse_constant=_non_finite)


_encode_string = json.encoder.encode_basestring_ascii


def _encode(value: Any, out: list[str]) -> None:
    # The exact types of a stored or answered document first, by identity (a create encodes
    # ~100 values); subclasses (StrEnum members), other mappings and sequences after.
    kind = type(value)
    if kind is str:
        out.append(_encode_string(value))
    elif value is None:
        out.append("null")
    elif kind is dict:
        _encode_object(value, out)
    elif kind is Decimal:
        if not value.is_finite():
            raise ValueError(f"cannot encode non-finite decimal {value}")
        out.append(str(value))
    elif kind is list:
        _encode_array(value, out)
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    else:
        _encode_other(value, out)


def _encode_other(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_encode_string(value))
    elif isinstance(value, Decimal):
        _encode(Decimal(value), out)
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, Mapping):
        _encode_object(value, out)
    elif isinstance(value, list | tuple):
        _encode_array(value, out)
    elif isinstance(value, datetime | date):
        out.append(_encode_string(value.isoformat()))
    elif isinstance(value, UUID):
        out.append(_encode_string(str(value)))
    elif isinstance(value, float):
        raise TypeError("floats are not allowed in Ledgerbridge JSON: use Decimal")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _encode_object(value: Mapping, out: list[str]) -> None:
    out.append("{")
    first = True
    for key, item in value.items():
        if not first:
            out.append(",")
        first = False
        out.append(_encode_string(key if type(key) is str else str(key)))
        out.append(":")
        _encode(item, out)
    out.append("}")


def _encode_array(value: list | tuple, out: list[str]) -> None:
    out.append("[")
    first = True
    for item in value:
        if not first:
            out.append(",")
        first = False
        _encode(item, out)
    out.append("]")


def dumps(value: Any) -> str:
    """Serialise to compact JSON, Decimals as exact number literals; floats are refused."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out)
