"""The Exact Online provider against the fake Exact (tests/fakes/exact_online.py) and its recordings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from ledgerbridge import jsonutil
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
    RemoteReference,
)
from ledgerbridge.providers.exact_online import (
    PURCHASE_ENTRY,
    SALES_INVOICE,
    AccountRequest,
    ExactOnlineProvider,
    ExactRequest,
    central_european,
    contact_reference,
    exact_reference,
    item_reference,
    parse_exact_date,
    remote_invoice,
    tracking_reference,
    unified_status,
)
from ledgerbridge.providers.http import ProviderHttp
from ledgerbridge.providers.oauth import OAuthApp, OAuthTokens, TokenSource
from tests.fakes.exact_online import (
    CLIENT_ID,
    CLIENT_SECRET,
    COSTS_ACCOUNT,
    DIVISION,
    REVENUE_ACCOUNT,
    TOKEN_PATH,
    FakeExactOnline,
    fixture,
    ms_date,
    recorded_records,
)
from tests.support.providers import fake_http
from tests.support.specs import assert_valid

INVOICE_ID = "0196a3f2-7c1e-7d3a-9b2e-5f4c3d2a1b00"
API = f"https://start.exactonline.nl/api/v1/{DIVISION}"
NL_TOKEN_URL = "https://start.exactonline.nl/api/oauth2/token"
CUSTOMER = "a58c29d9-ef92-40f1-b817-31b36990898c"  # "Foobar2 Updated", the recorded invoices' customer
SUPPLIER = "454a5d46-ee70-4ed1-9375-9cfedeb138cd"  # "Exact Software France", the recorded supplier
MARCHANDISES = "918004e1-ab42-4b76-a196-fd57b44a3d4c"  # item "M"
SERVICES = "61facaed-0389-4183-bf67-ac1c179e1050"  # item "S"
FEES_ACCOUNT = "83e03d6d-4a5e-4b19-b8e8-00c6c569f2bf"  # 658000 Charges diverses de gestion courante
SETTINGS = {
    "division": str(DIVISION),
    "default_item_id": SERVICES,
    "default_vat_code": "AB",
    "default_purchase_gl_account": FEES_ACCOUNT,
}
# Ledgerbridge ids of referenced records (any UUIDs: the references map resolves them).
CONTACT_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b60"
ITEM_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b61"
CENTER_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b62"
UNIT_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b63"
OTHER_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b64"
NOW = 1_800_000_000.0

provider = ExactOnlineProvider()


@pytest.fixture(autouse=True)
def _default_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGERBRIDGE_EXACT_ONLINE_API_URL", raising=False)
    monkeypatch.delenv("LEDGERBRIDGE_EXACT_ONLINE_TOKEN_URL", raising=False)


@pytest.fixture
def fake() -> FakeExactOnline:
    return FakeExactOnline()


# --- helpers ------------------------------------------------------------------------------


def account(account_id: str) -> RemoteReference:
    return contact_reference(next(r for r in recorded_records("list-accounts") if r["ID"] == account_id))


def item(item_id: str, **extra: Any) -> RemoteReference:
    record = next(r for r in FakeExactOnline().items if r["ID"] == item_id)
    return item_reference({**record, **extra})


def cost_center(code: str) -> RemoteReference:
    record = next(r for r in recorded_records("list-cost-centers") if r["Code"] == code)
    return tracking_reference(record, "costcenter")


def cost_unit(code: str) -> RemoteReference:
    record = next(r for r in recorded_records("list-cost-units") if r["Code"] == code)
    return tracking_reference(record, "costunit")


class StaticTokens:
    """The fake's first access token, valid for the test (the refresh flow is tested with TokenSource)."""

    def access_token(self) -> str:
        return "exact-access-0"

    def refresh_after_rejection(self, rejected_access_token: str) -> str:
        raise AssertionError("no refresh expected")


def connect(
    handler: Callable[[httpx.Request], httpx.Response],
    settings: dict[str, str] | None = None,
    sleeps: list[float] | None = None,
    attempts: int = 4,
) -> ConnectionContext:
    http = fake_http(handler, StaticTokens(), sleeps, attempts)
    return ConnectionContext(
        "conn-exact", "exact_online", dict(SETTINGS if settings is None else settings), http
    )


def outbound(body: dict[str, Any], references: dict[str, RemoteReference], invoice_id: str = INVOICE_ID):
    invoice = InvoiceInput.model_validate(jsonutil.loads(jsonutil.dumps(body)))
    return OutboundInvoice(invoice_id, invoice, references)


def create(connection: ConnectionContext, out: OutboundInvoice):
    return provider.send_invoice(connection, out, provider.map_invoice(connection, out))


def mapped(connection: ConnectionContext, out: OutboundInvoice) -> ExactRequest:
    """The request, its body held to Exact's own models as the fake holds every body it is sent."""
    request = provider.map_invoice(connection, out)
    model = {"SalesInvoiceLines": "SalesInvoice", "SalesEntryLines": "SalesEntry"}.get(request.document.lines)
    assert_valid(request.body, "exact-online/models", model or "PurchaseEntry")
    return request


def refusal(
    body: dict[str, Any], references: dict[str, RemoteReference | None] | None = None, **settings: str
):
    connection = ConnectionContext("conn-exact", "exact_online", {**SETTINGS, **settings})
    default_contact = account(SUPPLIER if body.get("type") == "ACCOUNTS_PAYABLE" else CUSTOMER)
    chosen = {"contact_id": default_contact, **(references or {})}
    with pytest.raises(InvalidInvoice) as caught:
        provider.map_invoice(connection, outbound(body, {k: v for k, v in chosen.items() if v is not None}))
    return caught.value.details


def replay(*answers: dict[str, Any]) -> Callable[[httpx.Request], httpx.Response]:
    """Answer each request with the next recorded response."""
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = queue.pop(0)
        return httpx.Response(
            answer["status"], headers=answer["headers"], content=jsonutil.dumps(answer["body"])
        )

    return handler


FULL_INVOICE = {
    "type": "ACCOUNTS_RECEIVABLE",
    "issue_date": "2026-04-24",
    "due_date": "2026-05-24T09:00:00+02:00",
    "memo": "April consulting",
    "currency": "usd",
    "contact_id": CONTACT_UUID,
    "tracking_categories": [CENTER_UUID],
    "line_items": [
        {
            "description": "Developer day onsite",
            "quantity": 2,
            "unit_price": 650,
            "item_id": ITEM_UUID,
            "tracking_categories": [UNIT_UUID],
        },
        {"description": "Support minutes", "quantity": 3, "unit_price": Decimal("0.1250"), "currency": "USD"},
    ],
}
FULL_REFERENCES = {
    "contact_id": account(CUSTOMER),
    "tracking_categories.0": cost_center("100"),
    "line_items.0.item_id": item(MARCHANDISES),
    "line_items.0.tracking_categories.0": cost_unit("PRJ-A"),
}


# --- receivables --------------------------------------------------------------------------


def test_a_full_invoice_is_sent_as_exact_documents_it(fake: FakeExactOnline) -> None:
    remote = create(connect(fake.handle), outbound(FULL_INVOICE, FULL_REFERENCES))

    [sent] = fake.create_requests()
    assert str(sent.url) == f"{API}/salesinvoice/SalesInvoices"
    assert sent.headers["accept"] == "application/json"
    assert sent.headers["content-type"] == "application/json"
    assert FakeExactOnline.body_of(sent) == {
        "Journal": "70",
        "OrderedBy": CUSTOMER,
        "OrderDate": "2026-04-24",  # InvoiceDate is read-only: Exact sets it from the entry
        "DueDate": "2026-05-24",
        "Currency": "USD",
        "Remarks": "April consulting",  # the internal memo: Description would be printed
        "YourRef": exact_reference(INVOICE_ID),
        "SalesInvoiceLines": [
            {
                "Item": MARCHANDISES,
                "Quantity": 2,
                "NetPrice": 650,
                "VATCode": "AB",
                "Description": "Developer day onsite",
                "CostCenter": "100",
                "CostUnit": "PRJ-A",
            },
            {
                "Item": SERVICES,  # default_item_id
                "Quantity": 3,
                "NetPrice": Decimal("0.1250"),
                "VATCode": "AB",
                "Description": "Support minutes",
                "CostCenter": "100",  # the invoice's cost centre lands on every line
            },
        ],
    }
    assert b'"NetPrice":0.1250' in sent.content  # exact on the wire, not a float
    stored = fake.sales_invoices[remote.remote_id]
    assert remote.fields == {
        "status": "OPEN",
        "sub_total": Decimal("1300.38"),
        "total_tax_amount": Decimal("260.08"),
        "total_amount": Decimal("1560.46"),
        "currency": "USD",
    }
    assert remote.line_remote_ids == [line["ID"] for line in stored["SalesInvoiceLines"]]
    assert remote.remote_data["SalesInvoiceLines"]["results"][1]["CostUnit"] is None
    # Read back: Exact recorded the issue date as the invoice date, and the memo off the printout.
    assert remote.remote_data["InvoiceDate"] == remote.remote_data["OrderDate"] == ms_date(date(2026, 4, 24))
    assert (remote.remote_data["Remarks"], remote.remote_data["Description"]) == ("April consulting", None)
    assert remote.remote_updated_at is not None and remote.remote_updated_at.utcoffset() in (
        timedelta(hours=1),
        timedelta(hours=2),
    )
    # The create answer only links the lines; the read-back expands them.
    assert [(r.method, r.url.params.get("$expand")) for r in fake.requests] == [
        ("POST", None),
        ("GET", "SalesInvoiceLines"),
    ]


def test_the_recorded_request_is_what_the_mapper_builds() -> None:
    [post] = [e for e in fixture("create-invoice")["exchanges"] if e["method"] == "POST"]
    recorded = post["request"]["body"]
    body = {
        "contact_id": CONTACT_UUID,
        "issue_date": "2024-08-12",
        "line_items": [{"quantity": 1, "unit_price": 1, "item_id": ITEM_UUID}],
    }
    request = mapped(
        ConnectionContext("c", "exact_online", {"division": str(DIVISION)}),
        outbound(body, {"contact_id": account(CUSTOMER), "line_items.0.item_id": item(MARCHANDISES)}),
    )
    # Status and InvoiceDate are read-only in Exact's models (the issue date travels as OrderDate,
    # as recorded), and Type 8023 (a direct sales invoice, with a stock movement) needs a warehouse
    # and a wholesale edition: none of them is sent. YourRef is ours.
    expected = {key: value for key, value in recorded.items() if key not in ("Status", "Type", "InvoiceDate")}
    assert request.body == {**expected, "YourRef": exact_reference(INVOICE_ID)}
    assert (request.document, request.division) == (SALES_INVOICE, str(DIVISION))


def test_the_recorded_responses_map_back_to_unified_fields() -> None:
    exchanges = {e["method"]: e["response"] for e in fixture("create-invoice")["exchanges"]}
    body = {"contact_id": CONTACT_UUID, "line_items": [{"unit_price": 1, "item_id": ITEM_UUID}]}
    out = outbound(body, {"contact_id": account(CUSTOMER), "line_items.0.item_id": item(MARCHANDISES)})
    remote = create(connect(replay(exchanges["POST"], exchanges["GET"])), out)

    assert remote.remote_id == "a07b5588-4d7d-4872-88f9-30b2d256440d"
    assert remote.fields == {
        "status": "OPEN",
        "sub_total": Decimal(1),
        "total_tax_amount": Decimal(0),
        "total_amount": Decimal(1),
        "currency": "EUR",
    }
    assert remote.line_remote_ids == ["19d4c9b5-c888-4404-9b28-f454e97f74ce"]
    # /Date(1782405060240)/ is the server's wall clock (16:31 at UTC+2 per GET /current/Me): 14:31 UTC.
    assert remote.remote_updated_at == datetime(2026, 6, 25, 14, 31, 0, 240000, tzinfo=UTC)
    assert remote.remote_data == exchanges["GET"]["body"]["d"]


def test_a_processed_recorded_invoice_maps_back_with_its_number() -> None:
    record = fixture("get-sales-invoice")["exchanges"][0]["response"]["body"]["d"]
    remote = remote_invoice(record, SALES_INVOICE, line_count=1)
    assert remote.fields == {
        "number": "24700006",
        "status": "OPEN",
        "sub_total": Decimal(1),
        "total_tax_amount": Decimal("0.2"),
        "total_amount": Decimal("1.2"),
        "currency": "EUR",
    }
    assert remote.line_remote_ids == [None]  # the lines were only linked


@pytest.mark.parametrize(
    ("status", "unified"), [(10, "DRAFT"), (20, "OPEN"), (50, "OPEN"), (5, "VOID"), (99, None)]
)
def test_exact_statuses_map_to_unified_ones(status: int, unified: str | None) -> None:
    assert unified_status({"Status": status}) == unified


def test_every_recorded_invoice_in_the_list_has_a_unified_status() -> None:
    statuses = {unified_status(record) for record in recorded_records("list-sales-invoices")}
    assert statuses == {"OPEN"}


def test_a_line_with_only_a_total_is_sent_as_an_amount(fake: FakeExactOnline) -> None:
    body = {"contact_id": CONTACT_UUID, "line_items": [{"total_amount": "49.90"}]}
    remote = create(connect(fake.handle), outbound(body, {"contact_id": account(CUSTOMER)}))
    [line] = FakeExactOnline.body_of(fake.create_requests()[0])["SalesInvoiceLines"]
    assert line == {"Item": SERVICES, "Quantity": 1, "AmountFC": Decimal("49.90"), "VATCode": "AB"}
    assert remote.fields["sub_total"] == Decimal("49.90")


def test_an_items_own_sales_vat_code_is_left_to_exact() -> None:
    body = {"contact_id": CONTACT_UUID, "line_items": [{"unit_price": 5, "item_id": ITEM_UUID}]}
    references = {
        "contact_id": account(CUSTOMER),
        "line_items.0.item_id": item(MARCHANDISES, SalesVatCode="V55"),
    }
    request = mapped(ConnectionContext("c", "exact_online", SETTINGS), outbound(body, references))
    assert "VATCode" not in request.body["SalesInvoiceLines"][0]


# --- payables -----------------------------------------------------------------------------


PURCHASE = {
    "type": "Bill",
    "issue_date": "2026-04-16",
    "due_date": "2026-05-16",
    "memo": "April hosting",
    "currency": "USD",
    "exchange_rate": "0.92",
    "contact_id": CONTACT_UUID,
    "line_items": [
        {"description": "Servers", "quantity": 2, "unit_price": "120.50", "item_id": ITEM_UUID},
        {"description": "Support", "total_amount": 30},
    ],
}


def test_a_payable_is_a_purchase_entry_on_gl_accounts(fake: FakeExactOnline) -> None:
    references = {"contact_id": account(SUPPLIER), "line_items.0.item_id": item(SERVICES)}
    settings = {**SETTINGS, "default_purchase_vat_code": "V20"}
    remote = create(connect(fake.handle, settings), outbound(PURCHASE, references))

    [sent] = fake.create_requests()
    assert str(sent.url) == f"{API}/purchaseentry/PurchaseEntries"
    assert FakeExactOnline.body_of(sent) == {
        "Journal": "60",
        "Supplier": SUPPLIER,
        "EntryDate": "2026-04-16",
        "DueDate": "2026-05-16",
        "Currency": "USD",
        "Rate": Decimal("0.92"),
        "Description": "April hosting",
        "YourRef": exact_reference(INVOICE_ID),
        "PurchaseEntryLines": [
            # The item's own cost account (GLCosts): purchase entries have no items.
            {"GLAccount": COSTS_ACCOUNT, "Quantity": 2, "AmountFC": Decimal("241.00"), "VATCode": "V20",
             "Description": "Servers"},
            {"GLAccount": FEES_ACCOUNT, "AmountFC": 30, "VATCode": "V20", "Description": "Support"},
        ],
    }  # fmt: skip
    stored = fake.purchase_entries[remote.remote_id]
    assert remote.fields == {
        "number": "24600007",  # Exact numbers entries after the recorded 24600006
        "status": "OPEN",
        "sub_total": Decimal("271.00"),
        "total_tax_amount": Decimal("54.20"),
        "total_amount": Decimal("325.20"),
        "currency": "USD",
        "exchange_rate": Decimal("0.92"),
    }
    assert remote.line_remote_ids == [line["ID"] for line in stored["PurchaseEntryLines"]]
    assert stored["AmountDC"] == Decimal("299.18")  # AmountFC x Rate: the division's currency


def test_the_recorded_purchase_entry_is_what_the_mapper_builds_and_maps_back() -> None:
    [exchange] = fixture("create-purchase-invoice")["exchanges"]
    recorded = exchange["request"]["body"]
    body = {
        "type": "ACCOUNTS_PAYABLE",
        "issue_date": "2024-05-30",
        "memo": "Test purchase invoice via acme",
        "contact_id": CONTACT_UUID,
        "line_items": [{"description": "Test line", "total_amount": 100}],
    }
    settings = {**SETTINGS, "default_purchase_gl_account": COSTS_ACCOUNT}
    connection = connect(replay(exchange["response"], exchange["response"]), settings)
    out = outbound(body, {"contact_id": account(SUPPLIER)})
    request = mapped(connection, out)
    # The recording sent AmountDC, which Exact documents as read-only (the entry came back with
    # amount 0); AmountFC is the documented, required amount.
    [line] = recorded["PurchaseEntryLines"]
    line = {("AmountFC" if key == "AmountDC" else key): value for key, value in line.items()}
    assert request.body == {**recorded, "PurchaseEntryLines": [line], "YourRef": exact_reference(INVOICE_ID)}
    assert request.document == PURCHASE_ENTRY

    remote = provider.send_invoice(connection, out, request)
    assert remote.remote_id == "b524d973-4b85-414d-a9eb-3534a1d3b8ed"
    assert remote.fields == {
        "number": "24600006",
        "status": "OPEN",
        "total_amount": Decimal(0),
        "currency": "EUR",
        "exchange_rate": Decimal(1),
    }
    assert remote.remote_updated_at == datetime(2026, 6, 25, 14, 17, 9, 480000, tzinfo=UTC)


# --- the memo, the issue date, the rate, Exact's own models ---------------------------------


def test_the_memo_stays_off_the_printed_invoice_unless_the_connection_prints_it(
    fake: FakeExactOnline,
) -> None:
    long_memo = {**BASIC, "memo": "Internal: " + "x" * 80}  # Remarks has no 60-character width
    request = mapped(
        ConnectionContext("c", "exact_online", SETTINGS),
        outbound(long_memo, {"contact_id": account(CUSTOMER)}),
    )
    assert request.body["Remarks"] == long_memo["memo"] and "Description" not in request.body

    printed = {**SETTINGS, "memo_target": "description"}
    remote = create(
        connect(fake.handle, printed),
        outbound({**BASIC, "memo": "Thank you"}, {"contact_id": account(CUSTOMER)}),
    )
    sent = FakeExactOnline.body_of(fake.create_requests()[0])
    assert sent["Description"] == "Thank you" and "Remarks" not in sent
    assert (remote.remote_data["Description"], remote.remote_data["Remarks"]) == ("Thank you", None)
    assert refusal(long_memo, memo_target="description") == [
        ("memo", "Exact descriptions hold at most 60 characters")
    ]


def test_entries_keep_the_memo_in_their_description_which_nobody_is_printed() -> None:
    payable = {**BASIC, "type": "ACCOUNTS_PAYABLE", "memo": "Hosting"}
    for target in ("remarks", "description"):
        request = mapped(
            ConnectionContext("c", "exact_online", {**SETTINGS, "memo_target": target}),
            outbound(payable, {"contact_id": account(SUPPLIER)}),
        )
        assert request.body["Description"] == "Hosting" and "Remarks" not in request.body
    assert refusal({**payable, "memo": "y" * 61}) == [
        ("memo", "Exact descriptions hold at most 60 characters")
    ]


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"memo_target": "notes"}, "Exact memo_target must be one of remarks, description"),
        ({"sales_document": "order"}, "Exact sales_document must be one of invoice, entry"),
    ],
)
def test_a_setting_that_chooses_where_things_go_must_be_known(settings: dict[str, str], reason: str) -> None:
    assert refusal({**BASIC, "memo": "m"}, **settings) == [("connection", reason)]


def test_the_issue_date_is_the_order_date_exact_enters_the_invoice_with(fake: FakeExactOnline) -> None:
    body = {**BASIC, "issue_date": "2026-03-31T23:30:00-05:00", "due_date": "2026-04-30"}
    remote = create(connect(fake.handle), outbound(body, {"contact_id": account(CUSTOMER)}))
    sent = FakeExactOnline.body_of(fake.create_requests()[0])
    assert sent["OrderDate"] == "2026-03-31" and "InvoiceDate" not in sent  # the date as the caller wrote it
    assert remote.remote_data["InvoiceDate"] == ms_date(date(2026, 3, 31))
    found = provider.find_invoice(connect(fake.handle), outbound(body, {"contact_id": account(CUSTOMER)}))
    assert found is not None and found.remote_data["InvoiceDate"] == ms_date(date(2026, 3, 31))


EUR_AT_1_08 = {
    "type": "ACCOUNTS_PAYABLE",
    "issue_date": "2026-04-16",
    "currency": "EUR",
    "exchange_rate": "1.08",
    "contact_id": CONTACT_UUID,
    "line_items": [{"description": "Hosting", "total_amount": "100.00"}],
}


def test_a_eur_purchase_entry_at_1_08_in_a_usd_division_is_recorded_and_read_back_as_1_08() -> None:
    fake = FakeExactOnline(division_currency="USD")
    connection = connect(fake.handle)
    out = outbound(EUR_AT_1_08, {"contact_id": account(SUPPLIER)})
    remote = create(connection, out)

    sent = FakeExactOnline.body_of(fake.create_requests()[0])
    assert (sent["Currency"], sent["Rate"]) == ("EUR", Decimal("1.08"))  # 1 EUR = 1.08 USD, as Exact counts
    stored = fake.purchase_entries[remote.remote_id]
    # 100 EUR + 20% VAT (code AB) = 120 EUR, booked as 120 x 1.08 = 129.60 USD.
    assert (stored["AmountFC"], stored["AmountDC"]) == (Decimal("120.00"), Decimal("129.60"))
    assert remote.fields["exchange_rate"] == Decimal("1.08")
    found = provider.find_invoice(connection, out)
    assert found is not None and found.fields["exchange_rate"] == Decimal("1.08")


SALES_ENTRY_SETTINGS = {**SETTINGS, "sales_document": "entry", "default_sales_gl_account": FEES_ACCOUNT}


def test_a_sales_entry_records_the_rate_a_sales_invoice_cannot() -> None:
    fake = FakeExactOnline(division_currency="USD")
    connection = connect(fake.handle, SALES_ENTRY_SETTINGS)
    body = {
        **EUR_AT_1_08,
        "type": "ACCOUNTS_RECEIVABLE",
        "due_date": "2026-05-16",
        "memo": "Booked from our billing",
        "line_items": [
            {"description": "Licences", "quantity": 2, "unit_price": 650, "item_id": ITEM_UUID},
            {"description": "Setup", "total_amount": "99.90"},
        ],
    }
    references = {
        "contact_id": account(CUSTOMER),
        "line_items.0.item_id": item(MARCHANDISES, SalesVatCode="V55"),
    }
    remote = create(connection, outbound(body, references))

    [sent] = fake.create_requests()
    assert str(sent.url) == f"{API}/salesentry/SalesEntries"
    assert FakeExactOnline.body_of(sent) == {
        "Journal": "70",
        "Customer": CUSTOMER,
        "EntryDate": "2026-04-16",
        "DueDate": "2026-05-16",
        "Currency": "EUR",
        "Rate": Decimal("1.08"),
        "Description": "Booked from our billing",  # an entry is printed for nobody
        "YourRef": exact_reference(INVOICE_ID),
        "SalesEntryLines": [
            # The item's own revenue account and sales VAT code: entry lines have no items.
            {"GLAccount": REVENUE_ACCOUNT["ID"], "Quantity": 2, "AmountFC": 1300, "VATCode": "V55",
             "Description": "Licences"},
            {"GLAccount": FEES_ACCOUNT, "AmountFC": Decimal("99.90"), "VATCode": "AB",
             "Description": "Setup"},
        ],
    }  # fmt: skip
    stored = fake.sales_entries[remote.remote_id]
    assert stored["AmountDC"] == (stored["AmountFC"] * Decimal("1.08")).quantize(Decimal("0.01"))
    assert remote.fields["exchange_rate"] == Decimal("1.08") and remote.fields["number"] == "24700007"
    assert remote.line_remote_ids == [line["ID"] for line in stored["SalesEntryLines"]]
    found = provider.find_invoice(connection, outbound(body, references))
    assert found is not None and found.remote_id == remote.remote_id
    assert found.fields["exchange_rate"] == Decimal("1.08")
    assert fake.requests[-2].url.path.endswith("/salesentry/SalesEntries")  # looked up where it was made


def test_sales_entry_lines_book_on_a_revenue_account() -> None:
    receivable = {**BASIC, "line_items": [{"total_amount": 1}]}
    [(path, reason)] = refusal(receivable, sales_document="entry")
    assert path == "line_items.0.item_id" and "default_sales_gl_account" in reason
    body = {**BASIC, "line_items": [{"total_amount": 1, "item_id": ITEM_UUID}]}
    [(path, reason)] = refusal(
        body, {"line_items.0.item_id": item(SERVICES, GLRevenue=None)}, **SALES_ENTRY_SETTINGS
    )
    assert path == "line_items.0.item_id" and "GLRevenue" in reason


@pytest.mark.parametrize("kind", ["ACCOUNTS_PAYABLE", "ACCOUNTS_RECEIVABLE"])
def test_a_rate_a_double_cannot_hold_exactly_is_refused_and_one_it_can_comes_back_as_sent(kind: str) -> None:
    fake = FakeExactOnline(division_currency="USD")
    contact = account(SUPPLIER if kind == "ACCOUNTS_PAYABLE" else CUSTOMER)
    body = {**EUR_AT_1_08, "type": kind, "exchange_rate": "123456.1234567891"}  # 16 significant digits
    assert refusal(body, {"contact_id": contact}, **SALES_ENTRY_SETTINGS) == [
        ("exchange_rate", "Exact keeps rates as doubles: give at most 15 significant digits")
    ]
    fifteen = Decimal("12345.1234567891")
    out = outbound({**body, "exchange_rate": str(fifteen)}, {"contact_id": contact})
    remote = create(connect(fake.handle, SALES_ENTRY_SETTINGS), out)
    assert remote.fields["exchange_rate"] == fifteen


def test_the_fake_holds_every_body_to_exacts_own_models() -> None:
    body = {
        "Journal": "70",
        "OrderedBy": CUSTOMER,
        "InvoiceDate": "2026-04-24",  # read-only in Exact's models
        "OrderDate": "2026-04-20",
        "SalesInvoiceLines": [{"Item": SERVICES, "Quantity": 1, "NetPrice": 5}],
    }

    def post(fake: FakeExactOnline, sent: dict[str, Any]) -> httpx.Response:
        with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
            return client.post(
                f"{API}/salesinvoice/SalesInvoices",
                headers={"authorization": "Bearer exact-access-0"},
                content=jsonutil.dumps(sent),
            )

    refused = post(FakeExactOnline(), body)
    assert refused.status_code == 400
    assert "Additional properties are not allowed ('InvoiceDate' was unexpected)" in refused.text
    wrong_type = post(FakeExactOnline(), {**body, "InvoiceDate": None, "OrderedBy": "Foobar"})
    assert "/OrderedBy: 'Foobar' does not match" in wrong_type.text
    # As Exact does: without the models' check a read-only property is ignored, not honoured.
    lenient = FakeExactOnline(validate_schema=False)
    created = jsonutil.loads(post(lenient, body).content)["d"]
    assert created["InvoiceDate"] == ms_date(date(2026, 4, 20))


# --- what Exact cannot express --------------------------------------------------------------

BASIC = {"contact_id": CONTACT_UUID, "line_items": [{"total_amount": 10}]}


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        ({"number": "INV-1"}, "number", "assigns invoice and entry numbers"),
        ({"status": "PAID"}, "status", "records payments"),
        ({"status": "VOID"}, "status", "send DRAFT, SUBMITTED or OPEN"),
        ({"paid_on_date": "2026-01-02"}, "paid_on_date", "payments separately"),
        ({"total_discount": 5}, "total_discount", "no invoice-level discount"),
        ({"exchange_rate": "1.1"}, "exchange_rate", "sales_document=entry"),
        ({"field_mappings": {"po_number": "PO-1"}}, "field_mappings", "no custom fields"),
        ({"accounting_period_id": OTHER_UUID}, "accounting_period_id", "not supported"),
        ({"line_items": []}, "line_items", "at least one line"),
        (
            {"line_items": [{"total_amount": 1, "description": "y" * 61}]},
            "line_items.0.description",
            "at most 60",
        ),
        ({"line_items": [{"total_amount": "1.005"}]}, "line_items.0.total_amount", "2 decimal places"),
        (
            {"line_items": [{"total_amount": 1, "currency": "GBP"}], "currency": "EUR"},
            "line_items.0.currency",
            "",
        ),
        (
            {"line_items": [{"total_amount": 1, "exchange_rate": 2}]},
            "line_items.0.exchange_rate",
            "sales_document=entry",
        ),
        (
            {"line_items": [{"unit_price": 2, "quantity": 3, "total_amount": 7}]},
            "line_items.0.total_amount",
            "6",
        ),
    ],
)
def test_what_a_sales_invoice_cannot_say_is_refused(change: dict[str, Any], path: str, reason: str) -> None:
    details = refusal({**BASIC, **change})
    assert [p for p, _ in details] == [path]
    assert reason in details[0][1]


def test_custom_fields_are_refused_naming_field_mappings_on_both_sides() -> None:
    for kind in ("ACCOUNTS_RECEIVABLE", "ACCOUNTS_PAYABLE"):
        details = refusal(
            {**BASIC, "type": kind, "field_mappings": {"unknown_slug": 1}}, **{"custom_field.po": "1"}
        )
        assert details == [("field_mappings", "Exact Online invoices have no custom fields")]


def test_every_problem_is_reported_at_once() -> None:
    body = {"number": "A-1", "status": "PAID", "line_items": [{"total_amount": 1}]}
    details = refusal(body, default_item_id="")
    assert [path for path, _ in details] == ["status", "number", "line_items.0.item_id"]


def test_a_sales_line_needs_an_item_that_is_sold() -> None:
    [(path, reason)] = refusal(BASIC, default_item_id="")
    assert path == "line_items.0.item_id" and "default_item_id" in reason
    body = {"contact_id": CONTACT_UUID, "line_items": [{"total_amount": 1, "item_id": ITEM_UUID}]}
    [(path, reason)] = refusal(body, {"line_items.0.item_id": item(MARCHANDISES, IsSalesItem=False)})
    assert (path, reason) == ("line_items.0.item_id", "this Exact item is not a sales item")


def test_the_contact_must_be_there_and_of_the_right_kind() -> None:
    assert [p for p, _ in refusal({"line_items": [{"total_amount": 1}]}, {"contact_id": None})] == [
        "contact_id"
    ]
    [(path, reason)] = refusal(BASIC, {"contact_id": account(SUPPLIER)})
    assert (path, reason) == ("contact_id", "this Exact account is not a customer")
    [(path, reason)] = refusal({**BASIC, "type": "ACCPAY"}, {"contact_id": account(CUSTOMER)})
    assert (path, reason) == ("contact_id", "this Exact account is not a supplier")


def test_purchase_lines_need_an_amount_and_a_gl_account() -> None:
    payable = {"type": "ACCOUNTS_PAYABLE", "contact_id": CONTACT_UUID}
    details = refusal({**payable, "line_items": [{"quantity": 2}]})
    assert details == [("line_items.0.unit_price", "an Exact purchase line needs unit_price or total_amount")]
    [(path, reason)] = refusal(
        {**payable, "line_items": [{"total_amount": 1}]}, default_purchase_gl_account=""
    )
    assert path == "line_items.0.item_id" and "default_purchase_gl_account" in reason
    [(path, _)] = refusal(
        {**payable, "line_items": [{"total_amount": 1}]}, default_purchase_gl_account="622000"
    )
    assert path == "connection"
    body = {**payable, "line_items": [{"total_amount": 1, "item_id": ITEM_UUID}]}
    [(path, reason)] = refusal(body, {"line_items.0.item_id": item(SERVICES, GLCosts=None)})
    assert path == "line_items.0.item_id" and "GLCosts" in reason
    [(path, reason)] = refusal({**payable, "line_items": [{"quantity": 3, "unit_price": "0.125"}]})
    assert (path, reason) == (
        "line_items.0.unit_price",
        "Exact line amounts keep 2 decimal places; 0.375 would be rounded",
    )


def test_tracking_takes_one_cost_centre_and_one_cost_unit_per_line() -> None:
    body = {
        "contact_id": CONTACT_UUID,
        "tracking_categories": [CENTER_UUID, OTHER_UUID],
        "line_items": [{"total_amount": 1, "tracking_categories": [UNIT_UUID, OTHER_UUID]}],
    }
    other_center = tracking_reference({"ID": "c2", "Code": "300", "Description": "Nice"}, "costcenter")
    other_unit = tracking_reference({"ID": "u2", "Code": "PRJ-B", "Description": "Beta"}, "costunit")
    references = {
        "tracking_categories.0": cost_center("100"),
        "tracking_categories.1": other_center,
        "line_items.0.tracking_categories.0": cost_unit("PRJ-A"),
        "line_items.0.tracking_categories.1": other_unit,
    }
    assert [path for path, _ in refusal(body, references)] == [
        "tracking_categories.1",
        "line_items.0.tracking_categories.1",
    ]
    stale = {"tracking_categories.0": RemoteReference("tracking_category", "class:5", "A class")}
    body = {
        "contact_id": CONTACT_UUID,
        "tracking_categories": [CENTER_UUID],
        "line_items": [{"total_amount": 1}],
    }
    assert [path for path, _ in refusal(body, stale)] == ["tracking_categories.0"]


def test_a_lines_own_cost_centre_replaces_the_invoices() -> None:
    body = {
        "contact_id": CONTACT_UUID,
        "tracking_categories": [CENTER_UUID],
        "line_items": [{"total_amount": 1, "tracking_categories": [OTHER_UUID]}, {"total_amount": 2}],
    }
    references = {
        "contact_id": account(CUSTOMER),
        "tracking_categories.0": cost_center("100"),
        "line_items.0.tracking_categories.0": cost_center("200"),
    }
    request = mapped(ConnectionContext("c", "exact_online", SETTINGS), outbound(body, references))
    assert [line["CostCenter"] for line in request.body["SalesInvoiceLines"]] == ["200", "100"]


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"division": ""}, "numeric division"),
        ({"division": "acme"}, "numeric division"),
        ({"country": "it"}, "country must be one of"),
    ],
)
def test_connection_settings_are_checked_before_anything_is_stored(
    settings: dict[str, str], reason: str
) -> None:
    details = refusal(BASIC, **settings)
    assert details[0][0] == "connection" and reason in details[0][1]


def test_the_token_endpoint_follows_the_connections_country() -> None:
    assert provider.oauth_token_url() == NL_TOKEN_URL
    assert provider.oauth_token_url({"division": "1"}) == NL_TOKEN_URL
    assert provider.oauth_token_url({"country": "be"}) == "https://start.exactonline.be/api/oauth2/token"
    assert (
        provider.oauth_token_url({"country": "co.uk"}) == "https://start.exactonline.co.uk/api/oauth2/token"
    )
    # Asked before mapping: an unknown country names nl here and is refused by map_invoice.
    assert provider.oauth_token_url({"country": "it"}) == NL_TOKEN_URL


# --- answers from Exact -------------------------------------------------------------------


def test_an_exact_validation_error_becomes_provider_rejected_with_its_message(fake: FakeExactOnline) -> None:
    body = {**BASIC, "currency": "CHF"}
    with pytest.raises(ProviderRejected) as caught:
        create(connect(fake.handle), outbound(body, {"contact_id": account(CUSTOMER)}))
    assert caught.value.messages == ["Currency: Not found (CHF)"]
    assert fake.sales_invoices == {}


def test_the_documented_error_shape_is_read() -> None:
    [exchange] = fixture("validation-error")["exchanges"]
    with pytest.raises(ProviderRejected) as caught:
        create(connect(replay(exchange["response"])), outbound(BASIC, {"contact_id": account(CUSTOMER)}))
    assert caught.value.messages == ["Mandatory: Journal"]


def test_a_journal_exact_does_not_have_is_its_message(fake: FakeExactOnline) -> None:
    connection = connect(fake.handle, {**SETTINGS, "sales_journal": "71"})
    with pytest.raises(ProviderRejected, match="'71' is not a sales journal"):
        create(connection, outbound(BASIC, {"contact_id": account(CUSTOMER)}))


def test_a_division_without_access_is_a_rejection_not_a_retry(fake: FakeExactOnline) -> None:
    with pytest.raises(ProviderRejected) as caught:
        create(
            connect(fake.handle, {**SETTINGS, "division": "999"}),
            outbound(BASIC, {"contact_id": account(CUSTOMER)}),
        )
    assert caught.value.messages == [
        "Exact Online refused access (HTTP 403): Forbidden: you have no access to this division"
    ]
    assert len(fake.requests) == 1


# --- retries, lost answers and finding invoices again -------------------------------------


def test_a_429_with_retry_after_is_waited_out(fake: FakeExactOnline) -> None:
    sleeps: list[float] = []
    fake.fail_next(429, headers={"Retry-After": "1", "X-RateLimit-Minutely-Remaining": "0"})
    create(connect(fake.handle, sleeps=sleeps), outbound(BASIC, {"contact_id": account(CUSTOMER)}))
    assert sleeps == [1.0]
    assert len(fake.create_requests()) == 2 and len(fake.sales_invoices) == 1


def test_a_503_on_a_read_is_retried_after_a_backoff(fake: FakeExactOnline) -> None:
    sleeps: list[float] = []
    fake.fail_next(503)
    references = provider.list_references(connect(fake.handle, sleeps=sleeps))
    assert sleeps == [0.25]  # base 0.5 x jitter 0.5
    assert sum(ref.kind == "contact" for ref in references) == 3


def test_a_timeout_on_a_read_is_retried(fake: FakeExactOnline) -> None:
    sleeps: list[float] = []
    out = outbound(BASIC, {"contact_id": account(CUSTOMER)})
    created = create(connect(fake.handle), out)
    fake.timeout_next()
    found = provider.find_invoice(connect(fake.handle, sleeps=sleeps), out)
    assert sleeps == [0.25]
    assert found is not None and found.remote_id == created.remote_id


def test_a_503_answering_the_create_is_looked_up_not_resent(fake: FakeExactOnline) -> None:
    sleeps: list[float] = []
    fake.fail_next(503)  # it may have been created: only a lookup can tell
    with pytest.raises(ProviderUnavailable, match="not resent"):
        create(connect(fake.handle, sleeps=sleeps), outbound(BASIC, {"contact_id": account(CUSTOMER)}))
    assert [r.method for r in fake.requests] == ["POST", "GET"]
    assert fake.sales_invoices == {} and sleeps == []


def test_a_create_that_timed_out_before_exact_did_it_is_not_resent(fake: FakeExactOnline) -> None:
    fake.timeout_next()
    with pytest.raises(ProviderUnavailable):
        create(connect(fake.handle), outbound(BASIC, {"contact_id": account(CUSTOMER)}))
    assert len(fake.create_requests()) == 1 and fake.sales_invoices == {}


def test_a_refused_connection_is_resent_because_it_never_arrived(fake: FakeExactOnline) -> None:
    sleeps: list[float] = []
    attempts: list[httpx.Request] = []

    def refused_once(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        if len(attempts) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return fake.handle(request)

    create(connect(refused_once, sleeps=sleeps), outbound(BASIC, {"contact_id": account(CUSTOMER)}))
    assert [r.method for r in attempts[:2]] == ["POST", "POST"]
    assert sleeps == [0.25] and len(fake.sales_invoices) == 1


def test_giving_up_on_an_unavailable_exact_creates_nothing(fake: FakeExactOnline) -> None:
    fake.fail_next(503, times=5)  # the create, and every try of the lookup after it
    with pytest.raises(ProviderUnavailable):
        create(connect(fake.handle), outbound(BASIC, {"contact_id": account(CUSTOMER)}))
    assert fake.sales_invoices == {}
    assert len(fake.create_requests()) == 1


def test_find_invoice_finds_an_earlier_invoice_by_its_reference_and_nothing_else(
    fake: FakeExactOnline,
) -> None:
    connection = connect(fake.handle)
    out = outbound(BASIC, {"contact_id": account(CUSTOMER)})
    created = create(connection, out)

    found = provider.find_invoice(connection, out)
    assert found is not None and found.remote_id == created.remote_id
    assert found.fields == created.fields and found.line_remote_ids == created.line_remote_ids
    lookup = fake.requests[-2]
    assert lookup.url.params["$filter"] == f"YourRef eq '{exact_reference(INVOICE_ID)}'"
    other = outbound(
        BASIC, {"contact_id": account(CUSTOMER)}, invoice_id="0196a3f2-7c1e-7d3a-9b2e-5f4c3d2a1b01"
    )
    assert provider.find_invoice(connection, other) is None
    payable = outbound({**BASIC, "type": "ACCPAY"}, {"contact_id": account(SUPPLIER)})
    assert provider.find_invoice(connection, payable) is None  # purchase entries are looked up apart


def test_a_lost_answer_then_find_invoice_finds_exactly_that_invoice(fake: FakeExactOnline) -> None:
    body = {**PURCHASE, "line_items": [{"total_amount": 30}]}
    out = outbound(body, {"contact_id": account(SUPPLIER)})
    connection = connect(fake.handle, attempts=1)  # one try per read: the lookup fails too
    fake.timeout_next(after_processing=True, times=2)  # Exact books it, the answer (and the lookup) are lost
    with pytest.raises(ProviderUnavailable):
        create(connection, out)
    assert len(fake.purchase_entries) == 1

    found = provider.find_invoice(connection, out)  # what a redelivery does before sending again
    [entry] = fake.purchase_entries.values()
    assert found is not None and found.remote_id == entry["EntryID"]
    assert found.fields["number"] == str(entry["EntryNumber"])
    assert len(fake.purchase_entries) == 1


def test_a_lost_create_answer_is_recovered_by_looking_the_invoice_up(fake: FakeExactOnline) -> None:
    out = outbound(BASIC, {"contact_id": account(CUSTOMER)})
    fake.timeout_next(after_processing=True)
    remote = create(connect(fake.handle), out)
    [invoice] = fake.sales_invoices.values()
    assert remote.remote_id == invoice["InvoiceID"]
    assert [r.method for r in fake.requests] == ["POST", "GET", "GET"]


def test_of_several_invoices_with_one_reference_the_oldest_is_found(fake: FakeExactOnline) -> None:
    connection = connect(fake.handle)
    out = outbound(BASIC, {"contact_id": account(CUSTOMER)})
    first = create(connection, out)
    later = fake.sales_invoices[create(connection, out).remote_id]
    later["Created"] = "/Date(4102444800000)/"  # 2100
    assert provider.find_invoice(connection, out).remote_id == first.remote_id  # type: ignore[union-attr]


def test_a_failed_read_back_still_returns_the_created_invoice(fake: FakeExactOnline) -> None:
    def no_reads(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503) if request.method == "GET" else fake.handle(request)

    remote = create(connect(no_reads), outbound(FULL_INVOICE, FULL_REFERENCES))
    [invoice] = fake.sales_invoices.values()
    assert remote.remote_id == invoice["InvoiceID"]
    assert remote.line_remote_ids == [None, None]
    assert remote.fields["total_amount"] == invoice["AmountFC"]


def test_an_invoice_found_but_not_readable_is_still_found(fake: FakeExactOnline) -> None:
    out = outbound(BASIC, {"contact_id": account(CUSTOMER)})
    created = create(connect(fake.handle), out)

    def no_entity_reads(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503) if "(guid'" in request.url.path else fake.handle(request)

    found = provider.find_invoice(connect(no_entity_reads), out)
    assert found is not None and found.remote_id == created.remote_id  # settled as synced, not resent
    assert found.line_remote_ids == [None]


# --- tokens -------------------------------------------------------------------------------


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


def token_connection(
    fake: FakeExactOnline, clock: Callable[[], float]
) -> tuple[ConnectionContext, MemoryStore]:
    client = httpx.Client(transport=httpx.MockTransport(fake.handle))
    store = MemoryStore(OAuthTokens("exact-access-0", "exact-refresh-0", expires_at=clock() + 600))
    app = OAuthApp(
        provider.oauth_token_url(SETTINGS) or "",
        CLIENT_ID,
        CLIENT_SECRET,
        client_auth=provider.oauth_client_auth,
    )
    tokens = TokenSource(store, app, client, clock=clock)
    return ConnectionContext("conn-exact", "exact_online", SETTINGS, ProviderHttp(client, tokens)), store


def test_two_refreshes_in_a_row_rotate_the_refresh_token() -> None:
    now = [NOW]
    fake = FakeExactOnline(clock=lambda: now[0])
    connection, store = token_connection(fake, lambda: now[0])
    for minutes in (0, 10, 20):  # Exact's access tokens last 10 minutes
        now[0] = NOW + minutes * 60
        create(connection, outbound(BASIC, {"contact_id": account(CUSTOMER)}, invoice_id=f"inv-{minutes}"))

    refreshes = fake.token_requests()
    assert [parse_qs(r.content.decode())["refresh_token"] for r in refreshes] == [
        ["exact-refresh-0"],
        ["exact-refresh-1"],
    ]
    form = parse_qs(refreshes[0].content.decode())
    assert (form["client_id"], form["client_secret"], form["grant_type"]) == (
        [CLIENT_ID],
        [CLIENT_SECRET],
        ["refresh_token"],
    )
    assert "authorization" not in refreshes[0].headers  # client credentials go in the form body
    assert (store.tokens.refresh_token, store.tokens.version) == ("exact-refresh-2", 2)
    assert store.tokens.expires_at == now[0] + 600  # expires_in arrives as the string "600"
    assert fake.retired_refresh_tokens == ["exact-refresh-0", "exact-refresh-1"]
    assert len(fake.sales_invoices) == 3
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
        form = {"grant_type": "refresh_token", "refresh_token": "exact-refresh-1"}
        reused = client.post(
            NL_TOKEN_URL, data={**form, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        )
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")


def test_an_access_token_exact_refuses_is_refreshed_once_and_the_request_resent() -> None:
    fake = FakeExactOnline(clock=lambda: NOW)
    connection, store = token_connection(fake, lambda: NOW)
    fake.expire_access_tokens()
    create(connection, outbound(BASIC, {"contact_id": account(CUSTOMER)}))
    assert [r.url.path for r in fake.requests][:3] == [
        f"/api/v1/{DIVISION}/salesinvoice/SalesInvoices",
        TOKEN_PATH,
        f"/api/v1/{DIVISION}/salesinvoice/SalesInvoices",
    ]
    assert fake.requests[2].headers["authorization"] == "Bearer exact-access-1"
    assert store.tokens.refresh_token == "exact-refresh-1"


def test_the_token_endpoint_wants_the_apps_credentials_in_the_form() -> None:
    fake = FakeExactOnline()
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
        form = {"grant_type": "refresh_token", "refresh_token": "exact-refresh-0"}
        basic = client.post(NL_TOKEN_URL, data=form, auth=(CLIENT_ID, CLIENT_SECRET))
    assert (basic.status_code, basic.json()) == (400, {"error": "invalid_client"})
    assert fake.refresh_token == "exact-refresh-0"


# --- references ---------------------------------------------------------------------------


def test_references_list_every_page_of_accounts_items_gl_accounts_and_cost_analysis() -> None:
    fake = FakeExactOnline(page_size=25)
    references = provider.list_references(connect(fake.handle))

    gl_pages = [r for r in fake.requests if r.url.path.endswith("/GLAccounts")]
    assert [r.url.params.get("$skiptoken") is not None for r in gl_pages] == [False, True, True]
    assert all(r.url.host == "start.exactonline.nl" for r in fake.requests)
    by_kind: dict[str, list[RemoteReference]] = {}
    for ref in references:
        by_kind.setdefault(ref.kind, []).append(ref)
    assert {kind: len(refs) for kind, refs in by_kind.items()} == {
        "contact": 3,  # the prospect is neither customer nor supplier: filtered out by Exact
        "item": 4,
        "account": 61,
        "tracking_category": 3,
    }
    accounts_request = next(r for r in fake.requests if r.url.path.endswith("/crm/Accounts"))
    assert accounts_request.url.params["$filter"] == "Status eq 'C' or IsSupplier eq true"

    contacts = {ref.remote_id: ref for ref in by_kind["contact"]}
    assert contacts[CUSTOMER].fields == {
        "code": "1",
        "is_customer": True,
        "is_supplier": False,
        "email_address": "person1@example.com",
        "tax_number": None,
        "currency": "EUR",
        "status": "ACTIVE",
        "addresses": None,
        "phone_numbers": None,
        "remote_updated_at": "2024-08-12T14:28:20+02:00",  # Modified, on Exact's CEST clock
    }
    both = contacts["6c0b2a8e-91a4-4c8b-b1a2-3f0e5d7c9b41"].fields
    assert (both["is_customer"], both["is_supplier"], both["status"]) == (True, True, "ARCHIVED")
    items = {ref.fields["code"]: ref for ref in by_kind["item"]}
    assert items["M"].remote_id == MARCHANDISES and items["M"].name == "Marchandises"
    assert items["M"].fields["purchase_account"] == COSTS_ACCOUNT
    accounts = {ref.fields["code"]: ref for ref in by_kind["account"]}
    assert accounts["622000"].remote_id == COSTS_ACCOUNT
    tracking = {ref.fields["code"]: ref for ref in by_kind["tracking_category"]}
    assert tracking["100"].remote_id == "costcenter:0b9f3f5e-7c1d-4e2a-9d8b-1f2e3d4c5b60"
    assert (tracking["100"].name, tracking["100"].fields["status"]) == ("Cost centre: Paris", "ACTIVE")
    assert tracking["200"].fields["status"] == "ARCHIVED"  # ended on 2024-01-01
    assert tracking["PRJ-A"].fields["category_type"] == "COST_UNIT"


def test_a_next_link_is_followed_on_the_configured_host_only() -> None:
    small = FakeExactOnline(page_size=40)

    def elsewhere(request: httpx.Request) -> httpx.Response:
        response = small.handle(request)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=response.content.replace(b"https://start.exactonline.nl", b"https://evil.example"),
        )

    references = provider.list_references(connect(elsewhere))
    assert sum(ref.kind == "account" for ref in references) == 61
    assert {r.url.host for r in small.requests} == {"start.exactonline.nl"}


def test_cost_analysis_missing_from_the_licence_is_no_tracking_categories(fake: FakeExactOnline) -> None:
    def no_cost_analysis(request: httpx.Request) -> httpx.Response:
        if "/hrm/" in request.url.path:
            body = {"error": {"code": "", "message": {"lang": "", "value": "Forbidden"}}}
            return httpx.Response(403, content=jsonutil.dumps(body))
        return fake.handle(request)

    references = provider.list_references(connect(no_cost_analysis))
    assert not any(ref.kind == "tracking_category" for ref in references)
    assert sum(ref.kind == "contact" for ref in references) == 3


def test_a_required_list_that_fails_fails_the_sync(fake: FakeExactOnline) -> None:
    def no_items(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Items"):
            return httpx.Response(404, content=b'{"error": {"message": {"value": "Not found"}}}')
        return fake.handle(request)

    with pytest.raises(ProviderRejected, match="Not found"):
        provider.list_references(connect(no_items))


def test_a_bare_d_array_answer_is_one_page() -> None:
    [exchange] = fixture("list-items")["exchanges"]

    def recorded_items(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Items"):
            return httpx.Response(200, content=jsonutil.dumps(exchange["response"]["body"]))
        return httpx.Response(200, content=b'{"d": {"results": []}}')

    references = provider.list_references(connect(recorded_items))
    assert [ref.fields["code"] for ref in references] == ["M", "S", "DEL-ITEM-1", "DEL-ITEM-2"]


# --- dates, references and endpoints ------------------------------------------------------


def test_exact_dates_are_wall_clock_times_in_central_european_time() -> None:
    assert parse_exact_date("/Date(1723420800000)/") == datetime(2024, 8, 12)
    assert parse_exact_date(None) is None
    summer = central_european(datetime(2026, 6, 25, 16, 31))
    assert summer.astimezone(UTC) == datetime(2026, 6, 25, 14, 31, tzinfo=UTC)
    winter = central_european(datetime(2026, 1, 10, 9, 0))
    assert winter.astimezone(UTC) == datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
    assert central_european(datetime(2026, 3, 29, 1, 59)).utcoffset() == timedelta(hours=1)
    assert central_european(datetime(2026, 3, 29, 3, 0)).utcoffset() == timedelta(hours=2)
    assert central_european(datetime(2026, 10, 25, 3, 0)).utcoffset() == timedelta(hours=1)
    for text in ("2026-04-24", "/Date(1+0100)/", "/Date(abc)/"):
        with pytest.raises(ValueError):
            parse_exact_date(text)


def test_the_reference_is_stable_short_and_unique() -> None:
    reference = exact_reference(INVOICE_ID)
    assert reference == exact_reference(INVOICE_ID) and reference.startswith("LB-")
    assert len(reference) == 29 and reference.isascii() and "'" not in reference
    assert exact_reference("0196a3f2-7c1e-7d3a-9b2e-5f4c3d2a1b01") != reference
    assert len(exact_reference("not-a-uuid")) == 29


def test_the_country_setting_picks_exacts_host_for_the_api_and_tokens(fake: FakeExactOnline) -> None:
    assert provider.oauth_client_auth == "form"
    assert provider.oauth_token_url({"country": "FR"}) == "https://start.exactonline.fr/api/oauth2/token"
    seen: list[httpx.URL] = []

    def french(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return fake.handle(request)

    create(connect(french, {**SETTINGS, "country": "FR"}), outbound(BASIC, {"contact_id": account(CUSTOMER)}))
    assert {url.host for url in seen} == {"start.exactonline.fr"}


def test_api_and_token_urls_follow_the_environment(
    fake: FakeExactOnline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGERBRIDGE_EXACT_ONLINE_API_URL", "http://127.0.0.1:8765/exact/")
    monkeypatch.setenv("LEDGERBRIDGE_EXACT_ONLINE_TOKEN_URL", "http://127.0.0.1:8765/api/oauth2/token")
    seen: list[httpx.URL] = []

    def proxy(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        request.url = request.url.copy_with(path=request.url.path.removeprefix("/exact"))
        return fake.handle(request)

    connection = connect(proxy, {**SETTINGS, "country": "be"})  # the override replaces the country host
    create(connection, outbound(BASIC, {"contact_id": account(CUSTOMER)}))
    assert str(seen[0]) == f"http://127.0.0.1:8765/exact/api/v1/{DIVISION}/salesinvoice/SalesInvoices"
    assert provider.oauth_token_url({"country": "be"}) == "http://127.0.0.1:8765/api/oauth2/token"
    small = FakeExactOnline(page_size=40)
    seen.clear()

    def paged_proxy(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        request.url = request.url.copy_with(path=request.url.path.removeprefix("/exact"))
        return small.handle(request)

    provider.list_references(connect(paged_proxy))
    assert all(str(url).startswith("http://127.0.0.1:8765/exact/api/v1/") for url in seen)
    assert sum("skiptoken" in str(url) for url in seen) == 1


# --- contacts (crm/Accounts) --------------------------------------------------------------

CONTACT_ID = "0196a3f2-7c1e-7d3a-9b2e-5f4c3d2a1c00"
FULL_CONTACT = {
    "name": "Van Dijk Installaties B.V.",
    "is_customer": True,
    "is_supplier": False,
    "email_address": "boekhouding@vandijk.example",
    "tax_number": "NL001234567B01",
    "status": "active",
    "currency": "usd",
    "remote_updated_at": "2026-01-01T00:00:00Z",  # Panora's SDK sends it; Exact decides it
    "addresses": [
        {
            "street_1": "Keizersgracht 1",
            "street_2": "3e verdieping",
            "city": "Amsterdam",
            "state": "NH",
            "postal_code": "1015 CJ",
            "country": "nl",
            "address_type": "visit",
        }
    ],
    "phone_numbers": [
        {"phone_number": "+31 20 123 4567", "phone_type": "WORK"},
        {"phone_number": "+31 20 123 4568", "phone_type": "fax"},
    ],
}


def contact_out(body: dict[str, Any], contact_id: str = CONTACT_ID) -> OutboundContact:
    return OutboundContact(contact_id, ContactInput.model_validate(body))


def mapped_contact(body: dict[str, Any], settings: dict[str, str] | None = None) -> AccountRequest:
    """The account create, its body held to Exact's own Account model."""
    connection = ConnectionContext("conn-exact", "exact_online", dict(settings or SETTINGS))
    request = base.map_contact(provider, connection, contact_out(body))
    assert_valid(request.body, "exact-online/models", "Account")
    return request


def contact_refusal(body: dict[str, Any], settings: dict[str, str] | None = None) -> list[tuple[str, str]]:
    connection = ConnectionContext("conn-exact", "exact_online", dict(settings or SETTINGS))
    with pytest.raises(InvalidInvoice) as caught:
        base.map_contact(provider, connection, contact_out(body))
    return caught.value.details


def create_contact(connection: ConnectionContext, out: OutboundContact) -> RemoteReference:
    return base.send_contact(provider, connection, out, base.map_contact(provider, connection, out))


def test_exact_online_declares_contact_creation() -> None:
    assert base.supports_contacts(provider)


def test_a_full_contact_is_an_exact_account_with_every_field_where_exact_keeps_it() -> None:
    request = mapped_contact(FULL_CONTACT)
    assert request.reference == exact_reference(CONTACT_ID)
    assert request.body == {
        "Name": "Van Dijk Installaties B.V.",
        "Email": "boekhouding@vandijk.example",
        "VATNumber": "NL001234567B01",
        "Blocked": False,
        "IsSupplier": False,
        "Status": "C",  # Exact's customer status
        "SalesCurrency": "USD",
        "AddressLine1": "Keizersgracht 1",
        "AddressLine2": "3e verdieping",
        "City": "Amsterdam",
        "State": "NH",
        "Postcode": "1015 CJ",
        "Country": "NL",
        "Phone": "+31 20 123 4567",
        "Fax": "+31 20 123 4568",
        "Remarks": exact_reference(CONTACT_ID),  # the lookup key: internal, never printed
    }


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        ({}, {"IsSupplier": False, "Status": "C", "SalesCurrency": "EUR"}),  # a customer by default
        ({"is_customer": True}, {"IsSupplier": False, "Status": "C", "SalesCurrency": "EUR"}),
        ({"is_supplier": True}, {"IsSupplier": True, "PurchaseCurrency": "EUR"}),
        ({"is_customer": False, "is_supplier": True}, {"IsSupplier": True, "PurchaseCurrency": "EUR"}),
        (
            {"is_customer": True, "is_supplier": True},  # one Exact account can be both
            {"IsSupplier": True, "Status": "C", "SalesCurrency": "EUR", "PurchaseCurrency": "EUR"},
        ),
    ],
)
def test_customer_and_supplier_are_the_accounts_status_and_supplier_flag(
    roles: dict[str, bool], expected: dict[str, Any]
) -> None:
    body = mapped_contact({"name": "Roles", "currency": "EUR", **roles}).body
    assert {key: body[key] for key in body if key not in ("Name", "Remarks")} == expected


def test_an_archived_contact_is_a_blocked_account_and_nothing_unsaid_is_sent() -> None:
    assert mapped_contact({"name": "Old", "status": "ARCHIVED"}).body["Blocked"] is True
    assert mapped_contact({"name": "Bare"}).body == {
        "Name": "Bare",
        "IsSupplier": False,
        "Status": "C",
        "Remarks": exact_reference(CONTACT_ID),
    }


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        ({"name": None}, "name", "Exact needs an account name"),
        ({"field_mappings": {"kvk": "123"}}, "field_mappings", "Exact accounts take no custom fields"),
        (
            {"is_customer": False, "is_supplier": False},
            "is_customer",
            "an Exact account created here is a customer, a supplier or both",
        ),
        (
            {"is_customer": False},
            "is_customer",
            "an Exact account created here is a customer, a supplier or both",
        ),
        (
            {"addresses": [{"city": "Utrecht"}, {"city": "Delft"}]},
            "addresses.1",
            "an Exact account holds one address",
        ),
        (
            {"addresses": [{"city": "Utrecht", "address_type": "BILLING"}]},
            "addresses.0.address_type",
            "an Exact account holds its visit address only",
        ),
        (
            {"addresses": [{"city": "Utrecht", "country": "Netherlands"}]},
            "addresses.0.country",
            "Exact takes the ISO 3166 two-letter country code",
        ),
        (
            {"phone_numbers": [{"phone_number": "1"}, {"phone_number": "2", "phone_type": "WORK"}]},
            "phone_numbers.1",
            "an Exact account holds one phone number",
        ),
        (
            {
                "phone_numbers": [
                    {"phone_number": "1", "phone_type": "FAX"},
                    {"phone_number": "2", "phone_type": "fax"},
                ]
            },
            "phone_numbers.1",
            "an Exact account holds one fax number",
        ),
        (
            {"phone_numbers": [{"phone_number": "06 1234 5678", "phone_type": "MOBILE"}]},
            "phone_numbers.0.phone_type",
            "Exact keeps mobiles on contact persons",
        ),
        ({"phone_numbers": [{"phone_type": "WORK"}]}, "phone_numbers.0.phone_number", "no number given"),
    ],
)
def test_what_an_exact_account_cannot_hold_is_refused_naming_the_field(
    change: dict[str, Any], path: str, reason: str
) -> None:
    details = contact_refusal({**FULL_CONTACT, **change})
    assert [found for found, _ in details] == [path]
    assert details[0][1].startswith(reason)


def test_every_contact_problem_is_reported_at_once() -> None:
    body = {
        "is_customer": False,
        "field_mappings": {"kvk": "123"},
        "addresses": [{"city": "Utrecht"}, {"city": "Delft"}],
        "phone_numbers": [{"phone_number": "06", "phone_type": "MOBILE"}],
    }
    assert [path for path, _ in contact_refusal(body)] == [
        "name",
        "field_mappings",
        "is_customer",
        "addresses.1",
        "phone_numbers.0.phone_type",
    ]


def test_a_contact_on_a_misconfigured_connection_is_refused_on_the_connection() -> None:
    assert [path for path, _ in contact_refusal({"name": "X"}, {"country": "nl"})] == ["connection"]
    assert [path for path, _ in contact_refusal({"name": "X"}, {**SETTINGS, "country": "xx"})] == [
        "connection"
    ]


def test_the_fake_holds_an_account_body_to_exacts_model() -> None:
    fake = FakeExactOnline()
    with pytest.raises(ProviderRejected, match="Created"):  # read-only in Exact's model
        base.send_contact(
            provider,
            connect(fake.handle),
            contact_out({"name": "X"}),
            AccountRequest({"Name": "X", "Created": "2026-01-01"}, "LB-X"),
        )
    assert fake.accounts[-1]["Name"] != "X"


def test_a_contact_is_created_once_and_described_as_the_reference_sync_lists_it(
    fake: FakeExactOnline,
) -> None:
    connection = connect(fake.handle)
    created = create_contact(connection, contact_out(FULL_CONTACT))

    [sent] = fake.account_requests()
    assert str(sent.url) == f"{API}/crm/Accounts"
    assert FakeExactOnline.body_of(sent)["Remarks"] == exact_reference(CONTACT_ID)
    stored = fake.accounts[-1]
    assert created.remote_id == stored["ID"] and created.name == "Van Dijk Installaties B.V."
    assert created.fields == {
        "code": "5",  # the next number after the division's four accounts
        "is_customer": True,
        "is_supplier": False,
        "email_address": "boekhouding@vandijk.example",
        "tax_number": "NL001234567B01",
        "currency": "USD",
        "status": "ACTIVE",
        "addresses": [
            {
                "street_1": "Keizersgracht 1",
                "street_2": "3e verdieping",
                "city": "Amsterdam",
                "state": "NH",
                "postal_code": "1015 CJ",
                "country": "NL",
                "address_type": "VISIT",
            }
        ],
        "phone_numbers": [
            {"phone_number": "+31 20 123 4567", "phone_type": "PHONE"},
            {"phone_number": "+31 20 123 4568", "phone_type": "FAX"},
        ],
        "remote_updated_at": created.fields["remote_updated_at"],
    }
    assert created.fields["remote_updated_at"] is not None
    listed = {ref.remote_id: ref for ref in provider.list_references(connection) if ref.kind == "contact"}
    assert listed[created.remote_id].fields == created.fields  # the next sync says the same
    assert listed[created.remote_id].name == created.name


def test_a_created_customer_can_be_invoiced_at_once(fake: FakeExactOnline) -> None:
    connection = connect(fake.handle)
    customer = create_contact(connection, contact_out({"name": "Nieuwe Klant", "currency": "EUR"}))
    remote = create(connection, outbound(BASIC, {"contact_id": customer}))
    assert fake.sales_invoices[remote.remote_id]["OrderedBy"] == customer.remote_id


def test_a_supplier_only_contact_is_an_exact_supplier_that_is_no_customer(fake: FakeExactOnline) -> None:
    created = create_contact(connect(fake.handle), contact_out({"name": "Leverancier", "is_supplier": True}))
    assert (created.fields["is_customer"], created.fields["is_supplier"]) == (False, True)
    assert fake.accounts[-1]["Status"] == "A"


def test_an_exact_refusal_of_a_contact_is_provider_rejected_with_its_message(fake: FakeExactOnline) -> None:
    with pytest.raises(ProviderRejected, match=r"Currency: Not found \(CHF\)"):
        create_contact(connect(fake.handle), contact_out({"name": "Zwitsers", "currency": "CHF"}))
    assert len(fake.account_requests()) == 1 and fake.accounts[-1]["Name"] != "Zwitsers"


def test_an_account_code_already_taken_is_refused_by_exact(fake: FakeExactOnline) -> None:
    with pytest.raises(ProviderRejected, match="already exists"):
        base.send_contact(
            provider,
            connect(fake.handle),
            contact_out({"name": "Dubbel"}),
            AccountRequest({"Name": "Dubbel", "Code": "1"}, "LB-X"),
        )


class RefusedTokens(StaticTokens):
    """Exact refuses every token, the refreshed one too."""

    def refresh_after_rejection(self, rejected_access_token: str) -> str:
        return "exact-access-refreshed-but-refused"


def test_a_contact_refused_after_a_refresh_needs_reauthorization(fake: FakeExactOnline) -> None:
    fake.expire_access_tokens()
    connection = ConnectionContext(
        "conn-exact", "exact_online", dict(SETTINGS), fake_http(fake.handle, RefusedTokens())
    )
    with pytest.raises(ReauthorizationRequired):
        create_contact(connection, contact_out({"name": "Geweigerd"}))
    assert len(fake.account_requests()) == 2  # the create, and once more with the refreshed token
    assert all(account["Name"] != "Geweigerd" for account in fake.accounts)


def test_a_503_answering_the_contact_create_is_looked_up_not_resent(fake: FakeExactOnline) -> None:
    sleeps: list[float] = []
    fake.fail_next(503)
    with pytest.raises(ProviderUnavailable, match="not resent"):
        create_contact(connect(fake.handle, sleeps=sleeps), contact_out({"name": "Onbereikbaar"}))
    assert [r.method for r in fake.requests] == ["POST", "GET"] and sleeps == []
    lookup = fake.requests[1]
    assert lookup.url.params["$filter"] == "Name eq 'Onbereikbaar'"
    assert all(account["Name"] != "Onbereikbaar" for account in fake.accounts)


def test_a_lost_contact_answer_is_recovered_by_looking_the_account_up(fake: FakeExactOnline) -> None:
    fake.timeout_next(after_processing=True)  # Exact creates it; the answer is lost
    created = create_contact(connect(fake.handle), contact_out({"name": "Verloren Antwoord"}))
    [account] = [a for a in fake.accounts if a["Name"] == "Verloren Antwoord"]
    assert created.remote_id == account["ID"] and len(fake.account_requests()) == 1


def test_find_contact_finds_the_earlier_attempt_by_its_reference_and_nothing_else(
    fake: FakeExactOnline,
) -> None:
    connection = connect(fake.handle)
    out = contact_out({"name": "O'Brien & Zn."})  # a quote in the name: doubled in the filter
    assert base.find_contact(provider, connection, out) is None
    create_contact(connection, contact_out({"name": "O'Brien & Zn."}, contact_id=OTHER_UUID))  # same name
    assert base.find_contact(provider, connection, out) is None
    created = create_contact(connection, out)
    found = base.find_contact(provider, connection, out)
    assert found is not None and found.remote_id == created.remote_id
    assert found.fields == created.fields
    assert fake.requests[-1].url.params["$filter"] == "Name eq 'O''Brien & Zn.'"


def test_of_several_accounts_with_one_reference_the_oldest_is_found() -> None:
    now = [NOW]
    fake = FakeExactOnline(clock=lambda: now[0])
    connection = connect(fake.handle)
    out = contact_out({"name": "Tweemaal"})
    first = create_contact(connection, out)
    now[0] += 60
    create_contact(connection, out)  # a blind resend would do this: the lookup must pick the first
    found = base.find_contact(provider, connection, out)
    assert found is not None and found.remote_id == first.remote_id


def test_a_contact_without_a_name_was_never_created_so_nothing_is_looked_up(fake: FakeExactOnline) -> None:
    assert base.find_contact(provider, connect(fake.handle), contact_out({"email_address": "x@y.z"})) is None
    assert fake.requests == []
