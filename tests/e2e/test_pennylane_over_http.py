"""Pennylane through the local stack: the fake Pennylane on localhost, invoices in over HTTP.

The stack runs as `make run` does, with LEDGERBRIDGE_PENNYLANE_API_URL / _TOKEN_URL pointing
at the fake; the connection is made with the admin CLI from a credentials file and its
references synced, as an operator would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from ledgerbridge import jsonutil
from tests.e2e.conftest import LocalStack, start_local_stack
from tests.e2e.support import Connected, admin, configure_oauth_apps, connect, create, create_contact, fetch
from tests.fakes import pennylane
from tests.fakes.server import serve

pytestmark = pytest.mark.e2e

ISSUED, DUE = "2026-11-24", "2026-12-24"  # every finalised invoice here shares this date


@dataclass
class PennylaneStack:
    stack: LocalStack
    connected: Connected

    @property
    def fake(self) -> pennylane.FakePennylane:
        return self.connected.fake


@pytest.fixture(scope="module")
def pl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PennylaneStack]:
    fake = pennylane.FakePennylane()
    with ExitStack() as running:
        url = running.enter_context(serve(fake.handle))
        stack = running.enter_context(
            start_local_stack(
                {
                    "LEDGERBRIDGE_PENNYLANE_API_URL": url,
                    "LEDGERBRIDGE_PENNYLANE_TOKEN_URL": url + pennylane.TOKEN_PATH,
                }
            )
        )
        configure_oauth_apps(
            stack, {"pennylane": {"client_id": pennylane.CLIENT_ID, "client_secret": pennylane.CLIENT_SECRET}}
        )
        tmp = tmp_path_factory.mktemp("credentials")
        project = admin(stack, "create-project", "--name", "Pennylane E2E")
        key = admin(stack, "create-api-key", "--project", project["project_id"])
        connected = connect(stack, tmp, project, key, "pennylane", fake,
                            {"access_token": "pl-access-0", "refresh_token": "pl-refresh-0"},
                            {"default_vat_rate": "FR_200", "default_unit": "piece"})  # fmt: skip
        yield PennylaneStack(stack, connected)


def full_invoice(connected: Connected, **changes: Any) -> dict[str, Any]:
    """Contact, two lines (one with a product, one without), currency, dates, memo."""
    body: dict[str, Any] = {
        "contact_id": connected.first("contacts", name="Acme Corp Test"),
        "issue_date": ISSUED,
        "due_date": DUE,
        "memo": "November retainer",
        "currency": "EUR",
        "line_items": [
            {"description": "Consulting", "quantity": Decimal("2"), "unit_price": Decimal("150.25"),
             "item_id": connected.first("items", name="Consulting Services")},
            {"description": "Travel", "quantity": Decimal("1"), "unit_price": Decimal("0.1")},
        ],
    }  # fmt: skip
    return {**body, **changes}


def test_references_are_synced_from_pennylane(pl: PennylaneStack) -> None:
    contacts = pl.connected.references["contacts"]
    assert {c["name"] for c in contacts} >= {"Acme Corp Test", "Globex Industries", "Temp Customer"}
    assert all(c["is_customer"] and not c["is_supplier"] for c in contacts)
    [item] = pl.connected.references["items"]
    assert (item["remote_id"], item["unit_price"]) == ("87538491392", Decimal("500.0"))
    assert pl.connected.references["trackingcategories"] == []  # Pennylane tracking is not supported


def test_a_full_invoice_creates_exactly_one_pennylane_invoice_with_the_documented_body(
    pl: PennylaneStack,
) -> None:
    before = len(pl.fake.created())
    response = create(pl.stack, pl.connected, full_invoice(pl.connected))
    assert response.status_code == 201, response.text
    invoice = jsonutil.loads(response.text)
    created = pl.fake.created()
    assert len(created) == before + 1
    record = created[-1]
    assert invoice["remote_id"] == str(record["id"]) and invoice["sync_status"] == "synced"
    [post] = [
        r for r in pl.fake.invoice_requests() if pl.fake.body_of(r)["external_reference"] == invoice["id"]
    ]
    assert pl.fake.body_of(post) == {
        "customer_id": 1338468995072,
        "date": ISSUED,
        "deadline": DUE,
        "draft": False,
        "external_reference": invoice["id"],
        "currency": "EUR",
        "label": "November retainer",  # the memo: the ledger entries' label, not printed on the PDF
        "invoice_lines": [
            {"product_id": 87538491392, "quantity": 2, "raw_currency_unit_price": "150.25",
             "description": "Consulting"},
            {"label": "Travel", "quantity": 1, "raw_currency_unit_price": "0.1", "unit": "piece",
             "vat_rate": "FR_200"},
        ],
    }  # fmt: skip
    assert invoice["number"] == record["invoice_number"] and invoice["status"] == "OPEN"
    assert invoice["total_amount"] == Decimal(record["currency_amount"]) == Decimal("360.72")
    line_ids = [str(line["id"]) for line in pl.fake.invoice_lines[record["id"]]]
    assert [line["remote_id"] for line in invoice["line_items"]] == line_ids
    assert invoice["remote_data"]["external_reference"] == invoice["id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "ACCOUNTS_PAYABLE"}, "type"),
        ({"field_mappings": {"po_number": "PO-7731"}}, "field_mappings"),
    ],
)
def test_an_unsupported_feature_is_a_clear_422_before_anything_is_sent(
    pl: PennylaneStack, change: dict[str, Any], field: str
) -> None:
    before = len(pl.fake.invoice_requests())
    response = create(pl.stack, pl.connected, full_invoice(pl.connected, **change))
    assert response.status_code == 422, response.text
    [detail] = response.json()["details"]
    assert detail["field"] == field and "not supported" in detail["reason"]
    assert len(pl.fake.invoice_requests()) == before


def test_an_expired_token_is_refreshed_once_and_the_rotated_pair_kept(pl: PennylaneStack) -> None:
    pl.fake.expire_access_tokens()
    refreshes = sum(r.url.path == pennylane.TOKEN_PATH for r in pl.fake.requests)
    for _ in range(2):  # the second create uses the stored new pair: no second refresh
        response = create(pl.stack, pl.connected, full_invoice(pl.connected))
        assert response.status_code == 201, response.text
    assert sum(r.url.path == pennylane.TOKEN_PATH for r in pl.fake.requests) == refreshes + 1
    assert (pl.fake.retired_refresh_tokens, pl.fake.refresh_token) == (["pl-refresh-0"], "pl-refresh-1")


def test_a_429_with_retry_after_is_waited_out(pl: PennylaneStack) -> None:
    before = len(pl.fake.created())
    pl.fake.fail_next(429, {"Retry-After": "1"})
    started = time.monotonic()
    response = create(pl.stack, pl.connected, full_invoice(pl.connected))
    assert response.status_code == 201, response.text
    assert time.monotonic() - started >= 1.0
    assert len(pl.fake.created()) == before + 1


def test_a_lost_response_is_answered_with_the_invoice_pennylane_made(pl: PennylaneStack) -> None:
    before = len(pl.fake.created())
    pl.fake.timeout_next(after_processing=True)  # made, then the connection drops before the answer
    response = create(pl.stack, pl.connected, full_invoice(pl.connected))
    assert response.status_code == 201, response.text
    created = pl.fake.created()
    assert len(created) == before + 1
    assert response.json()["remote_id"] == str(created[-1]["id"])


def test_a_pennylane_validation_error_is_422_with_its_message_and_a_failed_record(pl: PennylaneStack) -> None:
    before = len(pl.fake.created())
    body = full_invoice(pl.connected, issue_date="2026-11-01", due_date="2026-11-30")  # before ISSUED
    response = create(pl.stack, pl.connected, body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error"] == "provider_rejected"
    assert "Date cannot be before latest finalized invoice." in error["message"]
    stored = fetch(pl.stack, pl.connected, error["invoice_id"])
    assert (stored["sync_status"], stored["remote_id"]) == ("failed", None)
    assert "Date cannot be before latest finalized invoice." in stored["sync_error"]
    assert len(pl.fake.created()) == before


# --- contacts -----------------------------------------------------------------------------

NEW_CUSTOMER = {
    "name": "Umbrella SAS",
    "is_customer": True,
    "email_address": "compta@umbrella.example",
    "tax_number": "FR12345678901",
    "addresses": [{"street_1": "8 rue de la Paix", "postal_code": "75002", "city": "Paris", "country": "FR"}],
    "phone_numbers": [{"phone_number": "+33 1 23 45 67 89", "phone_type": "WORK"}],
}


def customers_named(fake: pennylane.FakePennylane, name: str) -> list[dict[str, Any]]:
    return [customer for customer in fake.customers if customer["name"] == name]


def test_a_new_customer_is_created_once_and_the_next_invoice_can_name_it(pl: PennylaneStack) -> None:
    posts = len(pl.fake.customer_requests())
    response = create_contact(pl.stack, pl.connected, NEW_CUSTOMER, {"Idempotency-Key": "pl-new-customer-1"})
    assert response.status_code == 201, response.text
    contact = response.json()

    [customer] = customers_named(pl.fake, "Umbrella SAS")
    assert len(pl.fake.customer_requests()) == posts + 1
    assert (contact["sync_status"], contact["remote_id"]) == ("synced", str(customer["id"]))
    assert customer["external_reference"] == contact["id"]  # what find_contact looks it up by
    assert (customer["customer_type"], customer["emails"], customer["vat_number"], customer["phone"]) == (
        "company", ["compta@umbrella.example"], "FR12345678901", "+33 1 23 45 67 89"
    )  # fmt: skip
    assert customer["billing_address"] == {
        "address": "8 rue de la Paix", "postal_code": "75002", "city": "Paris", "country_alpha2": "FR"
    }  # fmt: skip
    assert (contact["is_customer"], contact["is_supplier"]) == (True, False)
    assert contact["addresses"][0]["city"] == "Paris" and contact["remote_data"]["id"] == customer["id"]

    invoices = len(pl.fake.created())
    answer = create(pl.stack, pl.connected, full_invoice(pl.connected, contact_id=contact["id"]))
    assert answer.status_code == 201, answer.text
    assert len(pl.fake.created()) == invoices + 1
    made = pl.fake.created()[-1]
    assert made["customer"]["id"] == customer["id"] and answer.json()["remote_id"] == str(made["id"])


def test_a_contact_resent_with_the_same_idempotency_key_creates_nothing_new(pl: PennylaneStack) -> None:
    body = {**NEW_CUSTOMER, "name": "Initech SARL"}
    first = create_contact(pl.stack, pl.connected, body, {"Idempotency-Key": "pl-new-customer-2"})
    assert first.status_code == 201, first.text
    posts = len(pl.fake.customer_requests())

    again = create_contact(pl.stack, pl.connected, body, {"Idempotency-Key": "pl-new-customer-2"})

    assert again.status_code == 201, again.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert (again.json()["id"], again.json()["remote_id"]) == (first.json()["id"], first.json()["remote_id"])
    assert len(pl.fake.customer_requests()) == posts
    assert len(customers_named(pl.fake, "Initech SARL")) == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"is_supplier": True}, "is_supplier"),
        ({"currency": "EUR"}, "currency"),
        ({"field_mappings": {"region": "EMEA"}}, "field_mappings.region"),
        ({"addresses": [{"street_1": "8 rue de la Paix", "postal_code": "75002", "city": "Paris",
                         "country": "France"}]}, "addresses.0.country"),
        ({"phone_numbers": [{"phone_number": "06 12 34 56 78", "phone_type": "MOBILE"}]},
         "phone_numbers.0.phone_type"),
    ],
)  # fmt: skip
def test_a_contact_field_pennylane_cannot_hold_is_422_naming_it_with_nothing_sent(
    pl: PennylaneStack, changes: dict[str, Any], field: str
) -> None:
    name = f"Refused {field}"
    before = len(pl.fake.requests)
    response = create_contact(
        pl.stack,
        pl.connected,
        {**NEW_CUSTOMER, **changes, "name": name},
        {"Idempotency-Key": f"pl-refused-{field}"},
    )
    assert response.status_code == 422, response.text
    assert [detail["field"] for detail in response.json()["details"]] == [field]
    assert len(pl.fake.requests) == before and customers_named(pl.fake, name) == []
