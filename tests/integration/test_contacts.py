"""Creating contacts (contacts.create_contact, what POST /accounting/contacts calls), against moto.

The sandbox ledger throughout; QuickBooks and Xero over their fakes where their own behaviour
matters (idempotency keys, the resync keeping the created contact's id). Contacts the ledger
did not take at once go through the retry queue and the retry function (functions/retry),
as invoices do.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import boto3
import httpx
import pytest

from ledgerbridge import admin, connections, contacts, retries
from ledgerbridge.auth import Principal
from ledgerbridge.config import settings
from ledgerbridge.errors import ApiError
from ledgerbridge.ids import reference_id
from ledgerbridge.models import ContactInput, InvoiceInput
from ledgerbridge.provider_types import ProviderUnavailable
from ledgerbridge.providers.base import ConnectionContext, OutboundContact, RemoteReference
from ledgerbridge.service import create_invoice
from ledgerbridge.store import contacts as stored_contacts
from ledgerbridge.store import references
from ledgerbridge.store.sandbox_ledger import DynamoSandboxLedger
from tests.fakes import quickbooks, xero
from tests.integration.conftest import Api
from tests.integration.test_retries import load, receive, sqs_event

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
    assert "did not reach the ledger" in invoice_refused.value.details[0].reason


def test_an_invoice_naming_a_pending_contact_is_refused_naming_contact_id(demo: dict[str, Any]) -> None:
    principal = sandbox(demo)
    contact_id = "0196a3f2-0000-7000-8000-000000000001"
    stored_contacts.create_pending(
        demo["project_id"], demo["connection_id"], contact_id, "Waiting Ltd", {}, "2026-01-01T00:00:00Z"
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


def sandbox_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox ledger unreachable for contacts: its first read for a send fails."""

    def down(*args: Any) -> None:
        raise ProviderUnavailable("sandbox ledger unavailable")

    monkeypatch.setattr(DynamoSandboxLedger, "find_contact", down)


def create_while_down(principal: Principal, body: dict[str, Any]) -> str:
    """Create a contact while the sandbox is down; the id of the stored, pending contact."""
    with pytest.MonkeyPatch.context() as down:
        sandbox_down(down)
        created = contacts.create_contact(principal, ContactInput.model_validate(body), False)
    assert (created.status, created.contact.sync_status) == (201, "pending")
    return str(created.contact.id)


def run_retries(lambda_context: Any, receive_count: int = 1) -> dict[str, Any]:
    """Hand what is on the retry queue to the retry function, as the SQS event source would."""
    event = sqs_event(receive())
    for record in event["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    return load("retry").handler(event, lambda_context)


def sandbox_contacts(demo: dict[str, Any]) -> list[dict[str, Any]]:
    """The contacts the sandbox ledger itself holds (created through Ledgerbridge)."""
    return DynamoSandboxLedger().contacts(demo["connection_id"])


def test_an_unreachable_ledger_leaves_the_contact_pending_and_queues_it(demo: dict[str, Any]) -> None:
    contact_id = create_while_down(sandbox(demo), NEW_CUSTOMER)

    stored = stored_contacts.get(demo["connection_id"], contact_id)
    assert (stored["sync_status"], stored.get("remote_id")) == ("pending", None)
    assert stored["sync_error"] == "sandbox ledger unavailable"
    [message] = receive()
    assert json.loads(message["Body"]) == {
        "kind": "contact",
        "project_id": demo["project_id"],
        "connection_id": demo["connection_id"],
        "contact_id": contact_id,
    }
    assert message["Attributes"]["MessageGroupId"] == demo["connection_id"]
    assert stored["retry_queued_at"]  # the sweeper leaves it alone while this message is in flight


def test_a_pending_contact_settles_through_the_retry_function_and_keeps_its_id(
    demo: dict[str, Any], lambda_context: Any
) -> None:
    principal = sandbox(demo)
    contact_id = create_while_down(principal, NEW_CUSTOMER)

    assert run_retries(lambda_context) == {"batchItemFailures": []}

    contact = contacts.to_contact(stored_contacts.get(demo["connection_id"], contact_id), True)
    assert (contact.sync_status, contact.sync_error) == ("synced", None)
    assert contact.remote_id and contact.remote_id.startswith("CT-")
    assert (contact.name, contact.currency, contact.addresses[0].city) == (
        "Umbrella Corp",
        "USD",
        "Raccoon City",
    )
    assert contact.remote_data["external_id"] == contact_id  # sent under its own id
    assert references.known_ids(demo["connection_id"])[("contact", contact.remote_id)] == contact_id
    admin.sync_references(connection_id=demo["connection_id"])
    assert listed(principal)[contact_id]["remote_id"] == contact.remote_id  # no UUIDv5 twin took over
    assert reference_id(demo["connection_id"], "contact", contact.remote_id) not in listed(principal)
    invoice = create_invoice(principal, invoice_for(contact_id), include_remote_data=True)
    assert invoice.invoice.remote_data["contact"] == contact.remote_id


def test_a_contact_created_but_whose_answer_was_lost_is_not_created_twice(
    demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    """The sandbox honours the contact id as its request key: the retry's resend replays."""
    sandbox_provider = connections.provider_for("sandbox")
    create = sandbox_provider.send_contact

    def created_then_lost(connection: ConnectionContext, outbound: OutboundContact, request: Any) -> Any:
        create(connection, outbound, request)
        raise ProviderUnavailable("read timeout after the ledger accepted")

    with monkeypatch.context() as lost:
        lost.setattr(sandbox_provider, "send_contact", created_then_lost)
        created = contacts.create_contact(sandbox(demo), ContactInput.model_validate(NEW_CUSTOMER), False)
    assert created.contact.sync_status == "pending"
    [first] = sandbox_contacts(demo)

    run_retries(lambda_context)

    assert sandbox_contacts(demo) == [first]
    stored = stored_contacts.get(demo["connection_id"], str(created.contact.id))
    assert (stored["sync_status"], stored["remote_id"]) == ("synced", first["id"])


def test_a_settle_write_failing_after_the_ledger_accepted_is_pending_then_settled_by_the_retry(
    demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    from ledgerbridge.store.dynamo import storage_unavailable

    with monkeypatch.context() as broken:
        broken.setattr(
            stored_contacts, "settle", lambda *a, **k: (_ for _ in ()).throw(storage_unavailable())
        )
        created = contacts.create_contact(sandbox(demo), ContactInput.model_validate(NEW_CUSTOMER), False)
    [at_ledger] = sandbox_contacts(demo)
    assert created.contact.sync_status == "pending"
    assert created.contact.sync_error.endswith(f"(the ledger has it as {at_ledger['id']})")

    run_retries(lambda_context)

    assert sandbox_contacts(demo) == [at_ledger]
    stored = stored_contacts.get(demo["connection_id"], str(created.contact.id))
    assert (stored["sync_status"], stored["remote_id"]) == ("synced", at_ledger["id"])


class KeylessLedger:
    """A ledger without idempotency keys (a test double): every send creates a contact, so a
    resend must be preceded by ``find_contact``, which looks for the reference it wrote.

    ``down_sends`` sends fail before the ledger creates anything; ``lost_answers`` more fail
    after it did (the answer lost on the way back).
    """

    name = "keyless"

    def __init__(self, down_sends: int = 0, lost_answers: int = 0) -> None:
        self.created: list[dict[str, Any]] = []
        self.down_sends, self.lost_answers = down_sends, lost_answers

    def map_contact(self, connection: ConnectionContext, outbound: OutboundContact) -> dict[str, Any]:
        contact = outbound.contact
        return {"Name": contact.name, "Reference": outbound.contact_id, "Custom": contact.field_mappings}

    def send_contact(
        self, connection: ConnectionContext, outbound: OutboundContact, request: dict[str, Any]
    ) -> RemoteReference:
        if self.down_sends:
            self.down_sends -= 1
            raise ProviderUnavailable("connection refused")
        record = {**request, "Id": f"K-{len(self.created) + 1}"}
        self.created.append(record)
        if self.lost_answers:
            self.lost_answers -= 1
            raise ProviderUnavailable("connection reset after the ledger accepted")
        return self._reference(record)

    def find_contact(
        self, connection: ConnectionContext, outbound: OutboundContact
    ) -> RemoteReference | None:
        found = [record for record in self.created if record["Reference"] == outbound.contact_id]
        return self._reference(found[0]) if found else None

    @staticmethod
    def _reference(record: dict[str, Any]) -> RemoteReference:
        return RemoteReference(
            "contact", record["Id"], record["Name"], {"status": "ACTIVE"}, remote_data=record
        )


def create_with(
    ledger: KeylessLedger, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, body: dict[str, Any]
) -> str:
    """Create a contact in ``ledger`` (as the connection's provider); the id of the stored contact."""
    monkeypatch.setattr(contacts, "provider_for", lambda name: ledger)
    created = contacts.create_contact(sandbox(demo), ContactInput.model_validate(body), False)
    assert created.contact.sync_status == "pending"
    return str(created.contact.id)


def test_a_ledger_without_idempotency_keys_is_asked_first_and_the_contact_found_not_resent(
    demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    ledger = KeylessLedger(lost_answers=1)
    contact_id = create_with(ledger, demo, monkeypatch, {"name": "Keyless Ltd"})

    run_retries(lambda_context)

    assert [record["Id"] for record in ledger.created] == ["K-1"]  # found, not created again
    stored = stored_contacts.get(demo["connection_id"], contact_id)
    assert (stored["sync_status"], stored["remote_id"], stored["fields"]["status"]) == (
        "synced",
        "K-1",
        "ACTIVE",
    )


def test_a_retry_resends_the_contact_as_the_caller_sent_it_custom_fields_included(
    demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    ledger = KeylessLedger(down_sends=1)
    body = {**NEW_CUSTOMER, "field_mappings": {"crm_id": "CRM-42"}}
    contact_id = create_with(ledger, demo, monkeypatch, body)
    assert ledger.created == []
    stored = stored_contacts.get(demo["connection_id"], contact_id)
    assert contacts.stored_input(stored) == ContactInput.model_validate(body)

    run_retries(lambda_context)

    assert ledger.created == [
        {"Name": "Umbrella Corp", "Reference": contact_id, "Custom": {"crm_id": "CRM-42"}, "Id": "K-1"}
    ]
    contact = contacts.to_contact(stored_contacts.get(demo["connection_id"], contact_id), False)
    assert (contact.sync_status, contact.tax_number, contact.phone_numbers[0].phone_number) == (
        "synced", "US-12-3456789", "+1 555 0100",
    )  # fmt: skip
    assert contact.field_mappings is None  # kept for the resend, not answered as the ledger's


def test_a_contact_the_ledger_refuses_on_retry_is_failed_with_its_reason(
    demo: dict[str, Any], lambda_context: Any
) -> None:
    contact_id = create_while_down(sandbox(demo), {"name": "acme corporation"})

    assert run_retries(lambda_context) == {"batchItemFailures": []}  # settled for good: nothing to retry

    stored = stored_contacts.get(demo["connection_id"], contact_id)
    assert stored["sync_status"] == "failed"
    assert stored["sync_error"] == "A contact named 'acme corporation' already exists."
    assert sandbox_contacts(demo) == []


def test_a_contact_still_unreachable_is_retried_later_then_given_up_after_the_last_attempt(
    demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    contact_id = create_while_down(sandbox(demo), NEW_CUSTOMER)
    sandbox_down(monkeypatch)
    messages = receive()

    first = load("retry").handler(sqs_event(messages), lambda_context)

    assert first == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    assert stored_contacts.get(demo["connection_id"], contact_id)["sync_status"] == "pending"
    last = sqs_event(messages)
    last["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(retries.max_attempts())
    assert load("retry").handler(last, lambda_context) == {"batchItemFailures": []}
    stored = stored_contacts.get(demo["connection_id"], contact_id)
    assert stored["sync_status"] == "failed"
    assert stored["sync_error"] == "gave up after 8 attempts: sandbox ledger unavailable"
    with pytest.raises(ApiError) as refused:
        create_invoice(sandbox(demo), invoice_for(contact_id), include_remote_data=False)
    assert refused.value.details[0].field == "contact_id"


def test_a_message_for_an_already_settled_contact_does_nothing(
    demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    principal = sandbox(demo)
    contact = contacts.create_contact(principal, ContactInput.model_validate(NEW_CUSTOMER), False).contact
    before = stored_contacts.get(demo["connection_id"], str(contact.id))
    retries.enqueue(demo["project_id"], demo["connection_id"], str(contact.id), "2026-01-01T00:00:00Z",
                    retries.CONTACT)  # fmt: skip
    sends: list[Any] = []
    monkeypatch.setattr(connections.provider_for("sandbox"), "send_contact", lambda *args: sends.append(args))

    assert run_retries(lambda_context) == {"batchItemFailures": []}

    assert sends == []
    assert stored_contacts.get(demo["connection_id"], str(contact.id)) == before
    assert len(sandbox_contacts(demo)) == 1


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


class InvoicesOnlyLedger:
    """A ledger that creates invoices but has no ``map_contact``/``send_contact``."""

    name = "invoices_only"

    def map_invoice(self, connection: ConnectionContext, outbound: Any) -> None: ...

    def send_invoice(self, connection: ConnectionContext, outbound: Any, request: Any) -> None: ...


def test_ledgers_without_contact_creation_refuse_before_storing(
    demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    principal = sandbox(demo)
    before = listed(principal)
    monkeypatch.setattr(contacts, "provider_for", lambda name: InvoicesOnlyLedger())

    with pytest.raises(ApiError) as refused:
        contacts.create_contact(principal, ContactInput.model_validate(NEW_CUSTOMER), False)

    assert (refused.value.status, refused.value.error) == (422, "not_supported")
    assert refused.value.details[0].field == "provider" and "sandbox" in refused.value.message
    assert refused.value.contact_id is None
    assert listed(principal) == before
    assert receive() == []


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


def test_a_contact_is_usable_the_moment_it_reaches_the_ledger(demo: dict[str, Any]) -> None:
    """Resolved references are remembered (connections.RESOLVED_SECONDS), but only once in the
    ledger: a pending one is read again by the next invoice."""
    principal = sandbox(demo)
    contact_id = "0196a3f2-0000-7000-8000-000000000002"
    stored_contacts.create_pending(
        demo["project_id"], demo["connection_id"], contact_id, "Soon Ltd", {}, "2026-01-01T00:00:00Z"
    )
    with pytest.raises(ApiError):
        create_invoice(principal, invoice_for(contact_id), include_remote_data=False)
    remote = RemoteReference("contact", "C-9001", "Soon Ltd", {}, remote_data={"id": "C-9001"})
    stored_contacts.settle(demo["connection_id"], contact_id, remote, {}, "2026-01-01T00:00:01Z")
    created = create_invoice(principal, invoice_for(contact_id), include_remote_data=True)
    assert created.invoice.remote_data["contact"] == "C-9001"


def test_a_contacts_fields_and_custom_fields_keep_their_digits_stored_as_json(
    demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DynamoDB trims a Number's trailing zeros and moto does not: both are one JSON string each."""
    body = {**NEW_CUSTOMER, "field_mappings": {"discount_rate": Decimal("10.50")}}
    contact_id = create_with(KeylessLedger(down_sends=1), demo, monkeypatch, body)
    key = {"pk": {"S": f"CONNECTION#{demo['connection_id']}"}, "sk": {"S": f"REF#contact#{contact_id}"}}
    item = boto3.client("dynamodb").get_item(TableName=settings().accounts_table, Key=key)["Item"]
    assert {"fields", "field_mappings"}.isdisjoint(item)
    assert item["field_mappings_json"] == {"S": '{"discount_rate":10.50}'}
    assert '"tax_number":"US-12-3456789"' in item["fields_json"]["S"]
    stored = stored_contacts.get(demo["connection_id"], contact_id)
    assert str(contacts.stored_input(stored).field_mappings["discount_rate"]) == "10.50"
