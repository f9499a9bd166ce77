"""The API's field rules, on the Pydantic models alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from ledgerbridge import jsonutil
from ledgerbridge.models import Invoice, InvoiceInput, InvoiceType


def parse(body: str) -> InvoiceInput:
    return InvoiceInput.model_validate(jsonutil.loads(body))


def errors_of(body: str) -> dict[str, str]:
    """field path -> pydantic message, for a body that must fail."""
    with pytest.raises(ValidationError) as caught:
        parse(body)
    return {".".join(str(p) for p in error["loc"]): error["msg"] for error in caught.value.errors()}


# --- exact decimals -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "literal",
    ["0.1", "0.10", "1e-7", "12345678901234567.8901234567", "-3.00", "100", "1E+2", "0"],
)
def test_amounts_keep_every_digit(literal: str) -> None:
    invoice = parse(f'{{"total_amount": {literal}, "line_items": [{{"unit_price": {literal}}}]}}')
    assert invoice.total_amount == Decimal(literal)
    assert str(invoice.total_amount) == str(Decimal(literal))  # same digits, same exponent
    assert str(invoice.line_items[0].unit_price) == str(Decimal(literal))


def test_amounts_accept_decimal_strings() -> None:
    assert parse('{"balance": "12.50"}').balance == Decimal("12.50")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", '"NaN"', '"Infinity"', '"inf"'])
def test_non_finite_amounts_are_refused_naming_the_field(literal: str) -> None:
    assert "line_items.0.quantity" in errors_of(f'{{"line_items": [{{"quantity": {literal}}}]}}')


@pytest.mark.parametrize(
    "literal", ["true", '"12,50"', '"ten"', "1e400", "123456789012345678901234567890", "0.00000000001"]
)
def test_non_amounts_and_out_of_range_amounts_are_refused(literal: str) -> None:
    assert "sub_total" in errors_of(f'{{"sub_total": {literal}}}')


@pytest.mark.parametrize("literal", ["0", "-1.5", '"0"', '"abc"'])
def test_exchange_rate_must_be_a_positive_decimal(literal: str) -> None:
    assert "exchange_rate" in errors_of(f'{{"exchange_rate": {literal}}}')


def test_exchange_rate_is_a_decimal_string_on_the_way_out() -> None:
    assert parse('{"exchange_rate": "1.0825"}').exchange_rate == Decimal("1.0825")
    now = datetime.now(UTC)
    invoice = Invoice(
        id="01a2127c-0000-7000-8000-000000000000",
        exchange_rate=Decimal("1.0825"),
        created_at=now,
        modified_at=now,
        sync_status="synced",
    )
    assert invoice.model_dump()["exchange_rate"] == "1.0825"


# --- dates --------------------------------------------------------------------------------


def test_date_only_becomes_midnight_utc_and_renders_rfc3339() -> None:
    invoice = parse('{"issue_date": "2024-02-29"}')
    assert invoice.issue_date == datetime(2024, 2, 29, tzinfo=UTC)
    assert invoice.model_dump()["issue_date"] == "2024-02-29T00:00:00Z"


def test_rfc3339_keeps_its_offset_and_truncates_beyond_microseconds() -> None:
    invoice = parse('{"due_date": "2026-03-01T10:00:00.123456789+02:00"}')
    assert invoice.due_date == datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert invoice.model_dump()["due_date"] == "2026-03-01T10:00:00.123456+02:00"


def test_a_date_time_without_an_offset_is_utc_as_panora_reads_it() -> None:
    invoice = parse('{"issue_date": "2026-11-24T12:00:00", "due_date": "2026-12-24T12:00:00.5"}')
    assert invoice.issue_date == datetime(2026, 11, 24, 12, tzinfo=UTC)
    assert invoice.model_dump()["due_date"] == "2026-12-24T12:00:00.500000Z"


def test_lower_case_z_and_t_are_rfc3339_too() -> None:
    assert parse('{"paid_on_date": "2026-01-31t23:59:59z"}').paid_on_date == datetime(
        2026, 1, 31, 23, 59, 59, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "value",
    [
        '"2026-02-29"',  # not a leap year
        '"2026-13-01"',
        '"2026-04-31"',
        '"01/02/2026"',
        '"2026-01-01T25:00:00Z"',
        "1767225600",  # epoch seconds are not a date here
        '""',
    ],
)
def test_impossible_or_ambiguous_dates_are_refused(value: str) -> None:
    assert "issue_date" in errors_of(f'{{"issue_date": {value}}}')


def test_due_date_before_issue_date_names_due_date() -> None:
    errors = errors_of('{"issue_date": "2026-03-01", "due_date": "2026-02-28T23:59:59Z"}')
    assert errors == {"due_date": "Value error, is before issue_date"}


def test_due_date_equal_to_issue_date_is_fine() -> None:
    assert parse('{"issue_date": "2026-03-01", "due_date": "2026-03-01T00:00:00Z"}').due_date


# --- codes, enums and ids -----------------------------------------------------------------


def test_currency_is_case_insensitive_in_and_upper_case_out() -> None:
    assert (
        parse('{"currency": "eur", "line_items": [{"currency": " gbp "}]}').model_dump()["currency"] == "EUR"
    )
    assert parse('{"line_items": [{"currency": "gbp"}]}').line_items[0].currency == "GBP"


@pytest.mark.parametrize("value", ['"XYZ"', '"US"', '"dollars"', "840"])
def test_currency_must_be_iso_4217(value: str) -> None:
    assert "currency" in errors_of(f'{{"currency": {value}}}')


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ACCREC", InvoiceType.ACCOUNTS_RECEIVABLE),
        ("Sales", InvoiceType.ACCOUNTS_RECEIVABLE),
        ("accounts-receivable", InvoiceType.ACCOUNTS_RECEIVABLE),
        ("Customer Invoice", InvoiceType.ACCOUNTS_RECEIVABLE),
        ("Bill", InvoiceType.ACCOUNTS_PAYABLE),
        ("ACCPAY", InvoiceType.ACCOUNTS_PAYABLE),
        ("accounts_payable", InvoiceType.ACCOUNTS_PAYABLE),
        ("vendor bill", InvoiceType.ACCOUNTS_PAYABLE),
    ],
)
def test_type_synonyms_are_normalised(given: str, expected: InvoiceType) -> None:
    assert parse(f'{{"type": "{given}"}}').type is expected


@pytest.mark.parametrize("value", ['"CREDIT"', '"receipt"', "1"])
def test_unknown_types_are_refused(value: str) -> None:
    assert "type" in errors_of(f'{{"type": {value}}}')


@pytest.mark.parametrize(
    ("given", "expected"), [("paid", "PAID"), ("Partially Paid", "PARTIALLY_PAID"), ("void", "VOID")]
)
def test_status_is_case_insensitive(given: str, expected: str) -> None:
    assert parse(f'{{"status": "{given}"}}').status == expected


def test_unknown_status_is_refused() -> None:
    assert "status" in errors_of('{"status": "SENT"}')


@pytest.mark.parametrize(
    "body",
    [
        '{"contact_id": "C-1001"}',
        '{"accounting_period_id": 12}',
        '{"tracking_categories": ["not-a-uuid"]}',
        '{"line_items": [{"item_id": "I-1"}]}',
    ],
)
def test_references_must_be_uuids(body: str) -> None:
    field = next(iter(errors_of(body)))
    assert field.split(".")[0] in body


# --- shape and size -----------------------------------------------------------------------


def test_unknown_fields_are_refused_at_every_level() -> None:
    errors = errors_of('{"amount": 1, "line_items": [{"price": 2}], "id": "x"}')
    assert set(errors) == {"amount", "line_items.0.price", "id"}


def test_all_fields_are_optional_and_nullable() -> None:
    nulls = {name: None for name in InvoiceInput.model_fields}
    assert InvoiceInput.model_validate(nulls).model_dump(exclude_none=True) == {}


def test_at_most_1000_line_items() -> None:
    lines: list[dict[str, Any]] = [{"total_amount": 1}] * 1000
    assert len(InvoiceInput.model_validate({"line_items": lines}).line_items) == 1000
    with pytest.raises(ValidationError) as caught:
        InvoiceInput.model_validate({"line_items": [*lines, {"total_amount": 1}]})
    assert caught.value.errors()[0]["loc"] == ("line_items",)


def test_text_fields_have_limits() -> None:
    assert "number" in errors_of('{"number": "%s"}' % ("9" * 256))
    assert "memo" in errors_of('{"memo": "%s"}' % ("m" * 10_001))
    assert "number" in errors_of('{"number": 12}')
