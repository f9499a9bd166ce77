"""What a new user does after `make run`: paste the curl, list, get, make mistakes, use the admin CLI."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from ledgerbridge import jsonutil
from ledgerbridge.local.stack import DEMO_INVOICE
from tests.e2e.support import admin, headers

if TYPE_CHECKING:
    from tests.e2e.conftest import LocalStack

pytestmark = pytest.mark.e2e

OUTPUT_FIELDS = {
    "id", "type", "number", "issue_date", "due_date", "paid_on_date", "memo", "currency", "exchange_rate",
    "total_discount", "sub_total", "status", "total_tax_amount", "total_amount", "balance", "contact_id",
    "accounting_period_id", "tracking_categories", "line_items", "field_mappings", "remote_id", "remote_data",
    "remote_updated_at", "created_at", "modified_at",
}  # fmt: skip


def post(stack: LocalStack, body: Any, auth: dict[str, str], **params: str) -> httpx.Response:
    content = body if isinstance(body, str) else jsonutil.dumps(body)
    return httpx.post(
        f"{stack.api_url}/accounting/invoices", content=content, headers=auth, params=params, timeout=10
    )


@pytest.fixture(scope="module")
def demo_auth(local_stack: LocalStack) -> dict[str, str]:
    return headers(local_stack.api_key, local_stack.connection_token)


def test_the_printed_curl_creates_an_invoice(local_stack: LocalStack, demo_auth: dict[str, str]) -> None:
    response = post(local_stack, DEMO_INVOICE, demo_auth)
    assert response.status_code == 201, response.text
    invoice = jsonutil.loads(response.text)
    assert set(invoice) >= OUTPUT_FIELDS
    assert invoice["sync_status"] == "synced"
    assert invoice["remote_id"]
    assert '"unit_price":0.1,' in response.text
    assert invoice["total_amount"] == Decimal("300.60")
    assert response.headers["location"] == f"/accounting/invoices/{invoice['id']}"


def test_list_and_get_over_http(local_stack: LocalStack, demo_auth: dict[str, str]) -> None:
    created = jsonutil.loads(post(local_stack, DEMO_INVOICE, demo_auth, remote_data="true").text)
    assert created["remote_data"]["total"] == Decimal("300.60")
    fetched = httpx.get(
        f"{local_stack.api_url}/accounting/invoices/{created['id']}", headers=demo_auth, timeout=10
    )
    assert fetched.status_code == 200
    assert jsonutil.loads(fetched.text)["remote_data"] is None
    page = httpx.get(
        f"{local_stack.api_url}/accounting/invoices", headers=demo_auth, params={"limit": 100}, timeout=10
    )
    assert page.status_code == 200
    assert created["id"] in [invoice["id"] for invoice in jsonutil.loads(page.text)["data"]]


def test_errors_over_http(local_stack: LocalStack, demo_auth: dict[str, str]) -> None:
    assert post(local_stack, DEMO_INVOICE, {"content-type": "application/json"}).status_code == 401
    invalid = post(local_stack, '{"currency": "XYZ", "line_items": [{"unit_price": NaN}]}', demo_auth)
    assert invalid.status_code == 422
    assert [d["field"] for d in invalid.json()["details"]] == ["currency", "line_items.0.unit_price"]
    assert post(local_stack, "{oops", demo_auth).status_code == 400
    missing = httpx.get(
        f"{local_stack.api_url}/accounting/invoices/{'0' * 32}", headers=demo_auth, timeout=10
    )
    assert missing.status_code == 404


def test_admin_cli_sets_up_a_working_connection(local_stack: LocalStack) -> None:
    project = admin(local_stack, "create-project", "--name", "E2E Co")
    key = admin(local_stack, "create-api-key", "--project", project["project_id"])
    connection = admin(
        local_stack, "create-connection", "--project", project["project_id"], "--provider", "sandbox",
        "--setting", "environment=sandbox",
    )  # fmt: skip
    listed = admin(local_stack, "list-connections", "--project", project["project_id"])
    assert [(c["connection_id"], c["settings"]) for c in listed] == [
        (connection["connection_id"], {"environment": "sandbox"})
    ]
    auth = headers(key["api_key"], connection["connection_token"])
    assert post(local_stack, {"total_amount": Decimal("42.00")}, auth).status_code == 201
    # The demo connection belongs to another project: this key cannot use its token.
    assert (
        post(
            local_stack, {"total_amount": Decimal("1")}, headers(key["api_key"], local_stack.connection_token)
        ).status_code
        == 401
    )
    revoked = admin(local_stack, "revoke-api-key", "--key-id", key["key_id"])
    assert revoked["key_id"] == key["key_id"]


def printed_command(stack: LocalStack, heading: str) -> str:
    """The shell command the banner prints under ``heading``, exactly as a user would paste it."""
    start = stack.banner.index(heading) + 1
    end = stack.banner.index("", start)
    return "\n".join(stack.banner[start:end])


@pytest.mark.skipif(shutil.which("curl") is None, reason="the banner's command is a curl command")
def test_pasting_the_printed_curl_gets_201_with_every_field(local_stack: LocalStack) -> None:
    command = printed_command(local_stack, "Create an invoice:")
    done = subprocess.run(
        ["bash", "-c", command + " -w '\\n%{http_code}'"], capture_output=True, text=True, timeout=30
    )
    body, status = done.stdout.rsplit("\n", 1)
    assert status == "201", done.stdout + done.stderr
    invoice = jsonutil.loads(body)
    assert set(invoice) >= OUTPUT_FIELDS
    assert invoice["line_items"][1]["unit_price"] == Decimal("0.1")
    list_command = printed_command(local_stack, "List invoices:")
    listed = subprocess.run(["bash", "-c", list_command], capture_output=True, text=True, timeout=30)
    assert invoice["id"] in listed.stdout


def test_concurrent_requests_each_create_one_invoice(
    local_stack: LocalStack, demo_auth: dict[str, str]
) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(
            pool.map(lambda n: post(local_stack, {"total_amount": Decimal(n)}, demo_auth), range(1, 25))
        )
    assert [r.status_code for r in responses] == [201] * 24
    invoices = [jsonutil.loads(r.text) for r in responses]
    assert sorted(i["total_amount"] for i in invoices) == list(range(1, 25))
    assert len({i["id"] for i in invoices}) == len({i["number"] for i in invoices}) == 24
