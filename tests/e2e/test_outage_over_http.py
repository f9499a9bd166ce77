"""A provider outage through the local stack: 201 pending while it is down, synced once it is back.

The fake Xero is stopped, invoices are sent (201 with sync_status pending, and one with
``Prefer: respond-async``: 202 at once), the fake is started again on
the same address, and the local stack's retry function (fed by the SQS FIFO queue, as the
event source mapping does in AWS) delivers every one of them, exactly once.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from ledgerbridge import jsonutil
from tests.e2e.conftest import _free_port, start_local_stack
from tests.e2e.support import admin, configure_oauth_apps, connect, create, fetch
from tests.fakes import xero
from tests.fakes.server import serve

pytestmark = pytest.mark.e2e
SETTLE_TIMEOUT_SECONDS = 60


def test_an_outage_answers_201_pending_and_every_invoice_settles_once_the_provider_is_back(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
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
            deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
            while time.monotonic() < deadline:
                invoices = [fetch(stack, connected, i) for i in ids]
                if all(invoice["sync_status"] == "synced" for invoice in invoices):
                    break
                time.sleep(0.5)
            assert [invoice["sync_status"] for invoice in invoices] == ["synced"] * 3
            assert {invoice["remote_id"] for invoice in invoices} == set(fake.invoices)
