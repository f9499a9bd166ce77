"""The Pennylane provider against the fake Pennylane (tests/fakes/pennylane.py) and its recordings."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from ledgerbridge import jsonutil
from ledgerbridge.currencies import ISO_4217_CODES
from ledgerbridge.models import ContactInput, InvoiceInput
from ledgerbridge.providers import base
from ledgerbridge.providers.base import (
    ConnectionContext,
    InvalidInvoice,
    OutboundContact,
    OutboundInvoice,
    ProviderRejected,
    ProviderUnavailable,
    ReauthorizationRequired,
    RemoteInvoice,
    RemoteReference,
)
from ledgerbridge.providers.http import ProviderHttp
from ledgerbridge.providers.oauth import OAuthApp, OAuthTokens, TokenSource
from ledgerbridge.providers.pennylane import (
    TOKEN_URL,
    UNLISTED_CURRENCIES,
    PennylaneProvider,
    customer_reference,
    ledger_account_reference,
    product_reference,
    remote_invoice,
    unified_status,
)
from tests.fakes.pennylane import API, CLIENT_ID, CLIENT_SECRET, FakePennylane, fixture, recorded_body
from tests.support.providers import fake_http
from tests.support.specs import assert_valid, document, schema_errors

INVOICE_ID = "0196a3f2-7c1e-7d3a-9b2e-5f4c3d2a1b00"
SETTINGS = {"default_vat_rate": "FR_200", "default_unit": "piece"}
CONTACT_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b60"
ITEM_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b61"
OTHER_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b62"
ACME = 1338468995072  # the recorded customer of the recorded invoices
CONSULTING = 87538491392  # the recorded product (500.0 before tax, FR_200)
BASE = f"https://app.pennylane.com{API}"
NOW = 1_800_000_000.0
SPEC = "pennylane/customer_invoices"  # Pennylane's OpenAPI excerpt, tests/fixtures/specs/pennylane

provider = PennylaneProvider()


# --- helpers ------------------------------------------------------------------------------


def customer(customer_id: int = ACME) -> RemoteReference:
    return customer_reference(
        next(r for r in recorded_body("list-customers")["items"] if r["id"] == customer_id)
    )


def product(product_id: int = CONSULTING) -> RemoteReference:
    return product_reference(
        next(r for r in recorded_body("list-products")["items"] if r["id"] == product_id)
    )


class FakeTokens:
    """access_token()/refresh_after_rejection() backed by the fake's token endpoint."""

    def __init__(self, fake: FakePennylane):
        self.fake, self.token, self.refresh_token = fake, "pl-access-0", "pl-refresh-0"

    def access_token(self) -> str:
        return self.token

    def refresh_after_rejection(self, rejected_access_token: str) -> str:
        answer = token_request(self.fake, self.refresh_token)
        assert answer.status_code == 200, answer.text
        self.token, self.refresh_token = answer.json()["access_token"], answer.json()["refresh_token"]
        return self.token


def token_request(fake: FakePennylane, refresh_token: str, secret: str = CLIENT_SECRET) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
        return client.post(TOKEN_URL, data={**form, "client_id": CLIENT_ID, "client_secret": secret})


def connect(
    handler: Callable[[httpx.Request], httpx.Response],
    fake: FakePennylane | None = None,
    settings: dict[str, str] | None = None,
    sleeps: list[float] | None = None,
    attempts: int = 4,
) -> ConnectionContext:
    http = fake_http(handler, FakeTokens(fake or FakePennylane()), sleeps, attempts)
    return ConnectionContext(
        "conn-pl", "pennylane", dict(SETTINGS if settings is None else settings), http=http
    )


def outbound(
    body: dict[str, Any], references: dict[str, RemoteReference] | None = None, invoice_id: str = INVOICE_ID
) -> OutboundInvoice:
    invoice = InvoiceInput.model_validate(jsonutil.loads(jsonutil.dumps(body)))
    contact = {"contact_id": customer()} if invoice.contact_id else {}
    return OutboundInvoice(invoice_id, invoice, {**contact, **(references or {})})


def create(connection: ConnectionContext, out: OutboundInvoice) -> RemoteInvoice:
    return provider.send_invoice(connection, out, provider.map_invoice(connection, out))


def refusal(body: dict[str, Any], references: dict[str, RemoteReference] | None = None, **settings: str):
    connection = ConnectionContext("conn-pl", "pennylane", {**SETTINGS, **settings})
    with pytest.raises(InvalidInvoice) as caught:
        provider.map_invoice(connection, outbound(body, references))
    return caught.value.details


def mapped(body: dict[str, Any], references: dict[str, RemoteReference] | None = None, **settings: str):
    """The create body the mapper builds, checked against Pennylane's OpenAPI schema first."""
    request = provider.map_invoice(
        ConnectionContext("c", "pennylane", {**SETTINGS, **settings}), outbound(body, references)
    )
    assert_valid(request, SPEC, "postCustomerInvoices")
    return request


def lookups(fake: FakePennylane) -> list[httpx.Request]:
    return [r for r in fake.requests if r.method == "GET" and r.url.path == f"{API}/customer_invoices"]


BODY = {
    "contact_id": CONTACT_UUID,
    "issue_date": "2026-11-24",
    "due_date": "2026-12-24",
    "line_items": [{"description": "Consulting", "quantity": 2, "unit_price": "150.25"}],
}
FULL_INVOICE = {
    "type": "ACCOUNTS_RECEIVABLE",
    "issue_date": "2026-11-24",
    "due_date": "2026-12-24T09:00:00+02:00",
    "memo": "November consulting",
    "currency": "eur",
    "exchange_rate": "1",
    "total_discount": "10.00",
    "contact_id": CONTACT_UUID,
    "line_items": [
        {"description": "Developer day onsite", "quantity": 2, "unit_price": 650, "item_id": ITEM_UUID},
        {"description": "Support minutes", "quantity": 3, "unit_price": Decimal("0.125"), "currency": "EUR"},
    ],
}


@pytest.fixture
def fake() -> FakePennylane:
    return FakePennylane()


# --- request bodies -----------------------------------------------------------------------


def test_a_full_invoice_is_sent_as_pennylane_documents_it(fake: FakePennylane) -> None:
    remote = create(connect(fake.handle, fake), outbound(FULL_INVOICE, {"line_items.0.item_id": product()}))

    [sent] = fake.invoice_requests()
    assert str(sent.url) == f"{BASE}/customer_invoices"
    assert sent.headers["authorization"] == "Bearer pl-access-0"
    assert FakePennylane.body_of(sent) == {
        "customer_id": ACME,
        "date": "2026-11-24",
        "deadline": "2026-12-24",  # the day as written, not shifted to UTC
        "draft": False,
        "external_reference": INVOICE_ID,
        "currency": "EUR",
        "label": "November consulting",  # the memo: the ledger entries' label, not on the PDF
        "discount": {"type": "absolute", "value": "10.00"},
        "invoice_lines": [
            {
                "product_id": CONSULTING,
                "quantity": 2,
                "raw_currency_unit_price": "650",
                "description": "Developer day onsite",
            },
            {
                "label": "Support minutes",
                "quantity": 3,
                "raw_currency_unit_price": "0.125",
                "unit": "piece",
                "vat_rate": "FR_200",
            },
        ],
    }
    assert b'"raw_currency_unit_price":"0.125"' in sent.content and b'"quantity":3' in sent.content

    [record] = fake.created()
    assert remote.remote_id == str(record["id"])
    assert remote.fields == {
        "number": "F-2026-0001",
        "status": "OPEN",
        "sub_total": Decimal("1290.38"),  # 1300 + 0.38 - 10
        "total_tax_amount": Decimal("258.08"),
        "total_amount": Decimal("1548.46"),
        "total_discount": Decimal("10"),
        "balance": Decimal("1548.46"),
        "currency": "EUR",
        "exchange_rate": Decimal("1.0"),
    }
    assert remote.line_remote_ids == [str(line["id"]) for line in fake.invoice_lines[record["id"]]]
    lines_read = [r for r in fake.requests if r.url.path.endswith("/invoice_lines")]
    assert [dict(r.url.params) for r in lines_read] == [{"sort": "id", "limit": "100"}]
    assert remote.remote_updated_at == datetime.fromisoformat(record["updated_at"])


def test_the_recorded_request_is_what_the_mapper_builds() -> None:
    recorded = fixture("create-customer-invoice")["exchanges"][0]["request"]["body"]
    body = {
        "status": "DRAFT",
        "contact_id": CONTACT_UUID,
        "issue_date": "2026-07-08",
        "due_date": "2026-07-31",
        "line_items": [{"quantity": 2, "item_id": ITEM_UUID}],
    }
    request = mapped(body, {"line_items.0.item_id": product()})
    assert request == {**recorded, "external_reference": INVOICE_ID}


def test_the_recorded_response_maps_back_to_unified_fields() -> None:
    answer = fixture("create-customer-invoice")["exchanges"][0]["response"]
    line_page = {
        "items": [{"id": 777, "label": "Consulting Services"}],
        "has_more": False,
        "next_cursor": None,
    }

    def replay(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(
                answer["status"], headers=answer["headers"], content=jsonutil.dumps(answer["body"])
            )
        return httpx.Response(200, content=jsonutil.dumps(line_page))

    body = {**BODY, "status": "DRAFT", "line_items": [{"quantity": 2, "item_id": ITEM_UUID}]}
    remote = create(connect(replay), outbound(body, {"line_items.0.item_id": product()}))

    assert answer["status"] == 200  # recorded; the reference documents 201: both are accepted
    assert remote.remote_id == "25465420529664"
    assert remote.fields == {
        "status": "DRAFT",
        "sub_total": Decimal("1000.0"),
        "total_tax_amount": Decimal("200.0"),
        "total_amount": Decimal("1200.0"),
        "currency": "EUR",
        "exchange_rate": Decimal("1.0"),
    }  # no number yet (a draft), no balance (null on drafts), a relative 0 discount
    assert remote.remote_updated_at == datetime(2026, 7, 8, 12, 24, 22, 157196, tzinfo=UTC)
    assert remote.line_remote_ids == ["777"]
    assert remote.remote_data == answer["body"]


@pytest.mark.parametrize(
    ("record", "status"),
    [
        ({"status": "draft"}, "DRAFT"),
        ({"status": "upcoming", "amount": "600.0", "remaining_amount_with_tax": "600.0"}, "OPEN"),
        ({"status": "late", "amount": "600.0", "remaining_amount_with_tax": "100.0"}, "PARTIALLY_PAID"),
        ({"status": "paid", "amount": "600.0", "remaining_amount_with_tax": "0.0"}, "PAID"),
        ({"status": "cancelled"}, "VOID"),
        ({"status": "credit_note"}, None),
    ],
)
def test_pennylane_statuses_map_to_unified_ones(record: dict[str, Any], status: str | None) -> None:
    assert unified_status(record) == status


def test_recorded_invoices_map_back() -> None:
    statuses = {r["id"]: unified_status(r) for r in recorded_body("list-customer-invoices")["items"]}
    assert statuses == {
        25465639374848: "DRAFT",
        25465638002688: "OPEN",
        25465420529664: "DRAFT",
        25465319419904: None,  # a credit note is not an invoice status
    }
    upcoming = next(r for r in recorded_body("list-customer-invoices")["items"] if r["status"] == "upcoming")
    remote = remote_invoice(upcoming, None, line_count=2)
    assert (remote.fields["balance"], remote.line_remote_ids) == (Decimal("600.0"), [None, None])
    fetched = remote_invoice(recorded_body("get-customer-invoice"), None, line_count=0)
    assert fetched.fields["total_amount"] == Decimal("600.0") and "number" not in fetched.fields


def test_a_balance_in_euros_is_not_reported_as_a_foreign_invoices_balance() -> None:
    record = {
        "id": 1,
        "status": "upcoming",
        "currency": "USD",
        "amount": "90.0",
        "remaining_amount_with_tax": "90.0",
    }
    assert "balance" not in remote_invoice(record, None, 0).fields
    paid = {**record, "status": "paid", "remaining_amount_with_tax": "0.0"}
    assert remote_invoice(paid, None, 0).fields["balance"] == Decimal(0)


@pytest.mark.parametrize(("status", "draft"), [("DRAFT", True), ("OPEN", False), (None, False)])
def test_statuses_sent_on_create(status: str | None, draft: bool) -> None:
    assert mapped({**BODY, "status": status})["draft"] is draft


def test_a_line_with_only_a_total_is_sent_as_an_exact_unit_price() -> None:
    body = {**BODY, "line_items": [{"description": "Hosting", "quantity": 4, "total_amount": 10}]}
    [line] = mapped(body)["invoice_lines"]
    assert (line["quantity"], line["raw_currency_unit_price"]) == (4, "2.5")
    [single] = mapped({**BODY, "line_items": [{"description": "Fee", "total_amount": "1E+2"}]})[
        "invoice_lines"
    ]
    assert (single["quantity"], single["raw_currency_unit_price"]) == (1, "100")  # no exponent notation


def test_a_product_line_takes_the_products_price_unless_one_is_given() -> None:
    body = {**BODY, "line_items": [{"item_id": ITEM_UUID}]}
    assert mapped(body, {"line_items.0.item_id": product()}, default_vat_rate="")["invoice_lines"] == [
        {"product_id": CONSULTING, "quantity": 1}  # no VAT default needed: the product has its rate
    ]


def test_the_default_ledger_account_goes_on_lines_without_an_item() -> None:
    body = {**BODY, "line_items": [{"description": "Fee", "unit_price": 1}, {"item_id": ITEM_UUID}]}
    lines = mapped(body, {"line_items.1.item_id": product()}, default_ledger_account_id="14065329119232")
    assert lines["invoice_lines"][0]["ledger_account_id"] == 14065329119232
    assert "ledger_account_id" not in lines["invoice_lines"][1]


# --- refusals -----------------------------------------------------------------------------


def test_payables_are_not_supported_by_pennylane() -> None:
    [(path, reason)] = refusal({**BODY, "type": "Bill"})
    assert path == "type" and "not supported by Pennylane" in reason and "PDF" in reason


def test_pennylane_has_no_custom_fields_even_with_a_definition() -> None:
    details = refusal({**BODY, "field_mappings": {"po": "PO-1"}}, **{"custom_field.po": "anything"})
    assert [path for path, _ in details] == ["field_mappings"]
    assert "not supported" in details[0][1]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"number": "F-1"}, "number"),
        ({"status": "SUBMITTED"}, "status"),
        ({"status": "PAID"}, "status"),
        ({"status": "PARTIALLY_PAID"}, "status"),
        ({"status": "VOID"}, "status"),
        ({"paid_on_date": "2026-12-01"}, "paid_on_date"),
        ({"accounting_period_id": OTHER_UUID}, "accounting_period_id"),
        ({"tracking_categories": [OTHER_UUID]}, "tracking_categories"),
        ({"exchange_rate": "1.1"}, "exchange_rate"),
        ({"currency": "USD", "exchange_rate": "1"}, "exchange_rate"),
        ({"total_discount": "-1"}, "total_discount"),
        ({"issue_date": None}, "issue_date"),
        ({"due_date": None, "issue_date": "2026-11-24"}, "due_date"),
        ({"contact_id": None}, "contact_id"),
        ({"line_items": []}, "line_items"),
        ({"line_items": [{"description": "x", "unit_price": 1, "tracking_categories": [OTHER_UUID]}]},
         "line_items.0.tracking_categories"),
        ({"currency": "USD", "line_items": [{"description": "x", "unit_price": 1, "currency": "EUR"}]},
         "line_items.0.currency"),
        ({"line_items": [{"description": "x", "unit_price": 1, "exchange_rate": 2}]},
         "line_items.0.exchange_rate"),
        ({"line_items": [{"description": "x", "unit_price": "0.1234567"}]}, "line_items.0.unit_price"),
        ({"line_items": [{"description": "x", "quantity": 3, "unit_price": 10, "total_amount": 31}]},
         "line_items.0.total_amount"),
        ({"line_items": [{"description": "x", "quantity": 3, "total_amount": 10}]},
         "line_items.0.total_amount"),
        ({"line_items": [{"unit_price": 1}]}, "line_items.0.description"),
        ({"line_items": [{"description": "x"}]}, "line_items.0.unit_price"),
    ],
)  # fmt: skip
def test_what_pennylane_cannot_express_is_refused_naming_the_field(change: dict, path: str) -> None:
    assert path in [field for field, _ in refusal({**BODY, **change})]


def test_a_line_without_item_needs_the_vat_rate_setting() -> None:
    [(path, reason)] = refusal(BODY, default_vat_rate="")
    assert path == "line_items.0.item_id" and "default_vat_rate" in reason


def test_a_non_numeric_default_ledger_account_is_a_connection_problem() -> None:
    body = {**BODY, "line_items": [{"description": "Fee", "unit_price": 1}]}
    assert refusal(body, default_ledger_account_id="706 Prestations") == [
        ("connection", "default_ledger_account_id must be a Pennylane ledger account id (a number)")
    ]


def test_a_rate_of_one_on_a_euro_invoice_and_a_rounded_line_total_are_accepted() -> None:
    line = {"description": "x", "quantity": 3, "unit_price": "0.125", "total_amount": "0.38"}
    body = {**BODY, "exchange_rate": "1", "line_items": [line]}
    assert mapped(body)["invoice_lines"][0]["raw_currency_unit_price"] == "0.125"


def test_references_that_are_not_pennylane_records_are_refused() -> None:
    body = {**BODY, "line_items": [{"item_id": ITEM_UUID}]}
    supplier = RemoteReference("contact", "42", "A supplier", {"is_customer": False})
    refs = {"contact_id": supplier, "line_items.0.item_id": RemoteReference("item", "DevD", "Dev day")}
    assert sorted(path for path, _ in refusal(body, refs)) == ["contact_id", "line_items.0.item_id"]


# --- the memo, the exchange rate, and Pennylane's OpenAPI document ------------------------


def test_the_memo_is_the_internal_label_by_default_and_a_printed_field_only_when_chosen() -> None:
    memo = {**BODY, "memo": "Chase on day 3"}
    default = mapped(memo)
    assert default["label"] == "Chase on day 3"
    assert not {"pdf_invoice_subject", "pdf_invoice_free_text"} & set(default)
    assert mapped(memo, memo_target="pdf_invoice_subject")["pdf_invoice_subject"] == "Chase on day 3"
    free_text = mapped(memo, memo_target="pdf_invoice_free_text")
    assert free_text["pdf_invoice_free_text"] == "Chase on day 3" and "label" not in free_text
    assert "label" not in mapped(BODY)  # no memo: Pennylane generates its own label


def test_a_memo_longer_than_the_label_keeps_is_refused_and_a_bad_memo_target_too() -> None:
    long_memo = {**BODY, "memo": "x" * 2001}
    assert refusal(long_memo) == [("memo", "Pennylane keeps at most 2000 characters in the invoice's label")]
    assert mapped({**BODY, "memo": "x" * 2000})["label"] == "x" * 2000
    assert len(mapped(long_memo, memo_target="pdf_invoice_subject")["pdf_invoice_subject"]) == 2001
    assert refusal(BODY, memo_target="notes") == [
        (
            "connection",
            "memo_target must be one of label, pdf_invoice_subject, pdf_invoice_free_text (default label)",
        )
    ]


def test_pennylanes_exchange_rate_reads_back_as_euros_per_unit_of_the_invoice_currency(
    fake: FakePennylane,
) -> None:
    remote = create(connect(fake.handle, fake), outbound({**BODY, "currency": "USD"}))
    [record] = fake.created()
    rate = remote.fields["exchange_rate"]
    assert (record["currency"], rate) == ("USD", Decimal("0.9"))  # 1 USD = 0.9 EUR, the company's books
    assert Decimal(record["amount"]) == (Decimal(record["currency_amount"]) * rate).quantize(Decimal("0.01"))
    exact = remote_invoice({"id": 1, "currency": "GBP", "exchange_rate": "1.168353"}, None, 0)
    assert exact.fields["exchange_rate"] == Decimal("1.168353")  # kept digit for digit, never rounded


def test_the_recorded_and_mapped_bodies_match_pennylanes_openapi_schema() -> None:
    recorded = fixture("create-customer-invoice")["exchanges"][0]["request"]["body"]
    assert schema_errors(recorded, SPEC, "postCustomerInvoices") == []
    mapped(FULL_INVOICE, {"line_items.0.item_id": product()})  # asserts validity
    assert schema_errors({**recorded, "pdf_invoice_title": "x"}, SPEC, "postCustomerInvoices") != []


def test_currencies_pennylanes_document_does_not_list_are_refused_before_sending() -> None:
    [branch, *_] = document(SPEC)["schemas"]["postCustomerInvoices"]["anyOf"]
    assert ISO_4217_CODES - set(branch["properties"]["currency"]["enum"]) == UNLISTED_CURRENCIES
    assert refusal({**BODY, "currency": "SSP"}) == [
        ("currency", "SSP is not a currency Pennylane invoices take")
    ]
    assert mapped({**BODY, "currency": "CHF"})["currency"] == "CHF"


def test_the_fake_refuses_a_body_or_query_pennylanes_document_does_not_allow(fake: FakePennylane) -> None:
    line = {
        "label": "x",
        "quantity": "2",
        "raw_currency_unit_price": "1",
        "unit": "piece",
        "vat_rate": "FR_200",
    }
    body = {"customer_id": ACME, "date": "2026-11-24", "deadline": "2026-12-24", "invoice_lines": [line]}
    auth = {"authorization": "Bearer pl-access-0"}
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
        post = client.post(f"{BASE}/customer_invoices", json={**body, "memo": "x"}, headers=auth)
        listed = client.get(f"{BASE}/customer_invoices", params={"page": "2"}, headers=auth)
    assert post.status_code == listed.status_code == 400
    assert "/invoice_lines/0/quantity: '2' is not of type 'number'" in post.json()["error"]
    assert "'memo' was unexpected" in post.json()["error"]
    assert listed.json()["error"] == "?page: not a documented query parameter"
    assert fake.created() == []


# --- answers from Pennylane ---------------------------------------------------------------


def test_a_validation_error_becomes_provider_rejected_with_pennylanes_message(fake: FakePennylane) -> None:
    connection = connect(fake.handle, fake)
    create(connection, outbound(BODY, invoice_id="inv-a"))
    earlier = {**BODY, "issue_date": "2026-11-01", "due_date": "2026-11-30"}
    with pytest.raises(ProviderRejected) as caught:
        create(connection, outbound(earlier, invoice_id="inv-b"))
    assert caught.value.messages == ["Date cannot be before latest finalized invoice."]
    assert len(fake.created()) == 1
    assert len(lookups(fake)) == 1  # a 422 is first checked against an earlier attempt: none


def test_an_unknown_vat_rate_is_rejected_by_pennylane(fake: FakePennylane) -> None:
    """Pennylane's OpenAPI document lists the VAT rate codes: another is refused as a bad request."""
    with pytest.raises(ProviderRejected) as caught:
        create(connect(fake.handle, fake, settings={"default_vat_rate": "FR_999"}), outbound(BODY))
    [message] = caught.value.messages
    assert "/invoice_lines/0/vat_rate: 'FR_999' is not one of ['FR_1_05'," in message
    assert fake.created() == []


def test_every_message_of_the_documented_error_shapes_is_kept() -> None:
    guide = {
        "error": "unprocessable_entity",
        "message": "Missing required field: customer_id",
        "details": {"field": "customer_id", "issue": "is required"},
    }

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(
                200, content=jsonutil.dumps({"items": [], "has_more": False, "next_cursor": None})
            )
        return httpx.Response(422, content=jsonutil.dumps(guide))

    with pytest.raises(ProviderRejected) as caught:
        create(connect(answer), outbound(BODY))
    assert caught.value.messages == ["Missing required field: customer_id", "customer_id is required"]

    def bad_request(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, content=jsonutil.dumps({"error": "Unsupported field: foo", "status": 400}))

    with pytest.raises(ProviderRejected) as caught:
        create(connect(bad_request), outbound(BODY))
    assert caught.value.messages == ["Unsupported field: foo"]


def test_a_missing_scope_needs_the_connection_authorised_again() -> None:
    def forbidden(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            403, content=jsonutil.dumps({"error": "Access to this resource forbidden", "status": 403})
        )

    with pytest.raises(ReauthorizationRequired) as caught:
        create(connect(forbidden), outbound(BODY))
    assert "Access to this resource forbidden" in str(caught.value)


def test_a_success_without_an_invoice_is_unavailable_not_created() -> None:
    with pytest.raises(ProviderUnavailable):
        create(connect(lambda request: httpx.Response(201, content=b"{}")), outbound(BODY))


def test_line_ids_are_best_effort_once_the_invoice_exists(fake: FakePennylane) -> None:
    def no_lines(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/invoice_lines"):
            return httpx.Response(404, content=jsonutil.dumps({"error": "Not Found", "status": 404}))
        return fake.handle(request)

    body = {**BODY, "line_items": [*BODY["line_items"], {"description": "Travel", "unit_price": "0.1"}]}
    remote = create(connect(no_lines, fake), outbound(body))
    assert remote.remote_id == str(fake.created()[0]["id"])
    assert remote.line_remote_ids == [None, None]


# --- retries and idempotency --------------------------------------------------------------


def test_a_429_with_retry_after_is_waited_out(fake: FakePennylane) -> None:
    sleeps: list[float] = []
    fake.fail_next(429, headers={"retry-after": "1", "ratelimit-limit": "25", "ratelimit-remaining": "0"})
    remote = create(connect(fake.handle, fake, sleeps=sleeps), outbound(BODY))
    assert sleeps == [1.0]
    assert len(fake.invoice_requests()) == 2
    assert [str(r["id"]) for r in fake.created()] == [remote.remote_id]


def test_a_503_is_retried_after_a_backoff(fake: FakePennylane) -> None:
    sleeps: list[float] = []
    fake.fail_next(503)
    create(connect(fake.handle, fake, sleeps=sleeps), outbound(BODY))
    assert sleeps == [0.25]  # base 0.5 x jitter 0.5
    assert len(fake.created()) == 1


def test_a_timeout_before_pennylane_did_anything_is_retried(fake: FakePennylane) -> None:
    sleeps: list[float] = []
    fake.timeout_next()
    create(connect(fake.handle, fake, sleeps=sleeps), outbound(BODY))
    assert sleeps == [0.25]
    assert len(fake.invoice_requests()) == 2 and len(fake.created()) == 1


def test_a_lost_response_retried_finds_the_invoice_instead_of_making_a_second(fake: FakePennylane) -> None:
    fake.timeout_next(after_processing=True)  # Pennylane made the invoice, the answer never arrived
    remote = create(connect(fake.handle, fake), outbound(BODY))
    first, second = fake.invoice_requests()
    assert FakePennylane.body_of(first)["external_reference"] == INVOICE_ID
    assert FakePennylane.body_of(second) == FakePennylane.body_of(first)  # refused as a duplicate (422)
    [record] = fake.created()
    assert remote.remote_id == str(record["id"]) and record["external_reference"] == INVOICE_ID


def test_after_a_lost_response_find_invoice_finds_exactly_that_invoice(fake: FakePennylane) -> None:
    connection = connect(fake.handle, fake, attempts=1)
    fake.timeout_next(after_processing=True)
    with pytest.raises(ProviderUnavailable):
        create(connection, outbound(BODY))
    found = provider.find_invoice(connection, outbound(BODY))
    [record] = fake.created()
    assert found is not None and found.remote_id == str(record["id"])
    assert found.fields["status"] == "OPEN" and found.line_remote_ids == [
        str(line["id"]) for line in fake.invoice_lines[record["id"]]
    ]


def test_find_invoice_looks_up_the_external_reference_and_answers_none_when_absent(
    fake: FakePennylane,
) -> None:
    connection = connect(fake.handle, fake)
    assert provider.find_invoice(connection, outbound(BODY)) is None
    [lookup] = lookups(fake)
    assert jsonutil.loads(lookup.url.params["filter"]) == [
        {"field": "external_reference", "operator": "eq", "value": INVOICE_ID}
    ]
    made = create(connection, outbound(BODY))
    found = provider.find_invoice(connection, outbound(BODY))
    assert found is not None and (found.remote_id, found.fields) == (made.remote_id, made.fields)
    assert provider.find_invoice(connection, outbound(BODY, invoice_id="another")) is None


def test_find_invoice_trusts_only_a_matching_reference() -> None:
    others = recorded_body("list-customer-invoices")  # as if the filter were ignored

    def unfiltered(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=jsonutil.dumps(others))

    assert provider.find_invoice(connect(unfiltered), outbound(BODY)) is None


def test_an_unsearchable_pennylane_is_unavailable_so_nothing_is_resent_blindly() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, content=jsonutil.dumps({"error": "Invalid filter field", "status": 400}))

    with pytest.raises(ProviderUnavailable):
        provider.find_invoice(connect(refuse), outbound(BODY))


# --- OAuth through the fake's token endpoint -------------------------------------------------


class MemoryStore:
    """CredentialStore with versioned, conditional saves."""

    def __init__(self, tokens: OAuthTokens):
        self.tokens = tokens

    def load(self) -> OAuthTokens:
        return self.tokens

    def save(self, tokens: OAuthTokens, replaces: OAuthTokens) -> bool:
        if self.tokens.version != replaces.version:
            return False
        self.tokens = tokens
        return True

    def mark_needs_reauthorization(self, reason: str) -> None:
        raise AssertionError(f"unexpected reauthorization: {reason}")


def test_an_expired_token_is_refreshed_with_form_credentials_and_the_rotation_kept(
    fake: FakePennylane,
) -> None:
    fake.expire_access_tokens()
    client = httpx.Client(transport=httpx.MockTransport(fake.handle))
    store = MemoryStore(OAuthTokens("pl-access-0", "pl-refresh-0", expires_at=NOW + 3000))
    app = OAuthApp(TOKEN_URL, CLIENT_ID, CLIENT_SECRET, client_auth=provider.oauth_client_auth)
    tokens = TokenSource(store, app, client, clock=lambda: NOW)
    connection = ConnectionContext("conn-pl", "pennylane", SETTINGS, ProviderHttp(client, tokens))

    create(connection, outbound(BODY))

    [refresh] = [r for r in fake.requests if r.url.path == "/oauth/token"]
    assert "authorization" not in refresh.headers  # client credentials go in the form body
    assert {k: v[0] for k, v in parse_qs(refresh.content.decode()).items()} == {
        "grant_type": "refresh_token",
        "refresh_token": "pl-refresh-0",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert (store.tokens.access_token, store.tokens.refresh_token) == ("pl-access-1", "pl-refresh-1")
    assert store.tokens.expires_at == NOW + 86400
    first, second = fake.invoice_requests()
    assert (first.headers["authorization"], second.headers["authorization"]) == (
        "Bearer pl-access-0",
        "Bearer pl-access-1",
    )


def test_the_token_endpoint_rotates_and_retires_the_previous_pair(fake: FakePennylane) -> None:
    first = token_request(fake, "pl-refresh-0")
    assert first.status_code == 200
    assert first.json()["refresh_token"] == "pl-refresh-1" and first.json()["expires_in"] == 86400
    reused = token_request(fake, "pl-refresh-0")
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
        old = client.get(f"{BASE}/customers", headers={"authorization": "Bearer pl-access-0"})
        new = client.get(f"{BASE}/customers", headers={"authorization": "Bearer pl-access-1"})
        basic = client.post(
            TOKEN_URL, data={"grant_type": "refresh_token", "refresh_token": "pl-refresh-1"},
            auth=(CLIENT_ID, CLIENT_SECRET),
        )  # fmt: skip
    assert (old.status_code, old.json()) == (
        401,
        {"error": "Access token is missing or invalid", "status": 401},
    )
    assert new.status_code == 200
    assert (basic.status_code, basic.json()["error"]) == (401, "invalid_client")
    assert token_request(fake, "pl-refresh-1", secret="wrong").json()["error"] == "invalid_client"


# --- references ---------------------------------------------------------------------------


def test_references_list_every_page_of_customers_products_and_ledger_accounts(fake: FakePennylane) -> None:
    for n in range(150):
        fake.add_customer(f"Paged customer {n}")
    references = provider.list_references(connect(fake.handle, fake))

    pages = [r.url.params for r in fake.requests if r.url.path == f"{API}/customers"]
    assert [p.get("limit") for p in pages] == ["100", "100"]
    assert "cursor" not in pages[0] and pages[1]["cursor"]
    by_kind: dict[str, list[RemoteReference]] = {}
    for ref in references:
        by_kind.setdefault(ref.kind, []).append(ref)
    assert {kind: len(refs) for kind, refs in by_kind.items()} == {"contact": 154, "item": 1, "account": 7}
    for refs in by_kind.values():
        assert len({ref.remote_id for ref in refs}) == len(refs)

    contacts = {ref.remote_id: ref for ref in by_kind["contact"]}
    acme = contacts[str(ACME)]
    assert acme.name == "Acme Corp Test" and acme.fields["is_customer"] and not acme.fields["is_supplier"]
    assert acme.fields["customer_type"] == "company"
    [consulting] = by_kind["item"]
    assert (consulting.remote_id, consulting.name) == (str(CONSULTING), "Consulting Services")
    assert consulting.fields["unit_price"] == Decimal("500.0") and consulting.fields["vat_rate"] == "FR_200"
    assert (consulting.fields["code"], consulting.fields["status"]) == (None, "ACTIVE")
    accounts = {ref.fields["account_number"]: ref for ref in by_kind["account"]}
    assert accounts["706"].remote_id == "14065329119232" and accounts["706"].name == "Prestations de services"


def test_reference_records_keep_pennylanes_own_record() -> None:
    record = recorded_body("list-ledger-accounts")["items"][0]
    assert ledger_account_reference(record).remote_data == record
    assert customer().remote_data["billing_address"]["city"] == "Paris"


# --- endpoints ----------------------------------------------------------------------------


def test_api_and_token_urls_default_to_pennylane_and_follow_the_environment(
    fake: FakePennylane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEDGERBRIDGE_PENNYLANE_API_URL", raising=False)
    monkeypatch.delenv("LEDGERBRIDGE_PENNYLANE_TOKEN_URL", raising=False)
    assert provider.oauth_token_url() == "https://app.pennylane.com/oauth/token"
    assert (provider.name, provider.oauth_client_auth) == ("pennylane", "form")

    monkeypatch.setenv("LEDGERBRIDGE_PENNYLANE_API_URL", "http://127.0.0.1:8765/pennylane/")
    monkeypatch.setenv("LEDGERBRIDGE_PENNYLANE_TOKEN_URL", "http://127.0.0.1:8765/oauth/token")
    seen: list[httpx.URL] = []

    def proxy(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        request.url = request.url.copy_with(path=request.url.path.removeprefix("/pennylane"))
        return fake.handle(request)

    create(connect(proxy, fake), outbound(BODY))
    assert str(seen[0]) == "http://127.0.0.1:8765/pennylane/api/external/v2/customer_invoices"
    assert provider.oauth_token_url() == "http://127.0.0.1:8765/oauth/token"


def test_the_fakes_cursor_is_opaque_and_checked(fake: FakePennylane) -> None:
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
        auth = {"authorization": "Bearer pl-access-0"}
        bad = client.get(
            f"{BASE}/customers", params={"cursor": base64.b64encode(b"nope").decode()}, headers=auth
        )
        too_many = client.get(f"{BASE}/customers", params={"limit": "101"}, headers=auth)
    assert (bad.status_code, too_many.status_code) == (400, 400)


# --- contacts: unified contact -> company customer ------------------------------------------

CONTACT_ID = "0196a3f2-7c3e-7a41-9d2b-3f6c1e8a5b20"
CUSTOMERS_SPEC = "pennylane/customers"  # the company-customer create body, same OpenAPI document
BILLING = {"street_1": "8 rue de la Paix", "postal_code": "75002", "city": "Paris", "country": "FR"}
FULL_CONTACT = {
    "name": "Umbrella SAS",
    "is_customer": True,
    "is_supplier": False,
    "email_address": "compta@umbrella.example",
    "tax_number": "FR12345678901",
    "status": "ACTIVE",
    "remote_updated_at": "2026-11-01T10:00:00Z",  # accepted, and the ledger's to decide
    "addresses": [
        {**BILLING, "street_2": "Bâtiment B", "country": "fr", "address_type": "BILLING"},
        {
            "street_1": "2 quai de Loire",
            "postal_code": "69002",
            "city": "Lyon",
            "country": "FR",
            "address_type": "SHIPPING",
        },
    ],
    "phone_numbers": [{"phone_number": "+33 1 23 45 67 89", "phone_type": "WORK"}],
}


def contact_outbound(contact_id: str = CONTACT_ID, **fields: Any) -> OutboundContact:
    return OutboundContact(contact_id, ContactInput.model_validate(fields))


def mapped_contact(**fields: Any) -> dict[str, Any]:
    """The create body the mapper builds, checked against Pennylane's OpenAPI schema first."""
    request = provider.map_contact(ConnectionContext("c", "pennylane"), contact_outbound(**fields))
    assert_valid(request, CUSTOMERS_SPEC, "postCompanyCustomer")
    return request


def contact_refusal(**fields: Any) -> list[str]:
    with pytest.raises(InvalidInvoice) as caught:
        provider.map_contact(ConnectionContext("c", "pennylane"), contact_outbound(**fields))
    return [path for path, _ in caught.value.details]


def customer_lookups(fake: FakePennylane) -> list[httpx.Request]:
    return [r for r in fake.requests if r.method == "GET" and r.url.path == f"{API}/customers"]


def add_contact(connection: ConnectionContext, out: OutboundContact) -> RemoteReference:
    return provider.send_contact(connection, out, provider.map_contact(connection, out))


def test_a_full_contact_is_sent_as_the_company_customer_pennylane_documents() -> None:
    assert mapped_contact(**FULL_CONTACT) == {
        "name": "Umbrella SAS",
        "emails": ["compta@umbrella.example"],
        "vat_number": "FR12345678901",
        "billing_address": {"address": "8 rue de la Paix\nBâtiment B", "postal_code": "75002",
                            "city": "Paris", "country_alpha2": "FR"},
        "delivery_address": {"address": "2 quai de Loire", "postal_code": "69002", "city": "Lyon",
                             "country_alpha2": "FR"},
        "phone": "+33 1 23 45 67 89",
        "external_reference": CONTACT_ID,  # what find_contact looks an earlier attempt up by
    }  # fmt: skip


def test_a_contact_with_a_name_and_an_untyped_address_is_enough() -> None:
    assert mapped_contact(name="Initech", addresses=[BILLING], phone_numbers=[{"phone_number": "01"}]) == {
        "name": "Initech",
        "billing_address": {"address": "8 rue de la Paix", "postal_code": "75002", "city": "Paris",
                            "country_alpha2": "FR"},
        "phone": "01",
        "external_reference": CONTACT_ID,
    }  # fmt: skip
    postal = mapped_contact(name="Initech", addresses=[{**BILLING, "address_type": "postal"}])
    assert postal["billing_address"]["city"] == "Paris" and "delivery_address" not in postal


@pytest.mark.parametrize(
    ("change", "paths"),
    [
        ({"is_supplier": True}, ["is_supplier"]),
        ({"is_supplier": True, "is_customer": True}, ["is_supplier"]),
        ({"is_customer": False}, ["is_customer"]),
        ({"name": None}, ["name"]),
        ({"name": ""}, ["name"]),
        ({"status": "ARCHIVED"}, ["status"]),
        ({"currency": "EUR"}, ["currency"]),
        ({"field_mappings": {"foo": "bar", "region": "EMEA"}}, ["field_mappings.foo",
                                                             "field_mappings.region"]),
        ({"addresses": None}, ["addresses"]),
        ({"addresses": [{**BILLING, "address_type": "SHIPPING"}]}, ["addresses"]),
        ({"addresses": [BILLING, {**BILLING, "address_type": "BILLING"}]}, ["addresses.1"]),
        ({"addresses": [{**BILLING, "address_type": "HEADQUARTERS"}]}, ["addresses.0.address_type"]),
        ({"addresses": [{**BILLING, "state": "IDF"}]}, ["addresses.0.state"]),
        ({"addresses": [{**BILLING, "street_1": None, "street_2": "Bât B"}]}, ["addresses.0.street_1"]),
        ({"addresses": [{**BILLING, "city": " "}]}, ["addresses.0.city"]),
        ({"addresses": [{"street_1": "1 rue"}]},
         ["addresses.0.postal_code", "addresses.0.city", "addresses.0.country"]),
        ({"addresses": [{**BILLING, "country": "France"}]}, ["addresses.0.country"]),
        ({"phone_numbers": [{"phone_type": "WORK"}]}, ["phone_numbers.0.phone_number"]),
        ({"phone_numbers": [{"phone_number": "06 12 34 56 78", "phone_type": "MOBILE"}]},
         ["phone_numbers.0.phone_type"]),
        ({"phone_numbers": [{"phone_number": "01"}, {"phone_number": "02", "phone_type": "WORK"}]},
         ["phone_numbers.1"]),
    ],
)  # fmt: skip
def test_what_a_pennylane_customer_cannot_hold_is_refused_naming_the_field(
    change: dict[str, Any], paths: list[str]
) -> None:
    assert contact_refusal(**{**FULL_CONTACT, **change}) == paths


def test_every_contact_refusal_is_reported_at_once_with_its_reason() -> None:
    contact = {"is_supplier": True, "currency": "EUR", "addresses": [{**BILLING, "country": "France"}]}
    with pytest.raises(InvalidInvoice) as caught:
        provider.map_contact(ConnectionContext("c", "pennylane"), contact_outbound(**contact))
    assert [path for path, _ in caught.value.details] == [
        "is_supplier",
        "name",
        "currency",
        "addresses.0.country",
    ]
    reasons = dict(caught.value.details)
    assert "ISO 3166 alpha-2" in reasons["addresses.0.country"] and "supplier" in reasons["is_supplier"]


def test_the_mapped_contact_body_and_nothing_else_matches_pennylanes_openapi_schema() -> None:
    body = mapped_contact(**FULL_CONTACT)
    assert schema_errors({**body, "currency": "EUR"}, CUSTOMERS_SPEC, "postCompanyCustomer") != []
    without_city = {
        **body,
        "billing_address": {k: v for k, v in body["billing_address"].items() if k != "city"},
    }
    assert schema_errors(without_city, CUSTOMERS_SPEC, "postCompanyCustomer") == [
        "/billing_address: 'city' is a required property"
    ]


def test_the_fake_refuses_a_customer_body_off_the_document_and_pennylanes_own_rules(
    fake: FakePennylane,
) -> None:
    body = mapped_contact(**FULL_CONTACT)
    auth = {"authorization": "Bearer pl-access-0"}
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
        region = client.post(f"{BASE}/company_customers", json={**body, "region": "IDF"}, headers=auth)
        country = {**body, "billing_address": {**body["billing_address"], "country_alpha2": "fr"}}
        lower = client.post(f"{BASE}/company_customers", json=country, headers=auth)
        blank = client.post(f"{BASE}/company_customers", json={**body, "name": " "}, headers=auth)
    assert region.status_code == 400 and "'region' was unexpected" in region.json()["error"]
    assert (lower.status_code, blank.status_code) == (422, 422)
    assert blank.json() == {"error": "Name can't be blank", "status": 422}
    assert fake.created_customers() == []


# --- contacts: created at the fake ------------------------------------------------------------


def test_a_contact_becomes_one_pennylane_customer_described_as_the_sync_describes_it(
    fake: FakePennylane,
) -> None:
    connection = connect(fake.handle, fake)
    created = add_contact(connection, contact_outbound(**FULL_CONTACT))

    [record] = fake.created_customers()
    assert len(fake.customer_requests()) == 1
    assert (created.kind, created.remote_id, created.name) == ("contact", str(record["id"]), "Umbrella SAS")
    assert record["external_reference"] == CONTACT_ID
    assert created.remote_data == {key: value for key, value in record.items() if key != "_created"}
    assert created.fields == {
        "is_customer": True,
        "is_supplier": False,
        "email_address": "compta@umbrella.example",
        "tax_number": "FR12345678901",
        "status": None,
        "currency": None,
        "customer_type": "company",
        "addresses": [
            {"street_1": "8 rue de la Paix", "street_2": "Bâtiment B", "city": "Paris", "state": None,
             "postal_code": "75002", "country": "FR", "address_type": "BILLING"},
            {"street_1": "2 quai de Loire", "street_2": None, "city": "Lyon", "state": None,
             "postal_code": "69002", "country": "FR", "address_type": "SHIPPING"},
        ],
        "phone_numbers": [{"phone_number": "+33 1 23 45 67 89", "phone_type": "WORK"}],
        "remote_updated_at": datetime.fromisoformat(record["updated_at"]).isoformat(),
    }  # fmt: skip
    synced = {ref.remote_id: ref for ref in provider.list_references(connection) if ref.kind == "contact"}
    assert (synced[created.remote_id].name, synced[created.remote_id].fields) == (
        created.name,
        created.fields,
    )


def test_an_invoice_can_name_the_customer_just_created(fake: FakePennylane) -> None:
    connection = connect(fake.handle, fake)
    created = add_contact(connection, contact_outbound(name="Initech", addresses=[BILLING]))
    invoice = create(connection, outbound(BODY, {"contact_id": created}))
    [made] = fake.created()
    assert made["customer"]["id"] == int(created.remote_id) and invoice.remote_id == str(made["id"])


def test_a_lost_contact_answer_is_not_resent_and_find_contact_finds_that_customer(
    fake: FakePennylane,
) -> None:
    connection = connect(fake.handle, fake)
    fake.timeout_next(after_processing=True)  # Pennylane made the customer, the answer never arrived
    with pytest.raises(ProviderUnavailable, match="not resent"):
        add_contact(connection, contact_outbound(**FULL_CONTACT))
    assert len(fake.customer_requests()) == 1
    found = base.find_contact(provider, connection, contact_outbound(**FULL_CONTACT))
    [record] = fake.created_customers()
    assert found is not None and (found.remote_id, found.name) == (str(record["id"]), "Umbrella SAS")
    assert jsonutil.loads(customer_lookups(fake)[-1].url.params["filter"]) == [
        {"field": "external_reference", "operator": "eq", "value": CONTACT_ID}
    ]


def test_a_5xx_on_the_create_is_unavailable_without_a_second_post(fake: FakePennylane) -> None:
    fake.fail_next(503)
    with pytest.raises(ProviderUnavailable):
        add_contact(connect(fake.handle, fake), contact_outbound(**FULL_CONTACT))
    assert len(fake.customer_requests()) == 1 and fake.created_customers() == []


def test_a_429_never_reached_pennylane_so_the_create_is_retried(fake: FakePennylane) -> None:
    sleeps: list[float] = []
    fake.fail_next(429, {"Retry-After": "2"})
    add_contact(connect(fake.handle, fake, sleeps=sleeps), contact_outbound(**FULL_CONTACT))
    assert sleeps == [2.0]
    assert len(fake.customer_requests()) == 2 and len(fake.created_customers()) == 1


def test_a_resent_contact_refused_as_a_duplicate_is_answered_with_the_first_customer(
    fake: FakePennylane,
) -> None:
    connection = connect(fake.handle, fake)
    first = add_contact(connection, contact_outbound(**FULL_CONTACT))
    again = add_contact(connection, contact_outbound(**FULL_CONTACT))  # 422: the reference is taken
    assert (again.remote_id, again.fields) == (first.remote_id, first.fields)
    assert len(fake.customer_requests()) == 2 and len(fake.created_customers()) == 1
    other = add_contact(connection, contact_outbound("another-contact", **FULL_CONTACT))
    assert other.remote_id != first.remote_id  # Pennylane does not refuse a second customer by name


def test_a_pennylane_refusal_of_a_contact_is_provider_rejected_with_its_message(fake: FakePennylane) -> None:
    fake.fail_next(422, body={"error": "Vat number is invalid", "status": 422})
    with pytest.raises(ProviderRejected) as caught:
        add_contact(connect(fake.handle, fake), contact_outbound(**FULL_CONTACT))
    assert caught.value.messages == ["Vat number is invalid"]
    assert len(customer_lookups(fake)) == 1 and fake.created_customers() == []  # no earlier attempt


def test_a_refused_authorisation_on_a_contact_needs_the_connection_again(fake: FakePennylane) -> None:
    def unauthorised(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, content=jsonutil.dumps({"error": "Invalid token", "status": 401}))

    with pytest.raises(ReauthorizationRequired):
        add_contact(connect(unauthorised, fake), contact_outbound(**FULL_CONTACT))
    fake.fail_next(403, body={"error": "Missing scope customers:all", "status": 403})
    with pytest.raises(ReauthorizationRequired, match="customers:all"):
        add_contact(connect(fake.handle, fake), contact_outbound(**FULL_CONTACT))
    assert fake.created_customers() == []


def test_an_expired_token_is_refreshed_before_the_customer_is_created(fake: FakePennylane) -> None:
    fake.expire_access_tokens()
    created = add_contact(connect(fake.handle, fake), contact_outbound(**FULL_CONTACT))
    assert created.remote_id == str(fake.created_customers()[0]["id"])
    assert fake.retired_refresh_tokens == ["pl-refresh-0"]


def test_a_success_without_a_customer_is_unavailable_not_created() -> None:
    with pytest.raises(ProviderUnavailable):
        add_contact(
            connect(lambda request: httpx.Response(201, content=b"{}")), contact_outbound(**FULL_CONTACT)
        )


def test_find_contact_answers_none_until_the_customer_exists_and_trusts_only_its_reference(
    fake: FakePennylane,
) -> None:
    connection = connect(fake.handle, fake)
    assert base.supports_contacts(provider)
    assert provider.find_contact(connection, contact_outbound(**FULL_CONTACT)) is None
    created = add_contact(connection, contact_outbound(**FULL_CONTACT))
    found = provider.find_contact(connection, contact_outbound(**FULL_CONTACT))
    assert found is not None and (found.remote_id, found.fields) == (created.remote_id, created.fields)
    assert provider.find_contact(connection, contact_outbound("another-contact", **FULL_CONTACT)) is None

    everyone = recorded_body("list-customers")  # as if the filter were ignored

    def unfiltered(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=jsonutil.dumps(everyone))

    recorded = everyone["items"][0]["external_reference"]
    assert provider.find_contact(connect(unfiltered), contact_outbound(**FULL_CONTACT)) is None
    assert provider.find_contact(connect(unfiltered), contact_outbound(recorded, name="x")) is not None


def test_an_unsearchable_customer_list_is_unavailable_so_nothing_is_resent_blindly() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, content=jsonutil.dumps({"error": "Invalid filter field", "status": 400}))

    with pytest.raises(ProviderUnavailable):
        provider.find_contact(connect(refuse), contact_outbound(**FULL_CONTACT))


def test_recorded_customers_read_back_with_their_address_and_without_empty_ones() -> None:
    acme = customer()
    assert acme.fields["addresses"] == [
        {"street_1": "1 Rue de la Paix", "street_2": None, "city": "Paris", "state": None,
         "postal_code": "75002", "country": "FR", "address_type": "BILLING"}
    ]  # fmt: skip
    assert acme.fields["phone_numbers"] is None  # Pennylane writes "" for no phone
    assert acme.fields["remote_updated_at"] == "2026-07-08T12:37:45.185229+00:00"
