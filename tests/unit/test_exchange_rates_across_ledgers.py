"""One exchange_rate, one meaning, in every ledger that records a rate, both ways.

Ledgerbridge's ``exchange_rate`` is units of the company's home currency per one unit of the
invoice's currency: a EUR invoice for a USD company at 1.08 says 1 EUR = 1.08 USD. Each
ledger writes a rate in its own field and its own convention (QuickBooks ``ExchangeRate`` and
Zoho Books ``exchange_rate`` the same way round; Exact Online ``Rate`` on sales entries, the
same way round; Xero ``CurrencyRate`` the other way round, EUR per USD, to 6 places), and
each provider module converts on the way out and back. Tested one ledger at a time, a rate
turned the wrong way (or sent as 1/1.08 twice) can look right in isolation; here the same
invoice goes to every one of them through its fake (tests/fakes) and its real provider
module, and each must (a) hold the rate in its own field and convention, (b) turn the
invoice's 300.60 EUR into the 324.648 USD the unified rate means, within its own rounding,
and (c) read the rate back as exactly 1.08. FreshBooks and Pennylane record no rate of
their own choosing, so they must refuse it (an InvalidInvoice naming ``exchange_rate``,
answered as a 422) before anything reaches them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest

from ledgerbridge.providers.base import ConnectionContext, InvalidInvoice, OutboundInvoice, RemoteInvoice
from ledgerbridge.providers.zoho_books import contact_reference as zoho_contact
from tests.fakes.exact_online import FakeExactOnline
from tests.fakes.freshbooks import FakeFreshBooks
from tests.fakes.pennylane import FakePennylane
from tests.fakes.xero import FakeXero
from tests.fakes.zoho_books import FakeZohoBooks
from tests.unit import test_exact_online as exact_tests
from tests.unit import test_freshbooks as freshbooks_tests
from tests.unit import test_pennylane as pennylane_tests
from tests.unit import test_quickbooks as quickbooks_tests
from tests.unit import test_xero as xero_tests
from tests.unit import test_zoho_books as zoho_tests

CONTACT_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b60"  # resolved by each ledger's references map
RATE = Decimal("1.08")  # USD per EUR: the unified convention
INVOICE = {
    "type": "ACCOUNTS_RECEIVABLE",
    "issue_date": "2026-04-16",
    "due_date": "2026-05-16",
    "currency": "EUR",
    "exchange_rate": "1.08",
    "contact_id": CONTACT_UUID,
    "line_items": [
        {"description": "Consulting day", "quantity": 2, "unit_price": "150.25"},
        {"description": "Travel", "quantity": 1, "unit_price": "0.10"},
    ],
}
TOTAL = Decimal("300.60")  # EUR: 2 x 150.25 + 1 x 0.10, no tax anywhere below
MEANT_HOME_TOTAL = Decimal("324.648")  # USD: 300.60 x 1.08, what the unified rate means
CENT = Decimal("0.01")
HOME_TOTAL_TO_THE_CENT = Decimal("324.65")  # every ledger here keeps home amounts to 2 places


@pytest.fixture(autouse=True)
def _default_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """The providers' real hosts: the fakes answer any host, but the tests assume no override."""
    for name in ("QUICKBOOKS", "XERO", "ZOHO_BOOKS", "EXACT_ONLINE", "FRESHBOOKS", "PENNYLANE"):
        monkeypatch.delenv(f"LEDGERBRIDGE_{name}_API_URL", raising=False)
        monkeypatch.delenv(f"LEDGERBRIDGE_{name}_TOKEN_URL", raising=False)


@dataclass(frozen=True)
class Delivery:
    """What one ledger received, kept and answered for INVOICE."""

    sent: dict[str, Any]  # the invoice as the ledger received it (its create body)
    stored: dict[str, Any]  # the record the fake ledger keeps
    answered: RemoteInvoice  # send_invoice's read-back of the create answer
    read_again: RemoteInvoice  # find_invoice's, or (no lookup: idempotency keys) the resend's answer
    records: int  # invoices the ledger holds after both


@dataclass(frozen=True)
class Ledger:
    """A ledger that records a rate: where, in which convention, and how it reaches home currency."""

    name: str
    rate_field: str
    recorded_rate: Decimal  # 1.08 in the ledger's own convention
    total_field: str  # the invoice-currency total the ledger computed
    home_total: Callable[[dict[str, Any]], Decimal] = field(repr=False)  # from the stored record
    unrounded_home: Decimal  # what home_total gives ...
    unrounded_places: int | None  # ... exactly (None) or to this many places
    stored_home_field: str | None  # the home total the fake ledger itself books, if it does
    deliver: Callable[[], Delivery] = field(repr=False)


# --- delivering INVOICE through each ledger's fake and provider -------------------------------


def quickbooks() -> Delivery:
    qb = quickbooks_tests.Harness()
    out = quickbooks_tests.outbound(INVOICE, {"contact_id": quickbooks_tests.CUSTOMER})
    answered = qb.create(out)
    sent = qb.posted()[1]
    # No find_invoice (it returns None): a redelivery resends with the same requestid, replayed.
    assert qb.provider.find_invoice(qb.connection, out) is None
    read_again = qb.create(out)
    stored = qb.fake.created()
    return Delivery(sent, stored[0], answered, read_again, len(stored))


def xero() -> Delivery:
    fake = FakeXero()
    settings = {**xero_tests.SETTINGS, "line_amount_types": "NoTax"}
    connection = xero_tests.connect(fake.handle, fake, settings=settings)
    out = xero_tests.outbound(INVOICE, {"contact_id": xero_tests.contact(xero_tests.RITE_AGENCY)})
    answered = xero_tests.create(connection, out)
    [sent] = FakeXero.body_of(fake.invoice_requests()[0])["Invoices"]
    # No find_invoice (it returns None): a redelivery resends with the same Idempotency-Key, replayed.
    assert xero_tests.provider.find_invoice(connection, out) is None
    read_again = xero_tests.create(connection, out)
    return Delivery(sent, fake.invoices[answered.remote_id], answered, read_again, len(fake.invoices))


def zoho_books() -> Delivery:
    fake = FakeZohoBooks(clock=lambda: zoho_tests.NOW)
    euro = zoho_contact(fake.add_contact("Euro GmbH", currency="EUR"))  # Zoho invoices in the contact's
    connection = zoho_tests.connect(fake.handle, fake)
    out = zoho_tests.outbound(INVOICE, {"contact_id": euro})
    answered = zoho_tests.create(connection, out)
    sent = FakeZohoBooks.body_of(fake.posts("invoices")[0])
    found = zoho_tests.provider.find_invoice(connection, out)
    assert found is not None
    stored = fake.created("invoices")
    return Delivery(sent, stored[0], answered, found, len(stored))


def exact_online() -> Delivery:
    fake = FakeExactOnline(division_currency="USD")
    # Sales entries record Rate (sales invoices cannot); VAT code "0" keeps the total at 300.60.
    settings = {**exact_tests.SALES_ENTRY_SETTINGS, "default_vat_code": "0"}
    connection = exact_tests.connect(fake.handle, settings)
    out = exact_tests.outbound(INVOICE, {"contact_id": exact_tests.account(exact_tests.CUSTOMER)})
    answered = exact_tests.create(connection, out)
    sent = FakeExactOnline.body_of(fake.create_requests()[0])
    found = exact_tests.provider.find_invoice(connection, out)
    assert found is not None
    return Delivery(sent, fake.sales_entries[answered.remote_id], answered, found, len(fake.sales_entries))


LEDGERS = [
    Ledger(
        name="quickbooks",
        rate_field="ExchangeRate",  # home (USD) per unit of the transaction's currency, as unified
        recorded_rate=Decimal("1.08"),
        total_field="TotalAmt",
        home_total=lambda record: record["TotalAmt"] * record["ExchangeRate"],
        unrounded_home=Decimal("324.648"),
        unrounded_places=None,
        stored_home_field="HomeTotalAmt",  # the fake books TotalAmt x ExchangeRate to the cent
        deliver=quickbooks,
    ),
    Ledger(
        name="xero",
        rate_field="CurrencyRate",  # EUR per unit of the base currency (USD): 1/1.08 to 6 places
        recorded_rate=Decimal("0.925926"),
        total_field="Total",
        home_total=lambda record: record["Total"] / record["CurrencyRate"],
        unrounded_home=Decimal("324.64797"),  # the 6-place inverse: 324.6479740...
        unrounded_places=5,
        stored_home_field=None,  # the fake keeps no base-currency total
        deliver=xero,
    ),
    Ledger(
        name="zoho_books",
        rate_field="exchange_rate",  # base (USD) per unit of the invoice's currency, as unified
        recorded_rate=Decimal("1.08"),
        total_field="total",
        home_total=lambda record: record["total"] * record["exchange_rate"],
        unrounded_home=Decimal("324.648"),
        unrounded_places=None,
        stored_home_field="bcy_total",  # the fake books total x exchange_rate to the cent
        deliver=zoho_books,
    ),
    Ledger(
        name="exact_online",
        rate_field="Rate",  # division currency (USD) per unit of the entry's, as unified
        recorded_rate=Decimal("1.08"),
        total_field="AmountFC",
        home_total=lambda record: record["AmountFC"] * record["Rate"],
        unrounded_home=Decimal("324.648"),
        unrounded_places=None,
        stored_home_field="AmountDC",  # the fake books AmountFC x Rate to the cent
        deliver=exact_online,
    ),
]
RECORDING = [pytest.param(ledger, id=ledger.name) for ledger in LEDGERS]


# --- ledgers that record the rate -------------------------------------------------------------


@pytest.mark.parametrize("ledger", RECORDING)
def test_the_rate_is_sent_and_kept_in_the_ledgers_own_field_and_convention(ledger: Ledger) -> None:
    delivery, field_name, expected = ledger.deliver(), ledger.rate_field, ledger.recorded_rate
    # Sent, not left to the ledger: the QuickBooks and Xero fakes' day rate for EUR is also 1.08.
    assert delivery.sent[field_name] == expected
    assert delivery.stored[field_name] == expected


@pytest.mark.parametrize("ledger", RECORDING)
def test_the_home_total_the_ledger_computes_is_what_1_08_means(ledger: Ledger) -> None:
    delivery = ledger.deliver()
    assert delivery.stored[ledger.total_field] == TOTAL

    home, expected, places = (
        ledger.home_total(delivery.stored),
        ledger.unrounded_home,
        ledger.unrounded_places,
    )
    if places is None:
        assert home == expected
    else:
        assert home.quantize(Decimal(1).scaleb(-places)) == expected
    # Within the ledger's rounding (home amounts to the cent), 300.60 EUR is the 324.648 USD meant.
    assert abs(home - MEANT_HOME_TOTAL) < CENT / 2
    assert home.quantize(CENT, rounding=ROUND_HALF_UP) == HOME_TOTAL_TO_THE_CENT
    stored_home_field = ledger.stored_home_field
    if stored_home_field is not None:
        assert delivery.stored[stored_home_field] == HOME_TOTAL_TO_THE_CENT


@pytest.mark.parametrize("ledger", RECORDING)
def test_the_rate_reads_back_as_exactly_1_08(ledger: Ledger) -> None:
    delivery = ledger.deliver()
    for remote in (delivery.answered, delivery.read_again):
        assert remote.fields["exchange_rate"] == RATE
        assert str(remote.fields["exchange_rate"]) == "1.08"  # not 1.0800, not 1.07999991
        assert (remote.fields["currency"], remote.fields["total_amount"]) == ("EUR", TOTAL)
    assert delivery.read_again.remote_id == delivery.answered.remote_id
    assert delivery.records == 1


# --- ledgers that cannot record it --------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A ledger (or document) without a rate of the caller's: its provider, fake and reason."""

    provider: Any
    connection: ConnectionContext
    outbound: OutboundInvoice
    requests: list[httpx.Request]  # everything the fake ledger received
    reason: str


def freshbooks_refusal() -> Refusal:
    fake = FakeFreshBooks()
    return Refusal(
        freshbooks_tests.provider,
        freshbooks_tests.connect(fake.handle, fake),
        freshbooks_tests.outbound(INVOICE),
        fake.requests,
        "FreshBooks invoices have no exchange rate",
    )


def pennylane_refusal() -> Refusal:
    fake = FakePennylane()
    return Refusal(
        pennylane_tests.provider,
        pennylane_tests.connect(fake.handle, fake),
        pennylane_tests.outbound(INVOICE),
        fake.requests,
        "not supported: Pennylane converts to euros at its own rate",
    )


def exact_sales_invoice_refusal() -> Refusal:
    """Exact's default receivable, a sales invoice, has no rate: only sales entries record one."""
    fake = FakeExactOnline(division_currency="USD")
    return Refusal(
        exact_tests.provider,
        exact_tests.connect(fake.handle, {**exact_tests.SETTINGS, "default_vat_code": "0"}),
        exact_tests.outbound(INVOICE, {"contact_id": exact_tests.account(exact_tests.CUSTOMER)}),
        fake.requests,
        "Exact sales invoices have no rate (Exact applies its own currency rates): set the "
        "connection's sales_document=entry to book receivables as sales entries, which record it",
    )


@pytest.mark.parametrize(
    "refusal",
    [
        pytest.param(freshbooks_refusal, id="freshbooks"),
        pytest.param(pennylane_refusal, id="pennylane"),
        pytest.param(exact_sales_invoice_refusal, id="exact_online-sales_document=invoice"),
    ],
)
def test_a_ledger_without_a_rate_refuses_it_before_anything_is_sent(refusal: Callable[[], Refusal]) -> None:
    case = refusal()
    with pytest.raises(InvalidInvoice) as caught:  # the API answers it 422, naming each field
        case.provider.send_invoice(
            case.connection, case.outbound, case.provider.map_invoice(case.connection, case.outbound)
        )
    assert caught.value.details == [("exchange_rate", case.reason)]
    assert case.requests == []
