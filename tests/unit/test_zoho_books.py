"""The Zoho Books provider against the fake Zoho Books (tests/fakes/zoho_books.py) and Zoho's recordings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ledgerbridge import jsonutil
from ledgerbridge.models import ContactInput, InvoiceInput
from ledgerbridge.providers.base import (
    ConnectionContext,
    InvalidInvoice,
    OutboundContact,
    OutboundInvoice,
    ProviderRejected,
    ProviderUnavailable,
    RemoteReference,
)
from ledgerbridge.providers.http import ProviderHttp
from ledgerbridge.providers.oauth import OAuthApp, OAuthTokens, TokenSource
from ledgerbridge.providers.zoho_books import (
    BILL,
    INVOICE,
    ZohoBooksProvider,
    ZohoBooksRequest,
    ZohoContactRequest,
    account_reference,
    contact_reference,
    item_reference,
    parse_zoho_time,
    remote_invoice,
    token_url,
)
from tests.fakes.zoho_books import (
    API,
    CLIENT_ID,
    CLIENT_SECRET,
    CONTACT_FIELD,
    ORGANIZATION_ID,
    PO_NUMBER_FIELD,
    REFERENCE_FIELD,
    TAXES,
    FakeZohoBooks,
    fixture,
    recorded_body,
)
from tests.support.providers import fake_http
from tests.support.specs import assert_valid

INVOICE_ID = "0196a3f2-7c1e-7d3a-9b2e-5f4c3d2a1b00"
EXPENSE_ACCOUNT = "260815000000000400"  # Office Supplies, an expense account
SALES_TAX = next(iter(TAXES))
SETTINGS = {
    "organization_id": ORGANIZATION_ID,
    "default_bill_account_id": EXPENSE_ACCOUNT,
    "custom_field.po_number": PO_NUMBER_FIELD,
}
# Ledgerbridge ids of the referenced records (any UUIDs: the references map resolves them).
CONTACT_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b60"
ITEM_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b61"
OTHER_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b62"
ACME = "260815000000097001"  # a customer in the recording
BETA = "260815000000098001"  # a vendor in the recording
CONSULTING = "260815000000101002"  # a sales item without a purchase account
PURCHASE_ITEM = "260815000000131008"  # an item with its own purchase account
NOW = datetime(2026, 11, 24, 10, 30, tzinfo=timezone(timedelta(hours=-4)))

provider = ZohoBooksProvider()


# --- helpers ------------------------------------------------------------------------------


def contact(contact_id: str) -> RemoteReference:
    records = recorded_body("list-contacts")["contacts"]
    return contact_reference(next(r for r in records if r["contact_id"] == contact_id))


def item(item_id: str) -> RemoteReference:
    return item_reference(next(r for r in recorded_body("list-items")["items"] if r["item_id"] == item_id))


def token_request(fake: FakeZohoBooks, refresh_token: str, secret: str = CLIENT_SECRET) -> httpx.Response:
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
        return client.post(
            "https://accounts.zoho.com/oauth/v2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": CLIENT_ID,
                "client_secret": secret,
            },
        )


class FakeTokens:
    """access_token()/refresh_after_rejection() backed by the fake's token endpoint."""

    def __init__(self, fake: FakeZohoBooks):
        self.fake, self.token = fake, "zoho-access-0"

    def access_token(self) -> str:
        return self.token

    def refresh_after_rejection(self, rejected_access_token: str) -> str:
        self.token = token_request(self.fake, "zoho-refresh-0").json()["access_token"]
        return self.token


def connect(
    handler: Callable[[httpx.Request], httpx.Response],
    fake: FakeZohoBooks | None = None,
    settings: dict[str, str] | None = None,
    sleeps: list[float] | None = None,
    attempts: int = 4,
) -> ConnectionContext:
    http = fake_http(handler, FakeTokens(fake or FakeZohoBooks()), sleeps, attempts)
    return ConnectionContext(
        "conn-zoho", "zoho_books", dict(SETTINGS if settings is None else settings), http
    )


def outbound(
    body: dict[str, Any], references: dict[str, RemoteReference], invoice_id: str = INVOICE_ID
) -> OutboundInvoice:
    invoice = InvoiceInput.model_validate(jsonutil.loads(jsonutil.dumps(body)))
    return OutboundInvoice(invoice_id, invoice, references)


def create(connection: ConnectionContext, out: OutboundInvoice):
    return provider.send_invoice(connection, out, provider.map_invoice(connection, out))


def mapped(connection: ConnectionContext, out: OutboundInvoice) -> ZohoBooksRequest:
    """The request, its body held to Zoho's documented fields as the fake holds every body it is sent."""
    request = provider.map_invoice(connection, out)
    assert_valid(
        request.body, "zoho-books/books_v3", "CreateBill" if request.kind is BILL else "CreateInvoice"
    )
    return request


def refusal(body: dict[str, Any], references: dict[str, RemoteReference] | None = None, **settings: str):
    connection = ConnectionContext("conn-zoho", "zoho_books", {**SETTINGS, **settings})
    with pytest.raises(InvalidInvoice) as caught:
        provider.map_invoice(connection, outbound(body, {"contact_id": contact(ACME), **(references or {})}))
    return caught.value.details


def paths(fake: FakeZohoBooks) -> list[str]:
    return [f"{r.method} {r.url.path.removeprefix(API)}" for r in fake.requests]


@pytest.fixture
def fake() -> FakeZohoBooks:
    return FakeZohoBooks(clock=lambda: NOW)


FULL_INVOICE = {
    "type": "ACCOUNTS_RECEIVABLE",
    "number": "LB-1001",
    "issue_date": "2026-11-24",
    "due_date": "2026-12-24T09:00:00+02:00",
    "memo": "November retainer",
    "currency": "usd",
    "exchange_rate": "1",
    "total_discount": "10",
    "contact_id": CONTACT_UUID,
    "line_items": [
        {"description": "Consulting", "quantity": 2, "unit_price": Decimal("150.25"), "item_id": ITEM_UUID},
        {"description": "Travel", "quantity": 1, "unit_price": Decimal("0.1"), "currency": "USD"},
    ],
    "field_mappings": {"po_number": "PO-7731"},
}
FULL_REFERENCES = {"contact_id": contact(ACME), "line_items.0.item_id": item(CONSULTING)}
BODY = {"contact_id": CONTACT_UUID, "line_items": [{"description": "Support", "total_amount": 10}]}
BILL_BODY = {
    "type": "Bill",
    "number": "B-1",
    "contact_id": CONTACT_UUID,
    "line_items": [{"description": "x", "unit_price": 1}],
}


# --- request bodies -----------------------------------------------------------------------


def test_a_full_invoice_is_created_as_zoho_documents_it_then_marked_sent(fake: FakeZohoBooks) -> None:
    remote = create(connect(fake.handle, fake), outbound(FULL_INVOICE, FULL_REFERENCES))

    assert paths(fake) == [
        "POST /invoices",
        "GET /invoices",
        f"POST /invoices/{remote.remote_id}/comments",  # the memo, kept off the printed invoice
        f"POST /invoices/{remote.remote_id}/status/sent",
        f"GET /invoices/{remote.remote_id}",
    ]
    post, search, comment = fake.requests[:3]
    assert post.url.host == "www.zohoapis.com"
    assert dict(post.url.params) == {
        "organization_id": ORGANIZATION_ID,
        "ignore_auto_number_generation": "true",
    }
    assert post.headers["authorization"] == "Bearer zoho-access-0"
    assert FakeZohoBooks.body_of(post) == {
        "customer_id": ACME,
        "invoice_number": "LB-1001",
        "reference_number": INVOICE_ID,
        "date": "2026-11-24",
        "due_date": "2026-12-24",
        "exchange_rate": 1,
        "discount": 10,
        "discount_type": "entity_level",
        "is_discount_before_tax": True,
        "line_items": [
            {"item_id": CONSULTING, "description": "Consulting", "rate": Decimal("150.25"), "quantity": 2},
            {"name": "Travel", "rate": Decimal("0.1"), "quantity": 1},
        ],
        "custom_fields": [{"customfield_id": PO_NUMBER_FIELD, "value": "PO-7731"}],
    }
    assert b'"rate":0.1,' in post.content  # exact on the wire, not a float
    assert search.url.params["reference_number"] == INVOICE_ID
    assert FakeZohoBooks.body_of(comment) == {
        "description": "November retainer",
        "show_comment_to_clients": False,
    }

    [stored] = fake.created("invoices")
    assert remote.remote_id == stored["invoice_id"] and stored["status"] == "sent"
    assert stored["notes"] == "Thanks for your business."  # the organisation's own printed notes
    assert [c["description"] for c in fake.user_comments(remote.remote_id)] == ["November retainer"]
    assert remote.remote_data == stored
    assert remote.fields == {
        "number": "LB-1001",
        "status": "OPEN",
        "sub_total": Decimal("300.60"),
        "total_tax_amount": Decimal(0),
        "total_amount": Decimal("290.60"),
        "balance": Decimal("290.60"),
        "total_discount": Decimal(10),
        "currency": "USD",
        "exchange_rate": Decimal(1),
    }
    assert remote.remote_updated_at == NOW
    assert remote.line_remote_ids == [line["line_item_id"] for line in stored["line_items"]]


def test_the_recorded_requests_are_what_the_mapper_builds() -> None:
    connection = ConnectionContext("conn-zoho", "zoho_books", SETTINGS)
    recorded = fixture("create-invoice")["exchanges"][0]["request"]["body"]
    body = {
        "status": "DRAFT",
        "contact_id": CONTACT_UUID,
        "line_items": [{"item_id": ITEM_UUID, "quantity": 1}],
    }
    out = outbound(body, {"contact_id": contact(ACME), "line_items.0.item_id": item("260815000000100002")})
    request = mapped(connection, out)
    assert (request.kind, request.params, request.mark_sent) == (INVOICE, {}, False)
    assert request.body == {**recorded, "reference_number": INVOICE_ID}

    recorded_bill = fixture("create-bill")["exchanges"][0]["request"]["body"]
    bill = {
        "type": "Bill",
        "number": "BILL-DRYRUN-002",
        "issue_date": "2026-06-09",
        "contact_id": CONTACT_UUID,
        "line_items": [{"description": "Office Supplies", "unit_price": 100, "quantity": 1}],
    }
    request = mapped(connection, outbound(bill, {"contact_id": contact(BETA)}))
    assert (request.kind, request.params, request.mark_sent) == (BILL, {}, False)
    assert request.body == {**recorded_bill, "reference_number": INVOICE_ID}


def replay(*answers: tuple[str, dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    """Answers each request with the first recorded (method path, response) that matches it."""

    def handle(request: httpx.Request) -> httpx.Response:
        key = f"{request.method} {request.url.path.removeprefix(API)}"
        response = next(answer for route, answer in answers if route == key)
        return httpx.Response(response["status"], content=jsonutil.dumps(response["body"]))

    return handle


EMPTY_SEARCH = {
    "status": 200,
    "body": {"code": 0, "message": "success", "invoices": [], "page_context": {"has_more_page": False}},
}


def test_the_recorded_response_maps_back_to_unified_fields() -> None:
    answer = fixture("create-invoice")["exchanges"][0]["response"]
    body = {
        "status": "DRAFT",
        "contact_id": CONTACT_UUID,
        "line_items": [{"item_id": ITEM_UUID, "quantity": 1}],
    }
    out = outbound(body, {"contact_id": contact(ACME), "line_items.0.item_id": item("260815000000100002")})
    remote = create(connect(replay(("POST /invoices", answer), ("GET /invoices", EMPTY_SEARCH))), out)

    assert remote.remote_id == "260815000000124029"
    assert remote.fields == {
        "number": "INV-000011",
        "status": "DRAFT",
        "sub_total": Decimal("199.99"),
        "total_tax_amount": Decimal(0),
        "total_amount": Decimal("199.99"),
        "balance": Decimal("199.99"),
        "currency": "USD",
        "exchange_rate": Decimal(1),
    }
    assert remote.remote_updated_at == datetime(2026, 6, 9, 16, 22, 34, tzinfo=timezone(timedelta(hours=-4)))
    assert remote.line_remote_ids == ["260815000000124034"]
    assert remote.remote_data == answer["body"]["invoice"]


def test_recorded_invoices_and_bills_map_to_unified_statuses() -> None:
    paid = remote_invoice(recorded_body("get-invoice")["invoice"], INVOICE, 2)
    assert (paid.fields["status"], paid.fields["balance"], paid.fields["total_amount"]) == ("PAID", 0, 598)
    assert paid.line_remote_ids == ["260815000000103006", None]
    bill = remote_invoice(recorded_body("create-bill")["bill"], BILL, 1)
    assert (bill.remote_id, bill.fields["number"], bill.fields["status"]) == (
        "260815000000117048",
        "BILL-DRYRUN-002",
        "OPEN",
    )
    statuses = {r["status"]: remote_invoice(r, INVOICE, 0).fields.get("status")
                for r in recorded_body("list-invoices")["invoices"]}  # fmt: skip
    assert statuses == {"draft": "DRAFT", "sent": "OPEN", "paid": "PAID"}


# --- payables -----------------------------------------------------------------------------


def test_a_bill_is_created_open_with_its_vendor_and_expense_accounts(fake: FakeZohoBooks) -> None:
    body = {
        "type": "ACCOUNTS_PAYABLE",
        "number": "SUP-7781",
        "issue_date": "2026-11-20",
        "due_date": "2026-12-20",
        "memo": "Office restock",
        "contact_id": CONTACT_UUID,
        "line_items": [
            {"quantity": 3, "unit_price": 50, "item_id": ITEM_UUID},
            {"description": "Paper", "quantity": 2, "unit_price": Decimal("4.99"), "item_id": OTHER_UUID},
            {"description": "Courier", "total_amount": Decimal("12.5")},
        ],
        "field_mappings": {"po_number": 7731},
    }
    references = {
        "contact_id": contact(BETA),
        "line_items.0.item_id": item(PURCHASE_ITEM),
        "line_items.1.item_id": item(CONSULTING),
    }
    remote = create(connect(fake.handle, fake), outbound(body, references))

    # Created open: nothing to mark. The memo is a comment, as on invoices.
    assert paths(fake) == ["POST /bills", "GET /bills", f"POST /bills/{remote.remote_id}/comments"]
    assert FakeZohoBooks.body_of(fake.requests[-1]) == {"description": "Office restock"}
    sent = FakeZohoBooks.body_of(fake.posts("bills")[0])
    assert sent == {
        "vendor_id": BETA,
        "bill_number": "SUP-7781",
        "reference_number": INVOICE_ID,
        "date": "2026-11-20",
        "due_date": "2026-12-20",
        "line_items": [
            # The item's own purchase account applies: none is sent.
            {"item_id": PURCHASE_ITEM, "rate": 50, "quantity": 3},
            {
                "item_id": CONSULTING,
                "description": "Paper",
                "rate": Decimal("4.99"),
                "quantity": 2,
                "account_id": EXPENSE_ACCOUNT,
            },
            {"name": "Courier", "rate": Decimal("12.5"), "quantity": 1, "account_id": EXPENSE_ACCOUNT},
        ],
        "custom_fields": [{"customfield_id": PO_NUMBER_FIELD, "value": "7731"}],
    }
    [stored] = fake.created("bills")
    assert [line["account_id"] for line in stored["line_items"]] == [
        "260815000000034003",
        EXPENSE_ACCOUNT,
        EXPENSE_ACCOUNT,
    ]
    assert remote.remote_id == stored["bill_id"]
    assert (remote.fields["status"], remote.fields["number"], remote.fields["total_amount"]) == (
        "OPEN",
        "SUP-7781",
        Decimal("172.48"),
    )


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"number": None}, "number"),
        ({"status": "DRAFT"}, "status"),
        ({"total_discount": 5}, "total_discount"),
    ],
)
def test_what_a_zoho_bill_cannot_take_is_refused(change: dict[str, Any], path: str) -> None:
    body = BILL_BODY
    details = refusal({**body, **change}, {"contact_id": contact(BETA)})
    assert [field for field, _ in details] == [path]


def test_a_bill_line_without_an_expense_account_is_refused() -> None:
    body = BILL_BODY
    details = refusal(body, {"contact_id": contact(BETA)}, default_bill_account_id="")
    assert details == [
        (
            "line_items.0.item_id",
            "a Zoho Books bill line needs an expense account: give an item with a purchase account "
            "or set the connection's default_bill_account_id",
        )
    ]


def test_a_receivable_needs_a_customer_and_a_payable_a_vendor() -> None:
    line = [{"description": "x", "unit_price": 1}]
    assert refusal({"contact_id": CONTACT_UUID, "line_items": line}, {"contact_id": contact(BETA)}) == [
        ("contact_id", "this contact is not a Zoho Books customer; a receivable needs one")
    ]
    assert refusal({"type": "Bill", "number": "B", "contact_id": CONTACT_UUID, "line_items": line}) == [
        ("contact_id", "this contact is not a Zoho Books vendor; a payable needs one")
    ]


# --- statuses, defaults and refusals ---------------------------------------------------------


@pytest.mark.parametrize(("status", "marked_sent"), [(None, True), ("OPEN", True), ("DRAFT", False)])
def test_open_or_no_status_marks_the_draft_sent_and_draft_leaves_it(
    fake: FakeZohoBooks, status: str | None, marked_sent: bool
) -> None:
    remote = create(
        connect(fake.handle, fake), outbound({**BODY, "status": status}, {"contact_id": contact(ACME)})
    )
    assert any(p.endswith("/status/sent") for p in paths(fake)) is marked_sent
    assert remote.fields["status"] == ("OPEN" if marked_sent else "DRAFT")
    assert fake.created("invoices")[0]["status"] == ("sent" if marked_sent else "draft")


@pytest.mark.parametrize("status", ["SUBMITTED", "PAID", "PARTIALLY_PAID", "VOID"])
def test_statuses_zoho_cannot_create_are_refused(status: str) -> None:
    [(path, reason)] = refusal({**BODY, "status": status})
    assert path == "status" and reason.startswith(f"{status} is not supported")


def test_a_refused_mark_as_sent_deletes_the_draft_and_reports_zohos_message(fake: FakeZohoBooks) -> None:
    fake.refuse_marking_sent("This invoice cannot be marked as sent.")
    with pytest.raises(ProviderRejected) as caught:
        create(connect(fake.handle, fake), outbound(BODY, {"contact_id": contact(ACME)}))
    assert caught.value.messages == [
        "This invoice cannot be marked as sent.",
        "the draft invoice Zoho Books created was deleted",
    ]
    assert fake.created("invoices") == [] and len(fake.deleted_ids) == 1


def test_line_and_tax_defaults_come_from_the_connection_settings(fake: FakeZohoBooks) -> None:
    settings = {**SETTINGS, "default_account_id": "260815000000000391", "default_tax_id": SALES_TAX}
    body = {**BODY, "line_items": [*BODY["line_items"], {"item_id": ITEM_UUID, "quantity": 2}]}
    references = {"contact_id": contact(ACME), "line_items.1.item_id": item(CONSULTING)}
    remote = create(connect(fake.handle, fake, settings), outbound(body, references))
    sent = FakeZohoBooks.body_of(fake.posts("invoices")[0])
    assert sent["line_items"] == [
        {
            "name": "Support",
            "rate": 10,
            "quantity": 1,
            "account_id": "260815000000000391",
            "tax_id": SALES_TAX,
        },
        {"item_id": CONSULTING, "quantity": 2, "tax_id": SALES_TAX},  # priced by Zoho from the item
    ]
    assert remote.fields["sub_total"] == Decimal(310)
    assert remote.fields["total_tax_amount"] == Decimal("25.58")  # 8.25% of 310, to the cent


def test_a_long_description_is_cut_in_the_line_name_and_kept_whole() -> None:
    text = "Implementation workshop, " * 8
    request = mapped(
        ConnectionContext("c", "zoho_books", SETTINGS),
        outbound(
            {**BODY, "line_items": [{"description": text, "unit_price": 1}]}, {"contact_id": contact(ACME)}
        ),
    )
    [line] = request.body["line_items"]
    assert len(line["name"]) == 100 and line["name"].endswith("...")
    assert line["description"] == text.strip()


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"tracking_categories": [OTHER_UUID]}, "tracking_categories"),
        ({"line_items": [{"description": "x", "unit_price": 1, "tracking_categories": [OTHER_UUID]}]},
         "line_items.0.tracking_categories"),
        ({"accounting_period_id": OTHER_UUID}, "accounting_period_id"),
        ({"paid_on_date": "2026-11-30"}, "paid_on_date"),
        ({"currency": "EUR"}, "currency"),
        ({"line_items": [{"description": "x", "unit_price": 1, "currency": "EUR"}]}, "line_items.0.currency"),
        ({"line_items": [{"description": "x", "unit_price": 1, "exchange_rate": "1.1"}]},
         "line_items.0.exchange_rate"),
        ({"number": "N" * 101}, "number"),
        ({"line_items": [{"description": "x", "unit_price": 3, "quantity": 2, "total_amount": 7}]},
         "line_items.0.total_amount"),
        ({"line_items": [{"description": "x", "quantity": 3, "total_amount": 10}]},
         "line_items.0.unit_price"),
        ({"line_items": [{"description": "x"}]}, "line_items.0.unit_price"),
        ({"line_items": [{"unit_price": 1}]}, "line_items.0.description"),
        ({"line_items": [{"description": "x" * 2001, "unit_price": 1}]}, "line_items.0.description"),
        ({"line_items": []}, "line_items"),
        ({"total_discount": -1}, "total_discount"),
        ({"contact_id": None}, "contact_id"),
    ],
)  # fmt: skip
def test_what_zoho_would_reject_or_change_is_refused_naming_the_field(
    change: dict[str, Any], path: str
) -> None:
    body = {**BODY, **change}
    references = {"contact_id": contact(ACME)} if body["contact_id"] else {}
    with pytest.raises(InvalidInvoice) as caught:
        provider.map_invoice(ConnectionContext("c", "zoho_books", SETTINGS), outbound(body, references))
    assert [field for field, _ in caught.value.details] == [path]


def test_a_line_total_that_divides_exactly_and_one_rounded_to_the_cent_are_accepted() -> None:
    lines = [
        {"description": "a", "quantity": 4, "total_amount": 10},
        {"description": "b", "quantity": 3, "unit_price": Decimal("0.3333"), "total_amount": 1},
    ]
    request = mapped(
        ConnectionContext("c", "zoho_books", SETTINGS),
        outbound({**BODY, "line_items": lines}, {"contact_id": contact(ACME)}),
    )
    assert [(line["rate"], line["quantity"]) for line in request.body["line_items"]] == [
        (Decimal("2.5"), 4),
        (Decimal("0.3333"), 3),
    ]


# --- the memo, the idempotency reference, the rate ------------------------------------------


def test_memo_target_notes_prints_the_memo_and_adds_no_comment(fake: FakeZohoBooks) -> None:
    settings = {**SETTINGS, "memo_target": "notes"}
    remote = create(
        connect(fake.handle, fake, settings),
        outbound({**BODY, "memo": "Thank you!"}, {"contact_id": contact(ACME)}),
    )
    assert FakeZohoBooks.body_of(fake.posts("invoices")[0])["notes"] == "Thank you!"
    assert not any(p.endswith("/comments") for p in paths(fake))
    assert remote.remote_data["notes"] == "Thank you!" and fake.user_comments(remote.remote_id) == []


def test_an_unknown_memo_target_is_a_misconfigured_connection() -> None:
    assert refusal({**BODY, "memo": "m"}, memo_target="note") == [
        ("connection", "Zoho Books memo_target must be one of comment, notes")
    ]


def test_a_refused_comment_deletes_the_draft_and_reports_zohos_message(fake: FakeZohoBooks) -> None:
    fake.refuse_commenting("Comment cannot be added.")
    with pytest.raises(ProviderRejected) as caught:
        create(connect(fake.handle, fake), outbound({**BODY, "memo": "m"}, {"contact_id": contact(ACME)}))
    assert caught.value.messages == [
        "Comment cannot be added.",
        "the draft invoice Zoho Books created was deleted",
    ]
    assert fake.created("invoices") == []
    assert not any(p.endswith("/status/sent") for p in paths(fake))  # the memo first, then marked sent


@pytest.mark.parametrize("after_processing", [True, False])
def test_a_comment_whose_answer_was_lost_is_checked_for_not_sent_twice(
    fake: FakeZohoBooks, after_processing: bool
) -> None:
    def lose_the_comment(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/comments"):
            if after_processing:
                fake.handle(request)
            raise httpx.ReadTimeout("lost", request=request)
        return fake.handle(request)

    out = outbound({**BODY, "memo": "Internal note"}, {"contact_id": contact(ACME)})
    with pytest.raises(ProviderUnavailable):
        create(connect(lose_the_comment, fake), out)
    [draft] = fake.created("invoices")
    comments = f"invoices/{draft['invoice_id']}/comments"
    assert draft["status"] == "draft" and len(fake.posts(comments)) == (1 if after_processing else 0)

    found = provider.find_invoice(connect(fake.handle, fake), out)  # what the next delivery does
    assert found is not None and found.remote_id == draft["invoice_id"] and found.fields["status"] == "OPEN"
    assert [c["description"] for c in fake.user_comments(draft["invoice_id"])] == ["Internal note"]
    assert len(fake.posts(comments)) == 1  # added by whichever attempt reached Zoho, once


def test_the_id_can_live_in_a_hidden_custom_field_and_reference_number_stays_the_callers(
    fake: FakeZohoBooks,
) -> None:
    settings = {**SETTINGS, "reference_custom_field": REFERENCE_FIELD}
    body = {**BODY, "field_mappings": {"reference_number": "PO-7731"}}
    out = outbound(body, {"contact_id": contact(ACME)})
    remote = create(connect(fake.handle, fake, settings), out)

    post, search = fake.requests[:2]
    sent = FakeZohoBooks.body_of(post)
    assert sent["reference_number"] == "PO-7731"  # printed as Reference#: the caller's own
    assert sent["custom_fields"] == [{"customfield_id": REFERENCE_FIELD, "value": INVOICE_ID}]
    assert dict(search.url.params) == {
        "organization_id": ORGANIZATION_ID,
        "custom_field": INVOICE_ID,
        "page": "1",
        "per_page": "200",
    }
    found = provider.find_invoice(connect(fake.handle, fake, settings), out)
    assert found is not None and found.remote_id == remote.remote_id
    other = outbound(body, {"contact_id": contact(ACME)}, invoice_id="0196a3f2-7c1e-7d3a-9b2e-5f4c3d2a1b01")
    assert provider.find_invoice(connect(fake.handle, fake, settings), other) is None

    bill = mapped(
        ConnectionContext("c", "zoho_books", settings), outbound(BILL_BODY, {"contact_id": contact(BETA)})
    )
    assert bill.body["reference_number"] == INVOICE_ID  # bills: no documented custom-field search


def test_a_callers_reference_shares_reference_number_with_the_id(fake: FakeZohoBooks) -> None:
    body = {**BODY, "field_mappings": {"reference_number": 7731}}
    out = outbound(body, {"contact_id": contact(ACME)})
    remote = create(connect(fake.handle, fake), out)
    assert fake.created("invoices")[0]["reference_number"] == f"7731 {INVOICE_ID}"
    assert fake.requests[1].url.params["reference_number"] == f"7731 {INVOICE_ID}"
    found = provider.find_invoice(connect(fake.handle, fake), out)
    assert found is not None and found.remote_id == remote.remote_id

    assert refusal({**BODY, "field_mappings": {"reference_number": "P" * 51}}) == [
        (
            "field_mappings.reference_number",
            "at most 50 characters: Ledgerbridge's id follows it in Zoho's reference_number "
            "(set reference_custom_field to give the caller the whole field)",
        )
    ]
    assert refusal({**BODY, "field_mappings": {"reference_number": True}}) == [
        ("field_mappings.reference_number", "Zoho Books' reference_number takes text or a number")
    ]
    defined = mapped(
        ConnectionContext("c", "zoho_books", {**SETTINGS, "custom_field.reference_number": "77"}),
        outbound(body, {"contact_id": contact(ACME)}),
    )
    assert defined.body["reference_number"] == INVOICE_ID  # a defined custom field wins the slug
    assert defined.body["custom_fields"] == [{"customfield_id": "77", "value": "7731"}]


def test_a_eur_invoice_at_1_08_in_a_usd_organisation_is_sent_and_read_back_as_1_08(
    fake: FakeZohoBooks,
) -> None:
    euro = contact_reference(fake.add_contact("Euro GmbH", currency="EUR"))
    body = {
        **BODY,
        "currency": "EUR",
        "exchange_rate": "1.08",
        "line_items": [{"description": "x", "unit_price": 100}],
    }
    out = outbound(body, {"contact_id": euro})
    remote = create(connect(fake.handle, fake), out)

    assert FakeZohoBooks.body_of(fake.posts("invoices")[0])["exchange_rate"] == Decimal("1.08")
    [stored] = fake.created("invoices")
    # 1 EUR = 1.08 USD, as Zoho counts: its base-currency total is the total x 1.08.
    assert (stored["total"], stored["bcy_total"]) == (Decimal(100), Decimal("108.00"))
    assert stored["line_items"][0]["bcy_rate"] == Decimal("108.00")
    assert remote.fields["exchange_rate"] == Decimal("1.08") and remote.fields["currency"] == "EUR"
    found = provider.find_invoice(connect(fake.handle, fake), out)
    assert found is not None and found.fields["exchange_rate"] == Decimal("1.08")


def test_a_rate_a_double_cannot_hold_exactly_is_refused_and_one_it_can_comes_back_as_sent(
    fake: FakeZohoBooks,
) -> None:
    euro = contact_reference(fake.add_contact("Euro GmbH", currency="EUR"))
    body = {**BODY, "currency": "EUR", "exchange_rate": "123456.1234567891"}  # 16 significant digits
    assert refusal(body, {"contact_id": euro}) == [
        ("exchange_rate", "Zoho Books reads rates as doubles: give at most 15 significant digits")
    ]
    remote = create(
        connect(fake.handle, fake),
        outbound({**body, "exchange_rate": "12345.1234567891"}, {"contact_id": euro}),
    )
    assert remote.fields["exchange_rate"] == Decimal("12345.1234567891")


def test_the_fake_holds_bodies_and_queries_to_zohos_documented_fields(fake: FakeZohoBooks) -> None:
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
        headers = {"authorization": "Bearer zoho-access-0"}
        url = f"https://www.zohoapis.com{API}/invoices"
        body = {"customer_id": ACME, "memo": "x", "line_items": [{"name": "x", "rate": 1}]}
        answer = client.post(url, params={"organization_id": ORGANIZATION_ID}, headers=headers, json=body)
        assert answer.status_code == 400 and answer.json()["code"] == 4
        assert "Additional properties are not allowed ('memo' was unexpected)" in answer.json()["message"]
        answer = client.get(
            url, params={"organization_id": ORGANIZATION_ID, "reference": "x"}, headers=headers
        )
        assert answer.status_code == 400 and "?reference: not a documented query parameter" in answer.text
    assert fake.created("invoices") == []


# --- custom fields and settings -------------------------------------------------------------


def test_custom_fields_need_a_definition_and_a_plain_value() -> None:
    details = refusal({**BODY, "field_mappings": {"po_number": "PO-1", "cost_centre": "CC-9", "notes": None}})
    undefined = "no Zoho Books custom field is defined for '{0}' (setting custom_field.{0})"
    assert details == [
        ("field_mappings.cost_centre", undefined.format("cost_centre")),
        ("field_mappings.notes", undefined.format("notes")),
    ]
    details = refusal({**BODY, "field_mappings": {"flag": None}}, **{"custom_field.flag": "99"})
    assert details == [("field_mappings.flag", "Zoho Books custom fields take text, a number or true/false")]
    request = mapped(
        ConnectionContext("c", "zoho_books", {**SETTINGS, "custom_field.flag": "99"}),
        outbound(
            {**BODY, "field_mappings": {"flag": True, "po_number": Decimal("12.50")}},
            {"contact_id": contact(ACME)},
        ),
    )
    assert request.body["custom_fields"] == [
        {"customfield_id": "99", "value": True},
        {"customfield_id": PO_NUMBER_FIELD, "value": "12.50"},
    ]


def test_a_connection_without_organization_or_with_an_unknown_data_center_is_refused() -> None:
    assert refusal(BODY, organization_id="") == [
        ("connection", "Zoho Books connection has no organization_id setting")
    ]
    [(path, reason)] = refusal(BODY, data_center="mars")
    assert path == "connection" and reason.startswith("Zoho Books data_center must be one of com, eu, in")


def test_zoho_rejects_an_unknown_customfield_with_its_message(fake: FakeZohoBooks) -> None:
    connection = connect(fake.handle, fake, {**SETTINGS, "custom_field.po_number": "1234"})
    with pytest.raises(ProviderRejected) as caught:
        create(
            connection,
            outbound({**BODY, "field_mappings": {"po_number": "x"}}, {"contact_id": contact(ACME)}),
        )
    assert caught.value.messages == ["Invalid value passed for customfield_id"]


# --- validation errors --------------------------------------------------------------------


def test_a_reused_invoice_number_is_rejected_with_zohos_message(fake: FakeZohoBooks) -> None:
    connection = connect(fake.handle, fake)
    create(connection, outbound({**BODY, "number": "LB-7"}, {"contact_id": contact(ACME)}))
    with pytest.raises(ProviderRejected) as caught:
        create(
            connection,
            outbound({**BODY, "number": "LB-7"}, {"contact_id": contact(ACME)}, invoice_id="other"),
        )
    assert caught.value.messages == ["Invoice number LB-7 already exists. Please enter a different number."]
    assert len(fake.created("invoices")) == 1


def test_an_error_code_is_a_rejection_whatever_the_http_status() -> None:
    refused = {"status": 200, "body": {"code": 1001, "message": "Invoice number INV-1 already exists."}}
    with pytest.raises(ProviderRejected) as caught:
        create(
            connect(replay(("POST /invoices", refused), ("GET /invoices", EMPTY_SEARCH))),
            outbound(BODY, {"contact_id": contact(ACME)}),
        )
    assert caught.value.messages == ["Invoice number INV-1 already exists."]
    not_json = {"status": 404, "body": "<html>Not Found</html>"}
    with pytest.raises(ProviderRejected, match="HTTP 404 creating the invoice"):
        create(
            connect(replay(("POST /invoices", not_json), ("GET /invoices", EMPTY_SEARCH))),
            outbound(BODY, {"contact_id": contact(ACME)}),
        )


def test_another_organisation_is_refused_by_zoho(fake: FakeZohoBooks) -> None:
    connection = connect(fake.handle, fake, {**SETTINGS, "organization_id": "123"})
    with pytest.raises(ProviderRejected, match="not associated with the CompanyID/CompanyName:123"):
        provider.list_references(connection)


# --- retries, lost answers and find_invoice -------------------------------------------------


def test_a_429_with_retry_after_is_waited_out(fake: FakeZohoBooks) -> None:
    sleeps: list[float] = []
    fake.fail_next(429, headers={"Retry-After": "1"}, body={"code": 44, "message": "Too many requests"})
    create(connect(fake.handle, fake, sleeps=sleeps), outbound(BODY, {"contact_id": contact(ACME)}))
    assert sleeps == [1.0]
    assert len(fake.posts("invoices")) == 2 and len(fake.created("invoices")) == 1


def test_a_503_is_retried_after_a_backoff(fake: FakeZohoBooks) -> None:
    sleeps: list[float] = []
    fake.fail_next(503)
    create(connect(fake.handle, fake, sleeps=sleeps), outbound(BODY, {"contact_id": contact(ACME)}))
    assert sleeps == [0.25]  # base 0.5 x jitter 0.5
    assert len(fake.created("invoices")) == 1


def test_a_timeout_before_zoho_did_anything_is_retried(fake: FakeZohoBooks) -> None:
    sleeps: list[float] = []
    fake.timeout_next()
    create(connect(fake.handle, fake, sleeps=sleeps), outbound(BODY, {"contact_id": contact(ACME)}))
    assert sleeps == [0.25]
    assert len(fake.posts("invoices")) == 2 and len(fake.created("invoices")) == 1
    assert fake.deleted_ids == []


def test_a_lost_answer_resent_by_the_http_layer_still_leaves_one_invoice(fake: FakeZohoBooks) -> None:
    fake.timeout_next(after_processing=True)  # Zoho made the invoice, the answer never arrived
    remote = create(connect(fake.handle, fake), outbound(BODY, {"contact_id": contact(ACME)}))
    first_id, second_id = fake.created_ids["invoices"]
    assert len(fake.posts("invoices")) == 2
    assert [r["invoice_id"] for r in fake.created("invoices")] == [first_id] == [remote.remote_id]
    assert fake.deleted_ids == [second_id]
    assert fake.created("invoices")[0]["status"] == "sent"


def test_a_resend_refused_because_the_lost_first_create_took_its_number_returns_that_invoice(
    fake: FakeZohoBooks,
) -> None:
    fake.timeout_next(after_processing=True)  # the first create took LB-9; its answer was lost
    remote = create(
        connect(fake.handle, fake), outbound({**BODY, "number": "LB-9"}, {"contact_id": contact(ACME)})
    )
    [made] = fake.created("invoices")
    assert len(fake.posts("invoices")) == 2  # the resend was refused: "LB-9 already exists"
    assert (remote.remote_id, remote.fields["number"], remote.fields["status"]) == (
        made["invoice_id"],
        "LB-9",
        "OPEN",
    )


def test_find_invoice_finds_the_invoice_created_earlier_and_none_otherwise(fake: FakeZohoBooks) -> None:
    connection = connect(fake.handle, fake)
    assert provider.find_invoice(connection, outbound(BODY, {"contact_id": contact(ACME)})) is None
    created = create(connection, outbound(BODY, {"contact_id": contact(ACME)}))
    found = provider.find_invoice(connection, outbound(BODY, {"contact_id": contact(ACME)}))
    assert found is not None
    assert (found.remote_id, found.fields, found.line_remote_ids) == (
        created.remote_id,
        created.fields,
        created.line_remote_ids,
    )
    other = outbound(BODY, {"contact_id": contact(ACME)}, invoice_id="0196a3f2-0000-7000-8000-000000000001")
    assert provider.find_invoice(connection, other) is None
    assert provider.find_invoice(connection, outbound(BILL_BODY, {"contact_id": contact(BETA)})) is None


def test_a_lost_answer_then_find_invoice_finds_exactly_that_invoice(fake: FakeZohoBooks) -> None:
    connection = connect(fake.handle, fake, attempts=1)  # as the retry queue sees it: no HTTP resend
    fake.timeout_next(after_processing=True)
    with pytest.raises(ProviderUnavailable):
        create(connection, outbound(BODY, {"contact_id": contact(ACME)}))
    [made] = fake.created("invoices")
    assert made["status"] == "draft"  # the answer was lost before it could be marked sent

    found = provider.find_invoice(connection, outbound(BODY, {"contact_id": contact(ACME)}))
    assert found is not None and found.remote_id == made["invoice_id"]
    assert found.fields["status"] == "OPEN"  # find_invoice finished the job
    assert [r["invoice_id"] for r in fake.created("invoices")] == [made["invoice_id"]]


def test_find_invoice_keeps_the_first_copy_and_deletes_later_drafts(fake: FakeZohoBooks) -> None:
    connection = connect(fake.handle, fake, attempts=1)
    request = mapped(connection, outbound({**BODY, "status": "DRAFT"}, {"contact_id": contact(ACME)}))
    headers = {"authorization": "Zoho-oauthtoken zoho-access-0"}
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
        for _ in range(3):  # three copies, as retries without find_invoice would leave
            client.post(
                f"https://www.zohoapis.com{API}/invoices",
                params={"organization_id": ORGANIZATION_ID},
                headers=headers,
                content=jsonutil.dumps(request.body),
            )
    first, *later = fake.created_ids["invoices"]
    found = provider.find_invoice(
        connection, outbound({**BODY, "status": "DRAFT"}, {"contact_id": contact(ACME)})
    )
    assert found is not None and found.remote_id == first
    assert fake.deleted_ids == later
    assert found.fields["status"] == "DRAFT"


def test_giving_up_on_an_unavailable_zoho(fake: FakeZohoBooks) -> None:
    fake.fail_next(503, times=4)
    with pytest.raises(ProviderUnavailable):
        create(connect(fake.handle, fake), outbound(BODY, {"contact_id": contact(ACME)}))
    assert fake.created("invoices") == []


# --- OAuth ----------------------------------------------------------------------------------


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


def test_an_expired_token_is_refreshed_with_form_credentials_and_the_refresh_token_kept(
    fake: FakeZohoBooks,
) -> None:
    fake.expire_access_tokens()
    client = httpx.Client(transport=httpx.MockTransport(fake.handle))
    clock = 1_800_000_000.0
    store = MemoryStore(OAuthTokens("zoho-access-0", "zoho-refresh-0", expires_at=clock + 3000))
    app = OAuthApp(token_url(), CLIENT_ID, CLIENT_SECRET, client_auth=provider.oauth_client_auth)
    tokens = TokenSource(store, app, client, clock=lambda: clock)
    connection = ConnectionContext("conn-zoho", "zoho_books", SETTINGS, ProviderHttp(client, tokens))

    create(connection, outbound(BODY, {"contact_id": contact(ACME)}))

    assert paths(fake)[:3] == ["POST /invoices", "POST /oauth/v2/token", "POST /invoices"]
    refresh = fake.requests[1]
    assert refresh.url.host == "accounts.zoho.com" and "authorization" not in refresh.headers
    form = dict(httpx.QueryParams(refresh.content.decode()))
    assert form == {
        "grant_type": "refresh_token",
        "refresh_token": "zoho-refresh-0",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert fake.requests[2].headers["authorization"] == "Bearer zoho-access-1"
    # Zoho answers without a refresh token: the one the connection has stays, and stays valid.
    assert (store.tokens.access_token, store.tokens.refresh_token, store.tokens.version) == (
        "zoho-access-1",
        "zoho-refresh-0",
        1,
    )
    assert token_request(fake, "zoho-refresh-0").json()["access_token"] == "zoho-access-2"


def test_the_fake_token_endpoint_answers_refusals_as_zoho_does(fake: FakeZohoBooks) -> None:
    answer = token_request(fake, "zoho-refresh-0")
    assert answer.status_code == 200 and "refresh_token" not in answer.json()
    assert answer.json()["token_type"] == "Bearer" and answer.json()["expires_in"] == 3600
    assert token_request(fake, "zoho-refresh-0", secret="wrong").json() == {"error": "invalid_client"}
    fake.revoke_refresh_tokens()
    refused = token_request(fake, "zoho-refresh-0")
    assert (refused.status_code, refused.json()) == (200, {"error": "invalid_code"})


def test_the_fake_api_takes_zohos_own_and_the_bearer_scheme_and_refuses_others(fake: FakeZohoBooks) -> None:
    url = f"https://www.zohoapis.com{API}/items"
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
        for scheme in ("Zoho-oauthtoken", "Bearer"):
            authorization = {"authorization": f"{scheme} zoho-access-0"}
            answer = client.get(url, params={"organization_id": ORGANIZATION_ID}, headers=authorization)
            assert (answer.status_code, answer.json()["code"]) == (200, 0)
        refused = client.get(
            url, params={"organization_id": ORGANIZATION_ID}, headers={"authorization": "Basic x"}
        )
    assert (refused.status_code, refused.json()["code"]) == (401, 57)


# --- references ---------------------------------------------------------------------------


def test_references_list_every_page_of_contacts_items_and_accounts(fake: FakeZohoBooks) -> None:
    fake.add_contact("Delta Vendor", contact_type="vendor", currency="EUR")
    references = ZohoBooksProvider(page_size=3).list_references(connect(fake.handle, fake))

    pages: dict[str, list[str]] = {}
    for request in fake.requests:
        assert request.url.params["organization_id"] == ORGANIZATION_ID
        assert request.url.params["per_page"] == "3"
        pages.setdefault(request.url.path.removeprefix(API + "/"), []).append(request.url.params["page"])
    assert pages == {
        "contacts": ["1", "1", "2", "3"],  # the search for contacts Ledgerbridge created, then the list
        "items": ["1", "2", "3"],
        "chartofaccounts": [str(n) for n in range(1, 19)],
    }
    by_kind: dict[str, dict[str, RemoteReference]] = {}
    for ref in references:
        by_kind.setdefault(ref.kind, {})[ref.remote_id] = ref
    assert {kind: len(refs) for kind, refs in by_kind.items()} == {"contact": 8, "item": 7, "account": 52}

    acme, beta = by_kind["contact"][ACME], by_kind["contact"][BETA]
    assert (acme.name, acme.fields["is_customer"], acme.fields["is_supplier"]) == ("Acme Corp", True, False)
    assert (beta.fields["is_customer"], beta.fields["is_supplier"], beta.fields["currency"]) == (
        False,
        True,
        "USD",
    )
    assert acme.fields["status"] == "ACTIVE" and acme.fields["email_address"] is None
    delta = next(ref for ref in by_kind["contact"].values() if ref.name == "Delta Vendor")
    assert (delta.fields["is_supplier"], delta.fields["currency"]) == (True, "EUR")

    purchase = by_kind["item"][PURCHASE_ITEM].fields
    assert (purchase["unit_price"], purchase["purchase_price"]) == (Decimal(50), Decimal(40))
    assert purchase["purchase_account_id"] == "260815000000034003"
    assert by_kind["item"][CONSULTING].fields["purchase_account_id"] is None

    office = by_kind["account"][EXPENSE_ACCOUNT]
    assert (office.name, office.fields["type"], office.fields["status"]) == (
        "Office Supplies",
        "expense",
        "ACTIVE",
    )


def test_references_keep_the_record() -> None:
    account = recorded_body("list-chart-of-accounts")["chartofaccounts"][0]
    assert account_reference(account).remote_data == account
    assert item(CONSULTING).remote_data["item_id"] == CONSULTING


# --- times and endpoints ------------------------------------------------------------------


def test_zoho_times_keep_their_offset() -> None:
    moment = parse_zoho_time("2026-06-09T13:14:55-0400")
    assert moment == datetime(2026, 6, 9, 17, 14, 55, tzinfo=UTC)
    assert moment is not None and moment.utcoffset() == timedelta(hours=-4)
    assert parse_zoho_time("") is None and parse_zoho_time("09 Jun 2026") is None


@pytest.mark.parametrize(
    ("data_center", "api", "accounts"),
    [
        (None, "https://www.zohoapis.com", "https://accounts.zoho.com"),
        ("eu", "https://www.zohoapis.eu", "https://accounts.zoho.eu"),
        ("com.au", "https://www.zohoapis.com.au", "https://accounts.zoho.com.au"),
        ("ca", "https://www.zohoapis.ca", "https://accounts.zohocloud.ca"),
        ("sa", "https://www.zohoapis.sa", "https://accounts.zoho.sa"),
    ],
)
def test_the_data_center_picks_the_api_and_accounts_hosts(
    fake: FakeZohoBooks, monkeypatch: pytest.MonkeyPatch, data_center: str | None, api: str, accounts: str
) -> None:
    monkeypatch.delenv("LEDGERBRIDGE_ZOHO_BOOKS_API_URL", raising=False)
    monkeypatch.delenv("LEDGERBRIDGE_ZOHO_BOOKS_TOKEN_URL", raising=False)
    settings = {**SETTINGS, **({"data_center": data_center} if data_center else {})}
    create(connect(fake.handle, fake, settings), outbound(BODY, {"contact_id": contact(ACME)}))
    assert str(fake.requests[0].url).startswith(f"{api}/books/v3/invoices?")
    assert provider.oauth_token_url(settings) == token_url(settings) == f"{accounts}/oauth/v2/token"
    assert provider.oauth_token_url() == "https://accounts.zoho.com/oauth/v2/token"


def test_the_environment_overrides_replace_the_data_centers_hosts(
    fake: FakeZohoBooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGERBRIDGE_ZOHO_BOOKS_API_URL", "http://127.0.0.1:8765/zoho/")
    monkeypatch.setenv("LEDGERBRIDGE_ZOHO_BOOKS_TOKEN_URL", "http://127.0.0.1:8765/oauth/v2/token")
    seen: list[httpx.URL] = []

    def proxy(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        request.url = request.url.copy_with(path=request.url.path.removeprefix("/zoho"))
        return fake.handle(request)

    settings = {**SETTINGS, "data_center": "eu"}
    create(
        connect(proxy, fake, settings), outbound({**BODY, "status": "DRAFT"}, {"contact_id": contact(ACME)})
    )
    assert str(seen[0]) == f"http://127.0.0.1:8765/zoho/books/v3/invoices?organization_id={ORGANIZATION_ID}"
    assert provider.oauth_token_url(settings) == "http://127.0.0.1:8765/oauth/v2/token"
    assert (provider.name, provider.oauth_client_auth) == ("zoho_books", "form")


# --- contacts -------------------------------------------------------------------------------

CONTACT_ID = "0196a3f2-7c1e-7d3a-9b2e-5f4c3d2a1c00"
CONTACT_SETTINGS = {
    **SETTINGS,
    "tax_number_field": "vat_reg_no",
    "contact_custom_field.account_manager": CONTACT_FIELD,
}
FULL_CONTACT = {
    "name": "Umbrella Ltd",
    "is_customer": True,
    "email_address": "billing@umbrella.example",
    "tax_number": "GB123456789",
    "status": "ACTIVE",
    "currency": "EUR",
    "remote_updated_at": "2026-01-01T00:00:00Z",
    "addresses": [
        {"street_1": "1 Main St", "street_2": "Floor 2", "city": "London", "state": "Greater London",
         "postal_code": "EC1A 1BB", "country": "United Kingdom", "address_type": "BILLING"},
        {"street_1": "9 Dock Rd", "city": "Tilbury", "address_type": "delivery"},
    ],
    "phone_numbers": [
        {"phone_number": "+44 20 7946 0000", "phone_type": "WORK"},
        {"phone_number": "+44 7700 900000", "phone_type": "MOBILE"},
        {"phone_number": "+44 20 7946 0001", "phone_type": "fax"},
    ],
    "field_mappings": {"account_manager": "Dana"},
}  # fmt: skip


def outbound_contact(body: dict[str, Any], contact_id: str = CONTACT_ID) -> OutboundContact:
    return OutboundContact(contact_id, ContactInput.model_validate(jsonutil.loads(jsonutil.dumps(body))))


def mapped_contact(body: dict[str, Any], **settings: str) -> ZohoContactRequest:
    """The request, its body held to Zoho's documented contact fields."""
    connection = ConnectionContext("conn-zoho", "zoho_books", {**CONTACT_SETTINGS, **settings})
    request = provider.map_contact(connection, outbound_contact(body))
    assert_valid(request.body, "zoho-books/books_v3", "CreateContact")
    return request


def contact_refusal(body: dict[str, Any], **settings: str) -> list[tuple[str, str]]:
    connection = ConnectionContext("conn-zoho", "zoho_books", {**CONTACT_SETTINGS, **settings})
    with pytest.raises(InvalidInvoice) as caught:
        provider.map_contact(connection, outbound_contact(body))
    return caught.value.details


def send_contact(fake: FakeZohoBooks, body: dict[str, Any], contact_id: str = CONTACT_ID) -> RemoteReference:
    connection = connect(fake.handle, fake, CONTACT_SETTINGS)
    out = outbound_contact(body, contact_id)
    return provider.send_contact(connection, out, provider.map_contact(connection, out))


def test_every_contact_field_goes_where_zohos_create_contact_documents_it() -> None:
    request = mapped_contact(FULL_CONTACT)
    assert request.organization_id == ORGANIZATION_ID and request.currency == "EUR"
    assert request.body == {
        "contact_name": "Umbrella Ltd",
        "contact_type": "customer",
        "notes": f"Ledgerbridge contact {CONTACT_ID}",
        "vat_reg_no": "GB123456789",
        "billing_address": {"address": "1 Main St", "street2": "Floor 2", "city": "London",
                            "state": "Greater London", "zip": "EC1A 1BB", "country": "United Kingdom",
                            "fax": "+44 20 7946 0001"},
        "shipping_address": {"address": "9 Dock Rd", "city": "Tilbury"},
        "contact_persons": [{"email": "billing@umbrella.example", "phone": "+44 20 7946 0000",
                             "mobile": "+44 7700 900000", "is_primary_contact": True}],
        "custom_fields": [{"customfield_id": CONTACT_FIELD, "value": "Dana"}],
    }  # fmt: skip


def test_a_supplier_is_a_vendor_and_a_bare_name_is_a_customer() -> None:
    assert mapped_contact({"name": "Beta Parts", "is_supplier": True}).body["contact_type"] == "vendor"
    bare = mapped_contact({"name": "Walk-in"})
    assert bare.body == {"contact_name": "Walk-in", "contact_type": "customer",
                         "notes": f"Ledgerbridge contact {CONTACT_ID}"}  # fmt: skip
    assert bare.currency is None


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"is_supplier": True, "is_customer": True}, "is_supplier"),
        ({"is_customer": False}, "is_customer"),
        ({"name": None}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"status": "ARCHIVED"}, "status"),
        ({"tax_number": "GB1234567890123"}, "tax_number"),
        ({"addresses": [{"city": "A"}, {"city": "B", "address_type": "POSTAL"}]}, "addresses.1"),
        ({"addresses": [{"address_type": "SHIPPING"}]}, "addresses.0"),
        ({"phone_numbers": [{"phone_number": "1"}, {"phone_number": "2", "phone_type": "HOME"}]},
         "phone_numbers.1"),
        ({"phone_numbers": [{"phone_type": "MOBILE"}]}, "phone_numbers.0.phone_number"),
        ({"field_mappings": {"foo": "x"}}, "field_mappings.foo"),
        ({"field_mappings": {"account_manager": None}}, "field_mappings.account_manager"),
    ],
)  # fmt: skip
def test_what_a_zoho_contact_cannot_hold_is_refused_by_its_path(change: dict[str, Any], path: str) -> None:
    details = contact_refusal({"name": "Umbrella Ltd", **change})
    assert [where for where, _ in details] == [path], details


def test_a_tax_number_needs_the_editions_field_set_on_the_connection() -> None:
    no_setting = {**CONTACT_SETTINGS}
    del no_setting["tax_number_field"]
    connection = ConnectionContext("conn-zoho", "zoho_books", no_setting)
    with pytest.raises(InvalidInvoice) as caught:
        provider.map_contact(connection, outbound_contact({"name": "U", "tax_number": "GB1"}))
    [(path, reason)] = caught.value.details
    assert path == "tax_number" and "tax_number_field" in reason
    assert contact_refusal({"name": "U", "tax_number": "1"}, tax_number_field="ssn")[0][0] == "connection"
    assert (
        mapped_contact({"name": "U", "tax_number": "29ABCDE1234F1Z5"}, tax_number_field="gst_no").body[
            "gst_no"
        ]
        == "29ABCDE1234F1Z5"
    )


def test_a_contact_is_created_once_at_zoho_and_answered_as_zoho_recorded_it(fake: FakeZohoBooks) -> None:
    reference = send_contact(fake, FULL_CONTACT)
    [created] = fake.created_contacts()
    assert reference.remote_id == created["contact_id"] and reference.name == "Umbrella Ltd"
    [post] = fake.posts("contacts")
    assert post.url.params["organization_id"] == ORGANIZATION_ID
    assert fake.body_of(post)["currency_id"] == "260815000000000103"  # EUR, looked up at Zoho
    assert reference.fields == {
        "is_customer": True,
        "is_supplier": False,
        "email_address": "billing@umbrella.example",
        "tax_number": "GB123456789",
        "currency": "EUR",
        "currency_id": "260815000000000103",
        "status": "ACTIVE",
        "addresses": [
            {"street_1": "1 Main St", "street_2": "Floor 2", "city": "London", "state": "Greater London",
             "postal_code": "EC1A 1BB", "country": "United Kingdom", "address_type": "BILLING"},
            {"street_1": "9 Dock Rd", "street_2": None, "city": "Tilbury", "state": None, "postal_code": None,
             "country": None, "address_type": "SHIPPING"},
        ],
        "phone_numbers": [
            {"phone_number": "+44 20 7946 0000", "phone_type": "WORK"},
            {"phone_number": "+44 7700 900000", "phone_type": "MOBILE"},
            {"phone_number": "+44 20 7946 0001", "phone_type": "FAX"},
        ],
        "remote_updated_at": "2026-11-24T10:30:00-04:00",
    }  # fmt: skip
    assert reference.remote_data == jsonutil.loads(jsonutil.dumps(created))


def test_the_created_contact_can_take_an_invoice_at_once(fake: FakeZohoBooks) -> None:
    reference = send_contact(fake, {"name": "New Customer", "is_customer": True})
    body = {"contact_id": CONTACT_UUID, "line_items": [{"description": "Support", "total_amount": 10}]}
    connection = connect(fake.handle, fake)
    created = create(connection, outbound(body, {"contact_id": reference}))
    assert fake.documents["invoices"][created.remote_id]["customer_id"] == reference.remote_id


def test_the_next_reference_sync_describes_a_created_contact_as_its_create_did(fake: FakeZohoBooks) -> None:
    reference = send_contact(fake, FULL_CONTACT)
    synced = ZohoBooksProvider().list_references(connect(fake.handle, fake))
    [listed] = [r for r in synced if r.kind == "contact" and r.remote_id == reference.remote_id]
    assert (listed.name, listed.fields) == (reference.name, reference.fields)
    acme = next(r for r in synced if r.remote_id == ACME)  # a contact made in Zoho: its list row
    assert acme.fields["addresses"] is None and acme.fields["is_customer"] is True


def test_find_contact_finds_the_earlier_attempt_and_none_for_another_id(fake: FakeZohoBooks) -> None:
    connection = connect(fake.handle, fake, CONTACT_SETTINGS)
    assert provider.find_contact(connection, outbound_contact(FULL_CONTACT)) is None
    created = send_contact(fake, FULL_CONTACT)
    found = provider.find_contact(connection, outbound_contact(FULL_CONTACT))
    assert found is not None and (found.remote_id, found.fields) == (created.remote_id, created.fields)
    other = outbound_contact(FULL_CONTACT, "0196a3f2-7c1e-7d3a-9b2e-5f4c3d2a1cff")
    assert provider.find_contact(connection, other) is None
    searches = [r.url.params.get("search_text") for r in fake.requests if r.url.path == f"{API}/contacts"]
    assert f"Ledgerbridge contact {CONTACT_ID}" in searches


def test_a_lost_answer_is_never_resent_and_find_contact_then_finds_the_one_contact(
    fake: FakeZohoBooks,
) -> None:
    connection = connect(fake.handle, fake, CONTACT_SETTINGS)
    out = outbound_contact({"name": "Lost Answer Ltd"})
    request = provider.map_contact(connection, out)
    fake.timeout_next(after_processing=True)
    with pytest.raises(ProviderUnavailable):
        provider.send_contact(connection, out, request)
    assert len(fake.posts("contacts")) == 1 and len(fake.created_contacts()) == 1
    found = provider.find_contact(connection, out)
    assert found is not None and found.remote_id == fake.created_contacts()[0]["contact_id"]


def test_a_resend_refused_for_its_own_earlier_contacts_name_returns_that_contact(fake: FakeZohoBooks) -> None:
    first = send_contact(fake, {"name": "Twice Sent Ltd"})
    again = send_contact(fake, {"name": "Twice Sent Ltd"})  # same contact id: an earlier attempt made it
    assert again.remote_id == first.remote_id and len(fake.created_contacts()) == 1


def test_another_contacts_name_is_zohos_refusal_with_its_message(fake: FakeZohoBooks) -> None:
    with pytest.raises(ProviderRejected) as refused:
        send_contact(fake, {"name": "acme corp"})  # the recorded "Acme Corp"
    assert 'The contact name "acme corp" already exists' in str(refused.value)
    assert fake.created_contacts() == []


def test_a_currency_the_organisation_lacks_is_refused_before_posting(fake: FakeZohoBooks) -> None:
    with pytest.raises(ProviderRejected) as refused:
        send_contact(fake, {"name": "Yen Co", "currency": "JPY"})
    assert "JPY is not a currency of this Zoho Books organisation" in str(refused.value)
    assert fake.posts("contacts") == []


def test_the_fake_holds_contact_bodies_to_zohos_documented_fields(fake: FakeZohoBooks) -> None:
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
        answer = client.post(
            f"https://www.zohoapis.com{API}/contacts",
            params={"organization_id": ORGANIZATION_ID},
            headers={"authorization": "Bearer zoho-access-0"},
            json={"contact_name": "X", "email": "x@example.com"},
        )
    assert answer.status_code == 400 and "'email' was unexpected" in answer.json()["message"]
    assert fake.created_contacts() == []
