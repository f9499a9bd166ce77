"""Durable retries: 201 pending and a queued message when the provider is down; retry and sweeper.

Invoices here; the contact-specific outcomes are in test_contacts.py. The queue carries both
kinds: a message names its kind, and one without a kind (queued before kinds existed) is an
invoice.
"""

from __future__ import annotations

import importlib.util
import json
import os
from decimal import Decimal
from typing import Any

import boto3
import pytest

from ledgerbridge import connections, contacts, retries
from ledgerbridge.auth import Principal
from ledgerbridge.config import settings
from ledgerbridge.local.stack import sqs_event as local_sqs_event
from ledgerbridge.models import ContactInput
from ledgerbridge.providers.base import ProviderUnavailable
from ledgerbridge.providers.sandbox import ledger_code
from ledgerbridge.store import contacts as stored_contacts
from ledgerbridge.store import invoices
from tests.conftest import ROOT
from tests.integration.conftest import Api


def load(function: str) -> Any:
    path = ROOT / "functions" / function / "app.py"
    spec = importlib.util.spec_from_file_location(f"ledgerbridge_{function}_app", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def provider_down(monkeypatch: pytest.MonkeyPatch, *sends: str) -> None:
    """The sandbox unreachable for ``sends`` (its send_invoice unless named)."""

    def unavailable(connection, outbound, request):
        raise ProviderUnavailable("HTTP 503 from the provider (gave up after 4 attempts)")

    for send in sends or ("send_invoice",):
        monkeypatch.setattr(connections.provider_for("sandbox"), send, unavailable)


def queued_invoice(api: Api, monkeypatch: pytest.MonkeyPatch, total: Decimal) -> str:
    """An invoice created while the sandbox is down (so stored pending and queued); its id."""
    with monkeypatch.context() as down:
        provider_down(down)
        return api.create({"total_amount": total}).json["id"]


def receive(max_messages: int = 10) -> list[dict[str, Any]]:
    """Messages on the retry queue, as the SQS event source would hand them to the function."""
    sqs = boto3.client("sqs")
    queue_url = os.environ["LEDGERBRIDGE_RETRY_QUEUE_URL"]
    response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=max_messages,
                                   AttributeNames=["All"], MessageSystemAttributeNames=["All"])  # fmt: skip
    return response.get("Messages", [])


def sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """What the SQS event source mapping would hand the retry function (the local stack's builder)."""
    arn = boto3.client("sqs").get_queue_attributes(
        QueueUrl=os.environ["LEDGERBRIDGE_RETRY_QUEUE_URL"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    return local_sqs_event(messages, arn, "us-east-1")


def test_provider_down_answers_201_pending_with_location_and_queues_the_invoice(
    api: Api, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider_down(monkeypatch)
    answer = api.create({"total_amount": Decimal("12.50")})
    assert answer.status == 201
    invoice = answer.json
    assert invoice["sync_status"] == "pending"
    assert answer.headers["Location"] == f"/accounting/invoices/{invoice['id']}"
    [message] = receive()
    assert json.loads(message["Body"]) == {
        "kind": "invoice",
        "project_id": demo["project_id"],
        "connection_id": demo["connection_id"],
        "invoice_id": invoice["id"],
    }
    assert message["Attributes"]["MessageGroupId"] == demo["connection_id"]
    stored = invoices.get(demo["connection_id"], invoice["id"])
    assert stored["retry_queued_at"] and "503" in stored["sync_error"]


def test_the_retry_function_delivers_once_the_provider_is_back(
    api: Api, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    invoice_id = queued_invoice(api, monkeypatch, Decimal("12.50"))
    result = load("retry").handler(sqs_event(receive()), lambda_context)
    assert result == {"batchItemFailures": []}
    invoice = api.call("GET", f"/accounting/invoices/{invoice_id}").json
    assert (invoice["sync_status"], invoice["total_amount"]) == ("synced", Decimal("12.50"))
    assert invoice["remote_id"]


def test_a_failed_retry_is_reported_and_backed_off(
    api: Api, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    provider_down(monkeypatch)
    invoice_id = api.create({"total_amount": Decimal("1")}).json["id"]
    messages = receive()
    result = load("retry").handler(sqs_event(messages), lambda_context)
    assert result == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    assert receive() == []  # its visibility was pushed out: not back at once
    assert api.call("GET", f"/accounting/invoices/{invoice_id}").json["sync_status"] == "pending"


def test_the_last_attempt_marks_the_invoice_failed_with_the_last_error(
    api: Api, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    provider_down(monkeypatch)
    invoice_id = api.create({"total_amount": Decimal("1")}).json["id"]
    event = sqs_event(receive())
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "8"
    load("retry").handler(event, lambda_context)
    invoice = api.call("GET", f"/accounting/invoices/{invoice_id}").json
    assert invoice["sync_status"] == "failed"
    assert "gave up after 8 attempts" in invoice["sync_error"] and "503" in invoice["sync_error"]


def test_a_settle_failure_after_the_provider_accepted_is_201_pending_and_recovered_without_a_duplicate(
    api: Api, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    from ledgerbridge.store.dynamo import storage_unavailable

    with monkeypatch.context() as broken:
        broken.setattr(invoices, "settle", lambda *a, **k: (_ for _ in ()).throw(storage_unavailable()))
        answer = api.create({"total_amount": Decimal("7")})
    assert (answer.status, answer.json["sync_status"]) == (201, "pending")
    load("retry").handler(sqs_event(receive()), lambda_context)
    invoice = api.call("GET", f"/accounting/invoices/{answer.json['id']}", query={"remote_data": "1"}).json
    assert invoice["sync_status"] == "synced"
    assert invoice["remote_data"]["external_id"] == answer.json["id"]
    assert invoice["remote_id"] == ledger_code(answer.json["id"])
    books = boto3.client("dynamodb").query(
        TableName=settings().accounts_table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :invoice)",
        ExpressionAttributeValues={
            ":pk": {"S": f"SANDBOX#{demo['connection_id']}"},
            ":invoice": {"S": "INVOICE#"},
        },
    )
    assert books["Count"] == 1  # the ledger's first and only invoice: found, not re-created


def test_the_sweeper_requeues_pending_invoices_with_no_retry_in_flight(
    api: Api, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    provider_down(monkeypatch)
    with monkeypatch.context() as queue_down:  # as if the Lambda died before queueing the retry
        queue_down.setattr(retries, "client", lambda service: (_ for _ in ()).throw(RuntimeError("SQS down")))
        stranded = api.create({"total_amount": Decimal("3")})
    assert (stranded.status, stranded.json["sync_status"]) == (201, "pending")
    queued = api.create({"total_amount": Decimal("4")}).json["id"]
    monkeypatch.setenv("LEDGERBRIDGE_SWEEP_AFTER_SECONDS", "0")
    assert load("sweeper").handler({}, lambda_context) == {"requeued": 1, "tokens_removed": 0}
    assert load("sweeper").handler({}, lambda_context) == {
        "requeued": 0,
        "tokens_removed": 0,
    }  # now it has a retry in flight
    ids = sorted(json.loads(m["Body"])["invoice_id"] for m in receive())
    assert ids == sorted([queued, stranded.json["id"]])


def test_messages_skipped_behind_a_failed_one_are_released_not_held_for_minutes(
    api: Api, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    provider_down(monkeypatch)
    ids = [api.create({"total_amount": Decimal(n)}).json["id"] for n in (1, 2, 3)]
    messages = receive()
    assert [json.loads(m["Body"])["invoice_id"] for m in messages] == ids  # one group, in order
    monkeypatch.setenv("LEDGERBRIDGE_RETRY_BACKOFF_SECONDS", "600")
    result = load("retry").handler(sqs_event(messages), lambda_context)
    assert len(result["batchItemFailures"]) == 3  # the first failed; the group's others were skipped
    assert receive() == []  # FIFO: the group waits behind its failed first message...
    sqs = boto3.client("sqs")
    sqs.change_message_visibility(  # ...until its backoff is over (here: at once)
        QueueUrl=os.environ["LEDGERBRIDGE_RETRY_QUEUE_URL"], ReceiptHandle=messages[0]["ReceiptHandle"],
        VisibilityTimeout=0,
    )  # fmt: skip
    visible = [json.loads(m["Body"])["invoice_id"] for m in receive()]
    assert visible == ids  # then all three, in order: the skipped ones were not held for minutes


@pytest.mark.parametrize(
    "prefer", ["respond-async", "wait=10, Respond-Async", "handling=lenient;x, respond-async;a=b"]
)
def test_prefer_respond_async_stores_queues_and_answers_202_without_calling_the_ledger(
    api: Api, monkeypatch: pytest.MonkeyPatch, lambda_context: Any, prefer: str
) -> None:
    sandbox = connections.provider_for("sandbox")
    calls: list[Any] = []
    with monkeypatch.context() as watched:
        watched.setattr(sandbox, "send_invoice", lambda *args: calls.append(args))
        answer = api.create(
            {"total_amount": Decimal("9.99")}, headers={"Prefer": prefer}, query={"remote_data": "1"}
        )
    assert (answer.status, answer.json["sync_status"], calls) == (202, "pending", [])
    assert answer.json["remote_data"] is None  # asked for, but the ledger has not seen it yet
    assert answer.headers["Preference-Applied"] == "respond-async"
    assert answer.headers["Location"] == f"/accounting/invoices/{answer.json['id']}"
    load("retry").handler(sqs_event(receive()), lambda_context)
    invoice = api.call("GET", answer.headers["Location"]).json
    assert (invoice["sync_status"], invoice["total_amount"]) == ("synced", Decimal("9.99"))


def test_without_respond_async_the_ledger_is_called_in_the_request(api: Api) -> None:
    answer = api.create({"total_amount": Decimal("1")}, headers={"Prefer": "return=minimal"})
    assert (answer.status, answer.json["sync_status"]) == (201, "synced")
    assert "Preference-Applied" not in answer.headers
    assert receive() == []


def test_a_refused_invoice_is_refused_before_anything_is_queued_even_async(api: Api) -> None:
    answer = api.create({"currency": "usd", "due_date": "2026-01-01", "issue_date": "2026-02-01"},
                        headers={"Prefer": "respond-async"})  # fmt: skip
    assert answer.status == 422
    assert receive() == []


# --- dispatch by kind ------------------------------------------------------------------------


def send_raw(body: dict[str, Any], group: str) -> None:
    """Put a message on the retry queue as some writer (an older one, a newer one) would."""
    boto3.client("sqs").send_message(
        QueueUrl=os.environ["LEDGERBRIDGE_RETRY_QUEUE_URL"], MessageBody=json.dumps(body),
        MessageGroupId=group, MessageDeduplicationId=f"raw-{len(json.dumps(body))}-{body.get('kind')}",
    )  # fmt: skip


def test_a_message_without_a_kind_is_an_invoice_so_messages_already_in_flight_still_deliver(
    api: Api, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    invoice_id = queued_invoice(api, monkeypatch, Decimal("5"))
    [queued] = receive()
    boto3.client("sqs").delete_message(
        QueueUrl=os.environ["LEDGERBRIDGE_RETRY_QUEUE_URL"], ReceiptHandle=queued["ReceiptHandle"]
    )
    old_shape = {
        "project_id": demo["project_id"],
        "connection_id": demo["connection_id"],
        "invoice_id": invoice_id,
    }
    send_raw(old_shape, demo["connection_id"])

    assert load("retry").handler(sqs_event(receive()), lambda_context) == {"batchItemFailures": []}

    invoice = api.call("GET", f"/accounting/invoices/{invoice_id}").json
    assert invoice["sync_status"] == "synced" and invoice["remote_id"]


def test_a_connections_contact_and_invoice_messages_are_dispatched_by_kind_in_order(
    api: Api, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    principal = Principal(demo["project_id"], demo["connection_id"], "sandbox")
    with monkeypatch.context() as down:
        provider_down(down, "send_contact", "send_invoice")
        contact_id = str(
            contacts.create_contact(
                principal, ContactInput.model_validate({"name": "Queued Co"}), False
            ).contact.id
        )
        invoice_id = api.create({"total_amount": Decimal("6")}).json["id"]
    messages = receive()
    assert [json.loads(m["Body"])["kind"] for m in messages] == ["contact", "invoice"]  # one group, in order
    assert {m["Attributes"]["MessageGroupId"] for m in messages} == {demo["connection_id"]}

    assert load("retry").handler(sqs_event(messages), lambda_context) == {"batchItemFailures": []}

    contact = stored_contacts.get(demo["connection_id"], contact_id)
    assert (contact["sync_status"], contact["name"]) == ("synced", "Queued Co")
    assert api.call("GET", f"/accounting/invoices/{invoice_id}").json["sync_status"] == "synced"


def test_a_message_of_an_unknown_kind_fails_without_a_backoff_and_touches_nothing(
    api: Api, demo: dict[str, Any], lambda_context: Any
) -> None:
    body = {"kind": "payment", "project_id": demo["project_id"], "connection_id": demo["connection_id"],
            "payment_id": "0196a3f2-0000-7000-8000-000000000009"}  # fmt: skip
    send_raw(body, demo["connection_id"])
    with pytest.raises(retries.UnknownKind):
        retries.parse(json.dumps(body))
    messages = receive()

    result = load("retry").handler(sqs_event(messages), lambda_context)

    assert result == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    assert [json.loads(m["Body"]) for m in receive()] == [body]  # released at once, on its way to the DLQ


def test_the_sweeper_requeues_pending_contacts_from_their_index_too(
    demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    principal = Principal(demo["project_id"], demo["connection_id"], "sandbox")
    provider_down(monkeypatch, "send_contact")
    with monkeypatch.context() as queue_down:  # as if the Lambda died before queueing the retry
        queue_down.setattr(retries, "client", lambda service: (_ for _ in ()).throw(RuntimeError("SQS down")))
        stranded = contacts.create_contact(
            principal, ContactInput.model_validate({"name": "Stranded"}), False
        )
    assert stranded.contact.sync_status == "pending" and receive() == []
    scans: list[Any] = []
    monkeypatch.setattr("botocore.client.BaseClient._make_api_call", _refusing_scans(scans))
    monkeypatch.setenv("LEDGERBRIDGE_SWEEP_AFTER_SECONDS", "0")

    assert load("sweeper").handler({}, lambda_context) == {"requeued": 1, "tokens_removed": 0}
    assert load("sweeper").handler({}, lambda_context) == {
        "requeued": 0,
        "tokens_removed": 0,
    }  # now it has a retry in flight

    [message] = receive()
    assert json.loads(message["Body"]) == {"kind": "contact", "project_id": demo["project_id"],
                                           "connection_id": demo["connection_id"],
                                           "contact_id": str(stranded.contact.id)}  # fmt: skip
    assert scans == []


def _refusing_scans(scans: list[Any]) -> Any:
    """botocore's call path, recording (and refusing) any Scan: the sweeper must only Query."""
    from botocore.client import BaseClient

    real = BaseClient._make_api_call

    def call(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if operation == "Scan":
            scans.append(params)
            raise AssertionError(f"Scan of {params.get('TableName')}")
        return real(self, operation, params)

    return call
