"""Real providers through the local stack: QuickBooks and Xero fakes on localhost.

The stack runs as `make run` does, with LEDGERBRIDGE_<PROVIDER>_API_URL / _TOKEN_URL
pointing at fakes built from recorded exchanges; connections are made with the admin CLI
from a credentials file, as an operator would; invoices go in over HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal

import pytest

from ledgerbridge import jsonutil
from tests.e2e.conftest import LocalStack, start_local_stack
from tests.e2e.support import Connected, admin, configure_oauth_apps, connect, create, fetch, unified_invoice
from tests.fakes import quickbooks, xero
from tests.fakes.server import serve

pytestmark = pytest.mark.e2e


@dataclass
class ProviderStack:
    stack: LocalStack
    quickbooks: Connected
    xero: Connected


@pytest.fixture(scope="module")
def providers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProviderStack]:
    qb_fake, xero_fake = quickbooks.FakeQuickBooks(custom_fields={"1": "PO number"}), xero.FakeXero()
    with ExitStack() as running:
        qb_url = running.enter_context(serve(qb_fake.handle))
        xero_url = running.enter_context(serve(xero_fake.handle))
        stack = running.enter_context(
            start_local_stack(
                {
                    "LEDGERBRIDGE_QUICKBOOKS_API_URL": qb_url,
                    "LEDGERBRIDGE_QUICKBOOKS_TOKEN_URL": qb_url + quickbooks.TOKEN_PATH,
                    "LEDGERBRIDGE_XERO_API_URL": xero_url,
                    "LEDGERBRIDGE_XERO_TOKEN_URL": xero_url + xero.TOKEN_PATH,
                }
            )
        )
        configure_oauth_apps(
            stack,
            {
                "quickbooks": {"client_id": "qb-client-id", "client_secret": "qb-client-secret"},
                "xero": {"client_id": xero.CLIENT_ID, "client_secret": xero.CLIENT_SECRET},
            },
        )
        tmp = tmp_path_factory.mktemp("credentials")
        project = admin(stack, "create-project", "--name", "Provider E2E")
        key = admin(stack, "create-api-key", "--project", project["project_id"])
        qb = connect(stack, tmp, project, key, "quickbooks", qb_fake,
                      {"access_token": "qb-access-0", "refresh_token": "qb-refresh-0"},
                      {"realm_id": quickbooks.REALM_ID, "environment": "sandbox", "default_item_id": "1",
                       "default_expense_account_id": "7", "custom_field.po_number": "1"})  # fmt: skip
        xr = connect(stack, tmp, project, key, "xero", xero_fake,
                      {"access_token": "xero-access-0", "refresh_token": "xero-refresh-0"},
                      {"tenant_id": xero.TENANT_ID, "default_account_code": "200",
                       "default_tax_type": "OUTPUT", "default_bill_account_code": "412",
                       "default_bill_tax_type": "INPUT"})  # fmt: skip
        yield ProviderStack(stack, qb, xr)


# --- QuickBooks ---------------------------------------------------------------------------


@pytest.mark.parametrize(("payable", "entity"), [(False, "Invoice"), (True, "Bill")])
def test_quickbooks_creates_exactly_one_document_with_the_documented_body(
    providers: ProviderStack, payable: bool, entity: str
) -> None:
    qb = providers.quickbooks
    before = len(qb.fake.created(entity))
    response = create(providers.stack, qb, unified_invoice(qb, payable=payable, custom_field=not payable))
    assert response.status_code == 201, response.text
    created = qb.fake.created(entity)
    assert len(created) == before + 1
    invoice = jsonutil.loads(response.text)
    assert invoice["remote_id"] == created[-1]["Id"]
    assert invoice["sync_status"] == "synced"
    [post] = [
        r for r in qb.fake.requests if r.method == "POST" and r.url.params.get("requestid") == invoice["id"]
    ]
    sent = jsonutil.loads(post.content)
    assert sent["TxnDate"] == "2026-11-24" and sent["DueDate"] == "2026-12-24"
    assert sent["CurrencyRef"] == {"value": "USD"} and sent["PrivateNote"] == "November retainer"
    assert ("VendorRef" if payable else "CustomerRef") in sent
    first, second = sent["Line"]
    assert first["Amount"] == Decimal("300.50") and second["Amount"] == Decimal("0.1")
    if payable:
        assert second["DetailType"] == "AccountBasedExpenseLineDetail"
        assert second["AccountBasedExpenseLineDetail"]["AccountRef"] == {"value": "7"}
    else:
        assert second["SalesItemLineDetail"]["ItemRef"] == {"value": "1"}  # default_item_id
        assert sent["CustomField"][0]["DefinitionId"] == "1"
        assert sent["CustomField"][0]["StringValue"] == "PO-7731"
    assert invoice["total_amount"] == Decimal(str(created[-1]["TotalAmt"]))


def test_quickbooks_expired_token_is_refreshed_once(providers: ProviderStack) -> None:
    qb = providers.quickbooks
    qb.fake.expire_access_tokens()
    refreshes = sum(r.url.path == quickbooks.TOKEN_PATH for r in qb.fake.requests)
    response = create(providers.stack, qb, unified_invoice(qb, payable=False, custom_field=False))
    assert response.status_code == 201, response.text
    assert sum(r.url.path == quickbooks.TOKEN_PATH for r in qb.fake.requests) == refreshes + 1


def test_quickbooks_429_with_retry_after_is_waited_out(providers: ProviderStack) -> None:
    qb = providers.quickbooks
    before = len(qb.fake.created("Invoice"))
    qb.fake.fail_next(429, {"Retry-After": "1"})
    started = time.monotonic()
    response = create(providers.stack, qb, unified_invoice(qb, payable=False, custom_field=False))
    assert response.status_code == 201, response.text
    assert time.monotonic() - started >= 1.0
    assert len(qb.fake.created("Invoice")) == before + 1


def test_quickbooks_validation_error_is_422_with_its_message_and_a_failed_record(
    providers: ProviderStack,
) -> None:
    qb = providers.quickbooks
    body = {**unified_invoice(qb, payable=False, custom_field=False), "number": "E2E-DUP-1"}
    assert create(providers.stack, qb, body).status_code == 201
    response = create(providers.stack, qb, body)
    assert response.status_code == 422
    error = response.json()
    assert "Duplicate Document Number Error" in error["message"]
    stored = fetch(providers.stack, qb, error["invoice_id"])
    assert stored["sync_status"] == "failed"
    assert "Duplicate Document Number Error" in stored["sync_error"]


# --- Xero ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("payable", "kind"), [(False, "ACCREC"), (True, "ACCPAY")])
def test_xero_creates_exactly_one_invoice_with_the_documented_body(
    providers: ProviderStack, payable: bool, kind: str
) -> None:
    xr = providers.xero
    before = len(xr.fake.invoice_requests())
    # Xero has no invoice custom fields: a 422 (tested below). The memo becomes an internal note.
    response = create(providers.stack, xr, unified_invoice(xr, payable=payable, custom_field=False))
    assert response.status_code == 201, response.text
    invoice = jsonutil.loads(response.text)
    sent_requests = xr.fake.invoice_requests()[before:]
    assert len(sent_requests) == 1
    [request] = sent_requests
    assert request.headers["idempotency-key"] == invoice["id"]
    assert request.headers["xero-tenant-id"] == xero.TENANT_ID
    [sent] = xr.fake.body_of(request)["Invoices"]
    assert sent["Type"] == kind
    assert sent["Date"] == "2026-11-24" and sent["DueDate"] == "2026-12-24"
    assert sent["CurrencyCode"] == "USD"
    assert "Reference" not in sent  # printed on the invoice: only with memo_target=reference
    assert xr.fake.notes(invoice["remote_id"]) == ["November retainer"]
    first, second = sent["LineItems"]
    assert "ItemCode" in first and "ItemCode" not in second
    assert second["AccountCode"] == ("412" if payable else "200")
    assert first["Tracking"] and second["Tracking"]  # invoice-level tracking lands on every line
    assert invoice["remote_id"] == invoice["remote_data"]["InvoiceID"]
    assert invoice["sync_status"] == "synced"


def test_xero_custom_fields_are_refused_before_anything_is_stored_or_sent(providers: ProviderStack) -> None:
    xr = providers.xero
    before = len(xr.fake.invoice_requests())
    response = create(providers.stack, xr, unified_invoice(xr, payable=False, custom_field=True))
    assert response.status_code == 422
    assert response.json()["details"] == [
        {"field": "field_mappings", "reason": "Xero invoices have no custom fields"}
    ]
    assert len(xr.fake.invoice_requests()) == before


def test_xero_expired_token_is_refreshed_once_with_rotation(providers: ProviderStack) -> None:
    xr = providers.xero
    xr.fake.expire_access_tokens()
    refreshes = sum(r.url.path == xero.TOKEN_PATH for r in xr.fake.requests)
    for _ in range(2):
        response = create(providers.stack, xr, unified_invoice(xr, payable=False, custom_field=False))
        assert response.status_code == 201, response.text
    assert sum(r.url.path == xero.TOKEN_PATH for r in xr.fake.requests) == refreshes + 1


def test_xero_429_with_retry_after_is_waited_out(providers: ProviderStack) -> None:
    xr = providers.xero
    before = len(xr.fake.invoice_requests())
    xr.fake.fail_next(429, {"Retry-After": "1"})
    started = time.monotonic()
    response = create(providers.stack, xr, unified_invoice(xr, payable=False, custom_field=False))
    assert response.status_code == 201, response.text
    assert time.monotonic() - started >= 1.0
    keys = {r.headers["idempotency-key"] for r in xr.fake.invoice_requests()[before:]}
    assert len(keys) == 1  # the retry carried the same idempotency key


def test_xero_validation_error_is_422_with_its_message_and_a_failed_record(providers: ProviderStack) -> None:
    xr = providers.xero
    body = {**unified_invoice(xr, payable=False, custom_field=False), "number": "E2E-XERO-DUP"}
    assert create(providers.stack, xr, body).status_code == 201
    response = create(providers.stack, xr, body)
    assert response.status_code == 422
    error = response.json()
    assert "must be unique" in error["message"]
    stored = fetch(providers.stack, xr, error["invoice_id"])
    assert (stored["sync_status"], stored["remote_id"]) == ("failed", None)


def test_a_refused_refresh_token_answers_409_and_marks_the_connection(providers: ProviderStack) -> None:
    """Last in the module: it leaves the QuickBooks connection needing authorisation."""
    qb = providers.quickbooks
    qb.fake.revoke_refresh_tokens()
    qb.fake.expire_access_tokens()
    for _ in range(2):  # the second answer comes from the stored mark, without the provider
        response = create(providers.stack, qb, unified_invoice(qb, payable=False, custom_field=False))
        assert response.status_code == 409, response.text
        assert response.json()["error"] == "reauthorization_required"
    [connection] = [
        c for c in admin(providers.stack, "list-connections") if c["connection_id"] == qb.connection_id
    ]
    assert connection["status"] == "needs_reauthorization"
