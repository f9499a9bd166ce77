"""Attribute values: our serialiser answers exactly what boto3's TypeSerializer answers, or
refuses what it refuses (floats above all), for any value, nested or not."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerbridge.store.dynamo import attribute_value, to_item, to_values


class _Status(StrEnum):
    SYNCED = "synced"


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.floats()
    | st.text()
    | st.binary(max_size=16)
    | st.builds(Binary, st.binary(max_size=16))
    | st.just(_Status.SYNCED)
    | st.sets(st.text(max_size=4), max_size=3)
    | st.sets(st.integers(), max_size=3)
    | st.sets(st.binary(max_size=4), max_size=3)
)
_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


def _outcome(serialise: Any, value: Any) -> tuple[str, Any]:
    try:
        return "value", serialise(value)
    except Exception as exc:  # the kind of refusal is what must match
        return "refused", type(exc)


@settings(max_examples=500, deadline=None)
@given(_values)
def test_any_value_serialises_as_type_serializer_serialises_it(value: Any) -> None:
    assert _outcome(attribute_value, value) == _outcome(TypeSerializer().serialize, value)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _values, max_size=8))
def test_items_and_value_maps_serialise_as_before(record: dict[str, Any]) -> None:
    """An item leaves None out (absent reads back as None); expression values keep it."""
    serialise = TypeSerializer().serialize
    expected_item = _outcome(lambda r: {k: serialise(v) for k, v in r.items() if v is not None}, record)
    expected_values = _outcome(lambda r: {k: serialise(v) for k, v in r.items()}, record)
    assert _outcome(to_item, record) == expected_item
    assert _outcome(to_values, record) == expected_values


def test_a_float_is_refused_at_any_depth() -> None:
    for value in (0.1, [Decimal("1"), 0.1], {"lines": [{"amount": 0.1}]}):
        with pytest.raises(TypeError):
            attribute_value(value)


def test_the_common_shapes_never_reach_type_serializer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exact strings, dicts and lists take the short way (what makes it fast); the rest does not."""
    from ledgerbridge.store import dynamo

    class Refusing:
        def serialize(self, value: Any) -> dict[str, Any]:
            raise AssertionError(f"TypeSerializer reached for {value!r}")

    monkeypatch.setattr(dynamo, "_serializer", Refusing())
    stored = {"id": "01a2", "lines": [{"description": "Consulting", "note": ""}], "memo": "x"}
    assert to_item(stored) == {
        "id": {"S": "01a2"},
        "lines": {"L": [{"M": {"description": {"S": "Consulting"}, "note": {"S": ""}}}]},
        "memo": {"S": "x"},
    }
    with pytest.raises(AssertionError, match="TypeSerializer reached"):
        to_item({"amount": Decimal("1.5")})
