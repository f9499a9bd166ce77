"""AWS calls and DynamoDB write units of one warm invoice create, counted, never timed.

Counted by ``benchmarks.aws_calls`` (what ``make bench`` prints beside its timings), for the
paths ``make bench`` times: the sandbox and QuickBooks (the fake behind the real provider
module, connected by ``benchmarks.quickbooks`` as the benchmark connects it), each without
and with Idempotency-Key. A new call on a create path changes these figures and the test
says which.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
import pytest

from benchmarks import quickbooks
from benchmarks.aws_calls import BotocoreClock, Calls, counted
from tests.fakes.quickbooks import FakeQuickBooks
from tests.integration.conftest import Api

INVOICE = {
    "currency": "EUR",
    "issue_date": "2026-11-24",
    "due_date": "2026-12-24",
    "line_items": [
        {"description": "Consulting (hours)", "quantity": Decimal("2"), "unit_price": Decimal("150.25")}
    ],
}


def warm_create(api: Api, invoice: dict[str, Any], headers: dict[str, str] | None = None) -> Calls:
    """The calls of the second create (the first fills caches, the provider, the clients)."""
    first = {"Idempotency-Key": "warm-up"} if headers else None
    assert api.create(invoice, headers=first).status == 201
    with counted() as calls:
        answer = api.create(invoice, headers=headers)
    assert answer.status == 201, answer.text
    assert answer.json["sync_status"] == "synced", answer.text
    return calls


@pytest.fixture
def quickbooks_create(
    demo: dict[str, Any], api_module: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[Api, dict[str, Any]]:
    """An Api on a QuickBooks connection (the fake's company), and an invoice to its customer."""
    fake = FakeQuickBooks()
    client = httpx.Client(transport=httpx.MockTransport(fake.handle))
    monkeypatch.setattr("ledgerbridge.providers.http.shared_client", lambda: client)
    connection = quickbooks.connect(demo["project_id"], fake)
    credentials = {"x-api-key": demo["api_key"], "x-connection-token": connection.connection_token}
    invoice = {**INVOICE, "currency": "USD", "contact_id": connection.contact_id}
    return Api(api_module, lambda_context, credentials), invoice


def test_a_warm_sandbox_create_makes_these_dynamodb_calls_and_writes(api: Api) -> None:
    calls = warm_create(api, INVOICE)
    # The pending invoice, its entry in the sandbox's books, the settle.
    assert calls.operations == Counter({"dynamodb.PutItem": 2, "dynamodb.UpdateItem": 1})
    assert calls.write_units == 3


def test_an_idempotency_key_adds_one_put_of_its_record_to_a_sandbox_create(api: Api) -> None:
    plain = warm_create(api, INVOICE)
    keyed = warm_create(api, INVOICE, headers={"Idempotency-Key": "counted"})
    # One conditional PutItem of the key's record (under 1 KB: one unit).
    assert keyed.operations - plain.operations == Counter({"dynamodb.PutItem": 1})
    assert plain.operations - keyed.operations == Counter()
    assert keyed.write_units - plain.write_units == 1


def test_a_warm_quickbooks_create_makes_these_dynamodb_calls_and_writes(
    quickbooks_create: tuple[Api, dict[str, Any]],
) -> None:
    api, invoice = quickbooks_create
    calls = warm_create(api, invoice)
    # The pending invoice, the settle with QuickBooks' answer; the customer's reference was
    # resolved by the first create and is remembered (connections.RESOLVED_SECONDS): no read.
    assert calls.operations == Counter({"dynamodb.PutItem": 1, "dynamodb.UpdateItem": 1})
    assert calls.write_units == 2


def test_an_idempotency_key_adds_one_put_of_its_record_to_a_quickbooks_create(
    quickbooks_create: tuple[Api, dict[str, Any]],
) -> None:
    api, invoice = quickbooks_create
    plain = warm_create(api, invoice)
    keyed = warm_create(api, invoice, headers={"Idempotency-Key": "counted"})
    assert keyed.operations - plain.operations == Counter({"dynamodb.PutItem": 1})
    assert plain.operations - keyed.operations == Counter()
    assert keyed.write_units - plain.write_units == 1


def test_the_botocore_clock_counts_cpu_inside_api_calls_and_only_while_installed(api: Api) -> None:
    """``make bench``'s "in calls" column: CPU inside botocore's calls, none of the code around them."""
    clock = BotocoreClock()
    with clock.installed():
        sum(range(300_000))  # CPU outside any call
        assert clock.ms == 0
        assert api.create(INVOICE).status == 201
    counted_ms = clock.ms
    assert counted_ms > 0
    assert api.create(INVOICE).status == 201
    assert clock.ms == counted_ms  # uninstalled: botocore's own method is back
