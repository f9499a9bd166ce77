"""Zoho Books through the local stack: the fake Zoho Books on localhost, as `make run` would use it.

The stack runs with LEDGERBRIDGE_ZOHO_BOOKS_API_URL / _TOKEN_URL pointing at the fake (they
replace the data centre's hosts); the connection is made with the admin CLI from a credentials
file, as an operator would, and its references synced; invoices go in over HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from ledgerbridge import jsonutil
from tests.e2e.conftest import LocalStack, start_local_stack
from tests.e2e.support import Connected, admin, configure_oauth_apps, connect, create, create_contact, fetch
from tests.fakes import zoho_books
from tests.fakes.server import serve

pytestmark = pytest.mark.e2e

EXPENSE_ACCOUNT = "260815000000000400"  # Office Supplies
CONSULTING = "260815000000101002"  # a sales item in the recording


@dataclass
class ZohoStack:
    stack: LocalStack
    zoho: Connected


@pytest.fixture(scope="module")
def zoho(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZohoStack]:
    fake = zoho_books.FakeZohoBooks()
    with serve(fake.handle) as url:
        overrides = {
            "LEDGERBRIDGE_ZOHO_BOOKS_API_URL": url,
            "LEDGERBRIDGE_ZOHO_BOOKS_TOKEN_URL": url + zoho_books.TOKEN_PATH,
        }
        with start_local_stack(overrides) as stack:
            configure_oauth_apps(
                stack,
                {
                    "zoho_books": {
                        "client_id": zoho_books.CLIENT_ID,
                        "client_secret": zoho_books.CLIENT_SECRET,
                    }
                },
            )
            project = admin(stack, "create-project", "--name", "Zoho Books E2E")
            key = admin(stack, "create-api-key", "--project", project["project_id"])
            tokens = {"access_token": "zoho-access-0", "refresh_token": "zoho-refresh-0"}
            settings = {
                "organization_id": zoho_books.ORGANIZATION_ID,
                "data_center": "eu",  # the URL overrides replace the EU hosts
                "default_bill_account_id": EXPENSE_ACCOUNT,
                "custom_field.po_number": zoho_books.PO_NUMBER_FIELD,
            }
            credentials = tmp_path_factory.mktemp("credentials")
            connected = connect(stack, credentials, project, key, "zoho_books", fake, tokens, settings)
            yield ZohoStack(stack, connected)


def unified_invoice(connected: Connected, *, payable: bool) -> dict[str, Any]:
    """Contact, two lines (one with an item, one without), currency, dates, memo, custom field."""
    contact = (
        connected.first("contacts", is_supplier=True)
        if payable
        else connected.first("contacts", is_customer=True)
    )
    body: dict[str, Any] = {
        "type": "ACCOUNTS_PAYABLE" if payable else "ACCOUNTS_RECEIVABLE",
        "contact_id": contact,
        "issue_date": "2026-11-24",
        "due_date": "2026-12-24",
        "memo": "November retainer",
        "currency": "USD",
        "exchange_rate": "1",
        "line_items": [
            {"description": "Consulting", "quantity": Decimal("2"), "unit_price": Decimal("150.25"),
             "item_id": connected.first("items", remote_id=CONSULTING)},
            {"description": "Travel", "quantity": Decimal("1"), "unit_price": Decimal("0.1")},
        ],
        "field_mappings": {"po_number": "PO-7731"},
    }  # fmt: skip
    if payable:
        body["number"] = "SUP-7781"
    return body


def created(connected: Connected, resource: str) -> list[dict[str, Any]]:
    return connected.fake.created(resource)


@pytest.mark.parametrize(("payable", "resource"), [(False, "invoices"), (True, "bills")])
def test_zoho_creates_exactly_one_document_with_the_documented_body(
    zoho: ZohoStack, payable: bool, resource: str
) -> None:
    connected = zoho.zoho
    before = len(created(connected, resource))
    response = create(zoho.stack, connected, unified_invoice(connected, payable=payable))
    assert response.status_code == 201, response.text
    invoice = jsonutil.loads(response.text)
    documents = created(connected, resource)
    assert len(documents) == before + 1
    document = documents[-1]
    assert invoice["remote_id"] == document["bill_id" if payable else "invoice_id"]
    assert document["reference_number"] == invoice["id"]
    assert invoice["sync_status"] == "synced"
    assert invoice["remote_data"] == jsonutil.loads(jsonutil.dumps(document))

    [post] = [
        r
        for r in connected.fake.posts(resource)
        if connected.fake.body_of(r)["reference_number"] == invoice["id"]
    ]
    assert post.url.params["organization_id"] == zoho_books.ORGANIZATION_ID
    sent = connected.fake.body_of(post)
    assert (
        sent[("vendor_id" if payable else "customer_id")]
        == document["vendor_id" if payable else "customer_id"]
    )
    assert (sent["date"], sent["due_date"]) == ("2026-11-24", "2026-12-24")
    # The internal memo is a comment nobody outside the organisation sees, never the printed notes.
    assert "notes" not in sent
    assert [c["description"] for c in connected.fake.user_comments(invoice["remote_id"])] == [
        "November retainer"
    ]
    assert (
        sent["exchange_rate"] == 1 and "currency_id" not in sent
    )  # the contact's currency, checked not sent
    first, second = sent["line_items"]
    assert first["item_id"] == CONSULTING and (first["rate"], first["quantity"]) == (Decimal("150.25"), 2)
    assert second == {"name": "Travel", "rate": Decimal("0.1"), "quantity": 1,
                      **({"account_id": EXPENSE_ACCOUNT} if payable else {})}  # fmt: skip
    if payable:
        assert first["account_id"] == EXPENSE_ACCOUNT  # the item has no purchase account
    assert sent["custom_fields"] == [{"customfield_id": zoho_books.PO_NUMBER_FIELD, "value": "PO-7731"}]
    assert invoice["status"] == "OPEN" and document["status"] == ("open" if payable else "sent")
    assert invoice["total_amount"] == Decimal("300.60")


def test_an_unsupported_feature_is_a_clear_422_naming_the_field(zoho: ZohoStack) -> None:
    connected = zoho.zoho
    requests = len(connected.fake.requests)
    body = {**unified_invoice(connected, payable=False), "status": "PAID", "paid_on_date": "2026-11-30"}
    response = create(zoho.stack, connected, body)
    assert response.status_code == 422, response.text
    assert response.json()["details"] == [
        {"field": "status", "reason": "PAID is not supported: Zoho Books records payments separately: "
                                      "create the invoice OPEN"},
        {"field": "paid_on_date", "reason": "Zoho Books records payments separately; not supported"},
    ]  # fmt: skip
    assert len(connected.fake.requests) == requests  # nothing was sent


def test_an_expired_token_is_refreshed_once_and_the_refresh_token_kept(zoho: ZohoStack) -> None:
    connected = zoho.zoho
    connected.fake.expire_access_tokens()
    before = [r for r in connected.fake.requests if r.url.path == zoho_books.TOKEN_PATH]
    for _ in range(2):
        response = create(zoho.stack, connected, unified_invoice(connected, payable=False))
        assert response.status_code == 201, response.text
    refreshes = [r for r in connected.fake.requests if r.url.path == zoho_books.TOKEN_PATH][len(before) :]
    assert len(refreshes) == 1
    form = dict(p.split("=", 1) for p in refreshes[0].content.decode().split("&"))
    assert (form["client_id"], form["refresh_token"]) == (zoho_books.CLIENT_ID, "zoho-refresh-0")
    assert "authorization" not in refreshes[0].headers


def test_a_429_with_retry_after_is_waited_out(zoho: ZohoStack) -> None:
    connected = zoho.zoho
    before = len(created(connected, "invoices"))
    connected.fake.fail_next(429, {"Retry-After": "1"}, body={"code": 44, "message": "Too many requests."})
    started = time.monotonic()
    response = create(zoho.stack, connected, unified_invoice(connected, payable=False))
    assert response.status_code == 201, response.text
    assert time.monotonic() - started >= 1.0
    assert len(created(connected, "invoices")) == before + 1


def test_a_lost_answer_still_leaves_one_invoice_at_zoho(zoho: ZohoStack) -> None:
    connected = zoho.zoho
    before = len(created(connected, "invoices"))
    connected.fake.timeout_next(after_processing=True)  # Zoho made it; the connection drops unanswered
    response = create(zoho.stack, connected, unified_invoice(connected, payable=False))
    assert response.status_code == 201, response.text
    invoice = jsonutil.loads(response.text)
    mine = [d for d in created(connected, "invoices") if d["reference_number"] == invoice["id"]]
    assert [d["invoice_id"] for d in mine] == [invoice["remote_id"]]
    assert len(created(connected, "invoices")) == before + 1


def test_a_zoho_validation_error_is_422_with_its_message_and_a_failed_record(zoho: ZohoStack) -> None:
    connected = zoho.zoho
    body = {**unified_invoice(connected, payable=False), "number": "E2E-ZOHO-DUP"}
    assert create(zoho.stack, connected, body).status_code == 201
    response = create(zoho.stack, connected, body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert "Invoice number E2E-ZOHO-DUP already exists" in error["message"]
    stored = fetch(zoho.stack, connected, error["invoice_id"])
    assert (stored["sync_status"], stored["remote_id"]) == ("failed", None)
    assert "already exists" in stored["sync_error"]


# --- contacts -----------------------------------------------------------------------------


NEW_CUSTOMER = {
    "name": "Umbrella Corp",
    "is_customer": True,
    "email_address": "billing@umbrella.example",
    "currency": "USD",
    "addresses": [{"street_1": "1 Main St", "city": "Boston", "country": "USA"}],
    "phone_numbers": [{"phone_number": "+1 617 555 0100", "phone_type": "WORK"}],
}


def test_a_new_customer_is_created_once_and_the_next_invoice_can_name_it(zoho: ZohoStack) -> None:
    fake = zoho.zoho.fake
    before = len(fake.created_contacts())
    response = create_contact(zoho.stack, zoho.zoho, NEW_CUSTOMER, {"Idempotency-Key": "zoho-new-customer-1"})
    assert response.status_code == 201, response.text
    contact = response.json()
    created = fake.created_contacts()
    assert len(created) == before + 1
    record = created[-1]
    assert (contact["sync_status"], contact["remote_id"]) == ("synced", record["contact_id"])
    assert record["contact_type"] == "customer" and record["notes"] == f"Ledgerbridge contact {contact['id']}"
    assert record["contact_persons"][0]["email"] == "billing@umbrella.example"
    assert record["billing_address"]["address"] == "1 Main St"

    body = {**unified_invoice(zoho.zoho, payable=False), "contact_id": contact["id"]}
    invoice = create(zoho.stack, zoho.zoho, body)
    assert invoice.status_code == 201, invoice.text
    document = fake.documents["invoices"][invoice.json()["remote_id"]]
    assert document["customer_id"] == record["contact_id"]


def test_a_resend_with_the_same_idempotency_key_creates_nothing_new(zoho: ZohoStack) -> None:
    fake = zoho.zoho.fake
    body = {**NEW_CUSTOMER, "name": "Resent Corp"}
    first = create_contact(zoho.stack, zoho.zoho, body, {"Idempotency-Key": "zoho-resent-customer"})
    assert first.status_code == 201, first.text
    count, posts = len(fake.created_contacts()), len(fake.posts("contacts"))
    again = create_contact(zoho.stack, zoho.zoho, body, {"Idempotency-Key": "zoho-resent-customer"})
    assert again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"]
    assert (len(fake.created_contacts()), len(fake.posts("contacts"))) == (count, posts)


def test_a_field_zoho_cannot_hold_is_a_422_naming_it_with_nothing_sent(zoho: ZohoStack) -> None:
    fake = zoho.zoho.fake
    requests = len(fake.requests)
    body = {**NEW_CUSTOMER, "name": "Both Ways Ltd", "is_supplier": True, "field_mappings": {"foo": "x"}}
    response = create_contact(zoho.stack, zoho.zoho, body, {"Idempotency-Key": "zoho-both-ways"})
    assert response.status_code == 422, response.text
    fields = [detail["field"] for detail in response.json()["details"]]
    assert fields == ["is_supplier", "field_mappings.foo"]
    assert len(fake.requests) == requests
