"""Exact Online through the local stack: the fake Exact on localhost, connected with the admin CLI.

The stack runs as `make run` does, with LEDGERBRIDGE_EXACT_ONLINE_API_URL / _TOKEN_URL pointing
at the fake built from Exact's recorded exchanges; invoices and contacts go in over HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from ledgerbridge import jsonutil
from ledgerbridge.providers.exact_online import exact_reference
from tests.e2e.conftest import LocalStack, start_local_stack
from tests.e2e.support import (
    Connected,
    admin,
    configure_oauth_apps,
    connect,
    create,
    create_contact,
    fetch,
    unified_invoice,
)
from tests.fakes import exact_online
from tests.fakes.server import serve

pytestmark = pytest.mark.e2e

DEFAULT_ITEM = "61facaed-0389-4183-bf67-ac1c179e1050"  # item "S" (Services)
DEFAULT_GL_ACCOUNT = "83e03d6d-4a5e-4b19-b8e8-00c6c569f2bf"  # 658000 Charges diverses de gestion courante


@dataclass
class ExactStack:
    stack: LocalStack
    exact: Connected


@pytest.fixture(scope="module")
def exact(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExactStack]:
    fake = exact_online.FakeExactOnline()
    with ExitStack() as running:
        url = running.enter_context(serve(fake.handle))
        stack = running.enter_context(
            start_local_stack(
                {
                    "LEDGERBRIDGE_EXACT_ONLINE_API_URL": url,
                    "LEDGERBRIDGE_EXACT_ONLINE_TOKEN_URL": url + exact_online.TOKEN_PATH,
                }
            )
        )
        configure_oauth_apps(
            stack,
            {
                "exact_online": {
                    "client_id": exact_online.CLIENT_ID,
                    "client_secret": exact_online.CLIENT_SECRET,
                }
            },
        )
        project = admin(stack, "create-project", "--name", "Exact E2E")
        key = admin(stack, "create-api-key", "--project", project["project_id"])
        settings = {
            "division": str(exact_online.DIVISION),
            "country": "nl",
            "default_item_id": DEFAULT_ITEM,
            "default_vat_code": "AB",
            "default_purchase_gl_account": DEFAULT_GL_ACCOUNT,
        }
        tokens = {"access_token": "exact-access-0", "refresh_token": "exact-refresh-0"}
        credentials = tmp_path_factory.mktemp("credentials")
        connected = connect(stack, credentials, project, key, "exact_online", fake, tokens, settings)
        yield ExactStack(stack, connected)


def invoice_body(connected: Connected, *, payable: bool, custom_field: bool = False) -> dict[str, Any]:
    """The shared full unified invoice, for an active customer (or supplier) of the fake's division.

    Exact sales invoices take no exchange rate (Exact uses its own rates): a receivable leaves it out.
    """
    body = unified_invoice(connected, payable=payable, custom_field=custom_field)
    kind = "is_supplier" if payable else "is_customer"
    body["contact_id"] = connected.first("contacts", status="ACTIVE", **{kind: True})
    if not payable:
        body.pop("exchange_rate")
    return body


def documents(connected: Connected, payable: bool) -> dict[str, dict[str, Any]]:
    fake: exact_online.FakeExactOnline = connected.fake
    return fake.purchase_entries if payable else fake.sales_invoices


@pytest.mark.parametrize("payable", [False, True])
def test_exact_creates_exactly_one_document_with_the_documented_body(
    exact: ExactStack, payable: bool
) -> None:
    connected, fake = exact.exact, exact.exact.fake
    before = len(fake.create_requests())
    response = create(exact.stack, connected, invoice_body(connected, payable=payable))
    assert response.status_code == 201, response.text
    invoice = jsonutil.loads(response.text)

    [request] = fake.create_requests()[before:]
    assert request.url.path.endswith(
        "/purchaseentry/PurchaseEntries" if payable else "/salesinvoice/SalesInvoices"
    )
    sent = fake.body_of(request)
    assert sent["YourRef"] == exact_reference(invoice["id"])
    # The internal memo: an entry's Description is printed for nobody; an invoice's would be.
    assert sent["Description" if payable else "Remarks"] == "November retainer" and sent["Currency"] == "USD"
    assert sent["DueDate"] == "2026-12-24"
    assert sent["EntryDate" if payable else "OrderDate"] == "2026-11-24"  # InvoiceDate is read-only
    first, second = sent["PurchaseEntryLines" if payable else "SalesInvoiceLines"]
    if payable:
        assert sent["Rate"] == 1 and sent["Journal"] == "60"
        assert first["GLAccount"] == exact_online.COSTS_ACCOUNT  # the item's own cost account
        assert second["GLAccount"] == DEFAULT_GL_ACCOUNT
        assert (first["AmountFC"], second["AmountFC"]) == (Decimal("300.50"), Decimal("0.1"))
    else:
        assert sent["Journal"] == "70" and "Rate" not in sent
        assert first["Item"] == connected.references["items"][0]["remote_id"]
        assert second["Item"] == DEFAULT_ITEM  # the line without an item gets default_item_id
        assert (first["NetPrice"], second["NetPrice"]) == (Decimal("150.25"), Decimal("0.1"))
    tracked = {key: first[key] for key in ("CostCenter", "CostUnit") if key in first}
    assert tracked and all(second[key] == value for key, value in tracked.items())  # invoice-level tracking

    [stored] = [d for d in documents(connected, payable).values() if d["YourRef"] == sent["YourRef"]]
    key = "EntryID" if payable else "InvoiceID"
    issued = exact_online.ms_date(date(2026, 11, 24))
    assert invoice["remote_data"]["EntryDate" if payable else "InvoiceDate"] == issued  # as Exact recorded it
    assert invoice["remote_id"] == stored[key] == invoice["remote_data"][key]
    assert invoice["sync_status"] == "synced"
    assert invoice["total_amount"] == stored["AmountFC"]
    assert [line["remote_id"] for line in invoice["line_items"]] == [
        line["ID"] for line in stored["PurchaseEntryLines" if payable else "SalesInvoiceLines"]
    ]


def test_exact_unsupported_fields_are_refused_before_anything_is_stored_or_sent(exact: ExactStack) -> None:
    connected = exact.exact
    before = len(connected.fake.requests)
    body = {**invoice_body(connected, payable=False, custom_field=True), "exchange_rate": "1.1"}
    response = create(exact.stack, connected, body)
    assert response.status_code == 422
    reasons = {detail["field"]: detail["reason"] for detail in response.json()["details"]}
    assert reasons == {
        "exchange_rate": "Exact sales invoices have no rate (Exact applies its own currency rates): set the "
        "connection's sales_document=entry to book receivables as sales entries, which record it",
        "field_mappings": "Exact Online invoices have no custom fields",
    }
    assert len(connected.fake.requests) == before


def test_exact_expired_token_is_refreshed_once_with_rotation(exact: ExactStack) -> None:
    connected, fake = exact.exact, exact.exact.fake
    fake.expire_access_tokens()
    refreshes = len(fake.token_requests())
    for _ in range(2):
        response = create(exact.stack, connected, invoice_body(connected, payable=False))
        assert response.status_code == 201, response.text
    assert len(fake.token_requests()) == refreshes + 1
    assert len(fake.retired_refresh_tokens) == refreshes + 1  # each refresh retired the token it used


def test_exact_429_with_retry_after_is_waited_out(exact: ExactStack) -> None:
    connected, fake = exact.exact, exact.exact.fake
    before, invoices = len(fake.create_requests()), len(fake.sales_invoices)
    fake.fail_next(429, {"Retry-After": "1"})
    started = time.monotonic()
    response = create(exact.stack, connected, invoice_body(connected, payable=False))
    assert response.status_code == 201, response.text
    assert time.monotonic() - started >= 1.0
    assert len(fake.create_requests()) == before + 2
    assert len(fake.sales_invoices) == invoices + 1


def test_exact_validation_error_is_422_with_its_message_and_a_failed_record(exact: ExactStack) -> None:
    connected = exact.exact
    invoices = len(connected.fake.sales_invoices)
    response = create(exact.stack, connected, {**invoice_body(connected, payable=False), "currency": "CHF"})
    assert response.status_code == 422
    error = response.json()
    assert error["error"] == "provider_rejected"
    assert "Currency: Not found (CHF)" in error["message"]
    stored = fetch(exact.stack, connected, error["invoice_id"])
    assert (stored["sync_status"], stored["remote_id"]) == ("failed", None)
    assert "Currency: Not found (CHF)" in stored["sync_error"]
    assert len(connected.fake.sales_invoices) == invoices


def test_exact_records_a_payables_rate_as_sent_and_it_reads_back_the_same(exact: ExactStack) -> None:
    """A USD bill in the EUR division at 0.92 (1 USD = 0.92 EUR): Exact's Rate, AmountDC = AmountFC x Rate."""
    connected, fake = exact.exact, exact.exact.fake
    body = {**invoice_body(connected, payable=True), "exchange_rate": "0.92"}
    response = create(exact.stack, connected, body)
    assert response.status_code == 201, response.text
    invoice = jsonutil.loads(response.text)
    stored = fake.purchase_entries[invoice["remote_id"]]
    assert stored["Rate"] == Decimal("0.92")
    assert stored["AmountDC"] == (stored["AmountFC"] * Decimal("0.92")).quantize(Decimal("0.01"))
    assert invoice["remote_data"]["Rate"] == Decimal("0.92")  # what Exact recorded, as the API answers it
    assert invoice["exchange_rate"] == "0.92"
    assert fetch(exact.stack, connected, invoice["id"])["exchange_rate"] == "0.92"


# --- contacts ---------------------------------------------------------------------------------


def accounts_named(fake: exact_online.FakeExactOnline, name: str) -> list[dict[str, Any]]:
    return [account for account in fake.accounts if account["Name"] == name]


def test_exact_creates_a_customer_the_next_invoice_can_name(exact: ExactStack) -> None:
    connected, fake = exact.exact, exact.exact.fake
    body = {
        "name": "Bakkerij De Korenschoof",
        "is_customer": True,
        "email_address": "administratie@korenschoof.example",
        "tax_number": "NL009876543B01",
        "currency": "EUR",
        "addresses": [
            {"street_1": "Dorpsstraat 12", "city": "Zwolle", "postal_code": "8011 AB", "country": "NL"}
        ],
        "phone_numbers": [{"phone_number": "+31 38 765 4321", "phone_type": "WORK"}],
    }
    before = len(fake.account_requests())
    response = create_contact(exact.stack, connected, body)
    assert response.status_code == 201, response.text
    contact = response.json()

    [account] = accounts_named(fake, "Bakkerij De Korenschoof")
    assert len(fake.account_requests()) == before + 1
    assert (contact["sync_status"], contact["remote_id"]) == ("synced", account["ID"])
    assert account["Remarks"] == exact_reference(contact["id"])  # what find_contact looks it up by
    assert (account["Status"], account["IsSupplier"], account["VATNumber"]) == ("C", False, "NL009876543B01")
    assert (account["AddressLine1"], account["Country"], account["Phone"]) == (
        "Dorpsstraat 12",
        "NL",
        "+31 38 765 4321",
    )
    assert contact["is_customer"] is True and contact["remote_data"]["ID"] == account["ID"]

    invoice_request = {**invoice_body(connected, payable=False), "contact_id": contact["id"]}
    invoice = create(exact.stack, connected, invoice_request)
    assert invoice.status_code == 201, invoice.text
    assert fake.sales_invoices[invoice.json()["remote_id"]]["OrderedBy"] == account["ID"]


def test_exact_a_contact_resent_with_its_idempotency_key_creates_nothing_new(exact: ExactStack) -> None:
    connected, fake = exact.exact, exact.exact.fake
    key = {"Idempotency-Key": "exact-contact-once-1"}
    body = {"name": "Installatiebedrijf Eenmaal", "is_supplier": True}
    before = len(fake.account_requests())
    first = create_contact(exact.stack, connected, body, key)
    again = create_contact(exact.stack, connected, body, key)
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers.get("idempotent-replayed") == "true"
    assert len(fake.account_requests()) == before + 1
    [account] = accounts_named(fake, "Installatiebedrijf Eenmaal")
    assert (account["IsSupplier"], account["Status"]) == (True, "A")  # a supplier, not a customer


def test_exact_a_contact_field_exact_cannot_hold_is_422_naming_it_with_nothing_sent(
    exact: ExactStack,
) -> None:
    connected, fake = exact.exact, exact.exact.fake
    before = len(fake.requests)
    body = {
        "name": "Twee Adressen B.V.",
        "addresses": [{"city": "Utrecht"}, {"city": "Delft"}],
        "phone_numbers": [{"phone_number": "06 1234 5678", "phone_type": "MOBILE"}],
    }
    response = create_contact(exact.stack, connected, body)
    assert response.status_code == 422, response.text
    fields = [detail["field"] for detail in response.json()["details"]]
    assert fields == ["addresses.1", "phone_numbers.0.phone_type"]
    assert len(fake.requests) == before and accounts_named(fake, "Twee Adressen B.V.") == []
