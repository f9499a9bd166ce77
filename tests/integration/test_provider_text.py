"""A ledger echoing credentials in its errors: no answer, stored invoice or log line repeats them.

A QuickBooks connection (FakeQuickBooks behind the real ProviderHttp and TokenSource, its
tokens in DynamoDB under KMS, the OAuth app in Secrets Manager) whose refusals quote the
request: a bearer token, the connection's own access and refresh tokens, the app's client
secret. The provider's words around them must still reach the caller.
"""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

import boto3
import httpx
import pytest

from ledgerbridge import admin, connections, jsonutil
from ledgerbridge.config import settings
from ledgerbridge.ids import reference_id
from ledgerbridge.observability import logger
from ledgerbridge.providers.base import ProviderUnavailable
from ledgerbridge.redaction import REDACTED
from tests.fakes.quickbooks import REALM_ID, FakeQuickBooks
from tests.integration.conftest import Api
from tests.integration.test_retries import load, receive, sqs_event

ACCESS_TOKEN = "qb-access-7Hc2R9wQ4mZp"
REFRESH_TOKEN = "qb-refresh-Lk83Jd02nVbX"
CLIENT_SECRET = "qb-client-secret-5Tg7Yh"
OTHER_BEARER = "eyOther0x9f8e7d6c5b4a"
SECRETS = (ACCESS_TOKEN, REFRESH_TOKEN, CLIENT_SECRET, OTHER_BEARER)
ECHO = {
    "Fault": {
        "Error": [
            {
                "Message": "Invalid Reference Id",
                "Detail": f"Customer 1 is inactive. Request: Authorization: Bearer {OTHER_BEARER}",
                "code": "2500",
            },
            {
                "Message": "Request Echo",
                "Detail": f"token={ACCESS_TOKEN} refresh {REFRESH_TOKEN}\nclient {CLIENT_SECRET}",
                "code": "2010",
            },
        ],
        "type": "ValidationFault",
    }
}


class QuickBooks:
    def __init__(self, api: Api, fake: FakeQuickBooks, connection_id: str, log: io.StringIO):
        self.api, self.fake, self.connection_id, self.log = api, fake, connection_id, log

    def invoice(self) -> dict[str, Any]:
        customer = reference_id(self.connection_id, "contact", "1")
        return {"contact_id": customer, "line_items": [{"quantity": 1, "unit_price": Decimal("100")}]}

    def stored_items(self) -> str:
        """The connection's invoice items as DynamoDB holds them, as one text."""
        items = boto3.client("dynamodb").scan(TableName=settings().invoices_table)["Items"]
        return repr([item for item in items if item["connection_id"]["S"] == self.connection_id])


@pytest.fixture
def quickbooks(
    demo: dict[str, Any], api_module: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> QuickBooks:
    fake = FakeQuickBooks(access_token=ACCESS_TOKEN, refresh_token=REFRESH_TOKEN, client_secret=CLIENT_SECRET)
    apps = {"quickbooks": {"client_id": fake.client_id, "client_secret": CLIENT_SECRET}}
    boto3.client("secretsmanager").put_secret_value(
        SecretId=settings().oauth_clients_secret, SecretString=json.dumps(apps)
    )
    client = httpx.Client(transport=httpx.MockTransport(fake.handle))
    monkeypatch.setattr("ledgerbridge.providers.http.shared_client", lambda: client)
    tokens = {"access_token": ACCESS_TOKEN, "refresh_token": REFRESH_TOKEN, "expires_in": 3600}
    settings_ = {"realm_id": REALM_ID, "default_item_id": "1"}
    connection = admin.create_connection(demo["project_id"], "quickbooks", tokens, settings_)
    [synced] = admin.sync_references(connection_id=connection["connection_id"])
    assert "error" not in synced, synced
    log = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", log)
    credentials = {"x-api-key": demo["api_key"], "x-connection-token": connection["connection_token"]}
    return QuickBooks(Api(api_module, lambda_context, credentials), fake, connection["connection_id"], log)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_a_refusal_echoing_credentials_is_answered_stored_and_logged_without_them(
    quickbooks: QuickBooks,
) -> None:
    quickbooks.fake.answer_next(400, ECHO)
    answer = quickbooks.api.create(quickbooks.invoice())
    assert answer.status == 422, answer.text
    body = answer.json
    assert body["error"] == "provider_rejected"
    assert [detail["reason"] for detail in body["details"]] == [
        f"Invalid Reference Id: Customer 1 is inactive. Request: Authorization: {REDACTED}",
        f"Request Echo: token={REDACTED} refresh {REDACTED} client {REDACTED}",
    ]
    assert "Customer 1 is inactive" in body["message"] and REDACTED in body["message"]
    stored = quickbooks.api.call("GET", f"/accounting/invoices/{body['invoice_id']}").json
    assert stored["sync_status"] == "failed"
    assert stored["sync_error"] == body["message"].removeprefix("quickbooks refused the invoice: ")
    log = quickbooks.log.getvalue()
    [failed] = [json.loads(line) for line in log.splitlines() if '"invoice failed"' in line]
    assert failed["reason"] == stored["sync_error"]
    for text in (answer.text, quickbooks.stored_items(), log):
        assert_no_secret(text)


def test_the_retry_path_stores_and_logs_echoed_credentials_redacted(
    quickbooks: QuickBooks, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    quickbooks.fake.answer_next(200, {"time": "2026-05-05T03:20:11.171-07:00"})  # no invoice: may resend
    accepted = quickbooks.api.create(quickbooks.invoice())
    assert (accepted.status, accepted.json["sync_status"]) == (201, "pending"), accepted.text
    invoice_id = accepted.json["id"]
    retry = load("retry")
    monkeypatch.setenv("LEDGERBRIDGE_RETRY_BACKOFF_SECONDS", "0")  # the failed message comes back at once

    provider = connections.provider_for("quickbooks")
    with monkeypatch.context() as down:

        def echoing_lookup(connection: Any, outbound: Any) -> None:
            raise ProviderUnavailable(
                f"lookup failed: Authorization: Bearer {OTHER_BEARER} at {ACCESS_TOKEN}"
            )

        down.setattr(provider, "find_invoice", echoing_lookup)
        assert retry.handler(sqs_event(receive()), lambda_context)["batchItemFailures"]
    pending = quickbooks.api.call("GET", f"/accounting/invoices/{invoice_id}").json
    assert pending["sync_status"] == "pending"
    assert pending["sync_error"] == f"lookup failed: Authorization: {REDACTED} at {REDACTED}"

    quickbooks.fake.answer_next(400, ECHO)
    assert retry.handler(sqs_event(receive()), lambda_context) == {"batchItemFailures": []}
    failed = quickbooks.api.call("GET", f"/accounting/invoices/{invoice_id}").json
    assert failed["sync_status"] == "failed"
    assert failed["sync_error"].startswith("Invalid Reference Id: Customer 1 is inactive.")
    log = quickbooks.log.getvalue()
    assert '"invoice queued for retry"' in log and '"invoice failed"' in log
    for text in (jsonutil.dumps(pending), jsonutil.dumps(failed), quickbooks.stored_items(), log):
        assert_no_secret(text)


def test_a_failed_reference_sync_reports_the_refusal_without_credentials(quickbooks: QuickBooks) -> None:
    quickbooks.fake.answer_next(400, ECHO)
    [result] = admin.sync_references(connection_id=quickbooks.connection_id)
    assert result["error"].startswith("ProviderRejected: Invalid Reference Id: Customer 1 is inactive.")
    assert REDACTED in result["error"]
    assert_no_secret(result["error"])
