"""FreshBooks through the local stack: the fake FreshBooks on localhost, connected with the admin CLI.

The stack runs as `make run` does, with LEDGERBRIDGE_FRESHBOOKS_API_URL / _TOKEN_URL pointing
at the fake; the connection is made from a credentials file and its references synced, as an
operator would; invoices go in over HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from ledgerbridge import jsonutil
from tests.e2e.conftest import LocalStack, start_local_stack
from tests.e2e.support import Connected, admin, configure_oauth_apps, connect, create, create_contact, fetch
from tests.fakes import freshbooks
from tests.fakes.server import serve

pytestmark = pytest.mark.e2e


@dataclass
class FreshBooksStack:
    stack: LocalStack
    connected: Connected

    @property
    def fake(self) -> freshbooks.FakeFreshBooks:
        return self.connected.fake


@pytest.fixture(scope="module")
def fb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreshBooksStack]:
    fake = freshbooks.FakeFreshBooks()
    with ExitStack() as running:
        url = running.enter_context(serve(fake.handle))
        stack = running.enter_context(
            start_local_stack(
                {
                    "LEDGERBRIDGE_FRESHBOOKS_API_URL": url,
                    "LEDGERBRIDGE_FRESHBOOKS_TOKEN_URL": url + freshbooks.TOKEN_PATH,
                }
            )
        )
        app = {
            "client_id": freshbooks.CLIENT_ID,
            "client_secret": freshbooks.CLIENT_SECRET,
            "redirect_uri": freshbooks.REDIRECT_URI,  # FreshBooks wants it on every refresh
        }
        configure_oauth_apps(stack, {"freshbooks": app})
        tmp = tmp_path_factory.mktemp("credentials")
        project = admin(stack, "create-project", "--name", "FreshBooks E2E")
        key = admin(stack, "create-api-key", "--project", project["project_id"])
        connected = connect(stack, tmp, project, key, "freshbooks", fake,
                            {"access_token": "fb-access-0", "refresh_token": "fb-refresh-0"},
                            {"account_id": freshbooks.ACCOUNT_ID, "default_tax_name": "Levy",
                             "default_tax_percent": "2.5"})  # fmt: skip
        yield FreshBooksStack(stack, connected)


def unified_invoice(connected: Connected, **changes: Any) -> dict[str, Any]:
    """Contact, two lines (one with an item, one without), currency, dates (no memo: FreshBooks
    would print it, and no custom field: FreshBooks invoices have none; see the 422 test)."""
    body: dict[str, Any] = {
        "type": "ACCOUNTS_RECEIVABLE",
        "contact_id": connected.first("contacts", name="acme Test Co"),
        "issue_date": "2026-11-24",
        "due_date": "2026-12-24",
        "currency": "USD",
        "line_items": [
            {"description": "Onsite, week 47", "quantity": Decimal("2"), "unit_price": Decimal("150.25"),
             "item_id": connected.first("items", name="Consulting Services")},
            {"description": "Travel", "quantity": Decimal("1"), "unit_price": Decimal("0.1")},
        ],
    }  # fmt: skip
    return {**body, **changes}


def posts_for(fake: freshbooks.FakeFreshBooks, invoice_id: str) -> list[dict[str, Any]]:
    bodies = [fake.body_of(r)["invoice"] for r in fake.invoice_posts()]
    return [body for body in bodies if body.get("po_number") == invoice_id]


def test_references_are_the_accounts_clients_and_items(fb: FreshBooksStack) -> None:
    references = fb.connected.references
    assert {c["remote_id"] for c in references["contacts"]} == {"567521", "567593", "567595"}
    assert all(c["is_customer"] and not c["is_supplier"] for c in references["contacts"])
    assert {i["name"] for i in references["items"]} == {
        "Consulting Services",
        "Printed Manual",
        "Design Work",
    }
    assert references["trackingcategories"] == []


def test_a_full_invoice_creates_exactly_one_freshbooks_invoice_with_the_documented_body(
    fb: FreshBooksStack,
) -> None:
    before = len(fb.fake.created())
    response = create(fb.stack, fb.connected, unified_invoice(fb.connected))
    assert response.status_code == 201, response.text
    invoice = jsonutil.loads(response.text)

    created = fb.fake.created()
    assert len(created) == before + 1
    made = created[-1]
    assert invoice["remote_id"] == str(made["id"])
    assert invoice["sync_status"] == "synced"
    [sent] = posts_for(fb.fake, invoice["id"])
    assert sent == {
        "customerid": 567521,
        "create_date": "2026-11-24",
        "due_offset_days": 30,
        "currency_code": "USD",
        "po_number": invoice["id"],
        "lines": [
            {"type": 0, "name": "Consulting Services", "description": "Onsite, week 47", "qty": 2,
             "unit_cost": {"amount": "150.25", "code": "USD"}, "taxName1": "VAT", "taxAmount1": 16},
            {"type": 0, "name": "Travel", "qty": 1, "unit_cost": {"amount": "0.10", "code": "USD"},
             "taxName1": "Levy", "taxAmount1": Decimal("2.5")},
        ],
    }  # fmt: skip
    assert (made["v3_status"], made["due_date"]) == ("sent", "2026-12-24")  # marked sent, no email
    assert invoice["status"] == "OPEN" and invoice["number"] == made["invoice_number"]
    assert invoice["total_amount"] == Decimal(made["amount"]["amount"]) == Decimal("348.68")
    assert [line["remote_id"] for line in invoice["line_items"]] == ["1", "2"]
    assert invoice["remote_data"]["po_number"] == invoice["id"]


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        (
            {"field_mappings": {"project": "Apollo"}},
            "field_mappings.project",
            "FreshBooks invoices have no custom fields; only po_number is taken",
        ),
        ({"type": "ACCOUNTS_PAYABLE"}, "type", "not supported by FreshBooks"),
        (
            {"memo": "Slow payer: chase on day 3"},
            "memo",
            "FreshBooks invoices have no private memo: their notes are printed on the invoice the "
            "client receives. Leave memo out, or set the connection's memo_target=notes to print it there",
        ),
    ],
)
def test_what_freshbooks_cannot_hold_is_a_422_naming_the_field_before_anything_is_sent(
    fb: FreshBooksStack, changes: dict[str, Any], field: str, reason: str
) -> None:
    posts = len(fb.fake.invoice_posts())
    response = create(fb.stack, fb.connected, unified_invoice(fb.connected, **changes))
    assert response.status_code == 422
    assert response.json()["details"] == [{"field": field, "reason": reason}]
    assert len(fb.fake.invoice_posts()) == posts


def test_without_issue_date_freshbooks_gets_the_day_received_and_the_callers_po_number(
    fb: FreshBooksStack,
) -> None:
    body = unified_invoice(fb.connected, field_mappings={"po_number": "PO-7731"})
    del body["issue_date"], body["due_date"]
    response = create(fb.stack, fb.connected, body)
    assert response.status_code == 201, response.text
    invoice = response.json()
    made = next(r for r in fb.fake.created() if str(r["id"]) == invoice["remote_id"])
    received = datetime.fromtimestamp((UUID(invoice["id"]).int >> 80) / 1000, UTC)  # UUIDv7 time
    assert made["create_date"] == received.date().isoformat()  # the connection's time_zone: UTC
    assert made["po_number"] == "PO-7731" and invoice["id"] not in jsonutil.dumps(made)


def test_an_expired_token_is_refreshed_once_and_the_new_refresh_token_kept(fb: FreshBooksStack) -> None:
    def refresh_tokens_sent() -> list[str]:
        return [
            fb.fake.body_of(r)["refresh_token"]
            for r in fb.fake.requests
            if r.url.path == freshbooks.TOKEN_PATH
        ]

    before = refresh_tokens_sent()
    fb.fake.expire_access_tokens()
    for _ in range(2):
        response = create(fb.stack, fb.connected, unified_invoice(fb.connected))
        assert response.status_code == 201, response.text
    assert len(refresh_tokens_sent()) == len(before) + 1
    # FreshBooks refresh tokens are single use: the next refresh must present the new one.
    fb.fake.expire_access_tokens()
    response = create(fb.stack, fb.connected, unified_invoice(fb.connected))
    assert response.status_code == 201, response.text
    first, second = refresh_tokens_sent()[len(before) :]
    assert first == fb.fake.retired_refresh_tokens[-2] and second == fb.fake.retired_refresh_tokens[-1]
    assert second != first


def test_a_429_with_retry_after_is_waited_out(fb: FreshBooksStack) -> None:
    before = len(fb.fake.created())
    fb.fake.fail_next(429, {"Retry-After": "1"})
    started = time.monotonic()
    response = create(fb.stack, fb.connected, unified_invoice(fb.connected))
    assert response.status_code == 201, response.text
    assert time.monotonic() - started >= 1.0
    assert len(fb.fake.created()) == before + 1
    assert len(posts_for(fb.fake, response.json()["id"])) == 2  # the refused attempt and the retry


def test_a_freshbooks_validation_error_is_a_422_with_its_message_and_a_failed_record(
    fb: FreshBooksStack,
) -> None:
    before = len(fb.fake.created())
    body = unified_invoice(fb.connected, number="0000008")  # the recorded invoice's number
    response = create(fb.stack, fb.connected, body)
    assert response.status_code == 422
    error = response.json()
    assert error["error"] == "provider_rejected"
    assert "Invoice number 0000008 is already in use." in error["message"]
    stored = fetch(fb.stack, fb.connected, error["invoice_id"])
    assert (stored["sync_status"], stored["remote_id"]) == ("failed", None)
    assert "Invoice number 0000008 is already in use." in stored["sync_error"]
    assert len(fb.fake.created()) == before


# --- contacts -----------------------------------------------------------------------------


NEW_CUSTOMER = {
    "name": "Umbrella Corp",
    "is_customer": True,
    "email_address": "billing@umbrella.example",
    "currency": "USD",
    "addresses": [{"street_1": "1 Main St", "city": "Toronto", "country": "Canada"}],
    "phone_numbers": [{"phone_number": "+1 416 555 0100", "phone_type": "WORK"}],
}


def test_a_new_customer_is_created_once_and_the_next_invoice_can_name_it(fb: FreshBooksStack) -> None:
    before = len(fb.fake.created_clients())
    response = create_contact(fb.stack, fb.connected, NEW_CUSTOMER, {"Idempotency-Key": "fb-new-customer-1"})
    assert response.status_code == 201, response.text
    contact = response.json()

    created = fb.fake.created_clients()
    assert len(created) == before + 1
    client = created[-1]
    assert (contact["sync_status"], contact["remote_id"]) == ("synced", str(client["id"]))
    assert (client["organization"], client["email"], client["p_city"]) == (
        "Umbrella Corp", "billing@umbrella.example", "Toronto"
    )  # fmt: skip
    assert client["note"] == f"Ledgerbridge contact {contact['id']}"  # private: what a resend looks for
    assert contact["is_customer"] is True and contact["is_supplier"] is False
    assert contact["addresses"][0]["city"] == "Toronto"

    invoices = len(fb.fake.created())
    answer = create(fb.stack, fb.connected, unified_invoice(fb.connected, contact_id=contact["id"]))
    assert answer.status_code == 201, answer.text
    assert len(fb.fake.created()) == invoices + 1
    made = fb.fake.created()[-1]
    assert made["customerid"] == client["id"] and answer.json()["remote_id"] == str(made["id"])


def test_a_contact_resent_with_the_same_idempotency_key_creates_nothing_new(fb: FreshBooksStack) -> None:
    first = create_contact(
        fb.stack, fb.connected, {**NEW_CUSTOMER, "name": "Initech"}, {"Idempotency-Key": "fb-new-customer-2"}
    )
    assert first.status_code == 201, first.text
    posts = len(fb.fake.client_posts())

    again = create_contact(
        fb.stack, fb.connected, {**NEW_CUSTOMER, "name": "Initech"}, {"Idempotency-Key": "fb-new-customer-2"}
    )

    assert again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["remote_id"] == first.json()["remote_id"]
    assert len(fb.fake.client_posts()) == posts
    assert [c["organization"] for c in fb.fake.created_clients()].count("Initech") == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"is_supplier": True}, "is_supplier"),
        ({"field_mappings": {"region": "EMEA"}}, "field_mappings.region"),
        ({"addresses": [{"city": "Toronto"}, {"city": "Ottawa", "address_type": "BILLING"}]}, "addresses.1"),
        ({"phone_numbers": [{"phone_type": "MOBILE"}]}, "phone_numbers.0.phone_number"),
    ],
)
def test_a_contact_field_freshbooks_cannot_hold_is_a_422_naming_it_with_nothing_sent(
    fb: FreshBooksStack, changes: dict[str, Any], field: str
) -> None:
    posts = len(fb.fake.client_posts())
    response = create_contact(
        fb.stack, fb.connected, {**NEW_CUSTOMER, **changes}, {"Idempotency-Key": f"fb-refused-{field}"}
    )
    assert response.status_code == 422, response.text
    assert [detail["field"] for detail in response.json()["details"]] == [field]
    assert len(fb.fake.client_posts()) == posts
