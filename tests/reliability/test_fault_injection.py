"""Nothing lost, nothing doubled: 1,000 creates under injected faults, then retries until quiet.

Every request goes through the real API handler against moto, to Xero's fake over HTTP
(httpx MockTransport). A seeded schedule injects provider faults (5xx, 429 with
Retry-After, timeouts before and after the provider did the work, connection resets, long
outages), a simulated Lambda crash after the provider accepted but before the settle
write, and DynamoDB throttling on the first write and on the settle write. Then the retry
function and the sweeper run until nothing is pending or queued. Time never really passes:
sleeps are recorded, not slept.

Webhooks too: an endpoint subscribed to every ``invoice.*`` event is registered before the
creates, on a receiver served on 127.0.0.1 that verifies each POST with ``standardwebhooks``.
Once the retries are quiet, the webhook events function reads the invoices and accounts
tables' streams and the delivery function drains the webhook queue, as Lambda's event source
mappings would run them (tests/reliability/webhooks.py says how), with seeded faults on both
sides: the events function dying before it stores anything or after storing but before the
SQS send, or its send refused; the receiver answering 500 or 503, not being served at all for
a few rounds (connection refused), or hanging past the attempt's timeout. The hangs are real
(about half a second each): ``delivery.TIMEOUT_SECONDS``, the deadline the delivery code gives
``sender.post``, is patched to 0.4 s so that they are short. Every invoice synced must reach
the receiver as one ``invoice.synced`` event, and every invoice that was ever queued (its
stored ``retry_queued_at``) as one ``invoice.pending``, every delivery must end ``succeeded``
and nothing may reach the webhook dead-letter queue.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from ledgerbridge import admin
from ledgerbridge.aws import client
from ledgerbridge.local.template import Stack, function_environment
from ledgerbridge.store import invoices
from ledgerbridge.webhooks import EVENT_TYPES, delivery
from tests.conftest import load_handler_module
from tests.fakes import xero
from tests.integration.conftest import Api
from tests.integration.test_retries import load, sqs_event
from tests.integration.test_webhook_delivery import Rounds
from tests.reliability import webhooks as hooks

REQUESTS = 1000
SEED = 20261125
INVOICE_EVENTS = [name for name in EVENT_TYPES if name.startswith("invoice.")]


class LambdaCrash(BaseException):
    """The function dies mid-invocation: no answer, no exception handler, nothing after."""


class Faults:
    """The switches a request's fault turns on; each one is consumed by the request it is for."""

    def __init__(self, fake: xero.FakeXero):
        self.fake = fake
        self.resets = 0
        self.crash_on_settle = False
        self.throttle: Counter[str] = Counter()

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.resets and request.url.path.endswith("/Invoices"):
            self.resets -= 1
            raise httpx.RemoteProtocolError("connection reset by peer", request=request)
        return self.fake.handle(request)

    def throttling(self, make_api_call: Callable[..., Any]) -> Callable[..., Any]:
        """The invoices table throttling for longer than botocore's adaptive retries last.

        Injected at the client's API-call boundary: moto would still apply a write whose
        answer a before-send hook replaced, and a throttled write must not be applied.
        Short throttling bursts are botocore's to absorb and are not modelled here.
        """

        def call(operation: str, params: dict[str, Any]) -> Any:
            if self.throttle[operation] > 0 and str(params.get("TableName", "")).endswith("-invoices"):
                self.throttle[operation] -= 1
                error = {"Code": "ProvisionedThroughputExceededException", "Message": "Rate exceeded"}
                raise ClientError({"Error": error}, operation)
            return make_api_call(operation, params)

        return call


# name: (share of requests, how to inject it)
SCHEDULE: dict[str, tuple[float, Callable[[Faults], None]]] = {
    "503 once": (0.07, lambda f: f.fake.fail_next(503)),
    "429 Retry-After": (0.05, lambda f: f.fake.fail_next(429, {"Retry-After": "1"})),
    "timeout": (0.04, lambda f: f.fake.timeout_next()),
    "timeout after provider did it": (0.03, lambda f: f.fake.timeout_next(after_processing=True)),
    "connection reset": (0.03, lambda f: setattr(f, "resets", 1)),
    "provider outage": (0.04, lambda f: f.fake.fail_next(503, times=4)),
    "crash before settle": (0.02, lambda f: setattr(f, "crash_on_settle", True)),
    "throttled first write": (0.03, lambda f: f.throttle.update({"PutItem": 1})),
    "throttled settle write": (0.03, lambda f: f.throttle.update({"UpdateItem": 1})),
}


def plan(rng: random.Random) -> list[str | None]:
    names = list(SCHEDULE)
    weights = [SCHEDULE[name][0] for name in names]
    no_fault = 1 - sum(weights)
    return [rng.choices([*names, None], [*weights, no_fault])[0] for _ in range(REQUESTS)]


@pytest.fixture
def world(aws: Any, monkeypatch: pytest.MonkeyPatch, api_module: Any, lambda_context: Any) -> Iterator[dict]:
    """A Xero connection through the real admin functions, its fake behind the shared HTTP client."""
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    monkeypatch.setenv("LEDGERBRIDGE_RETRY_BACKOFF_SECONDS", "0")
    monkeypatch.setenv("LEDGERBRIDGE_SWEEP_AFTER_SECONDS", "0")
    monkeypatch.setenv("LEDGERBRIDGE_REQUEUE_AFTER_SECONDS", "0")
    fake = xero.FakeXero(validate_schema=False)
    faults = Faults(fake)
    http = httpx.Client(transport=httpx.MockTransport(faults.handle))
    monkeypatch.setattr("ledgerbridge.providers.http.shared_client", lambda: http)
    boto3.client("secretsmanager").put_secret_value(
        SecretId=os.environ["LEDGERBRIDGE_OAUTH_CLIENTS_SECRET"],
        SecretString=json.dumps({"xero": {"client_id": xero.CLIENT_ID, "client_secret": xero.CLIENT_SECRET}}),
    )
    project = admin.create_project("Reliability")["project_id"]
    key = admin.create_api_key(project)
    tokens = {"access_token": "xero-access-0", "refresh_token": "xero-refresh-0", "expires_in": 86400}
    settings = {"tenant_id": xero.TENANT_ID, "default_account_code": "200"}
    connection = admin.create_connection(project, "xero", tokens, settings)
    admin.sync_references(connection_id=connection["connection_id"])
    dynamodb = client("dynamodb")
    monkeypatch.setattr(dynamodb, "_make_api_call", faults.throttling(dynamodb._make_api_call))
    real_settle = invoices.settle

    def settle(*args: Any, **kwargs: Any) -> Any:
        if faults.crash_on_settle:
            faults.crash_on_settle = False
            raise LambdaCrash()
        return real_settle(*args, **kwargs)

    monkeypatch.setattr(invoices, "settle", settle)
    credentials = {"x-api-key": key["api_key"], "x-connection-token": connection["connection_token"]}
    yield {"api": Api(api_module, lambda_context, credentials), "fake": fake, "faults": faults,
           "project_id": project, "connection_id": connection["connection_id"],
           "context": lambda_context}  # fmt: skip


@pytest.fixture
def receiver(world: dict, aws: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A customer's endpoint on 127.0.0.1, registered (every invoice.* event) through the admin
    functions; the webhook functions' environment, loopback allowed and the backoff scaled to 0."""
    for function in (hooks.EVENTS_FUNCTION, "WebhookDeliveryFunction"):
        for name, value in function_environment(aws, function).items():
            if not name.startswith("POWERTOOLS_"):
                monkeypatch.setenv(name, value)
    monkeypatch.setenv("LEDGERBRIDGE_WEBHOOK_ALLOW_LOOPBACK", "true")
    monkeypatch.setenv("LEDGERBRIDGE_WEBHOOK_BACKOFF_SCALE", "0")
    monkeypatch.setattr(delivery, "TIMEOUT_SECONDS", hooks.TIMEOUT_SECONDS)
    flaky = hooks.FlakyReceiver(random.Random(SEED + 2))
    try:
        endpoint = admin.create_webhook(world["project_id"], flaky.url, INVOICE_EVENTS)
        flaky.secret = endpoint["secret"]
        yield {"flaky": flaky, "webhook_id": endpoint["id"]}
    finally:
        flaky.close()


def invoice_body(world: dict, n: int, contact: str) -> dict[str, Any]:
    return {
        "contact_id": contact,
        "number": f"R-{n:05d}",
        "issue_date": "2026-11-25",
        "line_items": [
            {"description": f"Service {n}", "quantity": Decimal(n % 7 + 1), "unit_price": Decimal(f"{n}.25")},
            {"description": "Fee", "quantity": Decimal("1"), "unit_price": Decimal("0.10")},
        ],
    }  # fmt: skip


def drain(world: dict) -> int:
    """Run the retry function on everything queued, then the sweeper, until both are idle."""
    retry, sweeper = load("retry"), load("sweeper")
    sqs, queue_url = boto3.client("sqs"), os.environ["LEDGERBRIDGE_RETRY_QUEUE_URL"]
    rounds = 0
    while rounds < 200:
        rounds += 1
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                       MessageSystemAttributeNames=["All"]).get("Messages", [])  # fmt: skip
        if messages:
            result = retry.handler(sqs_event(messages), world["context"])
            failed = {item["itemIdentifier"] for item in result["batchItemFailures"]}
            for message in messages:
                if message["MessageId"] not in failed:  # what the event source mapping does
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            continue
        if sweeper.handler({}, world["context"])["requeued"] == 0:
            return rounds
    raise AssertionError("retries never went quiet")


def test_nothing_lost_nothing_doubled_under_injected_faults(
    world: dict, receiver: dict[str, Any], aws: Stack, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    api, fake, faults = world["api"], world["fake"], world["faults"]
    contact = next(r for r in api.call("GET", "/accounting/contacts").json["data"] if r["is_customer"])["id"]
    schedule = plan(random.Random(SEED))
    answers: Counter[str] = Counter()
    by_fault: Counter[tuple[str, str]] = Counter()
    accepted: set[str] = set()
    for n, fault in enumerate(schedule):
        if fault:
            SCHEDULE[fault][1](faults)
        try:
            answer = api.create(invoice_body(world, n, contact))
        except LambdaCrash:
            answers["5xx"] += 1  # API Gateway answers 502 for a crashed function
            by_fault[(fault or "none", "crash")] += 1
            continue
        finally:
            faults.throttle.clear()
        answers[_outcome(answer)] += 1
        by_fault[(fault or "none", _outcome(answer))] += 1
        if answer.status in (201, 202):
            accepted.add(answer.json["id"])
    drain(world)
    flaky = receiver["flaky"]
    monkeypatch.setattr(time, "sleep", hooks.real_sleep)  # a receiver's hang must really pass
    dispatch_faults = hooks.DispatchFaults(random.Random(SEED + 1), LambdaCrash)
    dispatch_faults.install(monkeypatch)
    streams = hooks.StreamMapping.all(aws, load("webhook_events"), world["context"], LambdaCrash)
    hooks.run_until_quiet(streams, Rounds(load("webhook_delivery"), world["context"]), flaky)
    got = hooks.outcome(flaky, receiver["webhook_id"], aws)

    stored = _all_invoices(world["connection_id"])
    by_status = Counter(record["sync_status"] for record in stored.values())
    at_provider = Counter(invoice["InvoiceNumber"] for invoice in fake.invoices.values())
    duplicates = sum(count - 1 for count in at_provider.values() if count > 1)
    synced_remote = {record["remote_id"] for record in stored.values() if record["sync_status"] == "synced"}
    lost = [i for i in accepted if stored.get(i, {}).get("sync_status") != "synced"
            or stored[i]["remote_id"] not in fake.invoices]  # fmt: skip
    faulted = sum(1 for fault in schedule if fault)
    # One invoice.synced per synced invoice, one invoice.pending per invoice ever queued (the
    # stored retry_queued_at is set when a retry is queued and never removed), nothing else.
    expected = {("invoice.synced", i) for i, record in stored.items() if record["sync_status"] == "synced"}
    expected |= {("invoice.pending", i) for i, record in stored.items() if record.get("retry_queued_at")}
    events_lost = [key for key in expected if key not in got.by_invoice]
    events_doubled = [key for key, count in got.by_invoice.items() if count > 1]
    unexpected = [key for key in got.by_invoice if key not in expected]
    delivery_status = Counter(item["status"] for item in got.deliveries)
    attempts = [len(item["attempts"]) for item in got.deliveries]
    expected_types = Counter(event_type for event_type, _ in expected)
    tally = streams[0].tally
    summary = (
        f"\nreliability: requests={REQUESTS} faulted={faulted} ({faulted / REQUESTS:.0%})"
        f" answered 201={answers['201']} 201_pending={answers['201_pending']} 4xx={answers['4xx']}"
        f" 5xx={answers['5xx']}"
        f" at_provider={len(fake.invoices)} duplicates={duplicates} lost={len(lost)}"
        f" pending={by_status['pending']}"
        f"\nwebhooks: events_expected={len(expected)} (synced={expected_types['invoice.synced']}"
        f" pending={expected_types['invoice.pending']} failed={expected_types['invoice.failed']})"
        f" received_distinct={len(got.events)} posts={got.posts} verified={got.posts - got.unverified}"
        f" duplicate_posts={got.duplicate_posts}"
        f" lost={len(events_lost)} doubled={len(events_doubled)} unexpected={len(unexpected)}"
        f" deliveries_succeeded={delivery_status['succeeded']}/{len(got.deliveries)}"
        f" max_attempts={max(attempts, default=0)} dead_letters={got.dead_letters}"
    )
    outcomes = ", ".join(
        f"{fault} -> {status} x{count}" for (fault, status), count in sorted(by_fault.items())
    )
    webhook_faults = ", ".join(
        [f"stream records={tally.records} invocations={tally.invocations}"
         f" function_errors={tally.function_errors} reported_failed={tally.reported_failed}"
         f" given_up={tally.given_up}"]
        + [f"{name} x{count}" for name, count in sorted((dispatch_faults.injected + flaky.injected).items())]
        + [f"attempt {error!r} x{count}" for error, count in sorted(got.attempt_errors.items())]
    )  # fmt: skip
    with capsys.disabled():  # the summary shows in every `make test`, pass or fail
        print(f"{summary}\nby fault: {outcomes}\nwebhook faults: {webhook_faults}")
    assert faulted / REQUESTS >= 0.20
    assert duplicates == 0
    assert lost == []
    assert by_status["pending"] == 0
    assert by_status["failed"] == 0  # every fault here is transient: all must end synced
    assert set(fake.invoices) == synced_remote  # exactly the synced invoices exist at the provider
    assert answers["201"] + answers["201_pending"] + answers["5xx"] + answers["4xx"] == REQUESTS
    assert answers["201_pending"] > 0 and answers["5xx"] > 0

    assert got.unverified == 0  # every POST verifies with standardwebhooks, as it arrived
    assert events_lost == [] and events_doubled == [] and unexpected == []
    assert expected_types["invoice.pending"] > 0 and expected_types["invoice.failed"] == 0
    assert len(got.deliveries) == len(expected) and delivery_status == {"succeeded": len(expected)}
    for item in got.deliveries:  # one answered attempt, the last: nothing sent again after a 2xx
        codes = [attempt["status_code"] for attempt in item["attempts"]]
        assert [code for code in codes if code and code < 300] == codes[-1:], item
    assert got.dead_letters == 0 and got.queued == 0 and tally.given_up == 0
    assert got.duplicate_posts > 0  # a failed or timed-out POST was sent again, identical
    assert set(dispatch_faults.injected) == set(hooks.DISPATCH_FAULTS)  # every fault happened
    assert set(flaky.injected) == {*hooks.RECEIVER_FAULTS, "down stretches"}
    assert tally.function_errors > 0 and tally.reported_failed > 0
    assert "connection refused" in got.attempt_errors
    assert f"timed out after {hooks.TIMEOUT_SECONDS:g} s" in got.attempt_errors


def _outcome(answer: Any) -> str:
    """201 (synced), 201_pending (stored and queued: the ledger was out of reach), or the class."""
    if answer.status == 201:
        return "201_pending" if answer.json["sync_status"] == "pending" else "201"
    return str(answer.status) if answer.status == 202 else f"{str(answer.status)[0]}xx"


def _all_invoices(connection_id: str) -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        page = invoices.query(connection_id, 100, after_id=cursor)
        records.update({record["id"]: record for record in page.records})
        if not page.has_more:
            return records
        cursor = page.records[-1]["id"]


def test_concurrent_requests_with_one_idempotency_key_make_one_provider_call(
    world: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, fake = world["api"], world["fake"]
    # DynamoDB applies each conditional write atomically. Moto, called from 8 threads of one
    # process, checks the condition and writes in separate steps, so on a loaded machine two
    # conditional puts of the same key could both pass (seen once in CI-like load). One call at a
    # time gives moto DynamoDB's atomicity; the requests themselves still run concurrently.
    dynamodb, atomic = client("dynamodb"), threading.Lock()
    one_call = dynamodb._make_api_call

    def atomically(*args: Any, **kwargs: Any) -> Any:
        with atomic:
            return one_call(*args, **kwargs)

    monkeypatch.setattr(dynamodb, "_make_api_call", atomically)
    contact = next(r for r in api.call("GET", "/accounting/contacts").json["data"] if r["is_customer"])["id"]
    body = invoice_body(world, 1, contact)
    statuses: list[int] = []
    barrier = threading.Barrier(8)
    # Concurrent requests land on different Lambda containers: one handler module each.
    containers = [Api(load_handler_module(), world["context"], api.credentials) for _ in range(8)]

    def send(container: Api) -> None:
        barrier.wait()
        statuses.append(container.create(body, headers={"Idempotency-Key": "same-order"}).status)

    threads = [threading.Thread(target=send, args=(container,)) for container in containers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(fake.invoice_requests()) == 1
    assert len(fake.invoices) == 1
    assert len(statuses) == 8
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
