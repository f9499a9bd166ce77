"""Webhooks through the local stack: a receiver on localhost gets every event, signed, at least once.

The stack runs as ``make run`` does: state changes reach the webhook events function through
the tables' streams, deliveries go through the webhook queue to the delivery function, which
POSTs to a receiver served on 127.0.0.1 (the local stack allows loopback URLs; a deployed stack
refuses them). Every payload is verified with the ``standardwebhooks`` package, as a customer
would. ``LEDGERBRIDGE_WEBHOOK_BACKOFF_SCALE=0`` makes a failed delivery come back at once, so a
receiver failing its first attempts is retried within the test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledgerbridge.local.stack import LOCAL_RECEIVER_URL
from ledgerbridge.webhooks import EVENT_TYPES
from tests.e2e.conftest import LocalStack, _free_port, start_local_stack
from tests.e2e.support import Connected, admin, configure_oauth_apps, connect, create, fetch
from tests.e2e.test_connect_over_http import consent_page, link
from tests.e2e.test_invoices_over_http import printed_command
from tests.e2e.test_outage_over_http import settled
from tests.fakes import xero
from tests.fakes.server import serve
from tests.fakes.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e
RETURN_URL = "https://app.example.com/ledger-connected"
WEBHOOK_HEADING = "Send every event to a receiver on this machine (README, Webhooks, has one to run):"
PAYLOAD_KEYS = {"id", "type", "created_at", "project_id", "connection_id", "data"}


@dataclass
class World:
    stack: LocalStack
    project_id: str
    api_key: str
    xero_port: int
    fake: xero.FakeXero
    tmp: Path

    @property
    def key(self) -> dict[str, str]:
        return {"x-api-key": self.api_key}

    def url(self, path: str) -> str:
        return f"{self.stack.api_url}{path}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    fake, port = xero.FakeXero(), _free_port()
    url = f"http://127.0.0.1:{port}"
    overrides = {
        "LEDGERBRIDGE_XERO_API_URL": url,
        "LEDGERBRIDGE_XERO_TOKEN_URL": url + xero.TOKEN_PATH,
        "LEDGERBRIDGE_RETRY_BACKOFF_SECONDS": "1",
        "LEDGERBRIDGE_WEBHOOK_BACKOFF_SCALE": "0",
        "LOCAL_SCHEDULE_SECONDS": "0",
    }
    with start_local_stack(overrides) as stack:
        app = {"client_id": xero.CLIENT_ID, "client_secret": xero.CLIENT_SECRET}
        configure_oauth_apps(stack, {"xero": app})
        yield World(stack, "", "", port, fake, tmp_path_factory.mktemp("webhooks"))


def new_project(world: World, name: str) -> World:
    """A project of its own, so each test's receiver hears only its own events."""
    project = admin(world.stack, "create-project", "--name", name)
    key = admin(world.stack, "create-api-key", "--project", project["project_id"])
    admin(world.stack, "set-project", "--project", project["project_id"], "--return-url", RETURN_URL)
    return World(world.stack, project["project_id"], key["api_key"], world.xero_port, world.fake, world.tmp)


def register(world: World, receiver_url: str, events: list[str] | None = None) -> dict[str, Any]:
    answer = httpx.post(
        world.url("/webhooks"),
        json={"url": receiver_url, "events": events or list(EVENT_TYPES), "description": "e2e"},
        headers=world.key,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def connect_xero(world: World) -> Connected:
    project, key = {"project_id": world.project_id}, {"api_key": world.api_key}
    with serve(world.fake.handle, world.xero_port):
        return connect(world.stack, world.tmp, project, key, "xero", world.fake,
                       {"access_token": "xero-access-0", "refresh_token": "xero-refresh-0"},
                       {"tenant_id": xero.TENANT_ID, "default_account_code": "200"})  # fmt: skip


def invoice_body(connected: Connected, number: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "contact_id": connected.first("contacts", is_customer=True),
        "line_items": [{"description": "Work", "unit_price": Decimal("10.50")}],
    }
    return {**body, "number": number} if number else body


def without_remote_data(record: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name != "remote_data"}


def of_type(events: dict[str, dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event for event in events.values() if event["type"] == kind]


def test_an_outage_sends_invoice_pending_then_invoice_synced_both_verified(world: World) -> None:
    world = new_project(world, "Webhooks outage")
    receiver = WebhookReceiver()
    with serve(receiver.handle) as receiver_url:
        webhook = register(world, f"{receiver_url}/hooks", ["invoice.pending", "invoice.synced"])
        connected = connect_xero(world)  # the fake Xero stops serving when this returns: the outage
        answer = create(world.stack, connected, invoice_body(connected))
        assert answer.status_code == 201 and answer.json()["sync_status"] == "pending", answer.text
        invoice_id = answer.json()["id"]

        seen = receiver.wait_for(webhook["secret"], Counter({"invoice.pending": 1}))
        assert seen == Counter({"invoice.pending": 1})  # nothing settled yet: the ledger is down
        [pending] = of_type(receiver.events(webhook["secret"]), "invoice.pending")
        assert pending["data"]["id"] == invoice_id and pending["data"]["sync_status"] == "pending"

        with serve(world.fake.handle, world.xero_port):  # the ledger is back
            [stored] = settled(lambda: [fetch(world.stack, connected, invoice_id)])
            assert stored["sync_status"] == "synced"
            seen = receiver.wait_for(webhook["secret"], Counter({"invoice.synced": 1}))
        assert seen == Counter({"invoice.pending": 1, "invoice.synced": 1})
        [synced] = of_type(receiver.events(webhook["secret"]), "invoice.synced")
        assert set(synced) == PAYLOAD_KEYS
        assert (synced["project_id"], synced["connection_id"]) == (world.project_id, connected.connection_id)
        assert without_remote_data(synced["data"]) == without_remote_data(stored)
        # UUIDv7s carrying the stream record's time, which DynamoDB Streams gives to the second.
        assert uuid.UUID(synced["id"]).int >> 80 >= uuid.UUID(pending["id"]).int >> 80


def test_a_receiver_failing_its_first_five_attempts_still_gets_the_event_and_every_attempt_is_listed(
    world: World,
) -> None:
    world = new_project(world, "Webhooks faults")
    receiver = WebhookReceiver()
    receiver.fail_next(500, times=3)
    receiver.hang_next(11)  # past the sender's 10 s: a timeout
    receiver.fail_next(503)
    with serve(receiver.handle) as receiver_url:
        webhook = register(world, f"{receiver_url}/hooks", ["connection.created"])
        connected = connect_xero(world)
        seen = receiver.wait_for(webhook["secret"], Counter({"connection.created": 1}), timeout=90)
        assert seen == Counter({"connection.created": 1})
        # Six POSTs of one event, all with the same webhook-id, the sixth answered 200.
        assert [item.answered for item in receiver.received] == [500, 500, 500, None, 503, 200]
        assert len({item.webhook_id for item in receiver.received}) == 1
        [event] = receiver.events(webhook["secret"]).values()
        assert event["connection_id"] == connected.connection_id
        assert event["data"]["id"] == connected.connection_id

        listed = httpx.get(world.url(f"/webhooks/{webhook['id']}/deliveries"), headers=world.key)
        assert listed.status_code == 200, listed.text
        [delivery] = listed.json()["data"]
        assert (delivery["event_id"], delivery["event_type"], delivery["status"]) == (
            event["id"], "connection.created", "succeeded"
        )  # fmt: skip
        attempts = delivery["attempts"]
        assert [attempt["status_code"] for attempt in attempts] == [500, 500, 500, None, 503, 200]
        assert "tim" in attempts[3]["error"].lower()  # the hung attempt timed out
        assert all(isinstance(attempt["latency_ms"], int) for attempt in attempts)
        assert delivery["next_attempt_at"] is None


def test_every_event_type_arrives_once_per_state_change(world: World) -> None:
    world = new_project(world, "Webhooks every event")
    receiver = WebhookReceiver()
    with serve(receiver.handle) as receiver_url:
        webhook = register(world, f"{receiver_url}/hooks")
        secret = webhook["secret"]
        connected = connect_xero(world)  # connection.created
        with serve(world.fake.handle, world.xero_port):
            synced = create(world.stack, connected, invoice_body(connected, "WH-DUP"))  # invoice.synced
            refused = create(world.stack, connected, invoice_body(connected, "WH-DUP"))  # invoice.failed
            assert (synced.status_code, refused.status_code) == (201, 422), refused.text
            contact = httpx.post(world.url("/accounting/contacts"), headers=connected.auth,
                                 json={"name": "Webhook Customer Ltd", "is_customer": True})  # fmt: skip
            twin = httpx.post(world.url("/accounting/contacts"), headers=connected.auth,
                              json={"name": "Webhook Customer Ltd", "is_customer": True})  # fmt: skip
            assert (contact.status_code, twin.status_code) == (201, 422), twin.text  # contact synced, failed
            world.fake.grants.clear()  # the refresh token is refused from now on
            world.fake.expire_access_tokens()
            blocked = create(world.stack, connected, invoice_body(connected))  # needs_reauthorization
            assert blocked.status_code == 409, blocked.text
        # A connect session completed (connect_session.completed + connection.created) and one refused.
        completed = _session(world)
        assert httpx.get(link(consent_page(world.stack, completed), "approve")).status_code == 303
        refused_session = _session(world)
        assert httpx.get(link(consent_page(world.stack, refused_session), "refuse")).status_code == 303
        deleted = httpx.delete(world.url(f"/connections/{connected.connection_id}"), headers=world.key)
        assert deleted.status_code == 204  # connection.deleted

        expected = Counter({name: 1 for name in EVENT_TYPES if name != "invoice.pending"})
        expected["connection.created"] = 2  # the admin-made one and the session's
        expected["invoice.failed"] = 2  # refused by Xero, and stored failed when the connection was refused
        seen = receiver.wait_for(secret, expected)
        assert seen == expected
        events = receiver.events(secret)
        assert all(set(event) == PAYLOAD_KEYS for event in events.values())
        assert all(event["project_id"] == world.project_id for event in events.values())
        failed = {event["data"]["id"]: event["data"] for event in of_type(events, "invoice.failed")}
        assert {data["sync_status"] for data in failed.values()} == {"failed"}
        assert refused.json()["invoice_id"] in failed
        [session_done] = of_type(events, "connect_session.completed")
        assert session_done["data"]["id"] == completed["id"]
        assert "connection_token" not in json.dumps(events)  # no secret ever leaves in an event
        [gone] = of_type(events, "connection.deleted")
        assert gone["data"]["id"] == connected.connection_id


def _session(world: World) -> dict[str, Any]:
    body = {"end_user": {"id": "webhooks"}, "return_url": RETURN_URL}
    answer = httpx.post(world.url("/connect/sessions"), json=body, headers=world.key)
    assert answer.status_code == 201, answer.text
    return answer.json()


@pytest.mark.skipif(shutil.which("curl") is None, reason="the banner's command is a curl command")
def test_the_banners_webhook_command_sends_the_demo_invoice_to_a_local_receiver(
    local_stack: LocalStack,
) -> None:
    receiver = WebhookReceiver()
    with serve(receiver.handle) as receiver_url:
        command = printed_command(local_stack, WEBHOOK_HEADING).replace(
            LOCAL_RECEIVER_URL, f"{receiver_url}/hooks"
        )
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
        webhook = json.loads(done.stdout)
        try:
            assert set(webhook["events"]) == set(EVENT_TYPES) and webhook["secret"].startswith("whsec_")
            created = subprocess.run(["bash", "-c", printed_command(local_stack, "Create an invoice:")],
                                     capture_output=True, text=True, timeout=30)  # fmt: skip
            invoice_id = json.loads(created.stdout)["id"]
            receiver.wait_for(webhook["secret"], Counter({"invoice.synced": 1}))
            synced = of_type(receiver.events(webhook["secret"]), "invoice.synced")
            assert [event["data"]["id"] for event in synced] == [invoice_id]
        finally:  # the session's stack goes on serving other tests
            key = {"x-api-key": local_stack.api_key}
            httpx.delete(f"{local_stack.api_url}/webhooks/{webhook['id']}", headers=key)
