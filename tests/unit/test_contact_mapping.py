"""Contacts in QuickBooks (Customer/Vendor) and Xero (Contacts): bodies checked against the official
schemas (Intuit's XSDs, Xero's OpenAPI), refusals by field path, and one record per idempotency key."""

from __future__ import annotations

from typing import Any

import pytest

from ledgerbridge.models import ContactInput
from ledgerbridge.providers.base import ConnectionContext, InvalidInvoice, OutboundContact, ProviderRejected
from ledgerbridge.providers.quickbooks import QuickBooksProvider
from ledgerbridge.providers.xero import XeroProvider
from tests.fakes.quickbooks import REALM_ID, FakeQuickBooks
from tests.fakes.xero import TENANT_ID, FakeXero
from tests.support import openapi, quickbooks_xsd
from tests.support.providers import fake_http

CONTACT_ID = "0196a3f2-7c3e-7a41-9d2b-3f6c1e8a5b20"
FULL = {
    "name": "Umbrella Corp",
    "email_address": "ap@umbrella.example",
    "tax_number": "12-3456789",
    "currency": "EUR",
    "status": "ACTIVE",
    "addresses": [
        {
            "street_1": "1 Hive Way",
            "street_2": "Floor 2",
            "city": "Raccoon City",
            "state": "MO",
            "postal_code": "12345",
            "country": "US",
            "address_type": "BILLING",
        },
        {"street_1": "2 Lab Road", "city": "Raccoon City", "address_type": "SHIPPING"},
    ],
    "phone_numbers": [
        {"phone_number": "+1 555 0100", "phone_type": "WORK"},
        {"phone_number": "+1 555 0101", "phone_type": "MOBILE"},
        {"phone_number": "+1 555 0102", "phone_type": "FAX"},
    ],
}


class Tokens:
    def __init__(self, token: str):
        self.token = token

    def access_token(self) -> str:
        return self.token

    def refresh_after_rejection(self, rejected_access_token: str) -> str:
        return self.token


def outbound(**fields: Any) -> OutboundContact:
    return OutboundContact(CONTACT_ID, ContactInput.model_validate(fields))


def refusals(provider: Any, connection: ConnectionContext, **fields: Any) -> dict[str, str]:
    with pytest.raises(InvalidInvoice) as refused:
        provider.map_contact(connection, outbound(**fields))
    return dict(refused.value.details)


# --- QuickBooks -----------------------------------------------------------------------------

QB = QuickBooksProvider()


def qb_connection(fake: FakeQuickBooks | None = None) -> ConnectionContext:
    http = fake_http(fake.handle, Tokens("qb-access-0")) if fake else None
    return ConnectionContext("conn-qb", "quickbooks", {"realm_id": REALM_ID}, http)


def test_quickbooks_customer_body_follows_intuits_xsd() -> None:
    request = QB.map_contact(qb_connection(), outbound(**FULL, is_customer=True))

    assert (request.entity, request.resource) == ("Customer", "customer")
    quickbooks_xsd.assert_valid(request.body, "Customer")
    body = request.body
    assert body["DisplayName"] == "Umbrella Corp"
    assert body["PrimaryTaxIdentifier"] == "12-3456789"
    assert body["BillAddr"]["CountrySubDivisionCode"] == "MO"
    assert body["ShipAddr"]["Line1"] == "2 Lab Road"
    assert (body["PrimaryPhone"], body["Mobile"], body["Fax"]) == (
        {"FreeFormNumber": "+1 555 0100"},
        {"FreeFormNumber": "+1 555 0101"},
        {"FreeFormNumber": "+1 555 0102"},
    )
    assert body["CurrencyRef"] == {"value": "EUR"}


def test_quickbooks_supplier_is_a_vendor_with_its_tax_identifier() -> None:
    request = QB.map_contact(qb_connection(), outbound(**FULL, is_supplier=True))

    assert (request.entity, request.resource) == ("Vendor", "vendor")
    quickbooks_xsd.assert_valid(request.body, "Vendor")
    assert request.body["TaxIdentifier"] == "12-3456789" and "PrimaryTaxIdentifier" not in request.body


def test_quickbooks_refuses_what_it_cannot_hold_by_path() -> None:
    problems = refusals(
        QB,
        qb_connection(),
        is_customer=True,
        is_supplier=True,
        status="ARCHIVED",
        field_mappings={"x": "1"},
        addresses=[{"city": "A"}, {"city": "B", "address_type": "billing"}],
        phone_numbers=[{"phone_number": "1"}, {"phone_number": "2"}, {"phone_number": "3"}],
    )

    assert set(problems) == {
        "is_supplier",
        "name",
        "status",
        "field_mappings",
        "addresses.1",
        "phone_numbers.2",
    }


def test_quickbooks_creates_once_per_requestid_and_reports_a_duplicate_name() -> None:
    fake = FakeQuickBooks()
    connection = qb_connection(fake)
    request = QB.map_contact(connection, outbound(**FULL))

    first = QB.send_contact(connection, outbound(**FULL), request)
    again = QB.send_contact(connection, outbound(**FULL), request)

    assert first.remote_id == again.remote_id
    assert [c["DisplayName"] for c in fake.lists["Customer"]].count("Umbrella Corp") == 1
    assert first.fields["is_customer"] is True and first.fields["tax_number"] == "12-3456789"
    assert first.fields["addresses"][1]["address_type"] == "SHIPPING"
    other = OutboundContact("0196a3f2-7c3e-7a41-9d2b-3f6c1e8a5b21", outbound(**FULL).contact)
    with pytest.raises(ProviderRejected, match="Duplicate Name Exists"):
        QB.send_contact(connection, other, request)


# --- Xero -----------------------------------------------------------------------------------

XERO = XeroProvider()


def xero_connection(fake: FakeXero | None = None) -> ConnectionContext:
    http = fake_http(fake.handle, Tokens("xero-access-0")) if fake else None
    return ConnectionContext("conn-xero", "xero", {"tenant_id": TENANT_ID}, http)


def test_xero_contact_body_follows_the_openapi_and_leaves_the_read_only_flags_out() -> None:
    body = XERO.map_contact(xero_connection(), outbound(**FULL, is_customer=True, is_supplier=True))

    openapi.assert_valid(body, "Contacts")
    [contact] = body["Contacts"]
    assert "IsCustomer" not in contact and "IsSupplier" not in contact
    assert (contact["Name"], contact["TaxNumber"], contact["DefaultCurrency"]) == (
        "Umbrella Corp",
        "12-3456789",
        "EUR",
    )
    assert [a["AddressType"] for a in contact["Addresses"]] == ["POBOX", "STREET"]
    assert contact["Addresses"][0]["Region"] == "MO"
    assert [p["PhoneType"] for p in contact["Phones"]] == ["DEFAULT", "MOBILE", "FAX"]


def test_xero_refuses_what_it_cannot_hold_by_path() -> None:
    problems = refusals(
        XERO,
        xero_connection(),
        tax_number="x" * 51,
        status="archived",
        field_mappings={"x": "1"},
        addresses=[{"city": "A"}, {"city": "B", "address_type": "POSTAL"}],
        phone_numbers=[
            {"phone_number": "1", "phone_type": "fax"},
            {"phone_number": "2", "phone_type": "FAX"},
        ],
    )

    assert set(problems) == {
        "name",
        "tax_number",
        "status",
        "field_mappings",
        "addresses.1",
        "phone_numbers.1",
    }


def test_xero_creates_once_per_idempotency_key_and_reports_a_duplicate_name() -> None:
    fake = FakeXero()
    connection = xero_connection(fake)
    body = XERO.map_contact(connection, outbound(**FULL))

    first = XERO.send_contact(connection, outbound(**FULL), body)
    again = XERO.send_contact(connection, outbound(**FULL), body)

    assert first.remote_id == again.remote_id
    assert [c["Name"] for c in fake.contacts].count("Umbrella Corp") == 1
    assert fake.contact_requests()[0].headers["idempotency-key"] == CONTACT_ID
    assert first.fields["phone_numbers"][1] == {"phone_number": "+1 555 0101", "phone_type": "MOBILE"}
    other = OutboundContact("0196a3f2-7c3e-7a41-9d2b-3f6c1e8a5b21", outbound(**FULL).contact)
    with pytest.raises(ProviderRejected, match="already assigned to another contact"):
        XERO.send_contact(connection, other, body)
