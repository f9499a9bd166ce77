"""One test's fuzzing target: the local stack's front door over moto, judged on every request.

:func:`build_harness` seeds what hostile requests need to be interesting (a second project,
a revoked key, the sandbox directory's ids, a few invoices, another project's invoice),
fetches the served ``/openapi.json`` and the one 401 answer, and returns a :class:`Harness`
whose :meth:`~Harness.exchange` sends a request and has the :class:`~tests.fuzz.oracle.Oracle`
judge it. Everything the stack is asked during a test goes through ``exchange`` (or the WSGI
application, which calls it), so the invoice count before each request is the count after
the previous one.
"""

from __future__ import annotations

import json
import math
import os
import sys
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ledgerbridge.local.template import Stack
from tests.fuzz.local_api import LocalApi, Received, Sent
from tests.fuzz.oracle import Contract, Credentials, Oracle, Recorder

DEFAULT_REQUESTS = 10_000
ROUND_REQUESTS = 10_000  # a bigger budget runs in rounds, each with a fresh moto account
BUDGET_VARIABLE = "LEDGERBRIDGE_FUZZ_REQUESTS"
TABLE_VARIABLE = "LEDGERBRIDGE_FUZZ_TABLE"


def budget() -> int:
    """Requests for the whole fuzz suite: ``$LEDGERBRIDGE_FUZZ_REQUESTS`` (default 10,000)."""
    value = os.environ.get(BUDGET_VARIABLE) or str(DEFAULT_REQUESTS)
    if not value.isdigit() or int(value) < 100:
        raise ValueError(f"{BUDGET_VARIABLE}={value!r}: a number of requests, at least 100")
    return int(value)


def rounds() -> int:
    """How many rounds the budget takes. Each round of each test starts from a fresh moto
    account: moto's TransactWriteItems copies every table, so one account holding the
    invoices of a 100,000-request run would make each create slower than the last."""
    return math.ceil(budget() / ROUND_REQUESTS)


def share(weight: float) -> int:
    """One round's requests for a part of the suite: its weight (a fraction of the budget)."""
    return max(10, round(budget() * weight / rounds()))


def round_seed(*parts: object) -> int:
    """A fixed Hypothesis seed for one part and round: the same requests every run."""
    return zlib.crc32(":".join(map(str, parts)).encode())


@dataclass(frozen=True)
class References:
    """The sandbox directory's Ledgerbridge ids for the demo connection (what invoices point at)."""

    customers: tuple[str, ...]
    vendors: tuple[str, ...]
    items: tuple[str, ...]
    tracking: tuple[str, ...]
    period: str


@dataclass
class Harness:
    api: LocalApi
    oracle: Oracle
    recorder: Recorder
    demo: Credentials
    other: Credentials  # another project's key and connection token (valid together)
    revoked: str  # a revoked API key of the demo project
    refs: References
    invoice_ids: tuple[str, ...]  # the demo connection's
    foreign_invoice_id: str  # the other project's: never visible with the demo credentials
    cursors: tuple[str, ...]  # real next_cursor values

    def exchange(
        self, category: str, sent: Sent, *, expect_created: bool = False, content_length: bool = True
    ) -> Received:
        received = self.api.send(sent, content_length=content_length)
        extra = []
        if 200 <= received.status < 300 and sent.method == "GET" and (owner := self._owner(sent.target)):
            keys = sent.header_values("x-api-key")
            if keys[-1:] != [owner]:
                extra.append(("wrong_answer", "another connection's invoice answered, not 404"))
        self.recorder.record(category, sent, received, expect_created=expect_created, extra=extra)
        return received

    def _owner(self, target: str) -> str | None:
        """The API key of the project whose seeded invoice ``target`` names, if it names one."""
        if self.foreign_invoice_id in target:
            return self.other.api_key
        return self.demo.api_key if any(i in target for i in self.invoice_ids) else None


class _CurrentStdout:
    """A stream that writes to whatever sys.stdout is now (the Powertools logger binds its stream
    once; this lets each request's log lines be captured with the request)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@contextmanager
def logs_per_request() -> Iterator[None]:
    """Send the Powertools logger's lines to its own handler only, writing to
    :class:`_CurrentStdout`, so each request's lines are captured with its answer (see
    ``Received.log``) instead of also piling up, tens of thousands of them, in pytest's log
    capture (whose handlers pytest attaches to this logger too)."""
    from ledgerbridge.observability import logger

    handler, inner = logger.registered_handler, logger._logger
    stream = handler.setStream(_CurrentStdout())  # type: ignore[attr-defined]
    inner.callHandlers = handler.handle  # type: ignore[method-assign]
    try:
        yield
    finally:
        del inner.callHandlers
        if stream is not None:
            handler.setStream(stream)  # type: ignore[attr-defined]


def record_counters(stack: Stack, connection_ids: tuple[str, ...]) -> dict[str, Callable[[], int]]:
    """How many invoices and created contacts are stored, read in-process from moto so that it
    can be taken after every request: the invoices table's own count (DescribeTable's ItemCount),
    and the ``REF#contact#`` items in the fuzzed connections' partitions of the accounts table
    (a partition, not the table: the sandbox's books live there too)."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.dynamo_type import DynamoType

    from ledgerbridge.config import settings

    backend = dynamodb_backends[stack.account_id][stack.region]
    invoices = backend.get_table(settings().invoices_table)
    accounts = backend.get_table(settings().accounts_table)
    partitions = [DynamoType({"S": f"CONNECTION#{connection_id}"}) for connection_id in connection_ids]

    def contacts() -> int:
        return sum(
            1
            for partition in partitions
            for sort_key in accounts.items.get(partition, {})
            if str(sort_key.value).startswith("REF#contact#")
        )

    return {"invoice": lambda: len(invoices), "contact": contacts}


def _json(received: Received, what: str) -> Any:
    assert received.status < 300, f"{what}: {received.status} {received.body[:500]!r}"
    return json.loads(received.body)


def build_harness(stack: Stack, demo: dict[str, Any]) -> Harness:
    from ledgerbridge.admin import create_api_key, create_connection, create_project, revoke_api_key
    from ledgerbridge.ids import reference_id

    api = LocalApi(stack)
    demo_credentials = Credentials(demo["api_key"], demo["connection_token"])
    other_project = create_project("Fuzz: another project")
    other_connection = create_connection(other_project["project_id"], "sandbox")
    other = Credentials(
        create_api_key(other_project["project_id"])["api_key"], other_connection["connection_token"]
    )
    revoked = create_api_key(demo["project_id"])
    revoke_api_key(revoked["key_id"])

    def get(path: str, credentials: Credentials | None = demo_credentials) -> Received:
        return api.send(Sent("GET", path, credentials.headers() if credentials else (), b""))

    def create(credentials: Credentials, invoice: dict[str, Any]) -> str:
        headers = (*credentials.headers(), ("content-type", "application/json"))
        answer = api.send(Sent("POST", "/accounting/invoices", headers, json.dumps(invoice).encode()))
        return _json(answer, "seed invoice")["id"]

    document = _json(get("/openapi.json", None), "GET /openapi.json")
    unauthorized = get("/accounting/invoices", None)
    assert unauthorized.status == 401, f"no credentials: {unauthorized.status} {unauthorized.body[:300]!r}"
    contacts = _json(get("/accounting/contacts?limit=100"), "contacts")["data"]
    connection = demo["connection_id"]
    refs = References(
        customers=tuple(c["id"] for c in contacts if c.get("is_customer")),
        vendors=tuple(c["id"] for c in contacts if c.get("is_supplier")),
        items=tuple(i["id"] for i in _json(get("/accounting/items"), "items")["data"]),
        tracking=tuple(t["id"] for t in _json(get("/accounting/trackingcategories"), "tracking")["data"]),
        period=reference_id(connection, "accounting_period", "P-2026"),
    )
    assert refs.customers and refs.vendors and refs.items and refs.tracking, refs
    seed = {"currency": "USD", "line_items": [{"description": "Seed", "quantity": 1, "unit_price": 10}]}
    invoice_ids = tuple(create(demo_credentials, seed) for _ in range(3))
    foreign = create(other, seed)
    page = _json(get("/accounting/invoices?limit=1"), "list")
    cursors = tuple(c for c in (page.get("next_cursor"), page.get("previous_cursor")) if c)
    ref_page = _json(get("/accounting/contacts?limit=1"), "contacts page")
    cursors += tuple(c for c in (ref_page.get("next_cursor"),) if c)

    secrets = (
        demo["api_key"],
        demo["connection_token"],
        other.api_key,
        other.connection_token,
        revoked["api_key"],
    )
    counters = record_counters(stack, (connection, other_connection["connection_id"]))
    oracle = Oracle(Contract(document), (demo_credentials, other), unauthorized, counters, secrets)
    return Harness(
        api=api,
        oracle=oracle,
        recorder=Recorder(oracle),
        demo=demo_credentials,
        other=other,
        revoked=revoked["api_key"],
        refs=refs,
        invoice_ids=invoice_ids,
        foreign_invoice_id=foreign,
        cursors=cursors,
    )
