"""The webhooks table and the fan-out (store/webhooks.py, webhooks/dispatch.py), against moto.

What the delivery side relies on: an event and its deliveries are stored once however often
the same event is fanned out, a delivery that succeeded is never queued again, secrets are
KMS-bound to their endpoint and decrypted once per container, and the conditional writes
leave nothing behind for an endpoint or delivery that is gone.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from ledgerbridge import jsonutil
from ledgerbridge.config import settings
from ledgerbridge.ids import uuid7
from ledgerbridge.store import webhooks as store
from ledgerbridge.webhooks import dispatch

PROJECT = "01a22000-0000-7000-8000-000000000001"


@pytest.fixture
def queue(aws: Any) -> str:
    """The template's webhook queue, as the functions see it."""
    return os.environ["LEDGERBRIDGE_WEBHOOK_QUEUE_URL"]


def messages(queue_url: str) -> list[dict[str, Any]]:
    """Every message now in the queue (received and left invisible), as parsed bodies."""
    sqs, found = boto3.client("sqs"), []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=300)
        if not batch.get("Messages"):
            return found
        found += [json.loads(message["Body"]) for message in batch["Messages"]]


def table_items() -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=settings().webhooks_table)["Items"]


def endpoint(events: list[str] | None = None, enabled: bool = True, project_id: str = PROJECT) -> dict:
    webhook_id = str(uuid7())
    record = {
        "webhook_id": webhook_id,
        "project_id": project_id,
        "url": "https://93.184.216.34/hook",
        "events": events or ["invoice.synced"],
        "description": "",
        "enabled": enabled,
        "created_at": "2026-01-01T00:00:00Z",
        "modified_at": "2026-01-01T00:00:00Z",
        "secrets_blob": store.encrypt_secrets(webhook_id, [{"secret": "whsec_current", "expires_at": None}]),
    }
    store.put_endpoint(record)
    return store.get_endpoint(project_id, webhook_id) or {}


def event(event_type: str = "invoice.synced") -> dict[str, Any]:
    return {
        "id": str(uuid7()),
        "type": event_type,
        "created_at": "2026-01-01T00:00:00Z",
        "project_id": PROJECT,
        "connection_id": "01a22000-0000-7000-8000-0000000000c1",
        "data": {"id": "inv-1", "total_amount": jsonutil.loads("300.60")},
    }


def test_dispatching_the_same_event_twice_stores_it_once_with_one_delivery_per_endpoint(queue: str) -> None:
    first, second = endpoint(), endpoint()
    fact = event()
    once = dispatch.dispatch(fact, [first, second])
    again = dispatch.dispatch(fact, [first, second])

    assert [d["delivery_id"] for d in once] == [d["delivery_id"] for d in again]
    assert len({d["delivery_id"] for d in once}) == 2
    kinds = [item["sk"]["S"].split("#")[0] for item in table_items()]
    assert kinds.count("EVENT") == 1 and kinds.count("DELIVERY") == 2
    body = store.get_event_body(fact["id"])
    assert body == jsonutil.dumps(fact) and '"total_amount":300.60' in body.replace(" ", "")
    sent = messages(queue)
    assert len(sent) == 4  # both pending both times: queued again, harmless (delivery reads the status)
    assert {m["delivery_id"] for m in sent} == {d["delivery_id"] for d in once}
    assert all(set(m) == {"project_id", "webhook_id", "delivery_id"} for m in sent)
    assert {(m["webhook_id"], m["project_id"]) for m in sent} == {
        (first["webhook_id"], PROJECT),
        (second["webhook_id"], PROJECT),
    }


def test_a_delivery_that_succeeded_is_not_queued_again(queue: str) -> None:
    target, fact = endpoint(), event()
    [delivery] = dispatch.dispatch(fact, [target])
    assert len(messages(queue)) == 1
    attempt = {"at": "2026-01-01T00:00:01Z", "status_code": 204, "latency_ms": 12, "error": None}
    store.record_attempt(target["webhook_id"], delivery["delivery_id"], attempt, "succeeded", None)

    [replayed] = dispatch.dispatch(fact, [target])
    assert replayed["status"] == "succeeded" and len(replayed["attempts"]) == 1
    assert messages(queue) == []


def test_no_endpoint_stores_nothing(queue: str) -> None:
    assert dispatch.dispatch(event(), []) == []
    assert table_items() == [] and messages(queue) == []


def test_the_delivery_id_is_derived_from_the_event_and_the_endpoint(aws: Any) -> None:
    fact = event()
    derived = dispatch.delivery_id(fact["id"], "w1")
    assert derived == dispatch.delivery_id(fact["id"], "w1") != dispatch.delivery_id(fact["id"], "w2")
    assert derived[:13] == fact["id"][:13]  # the event's millisecond: deliveries sort by event time


def test_an_event_is_stored_once_with_its_first_body_and_a_thirty_day_ttl(aws: Any) -> None:
    fact = event()
    store.put_event(fact, '{"first": true}')
    store.put_event(fact, '{"second": true}')
    assert store.get_event_body(fact["id"]) == '{"first": true}'
    [item] = table_items()
    assert abs(int(item["expires_at"]["N"]) - (time.time() + 30 * 86400)) < 60
    assert store.get_event_body(str(uuid7())) is None


def test_subscribed_endpoints_are_the_enabled_ones_that_asked_for_the_type(aws: Any) -> None:
    wanted = endpoint(["invoice.synced", "invoice.failed"])
    endpoint(["invoice.failed"])
    endpoint(["invoice.synced"], enabled=False)
    endpoint(["invoice.synced"], project_id="01a22000-0000-7000-8000-000000000002")
    assert [e["webhook_id"] for e in store.subscribed_endpoints(PROJECT, "invoice.synced")] == [
        wanted["webhook_id"]
    ]


def test_secrets_are_bound_to_their_endpoint_and_decrypted_once_per_container(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = endpoint()
    assert b"whsec_current" not in target["secrets_blob"]
    with pytest.raises(ClientError):  # the blob copied to another endpoint does not decrypt
        store.secret_entries({**target, "webhook_id": str(uuid7())})

    calls: list[dict[str, str]] = []
    real = store.decrypt_json
    monkeypatch.setattr(
        store, "decrypt_json", lambda context, blob: calls.append(context) or real(context, blob)
    )
    store._secrets_cache.clear()
    assert store.endpoint_secrets(target, time.time()) == ["whsec_current"]
    assert store.endpoint_secrets(target, time.time()) == ["whsec_current"]
    assert calls == [{"webhook_id": target["webhook_id"]}]  # warm: no second KMS call


def test_expired_previous_secrets_stop_signing(aws: Any) -> None:
    target = endpoint()
    now = time.time()
    entries = [
        {"secret": "whsec_new", "expires_at": None},
        {"secret": "whsec_old", "expires_at": int(now) + 100},
    ]
    blob = store.encrypt_secrets(target["webhook_id"], entries)
    rotated = store.replace_secrets(PROJECT, target["webhook_id"], target["secrets_blob"], blob, "t")
    assert rotated is not None
    assert store.endpoint_secrets(rotated, now) == ["whsec_new", "whsec_old"]
    assert store.endpoint_secrets(rotated, now + 101) == ["whsec_new"]
    # A second swap against the blob that was replaced changes nothing.
    assert store.replace_secrets(PROJECT, target["webhook_id"], target["secrets_blob"], b"x", "t") is None
    assert store.get_endpoint(PROJECT, target["webhook_id"])["secrets_blob"] == blob


def test_update_sets_and_removes_and_misses_nothing_that_is_gone(aws: Any) -> None:
    target = endpoint()
    store.note_failing(PROJECT, target["webhook_id"], "2026-01-02T00:00:00Z")
    updated = store.update_endpoint(
        PROJECT, target["webhook_id"], {"description": "billing", "failing_since": None, "enabled": False}
    )
    assert updated is not None
    assert (updated["description"], updated["enabled"]) == ("billing", False)
    assert "failing_since" not in updated
    assert store.update_endpoint(PROJECT, str(uuid7()), {"description": "x"}) is None
    assert len(table_items()) == 1  # no item was created for the missing endpoint


def test_failing_keeps_its_first_time_until_cleared_and_disable_notes_why(aws: Any) -> None:
    target = endpoint()
    webhook_id = target["webhook_id"]
    assert (
        store.note_failing(PROJECT, webhook_id, "2026-01-02T00:00:00Z")["failing_since"]
        == "2026-01-02T00:00:00Z"
    )
    assert (
        store.note_failing(PROJECT, webhook_id, "2026-01-03T00:00:00Z")["failing_since"]
        == "2026-01-02T00:00:00Z"
    )
    store.clear_failing(PROJECT, webhook_id)
    assert "failing_since" not in store.get_endpoint(PROJECT, webhook_id)
    note = {"reason": "webhook.disabled", "at": "2026-01-08T00:00:00Z", "message": "failing for 5 days"}
    store.disable_endpoint(PROJECT, webhook_id, note)
    disabled = store.get_endpoint(PROJECT, webhook_id)
    assert (disabled["enabled"], disabled["disabled"]) == (False, note)
    gone = str(uuid7())
    assert store.note_failing(PROJECT, gone, "2026-01-02T00:00:00Z") == {}
    store.clear_failing(PROJECT, gone)
    store.disable_endpoint(PROJECT, gone, note)
    assert len(table_items()) == 1


def test_attempts_are_appended_with_the_status_and_next_attempt(queue: str) -> None:
    target = endpoint()
    [delivery] = dispatch.dispatch(event(), [target])
    webhook_id, delivery_id = target["webhook_id"], delivery["delivery_id"]
    failed = {"at": "2026-01-01T00:00:01Z", "status_code": 500, "latency_ms": 40, "error": "HTTP 500"}
    first = store.record_attempt(webhook_id, delivery_id, failed, "pending", "2026-01-01T00:01:01Z")
    assert (first["status"], first["next_attempt_at"], len(first["attempts"])) == (
        "pending",
        "2026-01-01T00:01:01Z",
        1,
    )
    refused = {
        "at": "2026-01-01T00:01:02Z",
        "status_code": None,
        "latency_ms": 3,
        "error": "connection refused",
    }
    second = store.record_attempt(webhook_id, delivery_id, refused, "failed", None)
    assert second["status"] == "failed" and "next_attempt_at" not in second
    assert [a["error"] for a in second["attempts"]] == ["HTTP 500", "connection refused"]
    assert second["attempts"][1]["status_code"] is None

    reopened = store.reopen_delivery(webhook_id, delivery_id)
    assert reopened is not None and reopened["status"] == "pending" and len(reopened["attempts"]) == 2
    assert store.record_attempt(webhook_id, str(uuid7()), failed, "failed", None) == {}
    assert store.reopen_delivery(webhook_id, str(uuid7())) is None


def test_deliveries_list_newest_first_in_pages(queue: str) -> None:
    target = endpoint()
    ids = [dispatch.dispatch(event(), [target])[0]["delivery_id"] for _ in range(5)]
    page, more = store.list_deliveries(target["webhook_id"], 2, None)
    seen = [d["delivery_id"] for d in page]
    while more:
        page, more = store.list_deliveries(target["webhook_id"], 2, seen[-1])
        seen += [d["delivery_id"] for d in page]
    assert seen == ids[::-1]
    assert all("pk" not in d and "sk" not in d for d in page)


def test_delete_reports_whether_there_was_an_endpoint(aws: Any) -> None:
    target = endpoint()
    assert store.delete_endpoint(PROJECT, target["webhook_id"]) is True
    assert store.delete_endpoint(PROJECT, target["webhook_id"]) is False
    assert store.get_endpoint(PROJECT, target["webhook_id"]) is None
