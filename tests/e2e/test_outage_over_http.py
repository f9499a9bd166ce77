"""A provider outage through the local stack: 201 pending while it is down, synced once it is back.

The fake Xero is stopped, invoices are sent (201 with sync_status pending, and one with
``Prefer: respond-async``: 202 at once), the fake is started again on
the same address, and the local stack's retry function (fed by the SQS FIFO queue, as the
event source mapping does in AWS) delivers every one of them, exactly once. Contacts take
the same path: created while Xero is down (201 pending), settled by the retry function once
it is back, and then usable as an invoice's contact_id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ledgerbridge import jsonutil
from tests.e2e.conftest import LocalStack, _free_port, start_local_stack
from tests.e2e.support import Connected, admin, configure_oauth_apps, connect, create, fetch
from tests.fakes import xero
from tests.fakes.server import serve

pytestmark = pytest.mark.e2e
SETTLE_TIMEOUT_SECONDS = 60


@contextmanager
def xero_connection(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalStack, Connected, xero.FakeXero, int]]:
    """The local stack connected to a fake Xero that is stopped again once connected (the outage)."""
    fake, port = xero.FakeXero(), _free_port()
    url = f"http://127.0.0.1:{port}"
    overrides = {
        "LEDGERBRIDGE_XERO_API_URL": url,
        "LEDGERBRIDGE_XERO_TOKEN_URL": url + xero.TOKEN_PATH,
        "LEDGERBRIDGE_RETRY_BACKOFF_SECONDS": "1",
        "LOCAL_SCHEDULE_SECONDS": "0",
    }
    with start_local_stack(overrides) as stack:
        with serve(fake.handle, port):
            configure_oauth_apps(
                stack, {"xero": {"client_id": xero.CLIENT_ID, "client_secret": xero.CLIENT_SECRET}}
            )
            project = admin(stack, "create-project", "--name", "Outage")
            key = admin(stack, "create-api-key", "--project", project["project_id"])
            connected = connect(stack, tmp_path_factory.mktemp("tokens"), project, key, "xero", fake,
                                {"access_token": "xero-access-0", "refresh_token": "xero-refresh-0"},
                                {"tenant_id": xero.TENANT_ID, "default_account_code": "200"})  # fmt: skip
        yield stack, connected, fake, port


def settled(read: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """``read()`` once every record it returns is no longer pending, or at the timeout."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    records = read()
    while time.monotonic() < deadline and any(record["sync_status"] == "pending" for record in records):
        time.sleep(0.5)
        records = read()
    return records


def test_an_outage_answers_201_pending_and_every_invoice_settles_once_the_provider_is_back(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with xero_connection(tmp_path_factory) as (stack, connected, fake, port):
        contact = connected.first("contacts", is_customer=True)
        body = {
            "contact_id": contact,
            "line_items": [{"description": "Work", "unit_price": Decimal("10.50")}],
        }
        answers = [create(stack, connected, body) for _ in range(2)]  # the fake is down now
        answers.append(create(stack, connected, body, {"Prefer": "respond-async"}))  # not even tried
        assert [answer.status_code for answer in answers] == [201, 201, 202], answers[0].text
        assert answers[2].headers["Preference-Applied"] == "respond-async"
        assert all(jsonutil.loads(answer.text)["sync_status"] == "pending" for answer in answers)
        ids = [jsonutil.loads(answer.text)["id"] for answer in answers]
        assert all(fetch(stack, connected, i)["sync_status"] == "pending" for i in ids)
        assert fake.invoices == {}
        with serve(fake.handle, port):  # the provider is back
            invoices = settled(lambda: [fetch(stack, connected, i) for i in ids])
            assert [invoice["sync_status"] for invoice in invoices] == ["synced"] * 3
            assert {invoice["remote_id"] for invoice in invoices} == set(fake.invoices)


def test_a_contact_created_during_an_outage_settles_once_the_ledger_is_back_and_can_be_invoiced(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with xero_connection(tmp_path_factory) as (stack, connected, fake, port):
        answer = httpx.post(
            f"{stack.api_url}/accounting/contacts",
            content=jsonutil.dumps({"name": "Outage Customer Ltd", "is_customer": True}),
            headers=connected.auth,
            timeout=60,
        )  # the fake is down now
        assert answer.status_code == 201, answer.text
        created = jsonutil.loads(answer.text)
        assert (created["sync_status"], created["remote_id"]) == ("pending", None)
        location = f"{stack.api_url}{answer.headers['Location']}"
        assert fake.contact_requests() == []

        def read() -> list[dict[str, Any]]:
            return [httpx.get(location, headers=connected.auth, timeout=10).json()]

        with serve(fake.handle, port):  # the ledger is back
            [contact] = settled(read)
            assert (contact["sync_status"], contact["sync_error"]) == ("synced", None), contact
            assert contact["id"] == created["id"]
            [request] = fake.contact_requests()  # created once, under the contact's own id
            assert request.headers["idempotency-key"] == created["id"]
            [remote] = [c for c in fake.contacts if c["ContactID"] == contact["remote_id"]]
            assert remote["Name"] == "Outage Customer Ltd"
            body = {
                "contact_id": contact["id"],
                "line_items": [{"description": "Work", "unit_price": Decimal("10")}],
            }
            invoice = create(stack, connected, body)
            assert invoice.status_code == 201, invoice.text
            assert jsonutil.loads(invoice.text)["remote_data"]["Contact"]["ContactID"] == contact["remote_id"]
