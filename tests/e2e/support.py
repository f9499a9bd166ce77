"""Helpers for e2e tests of real providers: connect through the admin CLI, send invoices over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import httpx

from ledgerbridge import jsonutil
from tests.e2e.conftest import LocalStack


def headers(api_key: str, connection_token: str) -> dict[str, str]:
    return {"x-api-key": api_key, "x-connection-token": connection_token, "content-type": "application/json"}


def admin(stack: LocalStack, *args: str) -> Any:
    """Run the installed console script against the stack, the way the banner tells a user to."""
    script = Path(sys.executable).with_name("ledgerbridge-admin")
    env = {**os.environ, **stack.env, **stack.extra_env}  # the operator's shell sees what the stack sees
    done = subprocess.run([str(script), "--json", *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@dataclass
class Connected:
    """One provider connection made through the admin CLI, and its synced references."""

    fake: Any
    auth: dict[str, str]
    connection_id: str
    references: dict[str, list[dict[str, Any]]]

    def first(self, kind: str, **match: Any) -> str:
        return next(r["id"] for r in self.references[kind] if all(r.get(k) == v for k, v in match.items()))


def configure_oauth_apps(stack: LocalStack, apps: dict[str, dict[str, str]]) -> None:
    """Put the deployment's OAuth apps into the stack's secret, as an operator would after deploying."""
    secrets = boto3.client(
        "secretsmanager",
        endpoint_url=stack.aws_endpoint,
        region_name=stack.env["AWS_DEFAULT_REGION"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    secrets.put_secret_value(SecretId="ledgerbridge/oauth-clients", SecretString=json.dumps(apps))


def connect(stack: LocalStack, tmp: Path, project: dict, key: dict, provider: str, fake: Any, tokens: dict,
             settings: dict[str, str]) -> Connected:  # fmt: skip
    credentials = tmp / f"{provider}.json"
    credentials.write_text(json.dumps({**tokens, "expires_in": 3600}))
    setting_args = [arg for name, value in settings.items() for arg in ("--setting", f"{name}={value}")]
    connection = admin(stack, "create-connection", "--project", project["project_id"], "--provider", provider,
                       "--credentials", str(credentials), *setting_args)  # fmt: skip
    [synced] = admin(stack, "sync-references", "--connection", connection["connection_id"])
    assert "error" not in synced, synced
    auth = headers(key["api_key"], connection["connection_token"])
    references = {
        kind: httpx.get(
            f"{stack.api_url}/accounting/{kind}", headers=auth, params={"limit": 100}, timeout=10
        ).json()["data"]
        for kind in ("contacts", "items", "trackingcategories")
    }
    return Connected(fake, auth, connection["connection_id"], references)


def create(
    stack: LocalStack, connected: Connected, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST /accounting/invoices with the connection's credentials, asking for remote_data.

    A synced invoice's answer is also held to what a GET answers for it, byte for byte: a
    create renders its answer without the Invoice model, a GET with it, and each provider adds
    its own fields (see ``service.fresh_invoice_document``)."""
    response = _post(stack, connected, "/accounting/invoices", body, headers)
    if response.status_code == 201 and jsonutil.loads(response.text)["sync_status"] == "synced":
        fetched = httpx.get(
            f"{stack.api_url}{response.headers['location']}",
            headers=connected.auth,
            params={"remote_data": "true"},
            timeout=10,
        )
        assert fetched.text == response.text, (response.text, fetched.text)
    return response


def create_contact(
    stack: LocalStack, connected: Connected, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST /accounting/contacts with the connection's credentials, asking for remote_data."""
    return _post(stack, connected, "/accounting/contacts", body, headers)


def _post(
    stack: LocalStack, connected: Connected, path: str, body: dict[str, Any], headers: dict[str, str] | None
) -> httpx.Response:
    return httpx.post(
        f"{stack.api_url}{path}",
        content=jsonutil.dumps(body),
        headers={**connected.auth, **(headers or {})},
        params={"remote_data": "true"},
        timeout=60,
    )


def fetch(stack: LocalStack, connected: Connected, invoice_id: str) -> dict[str, Any]:
    return httpx.get(
        f"{stack.api_url}/accounting/invoices/{invoice_id}", headers=connected.auth, timeout=10
    ).json()


def unified_invoice(
    connected: Connected, *, payable: bool, custom_field: bool, memo: bool = True
) -> dict[str, Any]:
    """Contact, two lines (one with an item, one without), tracking, currency, dates, memo."""
    contact = (
        connected.first("contacts", is_supplier=True)
        if payable
        else connected.first("contacts", is_customer=True)
    )
    body: dict[str, Any] = {
        "type": "ACCOUNTS_PAYABLE" if payable else "ACCOUNTS_RECEIVABLE",
        "contact_id": contact,
        "issue_date": "2026-11-24",
        "due_date": "2026-12-24",
        "memo": "November retainer" if memo else None,
        "currency": "USD",
        "exchange_rate": "1",
        "tracking_categories": [connected.first("trackingcategories", status="ACTIVE")],
        "line_items": [
            {"description": "Consulting", "quantity": Decimal("2"), "unit_price": Decimal("150.25"),
             "item_id": connected.references["items"][0]["id"]},
            {"description": "Travel", "quantity": Decimal("1"), "unit_price": Decimal("0.1")},
        ],
    }  # fmt: skip
    if custom_field:
        body["field_mappings"] = {"po_number": "PO-7731"}
    return body
