"""QuickBooks records exactly what the unified invoice means: exchange rates, memo, idempotency key.

Against FakeQuickBooks, which keeps ExchangeRate in QuickBooks' convention (home currency per
unit of the transaction's) and checks every body against Intuit's XSD.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ledgerbridge import jsonutil
from ledgerbridge.providers.base import InvalidInvoice
from tests.unit.test_quickbooks import INVOICE_ID, UUIDS, VENDOR, Harness, outbound, simple


@pytest.fixture
def qb() -> Harness:
    return Harness()


def bill(extra: dict[str, Any]):
    body = {"type": "Bill", "contact_id": UUIDS[0], "line_items": [{"total_amount": 100}], **extra}
    return outbound(body, {"contact_id": VENDOR})


# --- exchange rates ---------------------------------------------------------------------------


def test_a_eur_invoice_at_1_08_is_recorded_as_quickbooks_rate_and_reads_back_as_1_08(qb: Harness) -> None:
    remote = qb.create(simple({"currency": "EUR", "exchange_rate": "1.08"}))

    request, body = qb.posted()
    assert (body["CurrencyRef"], body["ExchangeRate"]) == ({"value": "EUR"}, Decimal("1.08"))
    assert b'"ExchangeRate":1.08' in request.content
    [recorded] = qb.fake.created()
    assert recorded["ExchangeRate"] == Decimal("1.08")
    # QuickBooks' convention in use: 100 EUR is 108.00 in the USD home currency.
    assert (recorded["TotalAmt"], recorded["HomeTotalAmt"]) == (Decimal(100), Decimal("108.00"))
    assert (remote.fields["currency"], remote.fields["exchange_rate"]) == ("EUR", Decimal("1.08"))


@pytest.mark.parametrize("rate", ["0.5", "3", "1.234567", "150.25", "0.006656", "1.080000000001"])
@pytest.mark.parametrize("payable", [False, True])
def test_rates_are_sent_and_read_back_digit_for_digit(qb: Harness, rate: str, payable: bool) -> None:
    extra = {"currency": "EUR", "exchange_rate": rate}
    remote = qb.create(bill(extra) if payable else simple(extra))
    request, body = qb.posted()
    assert body["ExchangeRate"] == Decimal(rate)
    assert f'"ExchangeRate":{rate},'.encode() in request.content
    assert qb.fake.created("Bill" if payable else "Invoice")[0]["ExchangeRate"] == Decimal(rate)
    assert str(remote.fields["exchange_rate"]) == rate


def test_a_rate_quickbooks_chose_reads_back_unchanged(qb: Harness) -> None:
    remote = qb.create(simple({"currency": "EUR"}))
    assert "ExchangeRate" not in qb.posted()[1]
    assert qb.fake.created()[0]["ExchangeRate"] == Decimal("1.08")  # the fake day's rate
    assert remote.fields["exchange_rate"] == Decimal("1.08")


def test_a_line_rate_is_the_transactions_rate(qb: Harness) -> None:
    line = {"quantity": 1, "unit_price": 100, "currency": "EUR", "exchange_rate": "1.080"}
    remote = qb.create(simple({"line_items": [line]}))
    body = qb.posted()[1]
    assert (body["CurrencyRef"], body["ExchangeRate"]) == ({"value": "EUR"}, Decimal("1.080"))
    assert "ExchangeRate" not in body["Line"][0]
    assert remote.fields["exchange_rate"] == Decimal("1.08")
    with pytest.raises(InvalidInvoice) as caught:
        qb.map(
            simple({"exchange_rate": "1.08", "line_items": [{"total_amount": 1, "exchange_rate": "0.93"}]})
        )
    assert [path for path, _ in caught.value.details] == ["line_items.0.exchange_rate"]


# --- memo -------------------------------------------------------------------------------------


@pytest.mark.parametrize("payable", [False, True])
def test_the_memo_is_the_private_note_never_a_printed_field(qb: Harness, payable: bool) -> None:
    memo = "Internal: chase in May"
    qb.create(bill({"memo": memo}) if payable else simple({"memo": memo}))
    body = qb.posted()[1]
    assert body["PrivateNote"] == memo
    assert "CustomerMemo" not in body
    assert memo not in jsonutil.dumps({k: v for k, v in body.items() if k != "PrivateNote"})
    assert qb.fake.created("Bill" if payable else "Invoice")[0]["PrivateNote"] == memo


def test_memo_target_does_not_move_the_memo_out_of_the_private_note() -> None:
    qb = Harness({**Harness().connection.settings, "memo_target": "reference"})
    qb.create(simple({"memo": "Internal"}))
    body = qb.posted()[1]
    assert body["PrivateNote"] == "Internal" and "CustomerMemo" not in body


# --- where the idempotency reference is written ------------------------------------------------


@pytest.mark.parametrize("payable", [False, True])
def test_the_invoice_id_is_the_requestid_query_parameter_only(qb: Harness, payable: bool) -> None:
    remote = qb.create(bill({"number": "LB-9"}) if payable else simple({"number": "LB-9", "memo": "m"}))
    request, _ = qb.posted()
    assert request.url.params["requestid"] == INVOICE_ID
    assert INVOICE_ID.encode() not in request.content
    assert INVOICE_ID not in str(request.headers)
    assert INVOICE_ID not in jsonutil.dumps(remote.remote_data)
