"""Provider records packed for storage: a window sized to the document, nothing lost."""

from __future__ import annotations

import zlib
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerbridge import jsonutil
from ledgerbridge.store.dynamo import pack_json, unpack_json

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals(allow_nan=False, allow_infinity=False, places=2)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=8) | st.dictionaries(st.text(max_size=12), children, max_size=8)
    ),
    max_leaves=60,
)


def _line(number: int) -> dict[str, Any]:
    return {
        "Id": str(number),
        "Description": f"Consulting hour {number * 7919 % 1000}",
        "Amount": Decimal("300.60"),
    }


def _window_bits(packed: bytes) -> int:
    return (packed[0] >> 4) + 8  # RFC 1950: CINFO is log2(window) - 8


@settings(max_examples=300, deadline=None)
@given(_json)
def test_any_document_comes_back_as_it_went_in(document: Any) -> None:
    assert unpack_json(Binary(pack_json(document))) == document


def test_the_window_covers_the_document_and_no_more() -> None:
    """zlib's default 32 KB window cost more to set up than a 1 KB record takes to compress."""
    seen = set()
    for lines in (1, 12, 30, 60, 120, 2000):
        document = {"Line": [_line(n) for n in range(lines)]}
        size = len(jsonutil.dumps(document).encode())
        bits = _window_bits(pack_json(document))
        seen.add(bits)
        if bits == 10:  # the smallest window used: 1 KB
            assert size <= 1 << 10
        elif bits == zlib.MAX_WBITS:  # zlib's largest: 32 KB
            assert size > 1 << 14
        else:
            assert 1 << (bits - 1) < size <= 1 << bits
    assert {10, zlib.MAX_WBITS} < seen


def test_it_compresses_as_well_as_zlibs_default() -> None:
    for lines in (1, 5, 20, 100, 400):
        document = {"Invoice": {"Line": [_line(n) for n in range(lines)], "CustomerRef": {"value": "58"}}}
        default = zlib.compress(jsonutil.dumps(document).encode(), 6)
        assert len(pack_json(document)) <= len(default) * 1.01 + 1


def test_what_was_packed_with_zlibs_default_window_still_reads() -> None:
    document = {"id": "INV-1", "total": Decimal("300.60"), "lines": [_line(1)]}
    stored_before = zlib.compress(jsonutil.dumps(document).encode(), level=6)
    assert unpack_json(Binary(stored_before)) == document
