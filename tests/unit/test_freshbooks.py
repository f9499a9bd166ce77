"""The FreshBooks provider against the fake FreshBooks (tests/fakes/freshbooks.py) and recorded exchanges."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

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
    refresh_rules,
)
from ledgerbridge.providers.freshbooks import (
    FreshBooksProvider,
    FreshBooksRequest,
    contact_reference,
    item_reference,
    parse_updated,
    remote_invoice,
    unified_status,
)
from ledgerbridge.providers.http import ProviderHttp
from ledgerbridge.providers.oauth import OAuthApp, OAuthTokens, TokenSource
from tests.fakes.freshbooks import (
    ACCOUNT_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    TOKEN_PATH,
    FakeFreshBooks,
    fixture,
    recorded_body,
    recorded_result,
)
from tests.support.providers import fake_http
from tests.support.specs import assert_valid, schema_errors

INVOICE_ID = "0196a3f2-7c1e-7d3a-9b2e-5f4c3d2a1b00"  # a UUIDv7 made at 2025-05-06T04:54:59.870Z
RECEIVED = datetime(2025, 5, 6, 4, 54, 59, 870000, tzinfo=UTC)
SPEC = "freshbooks/invoices"  # FreshBooks' Node SDK models, tests/fixtures/specs/freshbooks
SETTINGS = {"account_id": ACCOUNT_ID}
API = f"https://api.freshbooks.com/accounting/account/{ACCOUNT_ID}"
# Ledgerbridge ids of the referenced records (any UUIDs: the references map resolves them).
CONTACT_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b60"
ITEM_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b61"
OTHER_UUID = "3f1c2a8e-0b6d-5c1e-9a47-1d2e3f4a5b62"
ACME = "567521"  # the recorded client the recorded invoices belong to
NOW = 1_800_000_000.0

provider = FreshBooksProvider()


# --- helpers ------------------------------------------------------------------------------


def taxes() -> dict[str, dict[str, Any]]:
    return {str(tax["taxid"]): tax for tax in recorded_result("list-taxes")["taxes"]}


def contact(client_id: str = ACME) -> RemoteReference:
    return contact_reference(
        next(c for c in recorded_result("list-clients")["clients"] if str(c["id"]) == client_id)
    )


def item(name: str) -> RemoteReference:
    return item_reference(
        next(i for i in recorded_result("list-items")["items"] if i["name"] == name), taxes()
    )


class StaticTokens:
    """access_token() from the fake's first token; a refresh goes through the fake's token endpoint."""

    def __init__(self, fake: FakeFreshBooks):
        self.fake, self.token, self.refresh_token = fake, "fb-access-0", "fb-refresh-0"

    def access_token(self) -> str:
        return self.token

    def refresh_after_rejection(self, rejected_access_token: str) -> str:
        with httpx.Client(transport=httpx.MockTransport(self.fake.handle)) as client:
            answer = token_request(client, self.refresh_token)
        assert answer.status_code == 200, answer.text
        self.token, self.refresh_token = answer.json()["access_token"], answer.json()["refresh_token"]
        return self.token


def token_request(client: httpx.Client, refresh_token: str, secret: str = CLIENT_SECRET) -> httpx.Response:
    body = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": CLIENT_ID,
        "client_secret": secret,
        "redirect_uri": REDIRECT_URI,
    }
    return client.post(f"https://api.freshbooks.com{TOKEN_PATH}", json=body)


def connect(
    handler: Callable[[httpx.Request], httpx.Response],
    fake: FakeFreshBooks | None = None,
    settings: dict[str, str] | None = None,
    sleeps: list[float] | None = None,
    attempts: int = 4,
) -> ConnectionContext:
    http = fake_http(handler, StaticTokens(fake or FakeFreshBooks()), sleeps, attempts)
    return ConnectionContext(
        "conn-fb", "freshbooks", dict(SETTINGS if settings is None else settings), http=http
    )


def outbound(
    body: dict[str, Any], references: dict[str, RemoteReference] | None = None, invoice_id: str = INVOICE_ID
) -> OutboundInvoice:
    invoice = InvoiceInput.model_validate(jsonutil.loads(jsonutil.dumps(body)))
    return OutboundInvoice(invoice_id, invoice, {"contact_id": contact(), **(references or {})})


def create(connection: ConnectionContext, out: OutboundInvoice):
    return provider.send_invoice(connection, out, provider.map_invoice(connection, out))


def refusal(body: dict[str, Any], references: dict[str, RemoteReference] | None = None, **settings: str):
    connection = ConnectionContext("conn-fb", "freshbooks", {**SETTINGS, **settings})
    with pytest.raises(InvalidInvoice) as caught:
        provider.map_invoice(connection, outbound(body, references))
    return caught.value.details


def mapped(
    body: dict[str, Any],
    references: dict[str, RemoteReference] | None = None,
    invoice_id: str = INVOICE_ID,
    **settings: str,
) -> dict[str, Any]:
    """The ``invoice`` body the mapper builds, checked against FreshBooks' SDK models first."""
    connection = ConnectionContext("conn-fb", "freshbooks", {**SETTINGS, **settings})
    request = provider.map_invoice(connection, outbound(body, references, invoice_id))
    assert_valid(request.body, SPEC, "CreateInvoice")
    return request.body["invoice"]


def uuid7_at(moment: datetime, tail: int = 1) -> str:
    """A Ledgerbridge invoice id (UUIDv7) made at ``moment``, as the write path would make it."""
    millis = int(moment.timestamp() * 1000)
    return str(uuid.UUID(int=(millis << 80) | (0x7 << 76) | (0b10 << 62) | tail))


def requests_to(fake: FakeFreshBooks, method: str, suffix: str) -> list[httpx.Request]:
    return [r for r in fake.requests if r.method == method and r.url.path.endswith(suffix)]


FULL_INVOICE = {
    "type": "ACCOUNTS_RECEIVABLE",
    "number": "LB-1001",
    "issue_date": "2026-11-24",
    "due_date": "2026-12-24T09:00:00+02:00",
    "memo": "November retainer",
    "currency": "usd",
    "contact_id": CONTACT_UUID,
    "line_items": [
        {
            "description": "Onsite, week 47",
            "quantity": 2,
            "unit_price": Decimal("150.25"),
            "item_id": ITEM_UUID,
        },
        {"description": "Travel", "quantity": 3, "unit_price": Decimal("0.1"), "currency": "USD"},
    ],
}
FULL_REFERENCES = {"line_items.0.item_id": item("Consulting Services")}
BODY = {
    "contact_id": CONTACT_UUID,
    "currency": "USD",
    "line_items": [{"description": "Support", "total_amount": 10}],
}


@pytest.fixture
def fake() -> FakeFreshBooks:
    return FakeFreshBooks()


# --- request bodies -----------------------------------------------------------------------


def test_a_full_invoice_is_sent_as_freshbooks_documents_it_and_marked_sent(fake: FakeFreshBooks) -> None:
    settings = {**SETTINGS, "default_tax_name": "Levy", "default_tax_percent": "2.5", "memo_target": "notes"}
    remote = create(connect(fake.handle, fake, settings), outbound(FULL_INVOICE, FULL_REFERENCES))

    [post] = requests_to(fake, "POST", "/invoices/invoices")
    assert str(post.url) == f"{API}/invoices/invoices?include%5B%5D=lines"
    assert post.headers["content-type"] == "application/json"
    assert FakeFreshBooks.body_of(post) == {
        "invoice": {
            "customerid": 567521,
            "create_date": "2026-11-24",
            "due_offset_days": 30,  # FreshBooks derives due_date from create_date + due_offset_days
            "currency_code": "USD",
            "invoice_number": "LB-1001",
            "notes": "November retainer",  # printed: the connection chose memo_target=notes
            "po_number": INVOICE_ID,  # the unique reference find_invoice looks for
            "lines": [
                {
                    # An item lends its name and its taxes (VAT 16 %): lines carry no item id.
                    "type": 0,
                    "name": "Consulting Services",
                    "description": "Onsite, week 47",
                    "qty": 2,
                    "unit_cost": {"amount": "150.25", "code": "USD"},
                    "taxName1": "VAT",
                    "taxAmount1": 16,
                },
                {
                    # Without an item: named by its description, the connection's default tax.
                    "type": 0,
                    "name": "Travel",
                    "qty": 3,
                    "unit_cost": {"amount": "0.10", "code": "USD"},
                    "taxName1": "Levy",
                    "taxAmount1": Decimal("2.5"),
                },
            ],
        }
    }
    assert b'"qty":2,' in post.content and b'"amount":"0.10"' in post.content  # exact, no floats
    [put] = requests_to(fake, "PUT", f"/invoices/{remote.remote_id}")
    assert FakeFreshBooks.body_of(put) == {"invoice": {"action_mark_as_sent": True}}

    [stored] = fake.created()
    assert (stored["v3_status"], stored["due_date"], stored["po_number"]) == (
        "sent",
        "2026-12-24",
        INVOICE_ID,
    )
    assert remote.remote_id == str(stored["id"])
    assert remote.fields == {
        "number": "LB-1001",
        "status": "OPEN",
        "sub_total": Decimal("300.80"),
        "total_tax_amount": Decimal("48.09"),  # 16 % of 300.50 + 2.5 % of 0.30 (rounded per line)
        "total_amount": Decimal("348.89"),
        "balance": Decimal("348.89"),
        "currency": "USD",
    }
    assert remote.line_remote_ids == ["1", "2"]
    assert remote.remote_data == stored


def test_the_recorded_request_is_what_the_mapper_builds() -> None:
    recorded = fixture("create-invoice")["exchanges"][0]["request"]["body"]
    body = {
        "contact_id": CONTACT_UUID,
        "issue_date": "2024-01-15",
        "currency": "USD",
        "status": "DRAFT",
        "line_items": [
            {"description": "Consulting Services", "quantity": 1, "unit_price": Decimal("1500.00")}
        ],
    }
    request = provider.map_invoice(ConnectionContext("conn-fb", "freshbooks", SETTINGS), outbound(body))
    assert request.body == {"invoice": {**recorded["invoice"], "po_number": INVOICE_ID}}
    assert (request.account_id, request.mark_as_sent) == (ACCOUNT_ID, False)


def test_the_recorded_response_maps_back_to_unified_fields() -> None:
    answer = fixture("create-invoice")["exchanges"][0]["response"]

    def replay(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            answer["status"], headers=answer["headers"], content=jsonutil.dumps(answer["body"])
        )

    body = {**BODY, "status": "DRAFT"}
    remote = create(connect(replay), outbound(body))

    record = answer["body"]["response"]["result"]["invoice"]
    assert remote.remote_id == "454063"
    assert remote.fields == {
        "number": "0000008",
        "status": "DRAFT",
        "total_amount": Decimal("1500.00"),
        "balance": Decimal("1500.00"),
        "currency": "USD",
    }
    assert remote.remote_updated_at == datetime(2026, 6, 29, 16, 52, 44, tzinfo=UTC)  # 12:52:44 EDT
    assert remote.line_remote_ids == [None]  # the recorded answer has no lines
    assert remote.remote_data == record


def test_a_draft_stays_a_draft(fake: FakeFreshBooks) -> None:
    remote = create(connect(fake.handle, fake), outbound({**BODY, "status": "draft"}))
    assert requests_to(fake, "PUT", f"/invoices/{remote.remote_id}") == []
    assert fake.created()[0]["v3_status"] == "draft"
    assert remote.fields["status"] == "DRAFT"
    assert remote.fields["number"] == "0000009"  # numbered by FreshBooks after the recorded 0000008


def test_the_currency_defaults_to_the_clients_own() -> None:
    body = {"contact_id": CONTACT_UUID, "line_items": [{"description": "Support", "total_amount": 10}]}
    request = provider.map_invoice(ConnectionContext("c", "freshbooks", SETTINGS), outbound(body))
    invoice = request.body["invoice"]
    assert invoice["currency_code"] == "KES"
    assert invoice["lines"][0]["unit_cost"] == {"amount": "10.00", "code": "KES"}


def test_an_items_price_description_and_both_taxes_fill_what_the_line_leaves_out() -> None:
    body = {
        "contact_id": CONTACT_UUID,
        "currency": "KES",
        "line_items": [{"quantity": 4, "item_id": ITEM_UUID}, {"quantity": 1, "item_id": OTHER_UUID}],
    }
    references = {
        "line_items.0.item_id": item("Printed Manual"),
        "line_items.1.item_id": RemoteReference("item", "77", "Bare item", {"unit_price": Decimal(5)}),
    }
    request = provider.map_invoice(ConnectionContext("c", "freshbooks", SETTINGS), outbound(body, references))
    first, second = request.body["invoice"]["lines"]
    assert first == {
        "type": 0,
        "name": "Printed Manual",
        "qty": 4,
        "unit_cost": {"amount": "2500.00", "code": "KES"},
        "taxName1": "VAT",
        "taxAmount1": 16,
        "taxName2": "Levy",
        "taxAmount2": Decimal("2.5"),
    }
    assert second == {
        "type": 0,
        "name": "Bare item",
        "qty": 1,
        "unit_cost": {"amount": "5.00", "code": "KES"},
    }


# --- refusals -----------------------------------------------------------------------------


def test_payables_are_refused_because_freshbooks_has_no_bills() -> None:
    assert refusal({**BODY, "type": "Bill"}) == [("type", "not supported by FreshBooks")]


def test_custom_fields_other_than_the_po_number_are_refused_naming_each_slug() -> None:
    body = {**BODY, "field_mappings": {"project": "Apollo", "po_number": 7731}}
    assert refusal(body, **{"custom_field.project": "1"}) == [
        ("field_mappings.project", "FreshBooks invoices have no custom fields; only po_number is taken"),
        ("field_mappings.po_number", "FreshBooks' PO number is text: send a string"),
    ]


def test_what_freshbooks_invoices_cannot_hold_is_refused_field_by_field() -> None:
    body = {
        **BODY,
        "status": "SUBMITTED",
        "paid_on_date": "2026-11-25",
        "exchange_rate": "1.1",
        "total_discount": 5,
        "accounting_period_id": OTHER_UUID,
        "tracking_categories": [OTHER_UUID],
        "line_items": [
            {"description": "Support", "total_amount": 10, "currency": "EUR", "exchange_rate": "2"},
            {"description": "More", "unit_price": 1, "tracking_categories": [OTHER_UUID]},
        ],
    }
    assert [path for path, _ in refusal(body)] == [
        "status",
        "paid_on_date",
        "exchange_rate",
        "total_discount",
        "accounting_period_id",
        "tracking_categories",
        "line_items.0.currency",
        "line_items.0.exchange_rate",
        "line_items.1.tracking_categories",
    ]


@pytest.mark.parametrize("status", ["PAID", "PARTIALLY_PAID", "VOID"])
def test_payment_and_void_statuses_are_refused(status: str) -> None:
    [(path, reason)] = refusal({**BODY, "status": status})
    assert path == "status" and status in reason


def test_a_due_date_earlier_as_a_calendar_date_is_refused() -> None:
    body = {**BODY, "issue_date": "2026-11-24T00:30:00+14:00", "due_date": "2026-11-23T12:00:00Z"}
    assert refusal(body) == [("due_date", "is before issue_date as calendar dates")]


@pytest.mark.parametrize(
    ("line", "path", "words"),
    [
        (
            {"description": "x", "quantity": 2, "total_amount": 10},
            "line_items.0.unit_price",
            "quantity x unit",
        ),
        (
            {"description": "x", "quantity": 2, "unit_price": 3, "total_amount": 7},
            "line_items.0.total_amount",
            "(6)",
        ),
        (
            {"description": "x", "unit_price": Decimal("0.125")},
            "line_items.0.unit_price",
            "0.125 would be rounded",
        ),
        ({"description": "x"}, "line_items.0.unit_price", "needs unit_price or total_amount"),
        ({"unit_price": 1}, "line_items.0.description", "needs a name"),
        (
            {"description": "x", "unit_price": 1, "item_id": OTHER_UUID},
            "line_items.0.item_id",
            "unknown item",
        ),
    ],
)
def test_lines_freshbooks_cannot_express_are_refused(line: dict[str, Any], path: str, words: str) -> None:
    [(refused_path, reason)] = refusal({**BODY, "line_items": [line]})
    assert refused_path == path and words in reason


def test_an_items_price_in_another_currency_is_refused() -> None:
    body = {**BODY, "line_items": [{"item_id": ITEM_UUID}]}
    details = refusal(body, {"line_items.0.item_id": item("Printed Manual")})
    assert details == [("line_items.0.unit_price", "the item's price is in KES: give one")]


def test_a_sub_total_must_match_the_lines() -> None:
    assert refusal({**BODY, "sub_total": 11}) == [("sub_total", "does not match the lines (10.00)")]


def test_an_invoice_needs_a_client_and_lines() -> None:
    connection = ConnectionContext("c", "freshbooks", SETTINGS)
    invoice = InvoiceInput.model_validate({"currency": "USD"})
    with pytest.raises(InvalidInvoice) as caught:
        provider.map_invoice(connection, OutboundInvoice(INVOICE_ID, invoice, {}))
    assert [path for path, _ in caught.value.details] == ["line_items", "contact_id"]


def test_the_connection_needs_an_account_id_and_whole_tax_defaults() -> None:
    connection = ConnectionContext("c", "freshbooks", {})
    with pytest.raises(InvalidInvoice) as caught:
        provider.map_invoice(connection, outbound(BODY))
    assert caught.value.details == [("connection", "FreshBooks connection has no account_id setting")]
    for half in (
        {"default_tax_name": "VAT"},
        {"default_tax_percent": "16"},
        {"default_tax_name": "VAT", "default_tax_percent": "x"},
    ):
        [(path, _)] = refusal(BODY, **half)
        assert path == "connection"


# --- what FreshBooks records: the issue date, the memo, the PO number ---------------------


@pytest.mark.parametrize(
    ("received", "time_zone", "day"),
    [
        (datetime(2026, 11, 24, 20, 30, tzinfo=UTC), None, "2026-11-24"),  # UTC by default
        (datetime(2026, 11, 24, 20, 30, tzinfo=UTC), "Pacific/Auckland", "2026-11-25"),  # UTC+13
        (datetime(2026, 11, 25, 3, 0, tzinfo=UTC), "America/Los_Angeles", "2026-11-24"),  # UTC-8
        (datetime(2026, 11, 25, 3, 0, tzinfo=UTC), "UTC", "2026-11-25"),
    ],
)
def test_without_issue_date_create_date_is_the_day_received_in_the_connections_time_zone(
    received: datetime, time_zone: str | None, day: str
) -> None:
    settings = {"time_zone": time_zone} if time_zone else {}
    assert mapped(BODY, invoice_id=uuid7_at(received), **settings)["create_date"] == day


def test_the_default_issue_date_comes_from_the_invoice_id_so_every_retry_sends_the_same_day() -> None:
    """INVOICE_ID was made in May 2025: the date is read from it, not from today's clock."""
    assert mapped(BODY)["create_date"] == RECEIVED.date().isoformat() == "2025-05-06"
    assert mapped(BODY, time_zone="America/Los_Angeles")["create_date"] == "2025-05-05"


def test_an_invoice_without_issue_date_reaches_freshbooks_dated(fake: FakeFreshBooks) -> None:
    create(connect(fake.handle, fake), outbound({**BODY, "due_date": "2025-05-20"}))
    [made] = fake.created()
    assert (made["create_date"], made["due_offset_days"], made["due_date"]) == (
        "2025-05-06",
        14,
        "2025-05-20",
    )


def test_a_due_date_without_issue_date_counts_from_the_default_issue_date() -> None:
    invoice_id = uuid7_at(datetime(2026, 11, 24, 20, 30, tzinfo=UTC))
    assert mapped({**BODY, "due_date": "2026-12-24"}, invoice_id=invoice_id)["due_offset_days"] == 30
    connection = ConnectionContext("c", "freshbooks", {**SETTINGS, "time_zone": "Pacific/Auckland"})
    with pytest.raises(InvalidInvoice) as caught:
        provider.map_invoice(connection, outbound({**BODY, "due_date": "2026-11-24"}, invoice_id=invoice_id))
    [(path, reason)] = caught.value.details
    assert path == "due_date" and "(2026-11-25," in reason and "give issue_date" in reason


@pytest.mark.parametrize("time_zone", ["Mars/Olympus_Mons", "../etc/passwd", "EST5EDT6"])
def test_a_time_zone_that_is_not_an_iana_name_is_a_connection_problem(time_zone: str) -> None:
    assert refusal(BODY, time_zone=time_zone) == [
        ("connection", f"time_zone {time_zone!r} is not a known IANA time zone (such as America/Toronto)")
    ]


def test_a_memo_is_refused_because_freshbooks_would_print_it_on_the_clients_invoice() -> None:
    [(path, reason)] = refusal({**BODY, "memo": "Client is slow to pay: chase on day 3"})
    assert path == "memo"
    assert "printed on the invoice the client receives" in reason and "memo_target=notes" in reason


def test_a_connection_that_chose_memo_target_notes_prints_the_memo_in_the_notes() -> None:
    assert mapped({**BODY, "memo": "Thank you!"}, memo_target="notes")["notes"] == "Thank you!"
    assert "notes" not in mapped(BODY, memo_target="notes")
    assert refusal({**BODY, "memo": "x"}, memo_target="terms") == [
        ("connection", "memo_target must be notes (printed on the client's invoice) or unset")
    ]


def test_the_callers_po_number_takes_the_field_and_our_reference_is_not_written() -> None:
    body = mapped({**BODY, "field_mappings": {"po_number": "PO-7731"}})
    assert body["po_number"] == "PO-7731"
    assert INVOICE_ID not in jsonutil.dumps(body)
    assert mapped({**BODY, "field_mappings": {"po_number": None}})["po_number"] == INVOICE_ID


# --- FreshBooks' SDK models check every body --------------------------------------------------


def test_the_bodies_the_mapper_builds_match_freshbooks_sdk_models() -> None:
    settings = {"default_tax_name": "Levy", "default_tax_percent": "2.5", "memo_target": "notes"}
    mapped(FULL_INVOICE, FULL_REFERENCES, **settings)  # asserts validity
    recorded = fixture("create-invoice")["exchanges"][0]["request"]["body"]
    assert schema_errors(recorded, SPEC, "CreateInvoice") == []
    assert schema_errors({"invoice": {"action_mark_as_sent": True}}, SPEC, "UpdateInvoice") == []


def test_the_fake_refuses_a_body_freshbooks_sdk_would_not_send(fake: FakeFreshBooks) -> None:
    auth = {"authorization": "Bearer fb-access-0"}
    invoice = {"customerid": int(ACME), "lines": [{"name": "x", "qty": "1", "colour": "red"}]}
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
        post = client.post(f"{API}/invoices/invoices", json={"invoice": invoice}, headers=auth)
        put = client.put(
            f"{API}/invoices/invoices/{min(fake.invoices)}",
            json={"invoice": {"action_mark_as_sent": 1}},
            headers=auth,
        )
    assert post.status_code == put.status_code == 400
    messages = [error["message"] for error in post.json()["response"]["errors"]]
    assert "Invalid body: /invoice: 'create_date' is a required property" in messages
    assert "Invalid body: /invoice/lines/0/qty: '1' is not of type 'number'" in messages
    assert any("'colour' was unexpected" in message for message in messages)
    assert fake.created() == []


# --- answers from FreshBooks --------------------------------------------------------------


def test_a_reused_invoice_number_is_rejected_with_freshbooks_message(fake: FakeFreshBooks) -> None:
    connection = connect(fake.handle, fake)
    with pytest.raises(ProviderRejected) as caught:
        create(connection, outbound({**BODY, "number": "0000008"}))  # the recorded invoice's number
    assert caught.value.messages == ["Invoice number 0000008 is already in use."]
    assert fake.created() == []


def test_every_message_of_the_documented_error_envelope_is_kept() -> None:
    answer = fixture("create-invoice-error")["exchanges"][0]["response"]
    connection = connect(
        lambda request: httpx.Response(answer["status"], content=jsonutil.dumps(answer["body"]))
    )
    with pytest.raises(ProviderRejected) as caught:
        create(connection, outbound(BODY))
    assert caught.value.messages == ["Client not found.", "Invoice number 0000008 is already in use."]


def test_a_client_unknown_to_freshbooks_is_a_rejection(fake: FakeFreshBooks) -> None:
    out = OutboundInvoice(
        INVOICE_ID, outbound(BODY).invoice, {"contact_id": RemoteReference("contact", "42", "x")}
    )
    with pytest.raises(ProviderRejected) as caught:
        create(connect(fake.handle, fake), out)
    assert caught.value.messages == ["Client not found."]


def test_another_business_is_forbidden(fake: FakeFreshBooks) -> None:
    with pytest.raises(ReauthorizationRequired):
        create(connect(fake.handle, fake, {"account_id": "Xy12ab"}), outbound(BODY))


def test_a_refused_mark_as_sent_says_the_draft_was_left(fake: FakeFreshBooks) -> None:
    def refuse_updates(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            error = {
                "errno": 2001,
                "field": "status",
                "message": "Invoice cannot be sent.",
                "object": "invoice",
            }
            return httpx.Response(422, content=jsonutil.dumps({"response": {"errors": [error]}}))
        return fake.handle(request)

    with pytest.raises(ProviderRejected) as caught:
        create(connect(refuse_updates, fake), outbound(BODY))
    [draft] = fake.created()
    assert caught.value.messages == [
        "Invoice cannot be sent.",
        f"draft invoice {draft['id']} was left in FreshBooks",
    ]


def test_a_200_without_the_invoice_may_be_resent() -> None:
    empty = {"response": {"result": {}}}
    connection = connect(lambda request: httpx.Response(200, content=jsonutil.dumps(empty)))
    with pytest.raises(ProviderUnavailable):
        create(connection, outbound(BODY))


@pytest.mark.parametrize(
    ("index", "status"),
    [(0, "DRAFT"), (2, "OPEN"), (5, "PARTIALLY_PAID")],
)
def test_recorded_invoices_map_to_unified_statuses(index: int, status: str) -> None:
    record = recorded_result("list-invoices")["invoices"][index]
    assert unified_status(record) == status


def test_paid_and_deleted_invoices_and_the_recorded_get_map_back() -> None:
    record = recorded_body("get-invoice")["response"]["result"]["invoice"]
    assert unified_status({**record, "vis_state": 0}) == "PARTIALLY_PAID"
    assert unified_status(record) == "VOID"  # the recorded one was deleted (vis_state 1)
    assert unified_status({**record, "vis_state": 0, "v3_status": "paid", "payment_status": "paid"}) == "PAID"
    remote = remote_invoice(record, line_count=2)
    assert (remote.remote_id, remote.fields["number"], remote.fields["balance"]) == (
        "453877",
        "0000001",
        Decimal(750),
    )
    assert remote.line_remote_ids == [None, None]


def test_freshbooks_timestamps_are_us_eastern_time() -> None:
    assert parse_updated("2026-06-29 12:52:44") == datetime(2026, 6, 29, 16, 52, 44, tzinfo=UTC)  # EDT
    assert parse_updated("2019-11-14 11:27:45") == datetime(2019, 11, 14, 16, 27, 45, tzinfo=UTC)  # EST
    assert parse_updated("2026-03-08 01:59:59") == datetime(2026, 3, 8, 6, 59, 59, tzinfo=UTC)
    assert parse_updated("2026-03-08 03:00:00") == datetime(2026, 3, 8, 7, 0, 0, tzinfo=UTC)
    assert parse_updated("2026-11-01 02:00:00") == datetime(2026, 11, 1, 7, 0, 0, tzinfo=UTC)
    assert parse_updated(None) is None and parse_updated("yesterday") is None


# --- retries ------------------------------------------------------------------------------


def test_a_429_with_retry_after_is_waited_out(fake: FakeFreshBooks) -> None:
    sleeps: list[float] = []
    fake.fail_next(429, headers={"Retry-After": "1"})
    remote = create(connect(fake.handle, fake, sleeps=sleeps), outbound(BODY))
    assert sleeps == [1.0]
    assert len(fake.invoice_posts()) == 2
    assert [str(r["id"]) for r in fake.created()] == [remote.remote_id]


def test_an_ambiguous_failure_of_the_create_is_not_resent_blindly(fake: FakeFreshBooks) -> None:
    """A 503 or a timeout may hide a created invoice: the retry queue looks it up before resending."""
    for inject in (lambda: fake.fail_next(503), lambda: fake.timeout_next()):
        inject()
        sleeps: list[float] = []
        connection = connect(fake.handle, fake, sleeps=sleeps)
        with pytest.raises(ProviderUnavailable, match="not resent"):
            create(connection, outbound(BODY))
        assert sleeps == []
        assert FreshBooksProvider().find_invoice(connection, outbound(BODY)) is None  # nothing was created
    assert len(fake.invoice_posts()) == 2 and fake.created() == []


def test_a_create_refused_with_429_is_resent_after_retry_after(fake: FakeFreshBooks) -> None:
    sleeps: list[float] = []
    fake.fail_next(429, {"Retry-After": "1"})
    create(connect(fake.handle, fake, sleeps=sleeps), outbound(BODY))
    assert sleeps == [1.0]
    assert len(fake.created()) == 1


def test_giving_up_on_an_unavailable_freshbooks(fake: FakeFreshBooks) -> None:
    fake.fail_next(503, times=1)
    with pytest.raises(ProviderUnavailable):
        create(connect(fake.handle, fake), outbound(BODY))
    assert fake.created() == []


# --- idempotency: find_invoice ------------------------------------------------------------


def test_find_invoice_finds_an_earlier_invoice_by_its_reference(fake: FakeFreshBooks) -> None:
    connection = connect(fake.handle, fake)
    first = create(connection, outbound(BODY))
    create(connection, outbound(BODY, invoice_id="0196a3f2-7c1e-7d3a-9b2e-5f4c3d2a1bff"))  # same client

    found = provider.find_invoice(connection, outbound(BODY))

    assert found is not None and found.remote_id == first.remote_id
    assert found.fields == first.fields and found.line_remote_ids == ["1"]
    [search] = requests_to(fake, "GET", "/invoices/invoices")
    assert dict(search.url.params) == {
        "search[customerid]": ACME,
        "include[]": "lines",
        "page": "1",
        "per_page": "100",
    }


def test_find_invoice_returns_none_when_nothing_was_created(fake: FakeFreshBooks) -> None:
    connection = connect(fake.handle, fake)
    create(connection, outbound(BODY, invoice_id="0196a3f2-7c1e-7d3a-9b2e-5f4c3d2a1bff"))
    assert provider.find_invoice(connection, outbound(BODY)) is None
    assert (
        provider.find_invoice(connection, outbound({"currency": "USD"}, {})) is None
    )  # no client: never sent


def test_find_invoice_pages_through_the_clients_invoices(fake: FakeFreshBooks) -> None:
    paged = FreshBooksProvider(page_size=2)
    connection = connect(fake.handle, fake)
    first = create(connection, outbound(BODY))
    for n in range(3):
        create(connection, outbound(BODY, invoice_id=f"0196a3f2-7c1e-7d3a-9b2e-5f4c3d2a1c{n:02d}"))
    found = paged.find_invoice(connection, outbound(BODY))
    assert found is not None and found.remote_id == first.remote_id
    pages = [r.url.params["page"] for r in requests_to(fake, "GET", "/invoices/invoices")]
    # Newest first, 2 a page: the oldest of the four is on page 2; the scan stops there, before
    # the client's recorded invoices on page 3 and later.
    assert pages == ["1", "2"]


def test_a_lost_response_then_find_invoice_finds_exactly_that_invoice(fake: FakeFreshBooks) -> None:
    connection = connect(fake.handle, fake, attempts=1)  # a POST is not resent within the call
    fake.timeout_next(after_processing=True)  # FreshBooks made the draft, the answer never arrived
    with pytest.raises(ProviderUnavailable):
        create(connection, outbound(BODY))

    found = provider.find_invoice(connection, outbound(BODY))

    [made] = fake.created()
    assert found is not None and found.remote_id == str(made["id"])
    assert found.fields["status"] == "OPEN" and made["v3_status"] == "sent"  # finished: marked sent
    assert len(fake.invoice_posts()) == 1


def test_find_invoice_finishes_an_invoice_whose_mark_as_sent_was_lost(fake: FakeFreshBooks) -> None:
    def lose_updates(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503) if request.method == "PUT" else fake.handle(request)

    with pytest.raises(ProviderUnavailable):
        create(connect(lose_updates, fake), outbound(BODY))
    assert fake.created()[0]["v3_status"] == "draft"

    found = provider.find_invoice(connect(fake.handle, fake), outbound(BODY))
    assert found is not None and found.fields["status"] == "OPEN"
    assert fake.created()[0]["v3_status"] == "sent"


def test_find_invoice_leaves_a_draft_a_draft(fake: FakeFreshBooks) -> None:
    connection = connect(fake.handle, fake)
    create(connection, outbound({**BODY, "status": "DRAFT"}))
    found = provider.find_invoice(connection, outbound({**BODY, "status": "DRAFT"}))
    assert found is not None and found.fields["status"] == "DRAFT"
    assert requests_to(fake, "PUT", f"/invoices/{found.remote_id}") == []


def test_a_lost_response_inside_one_call_creates_a_single_invoice(fake: FakeFreshBooks) -> None:
    fake.timeout_next(after_processing=True)
    with pytest.raises(ProviderUnavailable, match="not resent"):
        create(connect(fake.handle, fake), outbound(BODY))
    assert len(fake.created()) == 1  # no blind resend: the retry queue looks it up first


# --- idempotency with the caller's PO number ------------------------------------------------

PO_BODY = {
    **BODY,
    "issue_date": "2026-11-24",
    "line_items": [{"description": "Support", "quantity": 2, "unit_price": "5.00"}],
    "field_mappings": {"po_number": "PO-7731"},
}


def made_at(fake: FakeFreshBooks, moment: datetime, body: dict[str, Any], invoice_id: str) -> str:
    """An invoice FreshBooks made at ``moment`` (its clock), as a person or an earlier attempt would."""
    fake.clock = lambda: moment
    try:
        return create(connect(fake.handle, fake), outbound(body, invoice_id=invoice_id)).remote_id
    finally:
        fake.clock = lambda: datetime.now(UTC)


def test_with_the_callers_po_number_a_lost_response_is_found_by_po_number_time_and_content(
    fake: FakeFreshBooks,
) -> None:
    received = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    ours_id = uuid7_at(received)
    older = made_at(fake, received - timedelta(hours=1), PO_BODY, uuid7_at(received - timedelta(hours=1)))
    other_lines = {**PO_BODY, "line_items": [{"description": "Support", "quantity": 3, "unit_price": "5.00"}]}
    made_at(fake, received + timedelta(minutes=1), other_lines, uuid7_at(received, tail=2))
    fake.clock = lambda: received + timedelta(seconds=2)
    connection = connect(fake.handle, fake, attempts=1)
    fake.timeout_next(after_processing=True)
    with pytest.raises(ProviderUnavailable):
        create(connection, outbound(PO_BODY, invoice_id=ours_id))
    ours = str(fake.created()[-1]["id"])

    found = provider.find_invoice(connection, outbound(PO_BODY, invoice_id=ours_id))

    assert found is not None and found.remote_id == ours != older
    assert found.remote_data["po_number"] == "PO-7731" and found.fields["status"] == "OPEN"
    later = uuid7_at(received + timedelta(hours=1))  # received after every invoice above was made
    assert provider.find_invoice(connection, outbound(PO_BODY, invoice_id=later)) is None


def test_with_the_callers_po_number_a_clock_a_little_behind_still_finds_the_invoice(
    fake: FakeFreshBooks,
) -> None:
    received = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    made = made_at(fake, received - timedelta(minutes=4), PO_BODY, uuid7_at(received))  # within 5 min
    found = provider.find_invoice(
        connect(fake.handle, fake), outbound(PO_BODY, invoice_id=uuid7_at(received))
    )
    assert found is not None and found.remote_id == made


def test_two_invoices_that_could_be_ours_are_refused_not_guessed(fake: FakeFreshBooks) -> None:
    received = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    first = made_at(fake, received + timedelta(seconds=1), PO_BODY, uuid7_at(received))
    second = made_at(fake, received + timedelta(seconds=9), PO_BODY, uuid7_at(received, tail=2))
    with pytest.raises(ProviderRejected) as caught:
        provider.find_invoice(connect(fake.handle, fake), outbound(PO_BODY, invoice_id=uuid7_at(received)))
    [message] = caught.value.messages
    assert f"2 invoices ({second}, {first})" in message and "'PO-7731'" in message
    assert len(fake.invoice_posts()) == 2  # nothing resent


# --- tokens -------------------------------------------------------------------------------


class MemoryStore:
    """CredentialStore with versioned, conditional saves."""

    def __init__(self, tokens: OAuthTokens):
        self.tokens, self.marked = tokens, None

    def load(self) -> OAuthTokens:
        return self.tokens

    def save(self, tokens: OAuthTokens, replaces: OAuthTokens) -> bool:
        if self.tokens.version != replaces.version:
            return False
        self.tokens = tokens
        return True

    def mark_needs_reauthorization(self, reason: str) -> None:
        self.marked = reason


def token_source(fake: FakeFreshBooks, store: MemoryStore) -> tuple[httpx.Client, TokenSource]:
    client = httpx.Client(transport=httpx.MockTransport(fake.handle))
    app = OAuthApp(
        provider.oauth_token_url() or "", CLIENT_ID, CLIENT_SECRET, provider.oauth_client_auth,
        REDIRECT_URI, refresh_rules(provider),
    )  # fmt: skip
    return client, TokenSource(store, app, client, clock=lambda: NOW)


def test_an_expired_token_is_refreshed_with_a_json_body_and_the_new_refresh_token_kept(
    fake: FakeFreshBooks,
) -> None:
    fake.expire_access_tokens()
    store = MemoryStore(OAuthTokens("fb-access-0", "fb-refresh-0", expires_at=NOW + 3000))
    client, tokens = token_source(fake, store)
    connection = ConnectionContext("c", "freshbooks", SETTINGS, ProviderHttp(client, tokens))

    remote = create(connection, outbound(BODY))

    assert [(r.method, r.url.path) for r in fake.requests[:3]] == [
        ("POST", f"/accounting/account/{ACCOUNT_ID}/invoices/invoices"),
        ("POST", TOKEN_PATH),
        ("POST", f"/accounting/account/{ACCOUNT_ID}/invoices/invoices"),
    ]
    refresh = fake.requests[1]
    assert refresh.headers["content-type"] == "application/json"
    assert jsonutil.loads(refresh.content) == {
        "grant_type": "refresh_token",
        "refresh_token": "fb-refresh-0",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": REDIRECT_URI,
    }
    assert fake.requests[2].headers["authorization"] == "Bearer fb-access-1"
    assert (store.tokens.refresh_token, store.tokens.version) == ("fb-refresh-1", 1)
    assert store.tokens.expires_at == NOW + 43200  # FreshBooks access tokens last 12 hours
    assert len(fake.created()) == 1 and remote.fields["status"] == "OPEN"


def test_a_used_refresh_token_is_refused_and_the_connection_marked(fake: FakeFreshBooks) -> None:
    fake.expire_access_tokens()
    store = MemoryStore(OAuthTokens("fb-access-0", "fb-refresh-0", expires_at=NOW + 3000))
    _, first = token_source(fake, store)
    first.refresh_after_rejection("fb-access-0")  # rotates fb-refresh-0 away
    stale = MemoryStore(OAuthTokens("fb-access-0", "fb-refresh-0", expires_at=NOW - 1))
    client, tokens = token_source(fake, stale)
    with pytest.raises(ReauthorizationRequired):
        create(ConnectionContext("c", "freshbooks", SETTINGS, ProviderHttp(client, tokens)), outbound(BODY))
    assert stale.marked == "refresh token invalid_grant"
    assert fake.retired_refresh_tokens == ["fb-refresh-0"]


def test_the_token_endpoint_wants_json_and_the_apps_credentials(fake: FakeFreshBooks) -> None:
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
        form = client.post(f"https://api.freshbooks.com{TOKEN_PATH}", data={"grant_type": "refresh_token"})
        wrong = token_request(client, "fb-refresh-0", secret="wrong")
        right = token_request(client, "fb-refresh-0")
        reused = token_request(client, "fb-refresh-0")
    assert (form.status_code, form.json()["error"]) == (400, "invalid_request")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert right.status_code == 200
    assert {k: right.json()[k] for k in ("access_token", "refresh_token", "token_type", "expires_in")} == {
        "access_token": "fb-access-1",
        "refresh_token": "fb-refresh-1",
        "token_type": "Bearer",
        "expires_in": 43200,
    }
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")


# --- contacts -----------------------------------------------------------------------------

CONTACT_ID = "0196a3f2-7c1e-7d3a-9b2e-5f4c3d2a1c50"  # a Ledgerbridge contact id (UUIDv7)
CLIENT_SPEC = "freshbooks/clients"  # FreshBooks' Node SDK Client model, tests/fixtures/specs/freshbooks
FULL_CONTACT = {
    "name": "Umbrella Corp",
    "is_customer": True,
    "is_supplier": False,
    "email_address": "billing@umbrella.example",
    "tax_number": "GB123456789",
    "status": "ACTIVE",
    "currency": "cad",
    "remote_updated_at": "2026-01-01T00:00:00Z",  # Panora's SDK sends it; the ledger decides it
    "addresses": [
        {"street_1": "1 Main St", "street_2": "Suite 4", "city": "Toronto", "state": "ON",
         "postal_code": "M6P 3T1", "country": "Canada", "address_type": "BILLING"},
        {"street_1": "9 Dock Rd", "city": "Hamilton", "address_type": "shipping"},
    ],
    "phone_numbers": [
        {"phone_number": "+1 416 555 0100", "phone_type": "WORK"},
        {"phone_number": "+1 416 555 0101", "phone_type": "mobile"},
        {"phone_number": "+1 416 555 0102", "phone_type": "HOME"},
        {"phone_number": "+1 416 555 0103", "phone_type": "FAX"},
    ],
}  # fmt: skip


def new_contact(body: dict[str, Any], contact_id: str = CONTACT_ID) -> OutboundContact:
    return OutboundContact(contact_id, ContactInput.model_validate(body))


def mapped_contact(body: dict[str, Any]) -> dict[str, Any]:
    """The ``client`` body, checked against FreshBooks' SDK Client model first; no HTTP client: no I/O."""
    connection = ConnectionContext("conn-fb", "freshbooks", dict(SETTINGS))
    request = base.map_contact(provider, connection, new_contact(body))
    assert_valid(request.body, CLIENT_SPEC, "CreateClient")
    assert request.account_id == ACCOUNT_ID
    return request.body["client"]


def contact_refusal(body: dict[str, Any], settings: dict[str, str] | None = None) -> list[tuple[str, str]]:
    connection = ConnectionContext("conn-fb", "freshbooks", dict(SETTINGS if settings is None else settings))
    with pytest.raises(InvalidInvoice) as caught:
        provider.map_contact(connection, new_contact(body))
    return caught.value.details


def create_contact(connection: ConnectionContext, out: OutboundContact) -> RemoteReference:
    return base.send_contact(provider, connection, out, base.map_contact(provider, connection, out))


def test_freshbooks_creates_contacts_and_looks_earlier_attempts_up() -> None:
    assert base.supports_contacts(provider)
    assert callable(provider.find_contact)  # no idempotency key: a resend looks first


def test_every_contact_field_maps_to_the_client_freshbooks_sdk_sends() -> None:
    assert mapped_contact(FULL_CONTACT) == {
        "organization": "Umbrella Corp",
        "email": "billing@umbrella.example",
        "vat_number": "GB123456789",
        "currency_code": "CAD",
        "p_street": "1 Main St",
        "p_street2": "Suite 4",
        "p_city": "Toronto",
        "p_province": "ON",
        "p_code": "M6P 3T1",
        "p_country": "Canada",
        "s_street": "9 Dock Rd",
        "s_city": "Hamilton",
        "bus_phone": "+1 416 555 0100",
        "mob_phone": "+1 416 555 0101",
        "home_phone": "+1 416 555 0102",
        "fax": "+1 416 555 0103",
        "note": f"Ledgerbridge contact {CONTACT_ID}",  # private; what find_contact searches for
    }


def test_a_contact_with_only_a_name_is_a_client_with_our_note() -> None:
    assert mapped_contact({"name": "Solo"}) == {
        "organization": "Solo",
        "note": f"Ledgerbridge contact {CONTACT_ID}",
    }


def test_an_untyped_or_other_address_is_the_billing_one_and_an_untyped_phone_the_business_one() -> None:
    body = mapped_contact(
        {
            "name": "Solo",
            "addresses": [{"city": "Toronto", "address_type": "POSTAL"}],
            "phone_numbers": [{"phone_number": "555"}],
        }
    )
    assert (body["p_city"], body["bus_phone"]) == ("Toronto", "555")


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        ({"is_supplier": True, "is_customer": False}, "is_supplier", "FreshBooks clients are customers"),
        ({"is_supplier": True, "is_customer": True}, "is_supplier", "its vendors belong to its bills"),
        ({"is_customer": False, "is_supplier": None}, "is_customer", "someone you invoice"),
        ({"name": None}, "name", "FreshBooks needs a client name"),
        ({"status": "ARCHIVED"}, "status", "create it ACTIVE, then archive it"),
        ({"field_mappings": {"foo": "bar"}}, "field_mappings.foo", "no custom fields"),
        (
            {"addresses": [{"city": "A"}, {"city": "B", "address_type": "BILLING"}]},
            "addresses.1",
            "one billing address",
        ),
        (
            {"addresses": [{"city": "A", "address_type": "SHIPPING"},
                           {"city": "B", "address_type": "delivery"}]},
            "addresses.1",
            "one shipping address",
        ),
        ({"addresses": [{"address_type": "BILLING"}]}, "addresses.0", "nothing to write"),
        (
            {"phone_numbers": [{"phone_number": "1", "phone_type": "MOBILE"},
                               {"phone_number": "2", "phone_type": "MOBILE"}]},
            "phone_numbers.1",
            "one mob_phone",
        ),
        (
            {"phone_numbers": [{"phone_number": "1", "phone_type": "WORK"},
                               {"phone_number": "2", "phone_type": "OFFICE"}]},
            "phone_numbers.1",
            "one bus_phone",
        ),
        ({"phone_numbers": [{"phone_type": "WORK"}]}, "phone_numbers.0.phone_number", "give one"),
    ],
)  # fmt: skip
def test_what_a_freshbooks_client_cannot_hold_is_refused_naming_the_field(
    changes: dict[str, Any], path: str, words: str
) -> None:
    details = contact_refusal({"name": "Umbrella Corp", **changes})
    assert [p for p, _ in details] == [path]
    assert words in details[0][1]


def test_every_refusal_is_reported_at_once() -> None:
    body = {"is_supplier": True, "status": "ARCHIVED", "field_mappings": {"a": "1", "b": "2"}}
    assert [path for path, _ in contact_refusal(body)] == [
        "is_supplier",
        "name",
        "status",
        "field_mappings.a",
        "field_mappings.b",
    ]


def test_a_contact_needs_the_connections_account_id() -> None:
    assert contact_refusal({"name": "Umbrella Corp"}, settings={}) == [
        ("connection", "FreshBooks connection has no account_id setting")
    ]


def test_the_recorded_clients_and_a_minimal_body_fit_the_sdk_client_model() -> None:
    """The schema is strict: it refuses what the SDK would not send, and takes what it would."""
    assert schema_errors(
        {"client": {"organization": "x", "is_supplier": True}}, CLIENT_SPEC, "CreateClient"
    ) == ["/client: Additional properties are not allowed ('is_supplier' was unexpected)"]
    assert schema_errors({"client": {"vat_number": 1}}, CLIENT_SPEC, "CreateClient") == [
        "/client/vat_number: 1 is not of type 'string', 'null'"
    ]
    sdk_fields = {"fname", "lname", "organization", "email", "note", "p_street", "currency_code"}
    recorded = recorded_result("list-clients")["clients"][2]
    assert schema_errors({"client": {k: recorded[k] for k in sdk_fields}}, CLIENT_SPEC, "CreateClient") == []


def test_a_contact_creates_exactly_one_client_described_as_the_reference_sync_describes_it(
    fake: FakeFreshBooks,
) -> None:
    connection = connect(fake.handle, fake)

    created = create_contact(connection, new_contact(FULL_CONTACT))

    [client] = fake.created_clients()
    [post] = fake.client_posts()
    assert fake.body_of(post) == {"client": mapped_contact(FULL_CONTACT)}
    assert post.url.path == f"/accounting/account/{ACCOUNT_ID}/users/clients"
    assert created.kind == "contact" and created.remote_id == str(client["id"])
    assert created.name == "Umbrella Corp"
    assert created.fields == {
        "is_customer": True,
        "is_supplier": False,
        "email_address": "billing@umbrella.example",
        "tax_number": "GB123456789",
        "currency": "CAD",
        "status": "ACTIVE",
        "addresses": [
            {"street_1": "1 Main St", "street_2": "Suite 4", "city": "Toronto", "state": "ON",
             "postal_code": "M6P 3T1", "country": "Canada", "address_type": "BILLING"},
            {"street_1": "9 Dock Rd", "street_2": None, "city": "Hamilton", "state": None,
             "postal_code": None, "country": None, "address_type": "SHIPPING"},
        ],
        "phone_numbers": [
            {"phone_number": "+1 416 555 0100", "phone_type": "WORK"},
            {"phone_number": "+1 416 555 0101", "phone_type": "MOBILE"},
            {"phone_number": "+1 416 555 0102", "phone_type": "HOME"},
            {"phone_number": "+1 416 555 0103", "phone_type": "FAX"},
        ],
        "remote_updated_at": parse_updated(client["updated"]).isoformat(),
    }  # fmt: skip
    assert created.remote_data == client
    synced = {r.remote_id: r for r in provider.list_references(connection) if r.kind == "contact"}
    assert synced[created.remote_id] == created  # the next sync says what the create said


def test_an_invoice_can_be_sent_to_the_new_client(fake: FakeFreshBooks) -> None:
    connection = connect(fake.handle, fake)
    client = create_contact(connection, new_contact({"name": "Umbrella Corp", "currency": "USD"}))

    out = OutboundInvoice(INVOICE_ID, outbound(BODY).invoice, {"contact_id": client})
    remote = create(connection, out)

    [invoice] = fake.created()
    assert invoice["customerid"] == int(client.remote_id) and remote.remote_id == str(invoice["id"])
    assert invoice["organization"] == "Umbrella Corp"


def test_a_client_like_one_freshbooks_already_has_is_created_as_freshbooks_does(fake: FakeFreshBooks) -> None:
    """FreshBooks refuses no duplicates: the recorded business has two clients with one email."""
    recorded = [c["email"] for c in recorded_result("list-clients")["clients"]]
    assert recorded.count("person1@example.com") == 2
    connection = connect(fake.handle, fake)
    body = {"name": "acme Test Co", "email_address": "person2@example.com"}  # a recorded client's
    create_contact(connection, new_contact(body))
    assert len(fake.created_clients()) == 1


def test_a_client_without_a_name_is_freshbooks_refusal(fake: FakeFreshBooks) -> None:
    """The mapper never sends one; the fake holds FreshBooks' rule for what else may."""
    request = FreshBooksRequest(ACCOUNT_ID, {"client": {"email": "nobody@example.com"}})
    with pytest.raises(ProviderRejected) as caught:
        provider.send_contact(connect(fake.handle, fake), new_contact({"name": "x"}), request)
    assert caught.value.messages == ["A client needs a company or a first and last name."]
    assert fake.created_clients() == []


def test_the_fake_refuses_a_client_body_freshbooks_sdk_would_not_send(fake: FakeFreshBooks) -> None:
    request = FreshBooksRequest(ACCOUNT_ID, {"client": {"organization": "x", "phone": "555"}})
    with pytest.raises(ProviderRejected) as caught:
        provider.send_contact(connect(fake.handle, fake), new_contact({"name": "x"}), request)
    assert caught.value.messages == [
        "Invalid body: /client: Additional properties are not allowed ('phone' was unexpected)"
    ]
    assert fake.created_clients() == []


def test_a_connection_freshbooks_refuses_needs_authorising_again(fake: FakeFreshBooks) -> None:
    def always_401(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401) if request.url.path != TOKEN_PATH else fake.handle(request)

    for connection in (connect(always_401, fake), connect(fake.handle, fake, {"account_id": "Xy12ab"})):
        with pytest.raises(ReauthorizationRequired):
            create_contact(connection, new_contact({"name": "Umbrella Corp"}))
    assert fake.created_clients() == []


def test_an_ambiguous_failure_of_the_client_create_is_not_resent_blindly(fake: FakeFreshBooks) -> None:
    for inject in (lambda: fake.fail_next(503), lambda: fake.timeout_next()):
        inject()
        sleeps: list[float] = []
        connection = connect(fake.handle, fake, sleeps=sleeps)
        with pytest.raises(ProviderUnavailable, match="not resent"):
            create_contact(connection, new_contact({"name": "Umbrella Corp"}))
        assert sleeps == []
        assert base.find_contact(provider, connection, new_contact({"name": "Umbrella Corp"})) is None
    assert len(fake.client_posts()) == 2 and fake.created_clients() == []


def test_a_client_create_refused_with_429_is_resent_after_retry_after(fake: FakeFreshBooks) -> None:
    sleeps: list[float] = []
    fake.fail_next(429, {"Retry-After": "1"})
    create_contact(connect(fake.handle, fake, sleeps=sleeps), new_contact({"name": "Umbrella Corp"}))
    assert sleeps == [1.0] and len(fake.client_posts()) == 2 and len(fake.created_clients()) == 1


def test_a_lost_answer_then_find_contact_finds_exactly_that_client(fake: FakeFreshBooks) -> None:
    connection = connect(fake.handle, fake, attempts=1)
    out = new_contact(FULL_CONTACT)
    fake.timeout_next(after_processing=True)  # FreshBooks made the client, the answer never arrived
    with pytest.raises(ProviderUnavailable):
        create_contact(connection, out)

    found = base.find_contact(provider, connection, out)

    [client] = fake.created_clients()
    assert found is not None and found.remote_id == str(client["id"]) and found.name == "Umbrella Corp"
    assert found.fields["addresses"][0]["city"] == "Toronto"
    assert len(fake.client_posts()) == 1
    [search] = [r for r in requests_to(fake, "GET", "/users/clients")]
    assert dict(search.url.params) == {"search[note_like]": CONTACT_ID, "page": "1", "per_page": "100"}


def test_find_contact_takes_only_the_client_whose_note_holds_this_contact_id(fake: FakeFreshBooks) -> None:
    connection = connect(fake.handle, fake)
    other = new_contact({"name": "Other"}, contact_id="0196a3f2-7c1e-7d3a-9b2e-5f4c3d2a1c51")
    create_contact(connection, other)
    assert base.find_contact(provider, connection, new_contact({"name": "Umbrella Corp"})) is None

    first = create_contact(connection, new_contact({"name": "Umbrella Corp"}))
    fake.clients[-1]["note"] = f"Ledgerbridge contact {CONTACT_ID}\nPays late"  # the team added a line
    create_contact(connection, new_contact({"name": "Umbrella Corp"}))  # a second one, made by hand

    found = base.find_contact(provider, connection, new_contact({"name": "Umbrella Corp"}))
    assert found is not None and found.remote_id == first.remote_id  # the oldest
    assert base.find_contact(provider, connection, other).name == "Other"


def test_find_contact_pages_through_the_matching_clients(fake: FakeFreshBooks) -> None:
    connection = connect(fake.handle, fake)
    made = [create_contact(connection, new_contact({"name": f"Umbrella {n}"})) for n in range(3)]
    found = FreshBooksProvider(page_size=2).find_contact(connection, new_contact({"name": "Umbrella 0"}))
    assert found is not None and found.remote_id == made[0].remote_id
    pages = [r.url.params["page"] for r in requests_to(fake, "GET", "/users/clients")]
    assert pages == ["1", "2"]


# --- references ---------------------------------------------------------------------------


def test_references_list_every_client_page_and_items_with_their_taxes(fake: FakeFreshBooks) -> None:
    for n in range(120):
        fake.add_client(f"Paged client {n}")
    references = provider.list_references(connect(fake.handle, fake))

    pages = [
        (r.url.params["page"], r.url.params["per_page"]) for r in requests_to(fake, "GET", "/users/clients")
    ]
    assert pages == [("1", "100"), ("2", "100")]
    contacts = {r.remote_id: r for r in references if r.kind == "contact"}
    assert len(contacts) == 123
    acme = contacts[ACME]
    assert acme.name == "acme Test Co"
    assert acme.fields == {
        "is_customer": True,
        "is_supplier": False,
        "email_address": "person2@example.com",
        "tax_number": None,
        "currency": "KES",
        "status": "ACTIVE",
        "addresses": None,  # the recorded clients have none, nor phones
        "phone_numbers": None,
        "remote_updated_at": "2026-06-29T16:52:44+00:00",  # ``updated`` 12:52:44, US Eastern (EDT)
    }
    assert contacts["567595"].name == "Test Test"  # no organization: the person's name

    items = {r.name: r for r in references if r.kind == "item"}
    assert set(items) == {"Consulting Services", "Printed Manual", "Design Work"}
    assert items["Consulting Services"].remote_id == "1204501"
    assert items["Consulting Services"].fields == {
        "code": "CONS-HR",
        "description": "Senior consultant, per hour",
        "unit_price": Decimal("150.00"),
        "currency": "USD",
        "status": "ACTIVE",
        "tax1_name": "VAT",
        "tax1_percent": Decimal(16),
    }
    assert "tax1_name" not in items["Design Work"].fields


def test_items_are_still_listed_when_the_app_may_not_read_taxes(fake: FakeFreshBooks) -> None:
    def no_taxes(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403) if request.url.path.endswith("/taxes/taxes") else fake.handle(request)

    references = provider.list_references(connect(no_taxes, fake))
    items = [r for r in references if r.kind == "item"]
    assert len(items) == 3 and all("tax1_name" not in r.fields for r in items)


# --- endpoints ----------------------------------------------------------------------------


def test_api_and_token_urls_default_to_freshbooks_and_follow_the_environment(
    fake: FakeFreshBooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEDGERBRIDGE_FRESHBOOKS_API_URL", raising=False)
    monkeypatch.delenv("LEDGERBRIDGE_FRESHBOOKS_TOKEN_URL", raising=False)
    assert provider.oauth_token_url() == "https://api.freshbooks.com/auth/oauth/token"
    assert (provider.name, provider.oauth_client_auth) == ("freshbooks", "json")

    monkeypatch.setenv("LEDGERBRIDGE_FRESHBOOKS_API_URL", "http://127.0.0.1:8765/fb/")
    monkeypatch.setenv("LEDGERBRIDGE_FRESHBOOKS_TOKEN_URL", "http://127.0.0.1:8765/auth/oauth/token")
    seen: list[httpx.URL] = []

    def proxy(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        request.url = request.url.copy_with(path=request.url.path.removeprefix("/fb"))
        return fake.handle(request)

    create(connect(proxy, fake), outbound({**BODY, "status": "DRAFT"}))
    assert (
        str(seen[0])
        == f"http://127.0.0.1:8765/fb/accounting/account/{ACCOUNT_ID}/invoices/invoices?include%5B%5D=lines"
    )
    assert provider.oauth_token_url() == "http://127.0.0.1:8765/auth/oauth/token"
