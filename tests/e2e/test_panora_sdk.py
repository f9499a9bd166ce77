"""Panora's official Python SDK (panora-sdk 0.7.0 from PyPI), unchanged, against the local stack.

The README promises Panora's SDKs work against Ledgerbridge unchanged; this holds it to that.

Decisions:
- The SDK pins pydantic<2.9 and httpx<0.28, against the project's pins, so it lives in its own
  virtualenv, ``.venv-panora``, built by ``make panora-sdk`` (a prerequisite of ``make test``)
  from tests/e2e/panora_sdk/requirements.txt. The test runs tests/e2e/panora_sdk/driver.py
  with that interpreter as a subprocess: scenario in as JSON on stdin, the SDK's answers out
  as JSON on stdout. A missing or stale virtualenv fails the test with the make target to
  run: a silent skip would let the promise go unchecked.
- Its own stack (``start_local_stack``), not the session one: the listings are compared whole
  with what the API lists over raw HTTP, and other modules' invoices would only add noise.
- The sandbox ledger (the stack's default connection) is the ledger. Page size 2: the
  directory's 3 contacts plus the 2 the SDK creates, and 5 invoices, span 3 pages each.
- Whatever the SDK raises (an error status, an answer its models reject) fails the test with
  the SDK's own message and the step it was in.
- Line items go over raw HTTP (the SDK's ``LineItem`` is a report line, not an invoice line)
  and the SDK reads that invoice back. Amounts are compared as Decimal: the driver's JSON is
  parsed with ``jsonutil.loads``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledgerbridge import jsonutil
from tests.e2e.conftest import LocalStack, start_local_stack
from tests.e2e.support import Connected, create, headers, unified_invoice

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PANORA_VENV = ROOT / ".venv-panora"
REQUIREMENTS = Path(__file__).with_name("panora_sdk") / "requirements.txt"
DRIVER = Path(__file__).with_name("panora_sdk") / "driver.py"
DRIVER_TIMEOUT_SECONDS = 300
PAGE_SIZE = 2
LISTED_KINDS = ("invoices", "contacts", "items", "trackingcategories", "accounts")

CONTACTS = [
    {"name": "Initech SDK Customer", "is_customer": True, "email_address": "ap@initech.example"},
    {"name": "Umbrella SDK Supplier", "is_supplier": True, "currency": "USD"},
]
INVOICES = [
    {"type": "ACCOUNTS_RECEIVABLE", "issue_date": "2026-11-24", "due_date": "2026-12-24",
     "currency": "USD", "memo": f"SDK invoice {number}", "total_amount": amount}
    for number, amount in ((1, "1200.5"), (2, "0.1"), (3, "300.6"))
]  # fmt: skip
IDEMPOTENT_INVOICE = {**INVOICES[0], "memo": "SDK invoice with an Idempotency-Key", "total_amount": "99.99"}


@dataclass(frozen=True)
class SdkRun:
    scenario: dict[str, Any]
    results: dict[str, Any]
    lined_invoice: dict[str, Any]  # created over raw HTTP, read back by the SDK

    def sdk_invoices(self) -> list[dict[str, Any]]:
        """Every invoice the SDK created: the plain ones, then the one sent with a key."""
        return [*self.results["invoices"], self.results["idempotent"]["answers"][0]]

    def listed_ids(self, kind: str) -> list[str]:
        return ids(record for page in self.results["listings"][kind] for record in page)


def ids(records: Iterable[dict[str, Any]]) -> list[str]:
    return [record["id"] for record in records]


def panora_python(venv: Path = PANORA_VENV) -> Path:
    """The SDK's interpreter, or a failure saying how to build it."""
    python, stamp = venv / "bin" / "python", venv / ".installed"
    if not python.exists() or not stamp.exists():
        pytest.fail(f"{venv.name} (Panora's SDK) is missing: run `make panora-sdk` (or `make test`)")
    if stamp.stat().st_mtime < REQUIREMENTS.stat().st_mtime:
        pytest.fail(f"{venv.name} is older than {REQUIREMENTS.name}: run `make panora-sdk` (or `make test`)")
    return python


def run_driver(scenario: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [str(panora_python()), str(DRIVER)],
        input=jsonutil.dumps(scenario),
        capture_output=True,
        text=True,
        timeout=DRIVER_TIMEOUT_SECONDS,
    )
    if done.returncode == 1 and done.stdout.strip():
        failure = jsonutil.loads(done.stdout)
        step, error, message = failure["failed_step"], failure["error"], failure["message"]
        pytest.fail(f"Panora SDK failed at {step}: {error}: {message}")
    assert done.returncode == 0, f"driver exited {done.returncode}:\n{done.stderr}"
    return jsonutil.loads(done.stdout)


def scenario_for(stack: LocalStack, **overrides: Any) -> dict[str, Any]:
    return {
        "api_url": stack.api_url,
        "api_key": stack.api_key,
        "connection_token": stack.connection_token,
        "page_size": PAGE_SIZE,
        "listed_kinds": LISTED_KINDS,
        "contacts": CONTACTS,
        "invoices": INVOICES,
        "idempotent_invoice": IDEMPOTENT_INVOICE,
        "idempotency_key": "panora-sdk-e2e-1",
        "read_back_ids": [],
        **overrides,
    }


def raw_list(stack: LocalStack, kind: str) -> list[dict[str, Any]]:
    """One listing in a single page, over raw HTTP: what the SDK's paging must add up to."""
    response = httpx.get(
        f"{stack.api_url}/accounting/{kind}",
        headers=headers(stack.api_key, stack.connection_token),
        params={"limit": 100},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    page = jsonutil.loads(response.text)
    assert page["next_cursor"] is None, f"more than 100 {kind}"
    return page["data"]


def create_lined_invoice(stack: LocalStack) -> dict[str, Any]:
    auth = headers(stack.api_key, stack.connection_token)
    references = {kind: raw_list(stack, kind) for kind in ("contacts", "items", "trackingcategories")}
    connected = Connected(None, auth, stack.fields["connection-id"], references)
    response = create(stack, connected, unified_invoice(connected, payable=False, custom_field=False))
    assert response.status_code == 201, response.text
    return jsonutil.loads(response.text)


@pytest.fixture(scope="module")
def own_stack() -> Iterator[LocalStack]:
    with start_local_stack() as stack:
        yield stack


@pytest.fixture(scope="module")
def sdk_run(own_stack: LocalStack) -> SdkRun:
    lined_invoice = create_lined_invoice(own_stack)
    scenario = scenario_for(own_stack, read_back_ids=[lined_invoice["id"]])
    return SdkRun(scenario, run_driver(scenario), lined_invoice)


def test_a_missing_sdk_venv_fails_with_the_make_target(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"missing: run `make panora-sdk` \(or `make test`\)"):
        panora_python(tmp_path / ".venv-panora")


def test_an_sdk_error_fails_the_test_with_the_sdks_message(own_stack: LocalStack) -> None:
    scenario = scenario_for(own_stack, api_key="lbk_not_a_key")
    with pytest.raises(pytest.fail.Exception) as failure:
        run_driver(scenario)
    message = str(failure.value)
    assert "Panora SDK failed at create contact Initech SDK Customer: SDKError" in message
    assert "API error occurred: Status 401" in message


def test_the_sdk_creates_contacts_in_the_ledger(sdk_run: SdkRun) -> None:
    contacts = sdk_run.results["contacts"]
    assert [contact["name"] for contact in contacts] == [contact["name"] for contact in CONTACTS]
    assert all(contact["id"] and contact["remote_id"] for contact in contacts)
    assert contacts[0]["is_customer"] is True
    assert contacts[0]["email_address"] == "ap@initech.example"
    assert contacts[1]["is_supplier"] is True


def test_the_sdk_creates_invoices_for_the_contact_it_created(sdk_run: SdkRun) -> None:
    invoices = sdk_run.results["invoices"]
    assert [invoice["memo"] for invoice in invoices] == [spec["memo"] for spec in INVOICES]
    assert [invoice["total_amount"] for invoice in invoices] == [Decimal(s["total_amount"]) for s in INVOICES]
    assert {invoice["contact_id"] for invoice in invoices} == {sdk_run.results["contacts"][0]["id"]}
    assert len({invoice["id"] for invoice in invoices}) == len(INVOICES)
    for invoice in invoices:
        assert invoice["remote_id"] and invoice["number"].startswith("INV-")
        assert invoice["type"] == "ACCOUNTS_RECEIVABLE"
        assert invoice["issue_date"] == "2026-11-24T00:00:00Z"  # a naive datetime is read as UTC
        assert invoice["due_date"] == "2026-12-24T00:00:00Z"


def test_an_idempotency_key_sent_through_the_sdks_client_replays_the_first_invoice(sdk_run: SdkRun) -> None:
    first, resend = sdk_run.results["idempotent"]["answers"]
    assert sdk_run.results["idempotent"]["idempotent_replayed"] == [None, "true"]
    assert resend == first
    assert first["total_amount"] == Decimal(IDEMPOTENT_INVOICE["total_amount"])
    assert sdk_run.listed_ids("invoices").count(first["id"]) == 1


def test_the_sdk_retrieves_each_invoice_with_remote_data(sdk_run: SdkRun, own_stack: LocalStack) -> None:
    created = sdk_run.sdk_invoices()
    retrieved = sdk_run.results["retrieved"][: len(created)]
    assert retrieved == created  # the same invoices, field for field (both with remote_data)
    assert all(invoice["remote_data"] == {} for invoice in retrieved)  # present; the SDK models no fields
    raw = httpx.get(
        f"{own_stack.api_url}/accounting/invoices/{created[0]['id']}",
        headers=headers(own_stack.api_key, own_stack.connection_token),
        params={"remote_data": "true"},
        timeout=10,
    )
    assert jsonutil.loads(raw.text)["remote_data"]["total"] == Decimal(INVOICES[0]["total_amount"])


def test_the_sdk_reads_an_invoice_whose_lines_went_over_raw_http(sdk_run: SdkRun) -> None:
    [read_back] = sdk_run.results["retrieved"][-1:]
    lined = sdk_run.lined_invoice
    assert read_back["id"] == lined["id"]
    assert read_back["total_amount"] == lined["total_amount"] == Decimal("300.60")
    assert len(read_back["line_items"]) == len(lined["line_items"]) == 2


@pytest.mark.parametrize("kind", LISTED_KINDS)
def test_the_sdk_pages_every_listing_to_the_end(sdk_run: SdkRun, own_stack: LocalStack, kind: str) -> None:
    assert all(1 <= len(page) <= PAGE_SIZE for page in sdk_run.results["listings"][kind])
    paged_ids = sdk_run.listed_ids(kind)
    assert paged_ids == ids(raw_list(own_stack, kind))
    assert len(set(paged_ids)) == len(paged_ids)


def test_invoices_and_contacts_span_several_pages(sdk_run: SdkRun) -> None:
    listings = sdk_run.results["listings"]
    assert set(sdk_run.listed_ids("invoices")) == set(ids([*sdk_run.sdk_invoices(), sdk_run.lined_invoice]))
    assert set(ids(sdk_run.results["contacts"])) <= set(sdk_run.listed_ids("contacts"))
    assert len(listings["invoices"]) >= 2
    assert len(listings["contacts"]) >= 2
