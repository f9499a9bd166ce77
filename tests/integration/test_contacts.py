"""Creating contacts (contacts.create_contact, what POST /accounting/contacts calls), against moto.

The sandbox ledger throughout; QuickBooks and Xero over their fakes where their own behaviour
matters (idempotency keys, the resync keeping the created contact's id).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import httpx
import pytest

from ledgerbridge import admin, connections, contacts
from ledgerbridge.auth import Principal
from ledgerbridge.config import settings
from ledgerbridge.errors import ApiError
from ledgerbridge.ids import reference_id
from ledgerbridge.models import ContactInput, InvoiceInput
from ledgerbridge.service import create_invoice
from ledgerbridge.store import contacts as stored_contacts
from ledgerbridge.store import references
from tests.fakes import quickbooks, xero
from tests.integration.conftest import Api

NEW_CUSTOMER = {
    "name": "Umbrella Corp",
    "is_customer": True,
    "email_address": "ap@umbrella.example",
    "tax_number": "US-12-3456789",
    "currency": "usd",
    "addresses": [
        {"street_1": "1 Hive Way", "city": "Raccoon City", "postal_code": "12345", "country": "US"}
    ],
    "phone_numbers": [{"phone_number": "+1 555 0100", "phone_type": "WORK"}],
}


def sandbox(demo: dict[str, Any]) -> Principal:
    return Principal(demo["project_id"], demo["connection_id"], "sandbox")


def listed(principal: Principal) -> dict[str, dict[str, Any]]:
    records, _ = connections.list_references(principal, "contact", 100, None, include_remote_data=False)
    return {record["id"]: record for record in records}


def invoice_for(contact_id: str) -> InvoiceInput:
    return InvoiceInput.model_validate(
        {
            "contact_id": contact_id,
            "line_items": [{"description": "Vaccine", "unit_price": "10", "quantity": "2"}],
        }
    )


def test_a_created_contact_is_synced_listed_and_usable_on_an_invoice(demo: dict[str, Any]) -> None:
    principal = sandbox(demo)

    created = contacts.create_contact(principal, ContactInput.model_validate(NEW_CUSTOMER), True)

    contact = created.contact
    assert created.status == 201
    assert (contact.sync_status, contact.sync_error) == ("synced", None)
    assert contact.remote_id and contact.remote_id.startswith("CT-")
    assert (contact.name, contact.currency, contact.is_customer, contact.is_supplier) == (
        "Umbrella Corp",
        "USD",
        True,
        False,
    )
    assert contact.addresses[0].city == "Raccoon City"
    assert contact.remote_data["external_id"] == str(contact.id)
    body = contact.model_dump(mode="json")
    assert body["id"] == str(contact.id) and body["sync_status"] == "synced"
    assert listed(principal)[str(contact.id)]["remote_id"] == contact.remote_id

    invoice = create_invoice(principal, invoice_for(str(contact.id)), include_remote_data=True)

    assert invoice.status == 201
    assert invoice.invoice.remote_data["contact"] == contact.remote_id


def test_a_resync_keeps_the_created_contacts_id(demo: dict[str, Any]) -> None:
    principal = sandbox(demo)
    contact = contacts.create_contact(principal, ContactInput.model_validate(NEW_CUSTOMER), False).contact

    admin.sync_references(connection_id=demo["connection_id"])

    after = listed(principal)
    twin = reference_id(demo["connection_id"], "contact", contact.remote_id)
    assert twin not in after  # no UUIDv5 duplicate for the same remote id
    assert after[str(contact.id)]["remote_id"] == contact.remote_id
    assert after[str(contact.id)]["created_at"] == contact.model_dump(mode="json")["created_at"]
    assert len(after) == 4  # the sandbox's three and the new one


def test_the_ledger_refusing_stores_a_failed_contact_and_answers_422(demo: dict[str, Any]) -> None:
    principal = sandbox(demo)

    with pytest.raises(ApiError) as refused:
        contacts.create_contact(principal, ContactInput.model_validate({"name": "acme corporation"}), False)

    error = refused.value
    assert (error.status, error.error) == (422, "provider_rejected")
    assert "already exists" in error.message
    assert error.body()["contact_id"] == error.contact_id
    record = stored_contacts.get(demo["connection_id"], error.contact_id)
    assert record["sync_status"] == "failed" and "already exists" in record["sync_error"]
    with pytest.raises(ApiError) as invoice_refused:
        create_invoice(principal, invoice_for(error.contact_id), include_remote_data=False)
    assert invoice_refused.value.details[0].field == "contact_id"
    assert "refused by the ledger" in invoice_refused.value.details[0].reason


def test_an_invoice_naming_a_pending_contact_is_refused_naming_contact_id(demo: dict[str, Any]) -> None:
    principal = sandbox(demo)
    contact_id = "0196a3f2-0000-7000-8000-000000000001"
    stored_contacts.create_pending(
        demo["connection_id"], contact_id, "Waiting Ltd", {}, "2026-01-01T00:00:00Z"
    )

    with pytest.raises(ApiError) as refused:
        create_invoice(principal, invoice_for(contact_id), include_remote_data=False)

    assert refused.value.status == 422
    assert refused.value.details[0].field == "contact_id"
    assert "not yet created in the ledger" in refused.value.details[0].reason
    assert listed(principal)[contact_id]["sync_status"] == "pending"


def test_fields_the_ledger_cannot_hold_are_refused_before_anything_is_stored(demo: dict[str, Any]) -> None:
    principal = sandbox(demo)
    before = listed(principal)

    for body, field in (({"name": "X", "field_mappings": {"crm": "1"}}, "field_mappings"),
                        ({"name": "X", "company_info_id": "0196a3f2-0000-7000-8000-000000000002"},
                         "company_info_id")):  # fmt: skip
        with pytest.raises(ApiError) as refused:
            contacts.create_contact(principal, ContactInput.model_validate(body), False)
        assert (refused.value.status, refused.value.details[0].field) == (422, field)
        assert refused.value.contact_id is None

    assert listed(principal) == before


def test_an_unreachable_ledger_leaves_the_contact_pending(demo: dict[str, Any], monkeypatch: Any) -> None:
    from ledgerbridge.provider_types import ProviderUnavailable
    from ledgerbridge.store.sandbox_ledger import DynamoSandboxLedger

    def down(*args: Any) -> None:
        raise ProviderUnavailable("sandbox ledger unavailable")

    monkeypatch.setattr(DynamoSandboxLedger, "find_contact", down)
    created = contacts.create_contact(sandbox(demo), ContactInput.model_validate(NEW_CUSTOMER), False)

    assert (created.status, created.contact.sync_status, created.contact.remote_id) == (201, "pending", None)
    assert created.contact.sync_error == "sandbox ledger unavailable"


# --- ledgers over their fakes ----------------------------------------------------------------


def put_oauth_apps(apps: dict[str, Any]) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=settings().oauth_clients_secret, SecretString=json.dumps(apps)
    )


def connect(
    monkeypatch: Any, provider: str, fake: Any, app: dict[str, str], tokens: dict, options: dict
) -> Principal:
    client = httpx.Client(transport=httpx.MockTransport(fake.handle))
    monkeypatch.setattr("ledgerbridge.providers.http.shared_client", lambda: client)
    put_oauth_apps({provider: app})
    project = admin.create_project("P")["project_id"]
    created = admin.create_connection(project, provider, tokens, options)
    return Principal(project, created["connection_id"], provider, options)


@pytest.fixture
def quickbooks_connection(aws: Any, monkeypatch: Any) -> tuple[Principal, quickbooks.FakeQuickBooks]:
    fake = quickbooks.FakeQuickBooks()
    app = {"client_id": fake.client_id, "client_secret": fake.client_secret}
    tokens = {"access_token": "qb-access-0", "refresh_token": "qb-refresh-0", "expires_in": 3600}
    options = {"realm_id": quickbooks.REALM_ID, "default_item_id": "1"}
    return connect(monkeypatch, "quickbooks", fake, app, tokens, options), fake


@pytest.fixture
def xero_connection(aws: Any, monkeypatch: Any) -> tuple[Principal, xero.FakeXero]:
    fake = xero.FakeXero()
    app = {"client_id": xero.CLIENT_ID, "client_secret": xero.CLIENT_SECRET}
    tokens = {"access_token": "xero-access-0", "refresh_token": "xero-refresh-0", "expires_in": 1800}
    options = {"tenant_id": xero.TENANT_ID, "default_account_code": "200", "default_tax_type": "OUTPUT"}
    return connect(monkeypatch, "xero", fake, app, tokens, options), fake


def test_quickbooks_customer_then_invoice_then_resync(quickbooks_connection: Any) -> None:
    principal, fake = quickbooks_connection
    contact = contacts.create_contact(principal, ContactInput.model_validate(NEW_CUSTOMER), False).contact

    assert contact.sync_status == "synced"
    [customer] = [c for c in fake.lists["Customer"] if c["Id"] == contact.remote_id]
    assert customer["DisplayName"] == "Umbrella Corp"
    [request] = [r for r in fake.requests if r.url.path.endswith("/customer")]
    assert request.url.params["requestid"] == str(contact.id)
    invoice = create_invoice(principal, invoice_for(str(contact.id)), include_remote_data=True)
    assert invoice.invoice.remote_data["CustomerRef"]["value"] == contact.remote_id

    connections.sync_references(principal)

    found = references.get_many(principal.connection_id, [("contact", str(contact.id))])
    assert found[("contact", str(contact.id))]["remote_id"] == contact.remote_id
    twin = reference_id(principal.connection_id, "contact", contact.remote_id)
    assert references.get_many(principal.connection_id, [("contact", twin)]) == {}


def test_xero_contact_is_created_once_per_key_and_kept_by_the_resync(xero_connection: Any) -> None:
    principal, fake = xero_connection
    contact = contacts.create_contact(principal, ContactInput.model_validate(NEW_CUSTOMER), False).contact

    assert contact.sync_status == "synced"
    [request] = [r for r in fake.requests if r.url.path.endswith("/Contacts") and r.method == "PUT"]
    assert request.headers["idempotency-key"] == str(contact.id)
    assert contact.is_customer is True  # the caller's word: Xero sets its flags from transactions
    invoice = create_invoice(principal, invoice_for(str(contact.id)), include_remote_data=True)
    assert invoice.invoice.remote_data["Contact"]["ContactID"] == contact.remote_id

    connections.sync_references(principal)

    twin = reference_id(principal.connection_id, "contact", contact.remote_id)
    assert references.get_many(principal.connection_id, [("contact", twin)]) == {}
    assert listed(principal)[str(contact.id)]["remote_id"] == contact.remote_id


def test_ledgers_without_contact_creation_refuse_before_storing(aws: Any, monkeypatch: Any) -> None:
    project = admin.create_project("P")["project_id"]
    tokens = {"access_token": "a", "refresh_token": "r", "expires_in": 3600}
    created = admin.create_connection(project, "zoho_books", tokens, {"organization_id": "1"})
    principal = Principal(project, created["connection_id"], "zoho_books", {"organization_id": "1"})

    with pytest.raises(ApiError) as refused:
        contacts.create_contact(principal, ContactInput.model_validate(NEW_CUSTOMER), False)

    assert (refused.value.status, refused.value.error) == (422, "not_supported")
    assert refused.value.details[0].field == "provider" and "zoho_books" in refused.value.message
    assert listed(principal) == {}


# --- through the API handler ----------------------------------------------------------------


def test_post_contacts_creates_one_an_invoice_can_name_in_the_next_request(api: Api) -> None:
    key = {"Idempotency-Key": "new-customer-1"}
    answer = api.call("POST", "/accounting/contacts", body={"name": "Umbrella Corp", "is_customer": True},
                      headers=key)  # fmt: skip
    assert answer.status == 201, answer.text
    contact = answer.json
    assert (contact["sync_status"], contact["name"]) == ("synced", "Umbrella Corp")
    assert answer.headers["Location"] == f"/accounting/contacts/{contact['id']}"
    assert api.call("GET", answer.headers["Location"]).json["remote_id"] == contact["remote_id"]
    replay = api.call("POST", "/accounting/contacts", body={"name": "Umbrella Corp", "is_customer": True},
                      headers=key)  # fmt: skip
    assert (replay.json["id"], replay.headers.get("Idempotent-Replayed")) == (contact["id"], "true")
    invoice = api.create(
        {"contact_id": contact["id"], "line_items": [{"description": "Work", "total_amount": "10"}]},
        headers=key,  # the same key on another kind of record is another request
    )
    assert invoice.status == 201, invoice.text


def test_post_contacts_refuses_like_invoices(api: Api) -> None:
    assert api.call("POST", "/accounting/contacts", body={"name": "X"}, auth=False).status == 401
    bad = api.call("POST", "/accounting/contacts", body={"name": "X", "is_customer": "yes", "nick": 1})
    assert bad.status == 422
    assert {d["field"] for d in bad.json["details"]} == {"is_customer", "nick"}
    assert api.call("POST", "/accounting/contacts", raw="[]").status == 400


def test_a_refused_contact_keeps_its_idempotency_key_answer(api: Api) -> None:
    """Stored and refused: a retry with the key gets the same 422 and stores nothing new."""
    body, key = {"name": "Acme Corporation", "is_customer": True}, {"Idempotency-Key": "dup-name"}
    first = api.call("POST", "/accounting/contacts", body=body, headers=key)
    assert (first.status, first.json["error"]) == (422, "provider_rejected"), first.text
    again = api.call("POST", "/accounting/contacts", body=body, headers=key)
    assert (again.status, again.json, again.headers.get("Idempotent-Replayed")) == (422, first.json, "true")
    named = [c for c in api.call("GET", "/accounting/contacts").json["data"] if c["name"] == body["name"]]
    assert sorted(c["sync_status"] for c in named) == ["failed", "synced"]  # the directory's, and ours
