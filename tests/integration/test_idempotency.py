"""Idempotency-Key on POST: one invoice per key, the first answer replayed, mismatches refused.

One slim record per key: the answer is read back from the invoice it names."""

from __future__ import annotations

import threading
import time
from collections import Counter
from decimal import Decimal
from typing import Any

import boto3
import pytest

from benchmarks.aws_calls import counted
from ledgerbridge import admin, connections, jsonutil
from ledgerbridge.config import settings
from ledgerbridge.store import invoices
from tests.conftest import load_handler_module
from tests.integration.conftest import Api
from tests.integration.test_retries import load, provider_down, receive, sqs_event


def sandbox_sends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the sandbox ledger's create calls (the provider side of the write path)."""
    sandbox = connections.provider_for("sandbox")
    calls: list[str] = []
    original = type(sandbox).send_invoice

    def counting(connection, outbound, request):
        calls.append(outbound.invoice_id)
        return original(sandbox, connection, outbound, request)

    monkeypatch.setattr(sandbox, "send_invoice", counting)
    return calls


def test_a_repeat_returns_the_first_answer_without_touching_the_provider(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = sandbox_sends(monkeypatch)
    body = {"total_amount": Decimal("10.00"), "memo": "once"}
    first = api.create(body, headers={"Idempotency-Key": "order-1001"})
    again = api.create(body, headers={"Idempotency-Key": "order-1001"})
    assert (first.status, again.status) == (201, 201)
    assert again.text == first.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Location"] == first.headers["Location"]
    assert len(calls) == 1
    assert len(api.call("GET", "/accounting/invoices").json["data"]) == 1


def test_the_same_key_with_a_different_body_is_422(api: Api) -> None:
    assert api.create({"total_amount": Decimal("10")}, headers={"Idempotency-Key": "k-1"}).status == 201
    answer = api.create({"total_amount": Decimal("11")}, headers={"Idempotency-Key": "k-1"})
    assert answer.status == 422
    assert answer.json["error"] == "idempotency_mismatch"


def test_a_retry_is_the_same_request_whatever_encoding_the_gateway_gave_its_body(api: Api) -> None:
    """An HTTP API passes some JSON media types base64-encoded: the key compares the bytes sent."""
    body = {"total_amount": Decimal("10"), "memo": "encoded"}
    vendor = {"Idempotency-Key": "k-64", "content-type": "application/vnd.api+json"}
    first = api.create(body, headers=vendor, base64_body=True)
    again = api.create(body, headers={"Idempotency-Key": "k-64"})
    assert (first.status, again.status) == (201, 201)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json["id"] == first.json["id"]


def test_keys_are_scoped_per_connection(api: Api, demo: dict[str, Any]) -> None:
    other = admin.create_connection(demo["project_id"], "sandbox")
    body = {"total_amount": Decimal("10")}
    first = api.create(body, headers={"Idempotency-Key": "shared"})
    second = api.create(
        body, headers={"Idempotency-Key": "shared", "x-connection-token": other["connection_token"]}
    )
    assert (first.status, second.status) == (201, 201)
    assert first.json["id"] != second.json["id"]
    assert "Idempotent-Replayed" not in second.headers


def test_a_rejected_invoice_is_replayed_as_the_same_422(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = sandbox_sends(monkeypatch)
    first = api.create({"memo": "nothing to bill"}, headers={"Idempotency-Key": "bad-1"})
    again = api.create({"memo": "nothing to bill"}, headers={"Idempotency-Key": "bad-1"})
    assert (first.status, again.status) == (422, 422)
    assert again.json["invoice_id"] == first.json["invoice_id"]
    assert len(calls) == 1


def test_an_answer_given_before_storing_does_not_use_up_the_key(api: Api) -> None:
    assert api.create({"currency": "XYZ"}, headers={"Idempotency-Key": "fix-me"}).status == 422
    assert api.create({"total_amount": Decimal("1")}, headers={"Idempotency-Key": "fix-me"}).status == 201


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "é"])
def test_malformed_keys_are_400(api: Api, key: str) -> None:
    answer = api.create({"total_amount": Decimal("1")}, headers={"Idempotency-Key": key})
    assert answer.status == 400
    assert answer.json["details"][0]["field"] == "Idempotency-Key"


def test_a_key_header_sent_twice_is_400_and_creates_nothing(api: Api, demo: dict[str, Any]) -> None:
    """The gateway joins a repeated header's values with commas (as the local stack does): which
    key was meant cannot be told, so neither is used."""
    answer = api.create({"total_amount": Decimal("1")}, headers={"Idempotency-Key": "key-1,key-2"})
    assert answer.status == 400
    assert answer.json["details"][0]["field"] == "Idempotency-Key"
    assert "joined by commas" in answer.json["message"]
    assert api.call("GET", "/accounting/invoices").json["data"] == []


def test_a_key_still_in_flight_answers_409_with_retry_after(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = connections.provider_for("sandbox")
    entered, release = threading.Event(), threading.Event()
    original = type(sandbox).send_invoice

    def slow(connection, outbound, request):
        entered.set()
        release.wait(10)
        return original(sandbox, connection, outbound, request)

    monkeypatch.setattr(sandbox, "send_invoice", slow)
    body = {"total_amount": Decimal("5")}
    results: list[Any] = []
    other_container = Api(
        load_handler_module(), api._context, api.credentials
    )  # concurrent: another container
    first = threading.Thread(
        target=lambda: results.append(other_container.create(body, headers={"Idempotency-Key": "slow"}))
    )
    first.start()
    assert entered.wait(10)
    second = api.create(body, headers={"Idempotency-Key": "slow"})
    release.set()
    first.join(10)
    assert second.status == 409
    assert second.json["error"] == "idempotency_in_progress"
    assert second.headers["Retry-After"] == "2"
    assert results[0].status == 201


# --- the slim record: one write per key, the answer read from the invoice ------------------


def claim_of(connection_id: str, key: str) -> dict[str, Any]:
    table = settings().idempotency_table
    return boto3.client("dynamodb").get_item(
        TableName=table, Key={"id": {"S": f"{connection_id}#invoices#{key}"}}
    )["Item"]


def set_claim(connection_id: str, key: str, **numbers: int) -> None:
    """Move a record's clock fields, as time passing would."""
    names = {f"#{name}": name for name in numbers}
    boto3.client("dynamodb").update_item(
        TableName=settings().idempotency_table,
        Key={"id": {"S": f"{connection_id}#invoices#{key}"}},
        UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in numbers),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":{name}": {"N": str(value)} for name, value in numbers.items()},
    )


class ContainerKilled(BaseException):
    """A Lambda container ending mid-request: no handler of ours sees it (not an Exception)."""


def past_ms() -> int:
    return int(time.time() * 1000) - 1


def test_a_key_costs_one_conditional_put_of_a_slim_record(api: Api, demo: dict[str, Any]) -> None:
    assert api.create({"total_amount": Decimal("1")}).status == 201  # warm
    with counted() as plain:
        assert api.create({"total_amount": Decimal("1")}).status == 201
    with counted() as keyed:
        created = api.create({"total_amount": Decimal("1")}, headers={"Idempotency-Key": "k" * 255})
    assert created.status == 201
    assert keyed.operations - plain.operations == Counter({"dynamodb.PutItem": 1})
    assert keyed.write_units - plain.write_units == 1
    claim = claim_of(demo["connection_id"], "k" * 255)
    assert claim["resource_id"] == {"S": created.json["id"]}
    assert set(claim) == {"id", "fingerprint", "resource_id", "success_status", "running_until", "expiration"}
    assert len(jsonutil.dumps(claim).encode()) < 1024  # a longest key still fits one write unit


def test_a_replay_answers_the_first_status_with_the_invoice_as_it_is_now(
    api: Api, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    body, key = {"total_amount": Decimal("12.50")}, {"Idempotency-Key": "moved-on"}
    with monkeypatch.context() as down:
        provider_down(down)
        first = api.create(body, headers=key)
    assert (first.status, first.json["sync_status"]) == (201, "pending")
    load("retry").handler(sqs_event(receive()), lambda_context)  # the ledger is back: delivered
    again = api.create(body, headers=key)
    assert (again.status, again.headers.get("Idempotent-Replayed")) == (201, "true")
    assert again.headers["Location"] == first.headers["Location"]
    assert again.json == api.call("GET", first.headers["Location"]).json
    assert (again.json["id"], again.json["sync_status"]) == (first.json["id"], "synced")


def test_a_respond_async_create_is_replayed_as_202(api: Api) -> None:
    headers = {"Idempotency-Key": "async-1", "Prefer": "respond-async"}
    first = api.create({"total_amount": Decimal("3")}, headers=headers)
    again = api.create({"total_amount": Decimal("3")}, headers=headers)
    assert (first.status, again.status) == (202, 202)
    assert again.text == first.text
    assert again.headers["Preference-Applied"] == "respond-async"


def test_a_first_request_that_died_before_storing_is_taken_over_with_the_same_id(
    api: Api, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    body, key = {"total_amount": Decimal("4")}, {"Idempotency-Key": "died-early"}

    def crash(record: dict[str, Any]) -> None:
        raise ContainerKilled

    with monkeypatch.context() as dying:
        dying.setattr(invoices, "create_pending", crash)
        with pytest.raises(ContainerKilled):
            api.create(body, headers=key)
    claimed = claim_of(demo["connection_id"], "died-early")["resource_id"]["S"]
    assert api.create(body, headers=key).status == 409  # its time is not up: it may still be running
    set_claim(demo["connection_id"], "died-early", running_until=past_ms())
    taken_over = api.create(body, headers=key)
    assert (taken_over.status, taken_over.json["id"]) == (201, claimed)
    assert "Idempotent-Replayed" not in taken_over.headers
    assert [i["id"] for i in api.call("GET", "/accounting/invoices").json["data"]] == [claimed]


def test_a_first_request_that_died_after_storing_is_answered_pending_and_not_sent_again(
    api: Api, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    body, key = {"total_amount": Decimal("6")}, {"Idempotency-Key": "died-late"}
    calls = sandbox_sends(monkeypatch)

    def crash(connection, outbound, request):
        calls.append(outbound.invoice_id)
        raise ContainerKilled

    with monkeypatch.context() as dying:
        dying.setattr(connections.provider_for("sandbox"), "send_invoice", crash)
        with pytest.raises(ContainerKilled):
            api.create(body, headers=key)
    assert api.create(body, headers=key).status == 409  # stored, not answered, its time not up
    set_claim(demo["connection_id"], "died-late", running_until=past_ms())
    answer = api.create(body, headers=key)
    assert (answer.status, answer.json["sync_status"], answer.headers.get("Idempotent-Replayed")) == (
        201,
        "pending",  # the sweeper delivers it
        "true",
    )
    assert len(calls) == 1
    assert len(api.call("GET", "/accounting/invoices").json["data"]) == 1


def test_an_expired_record_frees_its_key(api: Api, demo: dict[str, Any]) -> None:
    """DynamoDB deletes expired items up to days late: an expired record is not honoured."""
    body, key = {"total_amount": Decimal("8")}, {"Idempotency-Key": "old"}
    first = api.create(body, headers=key)
    set_claim(demo["connection_id"], "old", expiration=int(time.time()) - 1)
    second = api.create(body, headers=key)
    assert second.status == 201 and second.json["id"] != first.json["id"]
    assert "Idempotent-Replayed" not in second.headers


def test_an_answer_given_before_storing_deletes_the_record(api: Api, demo: dict[str, Any]) -> None:
    assert api.create({"currency": "XYZ"}, headers={"Idempotency-Key": "gone"}).status == 422
    table = settings().idempotency_table
    found = boto3.client("dynamodb").get_item(
        TableName=table, Key={"id": {"S": f"{demo['connection_id']}#invoices#gone"}}
    )
    assert "Item" not in found


def test_a_key_cannot_reach_into_another_kind_of_record(api: Api) -> None:
    contact = api.call(
        "POST", "/accounting/contacts", body={"name": "Hash Ltd"}, headers={"Idempotency-Key": "k"}
    )
    invoice = api.create({"total_amount": Decimal("2")}, headers={"Idempotency-Key": "contacts#k"})
    assert (contact.status, invoice.status) == (201, 201)
    assert "Idempotent-Replayed" not in invoice.headers
