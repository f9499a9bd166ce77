"""The Xero provider against the fake Xero (tests/fakes/xero.py) and Xero's recorded exchanges.

Every request body the provider builds here is also checked against the ``Invoices`` schema of
Xero's official OpenAPI document (tests/fixtures/specs/xero_accounting.yaml, MIT).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ledgerbridge import jsonutil
from ledgerbridge.models import InvoiceInput
from ledgerbridge.providers.base import (
    ConnectionContext,
    InvalidInvoice,
    OutboundInvoice,
    ProviderRejected,
    ProviderUnavailable,
    ReauthorizationRequired,
    RemoteReference,
)
from ledgerbridge.providers.xero import (
    XeroProvider,
    account_reference,
    contact_reference,
    item_reference,
    parse_xero_date,
    remote_invoice,
    tracking_references,
    unified_status,
)
from tests.fakes.xero import CLIENT_ID, CLIENT_SECRET, TENANT_ID, FakeXero, fixture, recorded_body
from tests.support.openapi import assert_valid, schema_errors
from tests.support.providers import fake_http

INVOICE_ID = "0196a3f2-7c1e-7d3a-9b2e-5f4c3d2a1b00"
SETTINGS = {
    "tenant_id": TENANT_ID,
    "default_account_code": "200",
    "default_tax_type": "OUTPUT",
    "default_bill_account_code": "412",
    "default_bill_tax_type": "INPUT",
}
# Ledgerbridge ids of the referenced records (any UUIDs: the references map resolves them).
CONTACT_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b60"
ITEM_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b61"
REGION_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b62"
DEPARTMENT_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b63"
OTHER_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b64"
RITE_AGENCY = "c67e563c-17ee-40dd-ad95-4f8c143bf740"  # customer and supplier in the recording
XERO_SUPPLIER = "3b30a108-9156-4a42-a893-3bbbe7af1ef8"

provider = XeroProvider()


# --- helpers ------------------------------------------------------------------------------


def contact(contact_id: str) -> RemoteReference:
    records = recorded_body("list-contacts")["Contacts"]
    return contact_reference(next(r for r in records if r["ContactID"] == contact_id))


def item(code: str) -> RemoteReference:
    return item_reference(next(r for r in recorded_body("list-items")["Items"] if r["Code"] == code))


def option(name: str) -> RemoteReference:
    categories = recorded_body("list-tracking-categories")["TrackingCategories"]
    options = [ref for category in categories for ref in tracking_references(category)]
    return next(ref for ref in options if ref.fields["option_name"] == name)


class FakeTokens:
    """access_token()/refresh_after_rejection() backed by the fake's token endpoint."""

    def __init__(self, fake: FakeXero):
        self.fake, self.token, self.refresh_token = fake, "xero-access-0", "xero-refresh-0"

    def access_token(self) -> str:
        return self.token

    def refresh_after_rejection(self, rejected_access_token: str) -> str:
        answer = token_request(self.fake, self.refresh_token)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        self.token, self.refresh_token = body["access_token"], body["refresh_token"]
        return self.token


def token_request(fake: FakeXero, refresh_token: str, secret: str = CLIENT_SECRET) -> httpx.Response:
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
        return client.post(
            "https://identity.xero.com/connect/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(CLIENT_ID, secret),
        )


def connect(
    handler: Callable[[httpx.Request], httpx.Response],
    fake: FakeXero | None = None,
    settings: dict[str, str] | None = None,
    sleeps: list[float] | None = None,
) -> ConnectionContext:
    http = fake_http(handler, FakeTokens(fake or FakeXero()), sleeps, 4)
    return ConnectionContext("conn-xero", "xero", dict(SETTINGS if settings is None else settings), http=http)


def outbound(body: dict[str, Any], references: dict[str, RemoteReference], invoice_id: str = INVOICE_ID):
    invoice = InvoiceInput.model_validate(jsonutil.loads(jsonutil.dumps(body)))
    return OutboundInvoice(invoice_id, invoice, references)


def create(connection: ConnectionContext, out: OutboundInvoice):
    request = provider.map_invoice(connection, out)
    assert_valid(request, "Invoices")
    return provider.send_invoice(connection, out, request)


def refusal(body: dict[str, Any], references: dict[str, RemoteReference] | None = None, **settings: str):
    connection = ConnectionContext("conn-xero", "xero", {**SETTINGS, **settings})
    with pytest.raises(InvalidInvoice) as caught:
        provider.map_invoice(
            connection, outbound(body, {"contact_id": contact(RITE_AGENCY), **(references or {})})
        )
    return caught.value.details


FULL_INVOICE = {
    "type": "ACCOUNTS_RECEIVABLE",
    "number": "LB-1001",
    "issue_date": "2026-04-24",
    "due_date": "2026-05-24T09:00:00+02:00",
    "memo": "April consulting",
    "currency": "eur",
    "exchange_rate": "0.92",
    "contact_id": CONTACT_UUID,
    "tracking_categories": [REGION_UUID],
    "line_items": [
        {
            "description": "Developer day onsite",
            "quantity": 2,
            "unit_price": 650,
            "item_id": ITEM_UUID,
            "tracking_categories": [DEPARTMENT_UUID],
        },
        {"description": "Support minutes", "quantity": 3, "unit_price": Decimal("0.1250"), "currency": "EUR"},
    ],
}
FULL_REFERENCES = {
    "contact_id": contact(RITE_AGENCY),
    "tracking_categories.0": option("North"),
    "line_items.0.item_id": item("DevD"),
    "line_items.0.tracking_categories.0": option("Engineering"),
}
NORTH = {
    "TrackingCategoryID": "351953c4-8127-4009-88c3-f9cd8c9cbe9f",
    "Name": "Region",
    "TrackingOptionID": "ce205173-7387-4651-9726-2cf4c5405ba2",
    "Option": "North",
}
ENGINEERING = {
    "TrackingCategoryID": "22f10184-0deb-44ae-a312-b1f6ea70e51f",
    "Name": "Department",
    "TrackingOptionID": "c4d5e6f7-a8b9-4c0d-8e1f-2a3b4c5d6e7f",
    "Option": "Engineering",
}


@pytest.fixture
def fake() -> FakeXero:
    return FakeXero()


# --- request bodies -----------------------------------------------------------------------


def test_a_full_invoice_is_sent_as_xero_documents_it(fake: FakeXero) -> None:
    connection = connect(fake.handle, fake)
    remote = create(connection, outbound(FULL_INVOICE, FULL_REFERENCES))

    [sent] = fake.invoice_requests()
    assert sent.url.path == "/api.xro/2.0/Invoices" and sent.url.host == "api.xero.com"
    assert dict(sent.url.params) == {"unitdp": "4"}
    assert sent.headers["xero-tenant-id"] == TENANT_ID
    assert sent.headers["idempotency-key"] == INVOICE_ID
    assert FakeXero.body_of(sent) == {
        "Invoices": [
            {
                "Type": "ACCREC",
                "Contact": {"ContactID": RITE_AGENCY},
                "Date": "2026-04-24",
                "DueDate": "2026-05-24",
                "Status": "AUTHORISED",
                "InvoiceNumber": "LB-1001",
                "CurrencyCode": "EUR",
                "CurrencyRate": Decimal("1.086957"),  # 1/0.92: EUR per USD, Xero's way round
                "LineAmountTypes": "Exclusive",
                "LineItems": [
                    {
                        # The item brings its own sales account and tax type: no defaults.
                        "Description": "Developer day onsite",
                        "Quantity": 2,
                        "UnitAmount": 650,
                        "ItemCode": "DevD",
                        "Tracking": [NORTH, ENGINEERING],
                    },
                    {
                        "Description": "Support minutes",
                        "Quantity": 3,
                        "UnitAmount": Decimal("0.1250"),
                        "AccountCode": "200",
                        "TaxType": "OUTPUT",
                        "Tracking": [NORTH],
                    },
                ],
            }
        ]
    }
    assert b'"UnitAmount":0.1250' in sent.content  # exact on the wire, not a float
    assert schema_errors(sent.content, "Invoices") == []
    # unitdp=4 keeps the 4-decimal unit price; Xero would round it to 0.13 otherwise.
    assert remote.remote_data["LineItems"][1]["UnitAmount"] == Decimal("0.1250")
    assert remote.fields["sub_total"] == Decimal("1300.38")
    assert remote.fields["total_tax_amount"] == Decimal("107.28")
    assert remote.fields["total_amount"] == remote.fields["balance"] == Decimal("1407.66")
    assert (remote.fields["currency"], remote.fields["exchange_rate"]) == ("EUR", Decimal("0.92"))
    assert remote.line_remote_ids == [
        line["LineItemID"] for line in fake.invoices[remote.remote_id]["LineItems"]
    ]
    # The memo is an internal note in the invoice's History & Notes, never the printed Reference.
    assert fake.invoices[remote.remote_id]["Reference"] == ""
    assert fake.notes(remote.remote_id) == ["April consulting"]


def test_the_recorded_request_is_what_the_mapper_builds() -> None:
    recorded = fixture("create-invoice")["exchanges"][0]["request"]["body"]
    body = {
        "contact_id": CONTACT_UUID,
        "issue_date": "2026-04-24",
        "due_date": "2026-05-24",
        "status": "OPEN",
        "memo": "Test invoice",
        "line_items": [{"description": "Test services", "quantity": 1, "unit_price": 100}],
    }
    # The recording was made with the memo in Reference, which is now an opt-in.
    connection = ConnectionContext("conn-xero", "xero", {**SETTINGS, "memo_target": "reference"})
    request = provider.map_invoice(connection, outbound(body, {"contact_id": contact(RITE_AGENCY)}))
    [invoice] = recorded["Invoices"]
    assert request == {"Invoices": [{**invoice, "LineAmountTypes": "Exclusive"}]}
    assert_valid(request, "Invoices")


def test_the_recorded_response_maps_back_to_unified_fields() -> None:
    exchange = fixture("create-invoice")["exchanges"][0]
    answer = exchange["response"]

    def replay(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            answer["status"], headers=answer["headers"], content=jsonutil.dumps(answer["body"])
        )

    body = {"contact_id": CONTACT_UUID, "line_items": [{"description": "Test services", "unit_price": 100}]}
    out = outbound(body, {"contact_id": contact(RITE_AGENCY)})
    remote = create(connect(replay), out)

    [record] = answer["body"]["Invoices"]
    assert remote.remote_id == "2693e40e-e3f0-4fd5-8f33-e79d2bdd31cf"
    assert remote.fields == {
        "number": "INV-0044",
        "status": "OPEN",
        "sub_total": Decimal(100),
        "total_tax_amount": Decimal("8.25"),
        "total_amount": Decimal("108.25"),
        "balance": Decimal("108.25"),
        "currency": "USD",
        "exchange_rate": Decimal(1),
    }
    assert remote.remote_updated_at == datetime(2026, 4, 24, 11, 59, 36, 473000, tzinfo=UTC)
    assert remote.line_remote_ids == ["820f3f47-f356-4a88-9feb-3e2797b60baa"]
    assert remote.remote_data == record


def test_a_bill_is_accpay_with_the_supplier_reference_as_invoice_number(fake: FakeXero) -> None:
    body = {
        "type": "Bill",
        "number": "SUP-7781",
        "issue_date": "2026-04-16",
        "due_date": "2026-05-16",
        "contact_id": CONTACT_UUID,
        "line_items": [
            {"description": "Monthly subscription", "unit_price": 29},
            {"quantity": 10, "unit_price": Decimal("4.2"), "item_id": ITEM_UUID},
        ],
    }
    out = outbound(body, {"contact_id": contact(XERO_SUPPLIER), "line_items.1.item_id": item("GB1-White")})
    remote = create(connect(fake.handle, fake), out)

    [sent] = fake.invoice_requests()
    [invoice] = FakeXero.body_of(sent)["Invoices"]
    assert invoice["Type"] == "ACCPAY"
    assert invoice["InvoiceNumber"] == "SUP-7781"
    assert "Reference" not in invoice
    assert invoice["LineItems"] == [
        {
            "Description": "Monthly subscription",
            "Quantity": 1,
            "UnitAmount": 29,
            "AccountCode": "412",
            "TaxType": "INPUT",
        },
        # GB1-White has purchase details (account 300, INPUT): Xero applies them.
        {"Quantity": 10, "UnitAmount": Decimal("4.2"), "ItemCode": "GB1-White"},
    ]
    stored = fake.invoices[remote.remote_id]
    assert [line["AccountCode"] for line in stored["LineItems"]] == ["412", "300"]
    assert remote.fields["number"] == "SUP-7781"
    assert remote.fields["status"] == "OPEN"
    assert remote.fields["total_amount"] == Decimal("76.86")  # 71 + tax 2.39 + 3.47 (rounded per line)


def test_a_bill_item_without_purchase_details_gets_the_bill_defaults() -> None:
    body = {
        "type": "ACCPAY",
        "contact_id": CONTACT_UUID,
        "line_items": [{"unit_price": 5, "item_id": ITEM_UUID}],
    }
    out = outbound(body, {"contact_id": contact(XERO_SUPPLIER), "line_items.0.item_id": item("BOOK")})
    request = provider.map_invoice(ConnectionContext("c", "xero", SETTINGS), out)
    [line] = request["Invoices"][0]["LineItems"]
    assert (line["ItemCode"], line["AccountCode"], line["TaxType"]) == ("BOOK", "412", "INPUT")
    assert_valid(request, "Invoices")


def test_a_tracked_inventory_item_on_a_bill_keeps_xeros_inventory_account(fake: FakeXero) -> None:
    body = {
        "type": "ACCPAY",
        "contact_id": CONTACT_UUID,
        "line_items": [{"quantity": 4, "item_id": ITEM_UUID}],
    }
    out = outbound(body, {"contact_id": contact(XERO_SUPPLIER), "line_items.0.item_id": item("TSL - Black")})
    remote = create(connect(fake.handle, fake), out)
    [line] = FakeXero.body_of(fake.invoice_requests()[0])["Invoices"][0]["LineItems"]
    assert line == {"Quantity": 4, "ItemCode": "TSL - Black"}  # its purchase tax type NONE comes from Xero
    assert fake.invoices[remote.remote_id]["LineItems"][0]["AccountCode"] == "630"


def test_an_unknown_line_amount_types_setting_is_refused() -> None:
    body = {"contact_id": CONTACT_UUID, "line_items": [{"total_amount": 1}]}
    [(path, reason)] = refusal(body, line_amount_types="Gross")
    assert path == "connection" and "Exclusive, Inclusive, NoTax" in reason


def test_a_minimal_invoice(fake: FakeXero) -> None:
    body = {"contact_id": CONTACT_UUID, "line_items": [{"total_amount": 50}]}
    remote = create(connect(fake.handle, fake), outbound(body, {"contact_id": contact(RITE_AGENCY)}))

    [sent] = fake.invoice_requests()
    assert FakeXero.body_of(sent) == {
        "Invoices": [
            {
                "Type": "ACCREC",
                "Contact": {"ContactID": RITE_AGENCY},
                "Status": "AUTHORISED",
                "LineAmountTypes": "Exclusive",
                "LineItems": [{"Quantity": 1, "LineAmount": 50, "AccountCode": "200", "TaxType": "OUTPUT"}],
            }
        ]
    }
    assert remote.fields["number"] == "INV-0045"  # numbered by Xero after the recorded INV-0044
    assert remote.fields["total_amount"] == Decimal("54.13")


def test_line_amount_types_and_defaults_come_from_the_connection_settings() -> None:
    settings = {"tenant_id": TENANT_ID, "line_amount_types": "Inclusive"}
    body = {"contact_id": CONTACT_UUID, "line_items": [{"unit_price": 10}]}
    request = provider.map_invoice(
        ConnectionContext("c", "xero", settings), outbound(body, {"contact_id": contact(RITE_AGENCY)})
    )
    [invoice] = request["Invoices"]
    assert invoice["LineAmountTypes"] == "Inclusive"
    assert invoice["LineItems"] == [{"Quantity": 1, "UnitAmount": 10}]  # no defaults set: left to Xero


@pytest.mark.parametrize(
    ("status", "xero_status"),
    [("DRAFT", "DRAFT"), ("SUBMITTED", "SUBMITTED"), ("OPEN", "AUTHORISED"), (None, "AUTHORISED")],
)
def test_statuses_sent_on_create(status: str | None, xero_status: str) -> None:
    body = {"status": status, "contact_id": CONTACT_UUID, "line_items": [{"total_amount": 1}]}
    request = provider.map_invoice(
        ConnectionContext("c", "xero", SETTINGS), outbound(body, {"contact_id": contact(RITE_AGENCY)})
    )
    assert request["Invoices"][0]["Status"] == xero_status


@pytest.mark.parametrize("status", ["PAID", "PARTIALLY_PAID", "VOID"])
def test_statuses_xero_cannot_create_are_refused(status: str) -> None:
    [(path, reason)] = refusal(
        {"status": status, "contact_id": CONTACT_UUID, "line_items": [{"total_amount": 1}]}
    )
    assert path == "status" and "not supported when creating" in reason


def test_invoice_tracking_goes_on_every_line_and_a_line_option_replaces_its_category() -> None:
    body = {
        "contact_id": CONTACT_UUID,
        "tracking_categories": [REGION_UUID, DEPARTMENT_UUID],
        "line_items": [{"total_amount": 1}, {"total_amount": 2, "tracking_categories": [OTHER_UUID]}],
    }
    references = {
        "contact_id": contact(RITE_AGENCY),
        "tracking_categories.0": option("North"),
        "tracking_categories.1": option("Engineering"),
        "line_items.1.tracking_categories.0": option("South"),
    }
    request = provider.map_invoice(ConnectionContext("c", "xero", SETTINGS), outbound(body, references))
    first, second = (line["Tracking"] for line in request["Invoices"][0]["LineItems"])
    assert first == [NORTH, ENGINEERING]
    assert [t["Option"] for t in second] == ["South", "Engineering"]
    assert_valid(request, "Invoices")


# --- refusals -----------------------------------------------------------------------------


def test_xero_has_no_custom_fields() -> None:
    body = {"contact_id": CONTACT_UUID, "line_items": [{"total_amount": 1}], "field_mappings": {"po": "PO-1"}}
    details = refusal(body, **{"custom_field.po": "anything"})
    assert details == [("field_mappings", "Xero invoices have no custom fields")]


def test_an_accounting_period_is_not_supported() -> None:
    body = {
        "contact_id": CONTACT_UUID,
        "line_items": [{"total_amount": 1}],
        "accounting_period_id": OTHER_UUID,
    }
    [(path, reason)] = refusal(body)
    assert path == "accounting_period_id" and "not supported" in reason


def test_a_connection_without_tenant_id_is_refused_before_anything_is_sent() -> None:
    body = {"contact_id": CONTACT_UUID, "line_items": [{"total_amount": 1}]}
    connection = ConnectionContext("c", "xero", {"default_account_code": "200"})
    with pytest.raises(InvalidInvoice) as caught:
        provider.map_invoice(connection, outbound(body, {"contact_id": contact(RITE_AGENCY)}))
    assert caught.value.details == [("connection", "Xero connection has no tenant_id setting")]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"memo": "m" * 251}, "memo"),
        ({"contact_id": None}, "contact_id"),
        ({"total_discount": 5}, "total_discount"),
        ({"paid_on_date": "2026-04-30"}, "paid_on_date"),
        ({"exchange_rate": "150.25"}, "exchange_rate"),
        ({"line_items": [], "total_amount": 10}, "line_items"),
        ({"line_items": [{"unit_price": "0.12345"}]}, "line_items.0.unit_price"),
        ({"line_items": [{"quantity": "1.00001", "unit_price": 1}]}, "line_items.0.quantity"),
        ({"line_items": [{"total_amount": "0.125"}]}, "line_items.0.total_amount"),
        (
            {"line_items": [{"quantity": 3, "unit_price": 10, "total_amount": 31}]},
            "line_items.0.total_amount",
        ),
        (
            {"currency": "USD", "line_items": [{"total_amount": 1, "currency": "EUR"}]},
            "line_items.0.currency",
        ),
        ({"line_items": [{"total_amount": 1, "exchange_rate": 2}]}, "line_items.0.exchange_rate"),
    ],
)
def test_what_xero_would_reject_or_round_is_refused_naming_the_field(change: dict, path: str) -> None:
    body = {"contact_id": CONTACT_UUID, "line_items": [{"total_amount": 1}], **change}
    assert path in [field for field, _ in refusal(body)]


def test_a_line_total_rounded_to_the_cent_is_accepted() -> None:
    body = {
        "contact_id": CONTACT_UUID,
        "line_items": [{"quantity": 3, "unit_price": "0.125", "total_amount": "0.38"}],
    }
    request = provider.map_invoice(
        ConnectionContext("c", "xero", SETTINGS), outbound(body, {"contact_id": contact(RITE_AGENCY)})
    )
    assert "LineAmount" not in request["Invoices"][0]["LineItems"][0]  # Xero computes it


def test_tracking_beyond_what_a_xero_line_takes_is_refused() -> None:
    body = {
        "contact_id": CONTACT_UUID,
        "tracking_categories": [REGION_UUID, DEPARTMENT_UUID],
        "line_items": [{"total_amount": 1, "tracking_categories": [OTHER_UUID, ITEM_UUID]}],
    }
    third = RemoteReference(
        "tracking_category",
        "5d6e7f80-0000-4000-8000-000000000001",
        "Project: Apollo",
        {
            "category_id": "5d6e7f80-0000-4000-8000-000000000000",
            "category_name": "Project",
            "option_name": "Apollo",
        },
    )
    references = {
        "tracking_categories.0": option("North"),
        "tracking_categories.1": option("Sales"),
        "line_items.0.tracking_categories.0": option("Engineering"),
        "line_items.0.tracking_categories.1": third,
    }
    assert [path for path, _ in refusal(body, references)] == ["line_items.0.tracking_categories"]

    body["line_items"][0]["tracking_categories"] = [OTHER_UUID, ITEM_UUID]
    references["line_items.0.tracking_categories.1"] = option("Sales")  # same category as Engineering
    assert [path for path, _ in refusal(body, references)] == ["line_items.0.tracking_categories.1"]


def test_references_synced_without_their_details_are_refused_not_sent_half_empty() -> None:
    body = {
        "contact_id": CONTACT_UUID,
        "tracking_categories": [REGION_UUID],
        "line_items": [{"total_amount": 1, "item_id": ITEM_UUID}, {"total_amount": 2}],
    }
    references = {
        "tracking_categories.0": RemoteReference("tracking_category", NORTH["TrackingOptionID"], "North"),
        "line_items.0.item_id": RemoteReference("item", "8bbaf73c-5a32-4458-addf-bd30a36c8551", "Book"),
    }
    assert sorted(path for path, _ in refusal(body, references)) == [
        "line_items.0.item_id",
        "tracking_categories.0",
    ]


# --- answers from Xero --------------------------------------------------------------------


def test_a_validation_exception_becomes_provider_rejected_with_xeros_messages(fake: FakeXero) -> None:
    connection = connect(fake.handle, fake, settings={**SETTINGS, "default_account_code": "999"})
    body = {"contact_id": CONTACT_UUID, "line_items": [{"total_amount": 1}]}
    with pytest.raises(ProviderRejected) as caught:
        create(connection, outbound(body, {"contact_id": contact(RITE_AGENCY)}))
    assert caught.value.messages == ["Account code '999' is not a valid code for this document."]
    assert fake.invoices == {}


def test_a_reused_sales_invoice_number_is_rejected_by_xero(fake: FakeXero) -> None:
    connection = connect(fake.handle, fake)
    body = {"number": "LB-7", "contact_id": CONTACT_UUID, "line_items": [{"total_amount": 1}]}
    create(connection, outbound(body, {"contact_id": contact(RITE_AGENCY)}, invoice_id="inv-a"))
    with pytest.raises(ProviderRejected) as caught:
        create(connection, outbound(body, {"contact_id": contact(RITE_AGENCY)}, invoice_id="inv-b"))
    assert caught.value.messages == ["Invoice # must be unique."]


def test_every_message_of_the_documented_error_shape_is_kept() -> None:
    error = {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": "A validation exception occurred",
        "Elements": [
            {
                "Type": "ACCREC",
                "InvoiceID": "00000000-0000-0000-0000-000000000000",
                "LineItems": [
                    {"ValidationErrors": [{"Message": "Description needs to be at least 1 char long"}]}
                ],
                "ValidationErrors": [
                    {"Message": "Email address must be valid."},
                    {"Message": "Description needs to be at least 1 char long"},
                ],
            }
        ],
    }
    connection = connect(lambda request: httpx.Response(400, content=jsonutil.dumps(error)))
    body = {"contact_id": CONTACT_UUID, "line_items": [{"total_amount": 1}]}
    with pytest.raises(ProviderRejected) as caught:
        create(connection, outbound(body, {"contact_id": contact(RITE_AGENCY)}))
    assert caught.value.messages == [
        "Email address must be valid.",
        "Description needs to be at least 1 char long",
    ]


def test_a_200_with_has_errors_is_a_rejection_too() -> None:
    answer = {
        "Id": "e0d5a0a4-0000-4000-8000-000000000000",
        "Status": "OK",
        "Invoices": [
            {
                "InvoiceID": "00000000-0000-0000-0000-000000000000",
                "HasErrors": True,
                "StatusAttributeString": "ERROR",
                "ValidationErrors": [{"Message": "The TaxType code 'XYZ' does not exist"}],
            }
        ],
    }
    connection = connect(lambda request: httpx.Response(200, content=jsonutil.dumps(answer)))
    body = {"contact_id": CONTACT_UUID, "line_items": [{"total_amount": 1}]}
    with pytest.raises(ProviderRejected) as caught:
        create(connection, outbound(body, {"contact_id": contact(RITE_AGENCY)}))
    assert caught.value.messages == ["The TaxType code 'XYZ' does not exist"]


def test_a_body_breaking_the_openapi_schema_is_refused_by_the_fake(fake: FakeXero) -> None:
    connection = connect(fake.handle, fake)
    request = {"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": RITE_AGENCY}, "Total": 5}]}
    with pytest.raises(ProviderRejected) as caught:
        provider.send_invoice(connection, outbound({}, {}), request)
    assert "Total" in caught.value.messages[0] and "read-only" in caught.value.messages[0]


def test_another_organisation_is_forbidden(fake: FakeXero) -> None:
    connection = connect(
        fake.handle, fake, settings={**SETTINGS, "tenant_id": "8fecd03b-d211-491a-a3bb-7203920abac7"}
    )
    body = {"contact_id": CONTACT_UUID, "line_items": [{"total_amount": 1}]}
    with pytest.raises(ReauthorizationRequired):
        create(connection, outbound(body, {"contact_id": contact(RITE_AGENCY)}))


@pytest.mark.parametrize(
    ("index", "status"),
    [(0, "OPEN"), (1, "PARTIALLY_PAID"), (2, "PAID"), (3, "DRAFT"), (4, "VOID"), (5, "VOID")],
)
def test_recorded_invoices_map_to_unified_statuses(index: int, status: str) -> None:
    record = recorded_body("list-invoices")["Invoices"][index]
    assert unified_status(record) == status


def test_a_submitted_invoice_stays_submitted_and_a_recorded_bill_maps_back() -> None:
    assert unified_status({"Status": "SUBMITTED", "AmountDue": 5, "AmountPaid": 0}) == "SUBMITTED"
    [bill] = recorded_body("get-invoice")["Invoices"]
    remote = remote_invoice(bill, line_count=1)
    assert (remote.remote_id, remote.fields["number"], remote.fields["status"]) == (
        "8a3fdcc9-83eb-4fdd-83e0-52ec1b40b072",
        "AP",
        "OPEN",
    )
    assert remote.fields["total_amount"] == Decimal("31.39")
    assert remote.remote_updated_at == datetime(2008, 12, 20, 16, 42, 10, 237000, tzinfo=UTC)
    assert remote.line_remote_ids == ["3e1b05d8-bff3-4bd4-9856-afca27c16b6e"]


# --- retries and idempotency --------------------------------------------------------------

BODY = {"contact_id": CONTACT_UUID, "line_items": [{"total_amount": 10}]}


def test_a_429_with_retry_after_is_waited_out(fake: FakeXero) -> None:
    sleeps: list[float] = []
    fake.fail_next(429, headers={"Retry-After": "1", "X-Rate-Limit-Problem": "minute"})
    remote = create(
        connect(fake.handle, fake, sleeps=sleeps), outbound(BODY, {"contact_id": contact(RITE_AGENCY)})
    )
    assert sleeps == [1.0]
    assert len(fake.invoice_requests()) == 2
    assert list(fake.invoices) == [remote.remote_id]


def test_a_503_is_retried_after_a_backoff(fake: FakeXero) -> None:
    sleeps: list[float] = []
    fake.fail_next(503)
    create(connect(fake.handle, fake, sleeps=sleeps), outbound(BODY, {"contact_id": contact(RITE_AGENCY)}))
    assert sleeps == [0.25]  # base 0.5 x jitter 0.5
    assert len(fake.invoices) == 1


def test_a_timeout_is_retried(fake: FakeXero) -> None:
    sleeps: list[float] = []
    fake.timeout_next()
    create(connect(fake.handle, fake, sleeps=sleeps), outbound(BODY, {"contact_id": contact(RITE_AGENCY)}))
    assert sleeps == [0.25]
    assert len(fake.invoice_requests()) == 2 and len(fake.invoices) == 1


def test_a_lost_response_is_retried_with_the_same_idempotency_key_and_creates_one_invoice(
    fake: FakeXero,
) -> None:
    fake.timeout_next(after_processing=True)  # Xero made the invoice, the answer never arrived
    remote = create(connect(fake.handle, fake), outbound(BODY, {"contact_id": contact(RITE_AGENCY)}))
    first, second = fake.invoice_requests()
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == INVOICE_ID
    assert list(fake.invoices) == [remote.remote_id]


def test_a_resend_of_the_same_invoice_returns_the_first_one(fake: FakeXero) -> None:
    connection = connect(fake.handle, fake)
    first = create(connection, outbound(BODY, {"contact_id": contact(RITE_AGENCY)}))
    again = create(connection, outbound(BODY, {"contact_id": contact(RITE_AGENCY)}))
    assert again.remote_id == first.remote_id and again.fields == first.fields
    assert len(fake.invoices) == 1


def test_giving_up_on_an_unavailable_xero(fake: FakeXero) -> None:
    fake.fail_next(503, times=4)
    with pytest.raises(ProviderUnavailable):
        create(connect(fake.handle, fake), outbound(BODY, {"contact_id": contact(RITE_AGENCY)}))
    assert fake.invoices == {}


def test_an_expired_access_token_is_refreshed_once_and_the_request_resent(fake: FakeXero) -> None:
    connection = connect(fake.handle, fake)
    fake.expire_access_tokens()
    create(connection, outbound(BODY, {"contact_id": contact(RITE_AGENCY)}))
    first, second = fake.invoice_requests()
    assert first.headers["authorization"] == "Bearer xero-access-0"
    assert second.headers["authorization"] == "Bearer xero-access-1"


# --- the fake's token endpoint ------------------------------------------------------------


def test_the_token_endpoint_rotates_refresh_tokens_and_refuses_a_used_one(fake: FakeXero) -> None:
    first = token_request(fake, "xero-refresh-0")
    assert first.status_code == 200
    assert first.json()["refresh_token"] == "xero-refresh-1" and first.json()["token_type"] == "Bearer"
    second = token_request(fake, "xero-refresh-1")
    assert second.json()["refresh_token"] == "xero-refresh-2"
    reused = token_request(fake, "xero-refresh-0")
    assert (reused.status_code, reused.json()) == (400, {"error": "invalid_grant"})
    assert token_request(fake, "xero-refresh-2", secret="wrong").json() == {"error": "invalid_client"}
    sent = fake.requests[0]
    assert (
        sent.headers["authorization"]
        == "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    )


# --- references ---------------------------------------------------------------------------


def test_references_list_every_contact_page_items_accounts_and_tracking_options(fake: FakeXero) -> None:
    for n in range(120):
        fake.add_contact(f"Paged customer {n}")
    references = provider.list_references(connect(fake.handle, fake))

    pages = [r.url.params.get("page") for r in fake.requests if r.url.path.endswith("/Contacts")]
    assert pages == ["1", "2"]
    assert all(r.headers["xero-tenant-id"] == TENANT_ID for r in fake.requests)
    by_kind: dict[str, list[RemoteReference]] = {}
    for ref in references:
        by_kind.setdefault(ref.kind, []).append(ref)
    assert {kind: len(refs) for kind, refs in by_kind.items()} == {
        "contact": 127,
        "item": 5,
        "account": 10,
        "tracking_category": 5,
    }
    for refs in by_kind.values():
        assert len({ref.remote_id for ref in refs}) == len(refs)

    contacts = {ref.remote_id: ref for ref in by_kind["contact"]}
    assert contacts[RITE_AGENCY].fields["is_customer"] and contacts[RITE_AGENCY].fields["is_supplier"]
    assert (contacts[XERO_SUPPLIER].name, contacts[XERO_SUPPLIER].fields["is_customer"]) == ("Xero", False)
    abc = contacts["39efa556-8dda-4c81-83d3-a631e59eb6d3"].fields
    assert (abc["email_address"], abc["currency"], abc["status"]) == ("person2@example.com", "USD", "ACTIVE")

    items = {ref.fields["code"]: ref for ref in by_kind["item"]}
    assert items["GB1-White"].fields["unit_price"] == Decimal("5.6")
    assert items["GB1-White"].fields["purchase_price"] == Decimal("4.2")
    assert items["GB1-White"].remote_id == "3644c19f-7c46-4e18-93fa-5550c307bcdd"

    accounts = {ref.fields["code"]: ref for ref in by_kind["account"]}
    assert accounts["200"].remote_id == "d1ebb97b-d207-4ccb-9ab6-8a466a8b4d39"
    assert accounts["200"].name == "Sales Revenue - Updated"

    west = next(ref for ref in by_kind["tracking_category"] if ref.fields["option_name"] == "West")
    assert west.remote_id == "0a3c1f7e-5b2d-4e8f-9a6c-7d1e2f3a4b5c"
    assert west.name == "Region: West"
    assert west.fields == {
        "category_id": "351953c4-8127-4009-88c3-f9cd8c9cbe9f",
        "category_name": "Region",
        "option_name": "West",
        "status": "ARCHIVED",
        "category_type": None,
        "parent_category": "Region",
    }


def test_a_full_last_contact_page_asks_for_one_more(fake: FakeXero) -> None:
    for n in range(93):
        fake.add_contact(f"Customer {n}")  # 7 recorded + 93 = exactly one page
    references = provider.list_references(connect(fake.handle, fake))
    pages = [r.url.params.get("page") for r in fake.requests if r.url.path.endswith("/Contacts")]
    assert pages == ["1", "2"]
    assert sum(ref.kind == "contact" for ref in references) == 100


def test_account_and_item_references_keep_the_record() -> None:
    record = recorded_body("list-accounts")["Accounts"][0]
    assert account_reference(record).remote_data == record
    assert item("BOOK").fields["sales_account_code"] == "200"


# --- dates and endpoints ------------------------------------------------------------------


def test_xero_dates_are_parsed_with_and_without_offsets() -> None:
    instant = datetime(2026, 4, 24, 11, 59, 36, 527000, tzinfo=UTC)
    assert parse_xero_date("/Date(1777031976527+0000)/") == instant
    assert parse_xero_date("/Date(1777031976527)/") == instant
    auckland = parse_xero_date("/Date(1777031976527+1300)/")
    assert auckland == instant and auckland.utcoffset() == timedelta(hours=13)
    assert (auckland.day, auckland.hour) == (25, 0)
    india = parse_xero_date("/Date(1777031976527-0530)/")
    assert india == instant and india.tzinfo == timezone(-timedelta(hours=5, minutes=30))
    assert parse_xero_date("/Date(-86400000+0000)/") == datetime(1969, 12, 31, tzinfo=UTC)
    assert parse_xero_date(None) is None
    for text in ("2026-04-24", "/Date(abc)/", "/Date(1+13)/"):
        with pytest.raises(ValueError):
            parse_xero_date(text)


def test_api_and_token_urls_default_to_xero_and_follow_the_environment(
    fake: FakeXero, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEDGERBRIDGE_XERO_API_URL", raising=False)
    monkeypatch.delenv("LEDGERBRIDGE_XERO_TOKEN_URL", raising=False)
    assert provider.oauth_token_url() == "https://identity.xero.com/connect/token"

    monkeypatch.setenv("LEDGERBRIDGE_XERO_API_URL", "http://127.0.0.1:8765/xero/")
    monkeypatch.setenv("LEDGERBRIDGE_XERO_TOKEN_URL", "http://127.0.0.1:8765/connect/token")
    seen: list[httpx.URL] = []

    def proxy(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        request.url = request.url.copy_with(path=request.url.path.removeprefix("/xero"))
        return fake.handle(request)

    create(connect(proxy, fake), outbound(BODY, {"contact_id": contact(RITE_AGENCY)}))
    assert str(seen[0]) == "http://127.0.0.1:8765/xero/api.xro/2.0/Invoices?unitdp=4"
    assert provider.oauth_token_url() == "http://127.0.0.1:8765/connect/token"
