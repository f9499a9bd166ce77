from decimal import Decimal

import pytest

from ledgerbridge import jsonutil


def test_numbers_round_trip_digit_for_digit() -> None:
    text = '{"a":0.1,"b":0.10,"c":1E-7,"d":12345678901234567890.123456789,"e":[1,-0.0,3E+2],"f":"x\\u00e9"}'
    assert jsonutil.dumps(jsonutil.loads(text)) == text


def test_non_integers_parse_as_decimal() -> None:
    assert jsonutil.loads("[0.1, 2, 1e2]") == [Decimal("0.1"), 2, Decimal("100")]
    assert isinstance(jsonutil.loads("0.1"), Decimal)


def test_nan_and_infinity_parse_to_decimals_so_validation_can_name_them() -> None:
    values = jsonutil.loads("[NaN, Infinity, -Infinity]")
    assert all(isinstance(v, Decimal) and not v.is_finite() for v in values)


def test_floats_and_non_finite_decimals_are_never_written() -> None:
    with pytest.raises(TypeError):
        jsonutil.dumps({"amount": 0.1})
    with pytest.raises(ValueError):
        jsonutil.dumps([Decimal("NaN")])


def test_output_is_standard_json() -> None:
    import json

    value = {"s": 'quote " and \n newline', "n": None, "t": True, "f": False, "i": 10**30}
    assert json.loads(jsonutil.dumps(value)) == value
