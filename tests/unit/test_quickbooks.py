"""The QuickBooks Online provider against FakeQuickBooks (built from the recorded exchanges)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

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
    RemoteReference,
)
from ledgerbridge.providers.http import ProviderHttp
from ledgerbridge.providers.quickbooks import QuickBooksProvider, QuickBooksRequest
from tests.fakes.quickbooks import REALM_ID, FakeQuickBooks, load_fixture, recorded_response
from tests.support.quickbooks_xsd import assert_valid

INVOICE_ID = "0196a3f2-7c3e-7a41-9d2b-3f6c1e8a5b10"
SETTINGS = {
    "realm_id": REALM_ID,
    "default_item_id": "1",
    "default_expense_account_id": "69",
    "custom_field.crew": "1",
    "custom_field.sales_rep": "2",
}
LANDSCAPING, GARDENS = "5000000000000151005", "5000000000000151006"
UUIDS = [f"0196a3f2-0000-7000-8000-{n:012d}" for n in range(10)]

CUSTOMER = RemoteReference(
    "contact", "1", "Amy's Bird Sanctuary", {"is_customer": True, "is_supplier": False}
)
VENDOR = RemoteReference("contact", "56", "Bob's Burger Joint", {"is_customer": False, "is_supplier": True})
ROCK_FOUNTAIN = RemoteReference("item", "5", "Rock Fountain")
PUMP = RemoteReference("item", "11", "Pump")
CLASS_LANDSCAPING = RemoteReference("tracking_category", f"class:{LANDSCAPING}", "Class: Landscaping")
CLASS_GARDENS = RemoteReference("tracking_category", f"class:{GARDENS}", "Class: Landscaping:Gardens")
DEPT_NORTH = RemoteReference("tracking_category", "department:1", "Department: North")


class StaticTokens:
    """AccessTokens for one access token the fake accepts; refreshes are counted, not performed."""

    def __init__(self, token: str = "qb-access-0"):
        self.token, self.refreshes = token, 0

    def access_token(self) -> str:
        return self.token

    def refresh_after_rejection(self, rejected_access_token: str) -> str:
        self.refreshes += 1
        return self.token


class Harness:
    """A fake company, a provider and a connection to it; sleeps are recorded, never slept."""

    def __init__(self, settings: dict[str, str] | None = None, page_size: int = 1000):
        self.fake = FakeQuickBooks()
        self.delays: list[float] = []
        http = ProviderHttp(
            httpx.Client(transport=httpx.MockTransport(self.fake.handle)),
            tokens=StaticTokens(),
            sleep=self.delays.append,
            jitter=lambda: 1.0,
        )
        self.connection = ConnectionContext(
            "conn-qb", "quickbooks", dict(SETTINGS if settings is None else settings), http
        )
        self.provider = QuickBooksProvider(page_size=page_size)

    def map(self, outbound: OutboundInvoice) -> QuickBooksRequest:
        """The request, its body checked against Intuit's XSD even when a test never sends it."""
        request = self.provider.map_invoice(self.connection, outbound)
        assert_valid(request.body, request.entity)
        return request

    def create(self, outbound: OutboundInvoice):
        return self.provider.send_invoice(self.connection, outbound, self.map(outbound))

    def posted(self, index: int = -1) -> tuple[httpx.Request, dict[str, Any]]:
        request = self.fake.requests[index]
        return request, jsonutil.loads(request.content)


def outbound(
    body: dict[str, Any], references: dict[str, RemoteReference], key: str = INVOICE_ID
) -> OutboundInvoice:
    invoice = InvoiceInput.model_validate(jsonutil.loads(jsonutil.dumps(body)))
    return OutboundInvoice(key, invoice, references)


def simple(
    extra: dict[str, Any] | None = None, references: dict[str, RemoteReference] | None = None, **kw: Any
):
    """A one-line receivable for customer 1, plus ``extra`` fields."""
    body = {
        "contact_id": UUIDS[0],
        "line_items": [{"quantity": 1, "unit_price": Decimal(100)}],
        **(extra or {}),
    }
    return outbound(body, {"contact_id": CUSTOMER, **(references or {})}, **kw)


@pytest.fixture
def qb() -> Harness:
    return Harness()


# --- request bodies --------------------------------------------------------------------------


def full_invoice() -> OutboundInvoice:
    body = {
        "type": "ACCOUNTS_RECEIVABLE",
        "number": "INV-2026-0042",
        "issue_date": "2026-05-04T23:30:00-07:00",  # already 05-05 in UTC: the invoice's own day counts
        "due_date": "2026-06-03",
        "memo": "Spring fountain install",
        "currency": "eur",
        "exchange_rate": "1.0825",
        "status": "OPEN",
        "contact_id": UUIDS[0],
        "tracking_categories": [UUIDS[1], UUIDS[2]],
        "line_items": [
            {
                "description": "Rock fountain, installed",
                "quantity": 2,
                "unit_price": Decimal("137.5"),
                "item_id": UUIDS[3],
                "tracking_categories": [UUIDS[4]],
            },
            {"description": "Delivery", "total_amount": Decimal("0.1")},
        ],
        "field_mappings": {"crew": "Crew 7", "sales_rep": 42},
    }
    references = {
        "contact_id": CUSTOMER,
        "tracking_categories.0": CLASS_LANDSCAPING,
        "tracking_categories.1": DEPT_NORTH,
        "line_items.0.item_id": ROCK_FOUNTAIN,
        "line_items.0.tracking_categories.0": CLASS_GARDENS,
    }
    return outbound(body, references)


def test_a_full_invoice_is_sent_as_quickbooks_documents_it(qb: Harness) -> None:
    remote = qb.create(full_invoice())

    request, body = qb.posted()
    assert request.method == "POST"
    assert request.url.host == "quickbooks.api.intuit.com"
    assert request.url.path == f"/v3/company/{REALM_ID}/invoice"
    assert dict(request.url.params) == {"minorversion": "75", "requestid": INVOICE_ID}
    assert body == {
        "CustomerRef": {"value": "1"},
        "DocNumber": "INV-2026-0042",
        "TxnDate": "2026-05-04",
        "DueDate": "2026-06-03",
        "CurrencyRef": {"value": "EUR"},
        "ExchangeRate": Decimal("1.0825"),
        "PrivateNote": "Spring fountain install",
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": Decimal("275.0"),
                "Description": "Rock fountain, installed",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": "5"},
                    "Qty": 2,
                    "UnitPrice": Decimal("137.5"),
                    "ClassRef": {"value": GARDENS},
                },
            },
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": Decimal("0.1"),
                "Description": "Delivery",
                "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "ClassRef": {"value": LANDSCAPING}},
            },
        ],
        "DepartmentRef": {"value": "1"},
        "ClassRef": {"value": LANDSCAPING},
        "CustomField": [
            {"DefinitionId": "1", "Name": "crew", "Type": "StringType", "StringValue": "Crew 7"},
            {"DefinitionId": "2", "Name": "sales_rep", "Type": "StringType", "StringValue": "42"},
        ],
    }
    assert b'"Amount":275.0,' in request.content and b'"Amount":0.1,' in request.content  # no float drift
    assert remote.fields["sub_total"] == Decimal("275.1")
    assert remote.fields["number"] == "INV-2026-0042"
    assert remote.line_remote_ids == ["1", "2"]


def test_the_recorded_invoice_request_is_reproduced(qb: Harness) -> None:
    recorded = load_fixture("create-invoice.json")["exchanges"][0]
    line = {"quantity": 1, "unit_price": 100, "item_id": UUIDS[1]}
    item = RemoteReference("item", "1", "Test Item Updated")
    request = qb.map(
        simple({"issue_date": "2024-01-15", "line_items": [line]}, {"line_items.0.item_id": item})
    )
    assert request.body == recorded["request"]["body"]
    assert (request.entity, request.resource) == ("Invoice", "invoice")


def test_the_recorded_bill_request_is_reproduced(qb: Harness) -> None:
    recorded = load_fixture("create-bill.json")["exchanges"][0]
    bill = outbound(
        {
            "type": "Bill",
            "issue_date": "2026-05-05",
            "contact_id": UUIDS[0],
            "line_items": [{"total_amount": 150}],
        },
        {"contact_id": VENDOR},
    )
    request = qb.map(bill)
    assert request.body == recorded["request"]["body"]
    assert (request.entity, request.resource) == ("Bill", "bill")


# --- responses -------------------------------------------------------------------------------


def test_the_recorded_response_maps_back_to_unified_fields(qb: Harness) -> None:
    recorded = recorded_response("create-invoice.json")
    qb.fake.answer_next(200, recorded)

    remote = qb.create(simple())

    assert remote.remote_id == "155"
    assert remote.fields == {
        "number": "1042",
        "sub_total": Decimal(100),
        "total_tax_amount": Decimal(0),
        "total_amount": Decimal(100),
        "balance": Decimal(100),
        "status": "OPEN",
        "currency": "USD",  # the recorded company has no multicurrency: no ExchangeRate, none read
    }
    assert remote.remote_updated_at == datetime(2026, 5, 5, 2, 8, 55, tzinfo=timezone(timedelta(hours=-7)))
    assert remote.remote_updated_at.utcoffset() == timedelta(hours=-7)
    assert remote.remote_data == recorded["Invoice"]
    assert remote.line_remote_ids == ["1"]


def test_recorded_tax_comes_back_from_txn_tax_detail(qb: Harness) -> None:
    qb.fake.answer_next(200, recorded_response("get-invoice.json"))
    remote = qb.create(simple())
    assert remote.fields["sub_total"] == Decimal("335.25")
    assert remote.fields["total_tax_amount"] == Decimal("26.82")
    assert remote.fields["total_amount"] == Decimal("362.07")
    assert remote.line_remote_ids == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("invoice_id", "status", "balance"),
    [("67", "PARTIALLY_PAID", Decimal(239)), ("96", "PAID", Decimal(0)), ("49", "OPEN", Decimal("954.75"))],
)
def test_status_follows_the_recorded_balance(
    qb: Harness, invoice_id: str, status: str, balance: Decimal
) -> None:
    records = recorded_response("list-invoices.json")["QueryResponse"]["Invoice"]
    record = next(r for r in records if r["Id"] == invoice_id)
    qb.fake.answer_next(200, {"Invoice": record, "time": "2026-05-05T03:20:11.171-07:00"})
    remote = qb.create(simple())
    assert (remote.fields["status"], remote.fields["balance"]) == (status, balance)


def test_a_recorded_discount_line_is_the_total_discount_not_a_line(qb: Harness) -> None:
    records = recorded_response("list-invoices.json")["QueryResponse"]["Invoice"]
    qb.fake.answer_next(200, {"Invoice": next(r for r in records if r["Id"] == "49")})
    remote = qb.create(simple())
    assert remote.fields["total_discount"] == Decimal("50.25")
    assert remote.fields["sub_total"] == Decimal(1005)
    assert remote.line_remote_ids == ["1", "2", "3", "4"]


def test_taxable_lines_are_taxed_by_quickbooks_and_reported() -> None:
    qb = Harness({**SETTINGS, "default_tax_code_id": "TAX"})
    remote = qb.create(simple())
    _, body = qb.posted()
    assert body["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"] == {"value": "TAX"}
    assert remote.fields["total_tax_amount"] == Decimal("8.00")
    assert remote.fields["total_amount"] == Decimal("108.00")


def test_an_invoice_discount_becomes_a_discount_line(qb: Harness) -> None:
    remote = qb.create(simple({"total_discount": Decimal("5.5")}))
    _, body = qb.posted()
    assert body["Line"][-1] == {
        "DetailType": "DiscountLineDetail",
        "Amount": Decimal("5.5"),
        "DiscountLineDetail": {"PercentBased": False},
    }
    assert remote.fields["total_discount"] == Decimal("5.5")
    assert remote.fields["total_amount"] == Decimal("94.5")
    assert remote.line_remote_ids == ["1"]  # the discount line is not one of ours


# --- payables --------------------------------------------------------------------------------


def test_a_payable_becomes_a_bill_with_item_and_account_lines(qb: Harness) -> None:
    bill = outbound(
        {
            "type": "ACCPAY",
            "number": "SUP-881",
            "issue_date": "2026-05-05",
            "contact_id": UUIDS[0],
            "tracking_categories": [UUIDS[1], UUIDS[2]],
            "line_items": [
                {"description": "Pumps", "quantity": 4, "unit_price": Decimal("10.25"), "item_id": UUIDS[3]},
                {"description": "Accounting review", "total_amount": Decimal("150.00")},
            ],
        },
        {
            "contact_id": VENDOR,
            "tracking_categories.0": CLASS_LANDSCAPING,
            "tracking_categories.1": DEPT_NORTH,
            "line_items.0.item_id": PUMP,
        },
    )
    remote = qb.create(bill)

    request, body = qb.posted()
    assert request.url.path == f"/v3/company/{REALM_ID}/bill"
    assert request.url.params["requestid"] == INVOICE_ID
    assert body == {
        "VendorRef": {"value": "56"},
        "DocNumber": "SUP-881",
        "TxnDate": "2026-05-05",
        "Line": [
            {
                "DetailType": "ItemBasedExpenseLineDetail",
                "Amount": Decimal("41.00"),
                "Description": "Pumps",
                "ItemBasedExpenseLineDetail": {
                    "ItemRef": {"value": "11"},
                    "Qty": 4,
                    "UnitPrice": Decimal("10.25"),
                    "ClassRef": {"value": LANDSCAPING},
                },
            },
            {
                "DetailType": "AccountBasedExpenseLineDetail",
                "Amount": Decimal("150.00"),
                "Description": "Accounting review",
                "AccountBasedExpenseLineDetail": {
                    "AccountRef": {"value": "69"},
                    "ClassRef": {"value": LANDSCAPING},
                },
            },
        ],
        "DepartmentRef": {"value": "1"},  # bills have no header ClassRef: the class is on the lines
    }
    assert remote.fields == {
        "number": "SUP-881",
        "sub_total": Decimal("191.00"),
        "total_tax_amount": Decimal(0),
        "total_amount": Decimal("191.00"),
        "balance": Decimal("191.00"),
        "status": "OPEN",
        "currency": "USD",
    }
    assert remote.line_remote_ids == ["1", "2"]
    assert qb.fake.created("Bill")[0]["VendorRef"] == {"value": "56", "name": "Bob's Burger Joint"}


def test_the_recorded_bill_response_maps_back(qb: Harness) -> None:
    qb.fake.answer_next(200, recorded_response("create-bill.json"))
    bill = outbound(
        {"type": "Bill", "contact_id": UUIDS[0], "line_items": [{"total_amount": 150}]},
        {"contact_id": VENDOR},
    )
    remote = qb.create(bill)
    assert remote.remote_id == "191"
    assert remote.fields["sub_total"] == remote.fields["total_amount"] == Decimal(150)
    assert remote.fields["total_tax_amount"] == Decimal(0)
    assert remote.fields["number"] is None
    assert remote.line_remote_ids == ["1"]


@pytest.mark.parametrize(
    ("extra", "settings", "path"),
    [
        ({"field_mappings": {"crew": "7"}}, SETTINGS, "field_mappings.crew"),
        ({"total_discount": 5}, SETTINGS, "total_discount"),
        ({}, {"realm_id": REALM_ID}, "line_items.0.item_id"),
    ],
)
def test_what_bills_cannot_hold_is_refused(extra: dict, settings: dict, path: str) -> None:
    qb = Harness(settings)
    bill = outbound(
        {"type": "Bill", "contact_id": UUIDS[0], "line_items": [{"total_amount": 1}], **extra},
        {"contact_id": VENDOR},
    )
    with pytest.raises(InvalidInvoice) as caught:
        qb.map(bill)
    assert path in [field for field, _ in caught.value.details]


# --- custom fields ---------------------------------------------------------------------------


def test_an_unknown_custom_field_slug_is_refused_by_name(qb: Harness) -> None:
    with pytest.raises(InvalidInvoice) as caught:
        qb.map(simple({"field_mappings": {"crew": "7", "po_number": "PO-1"}}))
    assert caught.value.details == [
        (
            "field_mappings.po_number",
            "no QuickBooks custom field is defined for 'po_number' (setting custom_field.po_number)",
        )
    ]
    assert qb.fake.requests == []


@pytest.mark.parametrize("value", ["x" * 32, True, None])  # nested values never pass the model
def test_custom_field_values_quickbooks_cannot_hold_are_refused(qb: Harness, value: Any) -> None:
    with pytest.raises(InvalidInvoice) as caught:
        qb.map(simple({"field_mappings": {"crew": value}}))
    assert [field for field, _ in caught.value.details] == ["field_mappings.crew"]


def test_custom_fields_reach_quickbooks_by_definition_id(qb: Harness) -> None:
    remote = qb.create(simple({"field_mappings": {"sales_rep": "Dana"}}))
    assert remote.remote_data["CustomField"] == [
        {"DefinitionId": "2", "Name": "Sales Rep", "Type": "StringType", "StringValue": "Dana"}
    ]


# --- what QuickBooks cannot express ---------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "references", "path"),
    [
        ({"number": "N" * 22}, {}, "number"),
        ({"status": "DRAFT"}, {}, "status"),
        ({"status": "void"}, {}, "status"),
        ({"status": "PAID"}, {}, "status"),
        ({"status": "PARTIALLY_PAID"}, {}, "status"),
        ({"paid_on_date": "2026-05-05"}, {}, "paid_on_date"),
        ({"accounting_period_id": UUIDS[9]}, {}, "accounting_period_id"),
        ({"memo": "m" * 4001}, {}, "memo"),
        ({"sub_total": 99}, {}, "sub_total"),
        ({"line_items": []}, {}, "line_items"),
        (
            {"line_items": [{"quantity": 2, "unit_price": 5, "total_amount": 11}]},
            {},
            "line_items.0.total_amount",
        ),
        ({"line_items": [{"description": "free?"}]}, {}, "line_items.0.unit_price"),
        ({"line_items": [{"total_amount": 1, "description": "d" * 4001}]}, {}, "line_items.0.description"),
        (
            {"currency": "USD", "line_items": [{"total_amount": 1, "currency": "EUR"}]},
            {},
            "line_items.0.currency",
        ),
        (
            {"exchange_rate": "1.1", "line_items": [{"total_amount": 1, "exchange_rate": "1.2"}]},
            {},
            "line_items.0.exchange_rate",
        ),
        ({"contact_id": None}, {"contact_id": None}, "contact_id"),
        ({}, {"contact_id": VENDOR}, "contact_id"),
        (
            {"tracking_categories": [UUIDS[1], UUIDS[2]]},
            {"tracking_categories.0": CLASS_LANDSCAPING, "tracking_categories.1": CLASS_GARDENS},
            "tracking_categories",
        ),
        (
            {"line_items": [{"total_amount": 1, "tracking_categories": [UUIDS[1]]}]},
            {"line_items.0.tracking_categories.0": DEPT_NORTH},
            "line_items.0.tracking_categories",
        ),
        (
            {"tracking_categories": [UUIDS[1]]},
            {"tracking_categories.0": RemoteReference("tracking_category", "T-1", "not QuickBooks")},
            "tracking_categories.0",
        ),
    ],
)
def test_what_quickbooks_cannot_express_is_refused_before_sending(
    qb: Harness, extra: dict, references: dict, path: str
) -> None:
    refs = {key: value for key, value in {"contact_id": CUSTOMER, **references}.items() if value is not None}
    body = {"contact_id": UUIDS[0], "line_items": [{"quantity": 1, "unit_price": 100}], **extra}
    with pytest.raises(InvalidInvoice) as caught:
        qb.map(outbound(body, refs))
    assert path in [field for field, _ in caught.value.details]
    assert qb.fake.requests == []


def test_a_line_without_item_needs_the_default_item_setting() -> None:
    qb = Harness({"realm_id": REALM_ID})
    with pytest.raises(InvalidInvoice) as caught:
        qb.map(simple())
    assert caught.value.details == [
        (
            "line_items.0.item_id",
            "a QuickBooks invoice line needs an item: give item_id or set the connection's default_item_id",
        )
    ]


def test_every_problem_is_reported_at_once(qb: Harness) -> None:
    with pytest.raises(InvalidInvoice) as caught:
        qb.map(simple({"number": "N" * 22, "status": "DRAFT", "field_mappings": {"nope": 1}}))
    assert [field for field, _ in caught.value.details] == ["status", "number", "field_mappings.nope"]


@pytest.mark.parametrize("status", ["OPEN", "SUBMITTED", None])
def test_open_submitted_and_no_status_create_an_open_invoice(qb: Harness, status: str | None) -> None:
    remote = qb.create(simple({"status": status}))
    assert remote.fields["status"] == "OPEN"


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"default_item_id": "1"}, "QuickBooks connection has no realm_id setting"),
        (
            {"realm_id": REALM_ID, "environment": "staging"},
            "QuickBooks environment must be sandbox or production, not 'staging'",
        ),
    ],
)
def test_a_misconfigured_connection_is_a_clear_refusal(settings: dict, reason: str) -> None:
    qb = Harness(settings)
    with pytest.raises(InvalidInvoice) as caught:
        qb.map(simple())
    assert caught.value.details == [("connection", reason)]


# --- provider validation errors ---------------------------------------------------------------


def test_a_reused_invoice_number_is_rejected_with_quickbooks_message(qb: Harness) -> None:
    first = qb.create(simple({"number": "1042"}, key="first"))
    with pytest.raises(ProviderRejected) as caught:
        qb.create(simple({"number": "1042"}, key="second"))
    assert caught.value.messages == [
        "Duplicate Document Number Error: Duplicate Document Number Error : You must specify a different "
        "number. This number has already been used. DocNumber=1042 is assigned to TxnType=Invoice with "
        f"TxnId={first.remote_id}"
    ]
    assert len(qb.fake.created()) == 1


def test_every_fault_error_becomes_a_message(qb: Harness) -> None:
    gone = RemoteReference("item", "999", "deleted item")
    invoice = outbound(
        {
            "contact_id": UUIDS[0],
            "line_items": [{"total_amount": 1, "item_id": UUIDS[1]}, {"total_amount": 2}],
        },
        {
            "contact_id": RemoteReference("contact", "998", "gone", {"is_customer": True}),
            "line_items.0.item_id": gone,
        },
    )
    with pytest.raises(ProviderRejected) as caught:
        qb.create(invoice)
    detail = "Something you're trying to use has been made inactive. Check the fields with accounts."
    assert caught.value.messages == [f"Invalid Reference Id: Invalid Reference Id : {detail}"] * 2
    assert qb.fake.created() == []


def test_a_fault_inside_a_200_is_still_a_rejection(qb: Harness) -> None:
    fault = {
        "Fault": {
            "Error": [{"Message": "Stale Object Error", "Detail": "Stale Object Error : x", "code": "5010"}]
        }
    }
    qb.fake.answer_next(200, fault)
    with pytest.raises(ProviderRejected, match="Stale Object Error: Stale Object Error : x"):
        qb.create(simple())


def test_a_4xx_without_a_fault_is_a_rejection_naming_the_status(qb: Harness) -> None:
    qb.fake.answer_next(403, {"message": "Forbidden"})
    with pytest.raises(ProviderRejected) as caught:
        qb.create(simple())
    assert caught.value.messages == ["QuickBooks answered HTTP 403"]


def test_a_200_without_the_invoice_may_be_resent(qb: Harness) -> None:
    qb.fake.answer_next(200, {"time": "2026-05-05T03:20:11.171-07:00"})
    with pytest.raises(ProviderUnavailable):
        qb.create(simple())


# --- idempotency and retries --------------------------------------------------------------------


def test_a_resend_returns_the_first_invoice_and_creates_nothing_new(qb: Harness) -> None:
    first = qb.create(simple())
    again = qb.create(simple())
    assert again.remote_id == first.remote_id
    assert len(qb.fake.created()) == 1
    assert [r.url.params["requestid"] for r in qb.fake.requests] == [INVOICE_ID, INVOICE_ID]


def test_a_429_with_retry_after_is_waited_out(qb: Harness) -> None:
    qb.fake.fail_next(429, headers={"Retry-After": "1"})
    remote = qb.create(simple())
    assert qb.delays == [1.0]
    assert [r.url.params["requestid"] for r in qb.fake.requests] == [INVOICE_ID, INVOICE_ID]
    assert [invoice["Id"] for invoice in qb.fake.created()] == [remote.remote_id]


def test_a_503_is_retried_after_a_backoff(qb: Harness) -> None:
    qb.fake.fail_next(503)
    remote = qb.create(simple())
    assert qb.delays == [0.5]
    assert len(qb.fake.requests) == 2
    assert [invoice["Id"] for invoice in qb.fake.created()] == [remote.remote_id]


def test_a_timeout_is_retried(qb: Harness) -> None:
    qb.fake.timeout_next()
    remote = qb.create(simple())
    assert qb.delays == [0.5]
    assert [invoice["Id"] for invoice in qb.fake.created()] == [remote.remote_id]


def test_a_lost_answer_is_retried_without_a_second_invoice(qb: Harness) -> None:
    qb.fake.timeout_next(after_processing=True)
    remote = qb.create(simple())
    first, second = qb.fake.requests
    assert first.content == second.content
    assert first.url.params["requestid"] == second.url.params["requestid"] == INVOICE_ID
    assert [invoice["Id"] for invoice in qb.fake.created()] == [remote.remote_id]


def test_a_provider_down_for_every_attempt_is_unavailable(qb: Harness) -> None:
    qb.fake.fail_next(503, times=4)
    with pytest.raises(ProviderUnavailable):
        qb.create(simple())
    assert qb.fake.created() == []
    assert len(qb.delays) == 3


# --- base URLs ----------------------------------------------------------------------------------


def test_the_sandbox_environment_uses_the_sandbox_host() -> None:
    qb = Harness({**SETTINGS, "environment": "sandbox"})
    qb.create(simple())
    assert qb.fake.requests[0].url.host == "sandbox-quickbooks.api.intuit.com"


def test_the_api_url_env_var_overrides_both_environments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERBRIDGE_QUICKBOOKS_API_URL", "http://127.0.0.1:4010/")
    qb = Harness({**SETTINGS, "environment": "sandbox"})
    qb.create(simple())
    url = qb.fake.requests[0].url
    assert (url.scheme, url.host, url.port, url.path) == (
        "http",
        "127.0.0.1",
        4010,
        f"/v3/company/{REALM_ID}/invoice",
    )


def test_the_token_url_is_intuits_unless_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = QuickBooksProvider()
    assert provider.oauth_token_url() == "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
    monkeypatch.setenv("LEDGERBRIDGE_QUICKBOOKS_TOKEN_URL", "http://127.0.0.1:4010/oauth2/v1/tokens/bearer")
    assert provider.oauth_token_url() == "http://127.0.0.1:4010/oauth2/v1/tokens/bearer"


# --- references ---------------------------------------------------------------------------------


def _queries(fake: FakeQuickBooks) -> list[str]:
    return [parse_qs(r.url.query.decode())["query"][0] for r in fake.requests]


def test_references_list_every_kind_with_the_fields_mappers_need(qb: Harness) -> None:
    references = qb.provider.list_references(qb.connection)

    by_key = {(ref.kind, ref.remote_id): ref for ref in references}
    assert len(by_key) == len(references) == 5 + 3 + 5 + 4 + 3 + 2
    customer, vendor = by_key[("contact", "1")], by_key[("contact", "56")]
    assert customer.name == "Test Customer Updated Again"
    assert customer.fields == {
        "is_customer": True,
        "is_supplier": False,
        "email_address": "person23@example.com",
        "currency": "USD",
        "status": "ACTIVE",
    }
    assert (vendor.fields["is_customer"], vendor.fields["is_supplier"]) == (False, True)
    fountain = by_key[("item", "5")]
    assert (fountain.name, fountain.fields["unit_price"], fountain.fields["purchase_price"]) == (
        "Rock Fountain",
        Decimal(275),
        Decimal(125),
    )
    assert fountain.fields["status"] == "ACTIVE"
    assert by_key[("account", "69")].name == "Legal & Professional Fees:Accounting"
    gardens = by_key[("tracking_category", f"class:{GARDENS}")]
    assert gardens.name == "Class: Landscaping:Gardens"
    assert gardens.fields == {
        "category_type": "CLASS",
        "category_name": "Class",
        "option_name": "Gardens",
        "parent_category": "Landscaping",
        "status": "ACTIVE",
    }
    assert by_key[("tracking_category", "department:2")].fields["parent_category"] == "North"
    assert customer.remote_data["Id"] == "1"
    assert all(r.url.params["minorversion"] == "75" for r in qb.fake.requests)
    assert _queries(qb.fake) == [
        f"select * from {entity} STARTPOSITION 1 MAXRESULTS 1000"
        for entity in ("Customer", "Vendor", "Item", "Account", "Class", "Department")
    ]


def test_references_page_until_a_short_page() -> None:
    qb = Harness(page_size=2)
    references = qb.provider.list_references(qb.connection)

    assert len(references) == 22
    queries = _queries(qb.fake)
    assert [q for q in queries if " Customer " in q] == [
        "select * from Customer STARTPOSITION 1 MAXRESULTS 2",
        "select * from Customer STARTPOSITION 3 MAXRESULTS 2",
        "select * from Customer STARTPOSITION 5 MAXRESULTS 2",
    ]
    # 4 accounts fill two pages exactly: the third, empty page ({"QueryResponse": {}}) ends it.
    assert [q for q in queries if " Account " in q][
        -1
    ] == "select * from Account STARTPOSITION 5 MAXRESULTS 2"
    assert len({(ref.kind, ref.remote_id) for ref in references}) == 22


def test_a_plan_without_classes_lists_no_classes(qb: Harness) -> None:
    qb.fake.disable_list("Class")
    references = qb.provider.list_references(qb.connection)
    tracking = [ref.remote_id for ref in references if ref.kind == "tracking_category"]
    assert tracking == ["department:1", "department:2"]


def test_a_failing_required_list_is_an_error(qb: Harness) -> None:
    qb.fake.disable_list("Customer")
    with pytest.raises(ProviderRejected, match="Permission Denied Error"):
        qb.provider.list_references(qb.connection)


def test_reference_queries_are_retried_too(qb: Harness) -> None:
    qb.fake.fail_next(429, headers={"Retry-After": "2"})
    references = qb.provider.list_references(qb.connection)
    assert qb.delays == [2.0]
    assert len(references) == 22
