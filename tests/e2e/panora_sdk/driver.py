"""Drive Panora's official Python SDK (panora-sdk, unchanged) against a Ledgerbridge API.

Run by tests/e2e/test_panora_sdk.py with ``.venv-panora/bin/python``: the SDK pins pydantic<2.9
and httpx<0.28, so it cannot be imported next to Ledgerbridge, and this script imports nothing
of the project. It reads a scenario as JSON on stdin and prints what the SDK returned as JSON
on stdout, for the test to assert on.

Decisions:
- Only the SDK's public API: ``Panora(api_key=..., server_url=..., client=...)`` and its
  ``accounting.*`` methods. Any exception during a step (``SDKError`` for an error status, a
  pydantic ``ValidationError`` when an answer does not fit the SDK's models, a network error)
  ends the run with exit status 1 and ``{"failed_step", "error", "message"}`` holding the SDK's
  own message, which the test fails with.
- Results are the SDK's own models dumped with ``model_dump(mode="json")``: what a caller of
  the SDK sees, fields the SDK does not model dropped (e.g. ``sync_status``; ``remote_data``
  is a model without fields, so it reads as ``{}`` whatever the ledger said).
- ``Idempotency-Key``: the SDK has no parameter for it. Its documented way to add a header
  (its README, "Custom HTTP Client") is the ``client`` argument, any ``httpx.Client``; a
  client whose default headers hold the key sends it on every call, so it gets its own
  ``Panora`` used for the one invoice sent twice. An httpx response hook on that client
  records ``Idempotent-Replayed`` (the SDK returns only the body).
- Paging follows ``result.next_cursor`` with ``cursor=`` until it is None. The SDK's own
  ``next()`` cannot be used: it reads ``$.next_cursor`` with JSONPath, which matches a null
  too, and asks again with ``cursor=None``, i.e. for the first page, forever (its response
  model requires ``next_cursor``, so a last page cannot omit it). ``MAX_PAGES`` turns a cursor
  that never ends into a failure instead of a hang.
- No line items: the SDK's ``LineItem`` is a report line (``name``, ``value``,
  ``parent_item``), not an invoice line, so it cannot send one. The test sends lines over raw
  HTTP; the SDK only reads that invoice back (``read_back_ids``).
- Money: the SDK's models type amounts as float (Panora's spec says ``number``). The scenario
  gives amounts as decimal strings of a few digits, whose float prints back the same digits;
  JSON output prints floats the same way, and the test parses them as Decimal.
- Dates go in as naive ``datetime``, what the SDK's model holds and sends without an offset.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
from panora_sdk import Panora

MAX_PAGES = 100
TIMEOUT_MS = 60_000


class StepFailed(Exception):
    def __init__(self, step: str, error: Exception) -> None:
        super().__init__(step)
        self.report = {"failed_step": step, "error": type(error).__name__, "message": str(error)}


@contextmanager
def step(name: str) -> Iterator[None]:
    try:
        yield
    except Exception as error:
        raise StepFailed(name, error) from error


def dumped(model: Any) -> dict[str, Any] | None:
    return None if model is None else model.model_dump(mode="json")


def invoice_input(spec: dict[str, Any], contact_id: str) -> dict[str, Any]:
    """The SDK's invoice input from a scenario entry: naive datetimes, float amounts."""
    return {
        **spec,
        "contact_id": contact_id,
        "issue_date": datetime.fromisoformat(spec["issue_date"]),
        "due_date": datetime.fromisoformat(spec["due_date"]),
        "total_amount": float(Decimal(spec["total_amount"])),
    }


def answer(name: str, call: Callable[[], Any]) -> dict[str, Any] | None:
    """One SDK call as a named step, its answer as the SDK's model dumped to JSON."""
    with step(name):
        return dumped(call())


def create_contacts(sdk: Panora, token: str, contacts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    create = sdk.accounting.contacts.create
    return [
        answer(
            f"create contact {contact['name']}",
            lambda contact=contact: create(
                x_connection_token=token, unified_accounting_contact_input=contact, remote_data=True
            ),
        )
        for contact in contacts
    ]


def create_invoice(sdk: Panora, token: str, body: dict[str, Any], name: str) -> dict[str, Any]:
    create = sdk.accounting.invoices.create
    return answer(
        name,
        lambda: create(x_connection_token=token, unified_accounting_invoice_input=body, remote_data=True),
    )


def create_twice_with_key(scenario: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The same invoice sent twice with one Idempotency-Key, through a client carrying it."""
    replayed: list[str | None] = []

    def record_replay(response: httpx.Response) -> None:
        replayed.append(response.headers.get("idempotent-replayed"))

    client = httpx.Client(
        headers={"Idempotency-Key": scenario["idempotency_key"]},
        event_hooks={"response": [record_replay]},
    )
    token = scenario["connection_token"]
    with client:
        sdk = sdk_for(scenario, client)
        answers = [
            create_invoice(sdk, token, body, f"create with Idempotency-Key ({attempt})")
            for attempt in ("first", "resend")
        ]
    return {"answers": answers, "idempotent_replayed": replayed}


def retrieve_invoices(sdk: Panora, token: str, ids: list[str]) -> list[dict[str, Any]]:
    retrieve = sdk.accounting.invoices.retrieve
    return [
        answer(
            f"retrieve invoice {invoice_id}",
            lambda invoice_id=invoice_id: retrieve(x_connection_token=token, id=invoice_id, remote_data=True),
        )
        for invoice_id in ids
    ]


def all_pages(list_page: Callable[..., Any], token: str, page_size: int, kind: str) -> list[list[dict]]:
    """Every page of one listing, following next_cursor until the API says there is no more."""
    pages: list[list[dict]] = []
    cursor = None
    while len(pages) < MAX_PAGES:
        with step(f"list {kind} page {len(pages) + 1}"):
            result = list_page(x_connection_token=token, limit=page_size, cursor=cursor).result
        pages.append([dumped(record) for record in result.data])
        cursor = result.next_cursor
        if cursor is None:
            return pages
    raise StepFailed(f"list {kind}", RuntimeError(f"next_cursor still set after {MAX_PAGES} pages"))


def sdk_for(scenario: dict[str, Any], client: httpx.Client | None = None) -> Panora:
    return Panora(
        api_key=scenario["api_key"], server_url=scenario["api_url"], client=client, timeout_ms=TIMEOUT_MS
    )


def run(scenario: dict[str, Any]) -> dict[str, Any]:
    sdk = sdk_for(scenario)
    token = scenario["connection_token"]
    contacts = create_contacts(sdk, token, scenario["contacts"])
    contact_id = contacts[0]["id"]
    invoices = [
        create_invoice(sdk, token, invoice_input(spec, contact_id), f"create invoice {index + 1}")
        for index, spec in enumerate(scenario["invoices"])
    ]
    idempotent = create_twice_with_key(scenario, invoice_input(scenario["idempotent_invoice"], contact_id))
    created_ids = [invoice["id"] for invoice in [*invoices, idempotent["answers"][0]]]
    return {
        "contacts": contacts,
        "invoices": invoices,
        "idempotent": idempotent,
        "retrieved": retrieve_invoices(sdk, token, created_ids + scenario["read_back_ids"]),
        "listings": {
            kind: all_pages(getattr(sdk.accounting, kind).list, token, scenario["page_size"], kind)
            for kind in scenario["listed_kinds"]
        },
    }


def main() -> int:
    try:
        results = run(json.load(sys.stdin))
    except StepFailed as failure:
        print(json.dumps(failure.report))
        return 1
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
