"""Webhook events from the tables' streams (ledgerbridge.webhooks.events and the events function).

Every record here is real: a write through the real code path (the API handler with the
sandbox ledger, a ledger that is down, the connect flow, the admin functions, the credential
store), read back from moto's DynamoDB Streams (describe_stream, a TRIM_HORIZON shard iterator,
get_records) and shaped as Lambda hands it over (epoch-second times, binary as base64, the
stream's ARN as eventSourceARN). If the tables of the ``aws`` fixture have no stream yet, the
``streams`` fixture enables one (NEW_AND_OLD_IMAGES, as template.yaml declares).
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections import Counter
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from benchmarks.aws_calls import counted
from ledgerbridge import admin, connect, jsonutil, retries
from ledgerbridge.config import settings
from ledgerbridge.ids import uuid7
from ledgerbridge.local.template import Stack, function_environment
from ledgerbridge.models import now_text
from ledgerbridge.store import accounts, connect_sessions
from ledgerbridge.store import webhooks as store
from ledgerbridge.store.credentials import DynamoCredentialStore
from ledgerbridge.webhooks import EVENT_TYPES, events
from ledgerbridge.webhooks.events import events_from_record
from ledgerbridge.webhooks.signing import new_secret
from tests.integration.conftest import Api
from tests.integration.test_retries import load, provider_down, receive, sqs_event

PUBLIC_URL = "https://api.ledgerbridge.test/v1"
RETURN_URL = "https://app.example.com/back"
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _as_json(value: dict[str, Any]) -> dict[str, Any]:
    """One attribute value as Lambda's JSON carries it: binary as base64 text."""
    [(kind, inner)] = value.items()
    if kind == "B":
        return {"B": base64.b64encode(inner).decode()}
    if kind == "BS":
        return {"BS": [base64.b64encode(item).decode() for item in inner]}
    if kind == "M":
        return {"M": {name: _as_json(item) for name, item in inner.items()}}
    if kind == "L":
        return {"L": [_as_json(item) for item in inner]}
    return value


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A record from get_records as the DynamoDB event source hands it to a function."""
    change = dict(record["dynamodb"])
    change["ApproximateCreationDateTime"] = int(change["ApproximateCreationDateTime"].timestamp())
    for image in ("Keys", "NewImage", "OldImage"):
        if image in change:
            change[image] = {name: _as_json(value) for name, value in change[image].items()}
    shaped = {**record, "dynamodb": change, "eventSourceARN": stream_arn}
    return json.loads(json.dumps(shaped))  # exactly what survives Lambda's JSON


class Streams:
    """The invoices and accounts tables' streams, read on from where the last read stopped."""

    def __init__(self) -> None:
        dynamodb, self._streams = boto3.client("dynamodb"), boto3.client("dynamodbstreams")
        self.arns: dict[str, str] = {}
        self._iterators: dict[str, str] = {}
        for table in (settings().invoices_table, settings().accounts_table):
            description = dynamodb.describe_table(TableName=table)["Table"]
            if "LatestStreamArn" not in description:
                dynamodb.update_table(
                    TableName=table,
                    StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
                )
                description = dynamodb.describe_table(TableName=table)["Table"]
            arn = self.arns[table] = description["LatestStreamArn"]
            [shard] = self._streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
            self._iterators[arn] = self._streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        self.read()  # what the fixtures wrote (the demo project) is not the test's

    def read(self) -> list[dict[str, Any]]:
        """The records written since the last read, in Lambda's shape."""
        records = []
        for arn, iterator in self._iterators.items():
            response = self._streams.get_records(ShardIterator=iterator)
            self._iterators[arn] = response["NextShardIterator"]
            records += [lambda_record(record, arn) for record in response["Records"]]
        return records


@pytest.fixture
def streams(demo: dict[str, Any]) -> Streams:
    return Streams()


def events_of(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for record in records for event in events_from_record(record)]


def only(found: list[dict[str, Any]], event_type: str) -> dict[str, Any]:
    """The one event of ``found``, which must be of ``event_type``."""
    assert [event["type"] for event in found] == [event_type]
    return found[0]


def as_sent(value: Any) -> Any:
    """What a receiver parses out of the body Ledgerbridge sends."""
    return jsonutil.loads(jsonutil.dumps(value))


def without_remote_data(answer: dict[str, Any]) -> dict[str, Any]:
    assert "remote_data" in answer
    return {key: value for key, value in answer.items() if key != "remote_data"}


def assert_envelope(event: dict[str, Any], project_id: str, connection_id: str | None) -> None:
    assert list(event) == ["id", "type", "created_at", "project_id", "connection_id", "data"]
    assert UUID7.match(event["id"]) and ISO_UTC.match(event["created_at"])
    assert (event["project_id"], event["connection_id"]) == (project_id, connection_id)
    assert event["type"] in EVENT_TYPES


# --- invoices -------------------------------------------------------------------------------------


def test_an_invoice_the_ledger_takes_at_once_is_one_invoice_synced_and_no_pending(
    api: Api, demo: dict[str, Any], streams: Streams
) -> None:
    created = api.create({"total_amount": Decimal("12.50"), "memo": "At once"})
    assert created.status == 201 and created.json["sync_status"] == "synced"

    event = only(events_of(streams.read()), "invoice.synced")

    assert_envelope(event, demo["project_id"], demo["connection_id"])
    got = api.call("GET", f"/accounting/invoices/{created.json['id']}").json
    assert as_sent(event["data"]) == without_remote_data(got)
    assert "remote_data" not in event["data"] and event["data"]["total_amount"] == Decimal("12.50")


def test_a_queued_invoice_is_invoice_pending_once_then_invoice_synced_by_the_retry(
    api: Api, demo: dict[str, Any], streams: Streams, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    with monkeypatch.context() as down:
        provider_down(down)
        created = api.create({"total_amount": Decimal("7")})
    assert created.json["sync_status"] == "pending"
    invoice_id = created.json["id"]

    pending = only(events_of(streams.read()), "invoice.pending")
    assert as_sent(pending["data"]) == without_remote_data(
        api.call("GET", f"/accounting/invoices/{invoice_id}").json
    )
    assert pending["data"]["sync_status"] == "pending" and "503" in pending["data"]["sync_error"]

    assert load("retry").handler(sqs_event(receive()), lambda_context) == {"batchItemFailures": []}
    synced = only(events_of(streams.read()), "invoice.synced")
    assert_envelope(synced, demo["project_id"], demo["connection_id"])
    got = api.call("GET", f"/accounting/invoices/{invoice_id}").json
    assert as_sent(synced["data"]) == without_remote_data(got) and got["sync_status"] == "synced"


def test_a_respond_async_invoice_is_pending_and_a_second_queueing_is_no_second_pending(
    api: Api, demo: dict[str, Any], streams: Streams
) -> None:
    created = api.create({"total_amount": Decimal("3")}, headers={"Prefer": "respond-async"})
    assert created.status == 202
    only(events_of(streams.read()), "invoice.pending")

    # The sweeper queueing it again only moves retry_queued_at: the invoice was pending already.
    retries.enqueue(demo["project_id"], demo["connection_id"], created.json["id"], now_text())
    records = streams.read()
    assert len(records) == 1 and events_of(records) == []


def test_a_refused_invoice_is_one_invoice_failed(api: Api, demo: dict[str, Any], streams: Streams) -> None:
    refused = api.create({"memo": "nothing to bill"})
    assert refused.status == 422

    event = only(events_of(streams.read()), "invoice.failed")

    assert_envelope(event, demo["project_id"], demo["connection_id"])
    got = api.call("GET", f"/accounting/invoices/{refused.json['invoice_id']}").json
    assert as_sent(event["data"]) == without_remote_data(got) and got["sync_status"] == "failed"


# --- contacts -------------------------------------------------------------------------------------


def test_a_created_contact_is_contact_synced_and_a_refused_one_contact_failed(
    api: Api, demo: dict[str, Any], streams: Streams
) -> None:
    created = api.call("POST", "/accounting/contacts", body={"name": "Umbrella Corp", "is_customer": True})
    refused = api.call("POST", "/accounting/contacts", body={"name": "Acme Corporation"})
    assert (created.status, refused.status) == (201, 422)

    found = events_of(streams.read())

    assert [event["type"] for event in found] == ["contact.synced", "contact.failed"]
    for event, contact_id in zip(found, (created.json["id"], refused.json["contact_id"]), strict=True):
        assert_envelope(event, demo["project_id"], demo["connection_id"])
        got = api.call("GET", f"/accounting/contacts/{contact_id}").json
        assert as_sent(event["data"]) == without_remote_data(got)
    assert found[1]["data"]["sync_status"] == "failed" and "already exists" in found[1]["data"]["sync_error"]


# --- connections ----------------------------------------------------------------------------------


def test_a_connection_is_created_then_needs_reauthorization_once_then_deleted(
    demo: dict[str, Any], streams: Streams
) -> None:
    project_id = demo["project_id"]
    connection_id = admin.create_connection(project_id, "sandbox")["connection_id"]
    created = only(events_of(streams.read()), "connection.created")
    assert_envelope(created, project_id, connection_id)
    assert as_sent(created["data"]) == as_sent(connect.get_connection(project_id, connection_id))

    credentials = DynamoCredentialStore(project_id, connection_id)
    credentials.mark_needs_reauthorization("the ledger refused the refresh token")
    refused = only(events_of(streams.read()), "connection.needs_reauthorization")
    assert as_sent(refused["data"]) == as_sent(connect.get_connection(project_id, connection_id))
    assert refused["data"]["needs_reauthorization"] is True
    assert refused["data"]["status_reason"] == "the ledger refused the refresh token"
    credentials.mark_needs_reauthorization("refused again")  # the same state: no second event
    again = streams.read()
    assert len(again) == 1 and events_of(again) == []

    assert accounts.mark_connection_deleted(project_id, connection_id, now_text())
    deleted = only(events_of(streams.read()), "connection.deleted")
    assert (deleted["data"]["id"], deleted["data"]["status"]) == (connection_id, "deleted")
    stored = accounts.get_connection(project_id, connection_id)
    assert as_sent(deleted["data"]) == as_sent(connect.connection_view(stored))
    assert "credentials" not in jsonutil.dumps([created, refused, deleted])


# --- connect sessions -----------------------------------------------------------------------------


def consent(project_id: str, body: dict[str, Any], answer: dict[str, str]) -> dict[str, Any]:
    """A connect session taken through the sandbox's consent page, the callback answering ``answer``."""
    session = connect.create_session(project_id, body, PUBLIC_URL)
    redirect = connect.authorize(session["url"].rsplit("/", 1)[1], "sandbox", {}, PUBLIC_URL)
    [state] = parse_qs(urlsplit(redirect.url).query)["state"]
    connect.callback({"state": state, **answer}, PUBLIC_URL)
    return session


def test_a_completed_connect_session_and_its_new_connection_without_the_token(
    demo: dict[str, Any], streams: Streams
) -> None:
    project_id = demo["project_id"]
    session = consent(project_id, {"end_user": {"id": "u1"}}, {"code": "sandbox"})
    outcome = connect.read_session(project_id, session["id"])
    assert outcome["status"] == "connected" and outcome["connection_token"]

    found = events_of(streams.read())

    assert Counter(event["type"] for event in found) == {
        "connection.created": 1,
        "connect_session.completed": 1,
    }
    [completed] = [event for event in found if event["type"] == "connect_session.completed"]
    assert_envelope(completed, project_id, outcome["connection_id"])
    assert as_sent(completed["data"]) == {k: v for k, v in outcome.items() if k != "connection_token"}
    assert outcome["connection_token"] not in jsonutil.dumps(found)


def test_a_reconnect_is_only_connect_session_completed_and_a_refusal_connect_session_failed(
    demo: dict[str, Any], streams: Streams
) -> None:
    project_id, connection_id = demo["project_id"], demo["connection_id"]
    admin.set_project(project_id, [RETURN_URL])
    body = {"end_user": {"id": "u2"}, "connection_id": connection_id, "return_url": RETURN_URL}

    reconnect = consent(project_id, body, {"code": "sandbox"})
    completed = only(events_of(streams.read()), "connect_session.completed")  # no connection.created
    assert completed["data"]["id"] == reconnect["id"] and completed["connection_id"] == connection_id

    declined = consent(
        project_id, {"end_user": {"id": "u3"}, "return_url": RETURN_URL}, {"error": "access_denied"}
    )
    failed = only(events_of(streams.read()), "connect_session.failed")
    assert_envelope(failed, project_id, None)
    outcome = connect.read_session(project_id, declined["id"])
    assert as_sent(failed["data"]) == {k: v for k, v in outcome.items() if k != "connection_token"}
    assert failed["data"]["error"] == "access_denied"


# --- what is not an event -------------------------------------------------------------------------


def test_writes_that_change_no_state_make_no_event(api: Api, demo: dict[str, Any], streams: Streams) -> None:
    created = api.call("POST", "/accounting/contacts", body={"name": "Initech", "is_customer": True})
    session = consent(demo["project_id"], {"end_user": {"id": "u4"}}, {"code": "sandbox"})
    assert Counter(event["type"] for event in events_of(streams.read())) == {
        "contact.synced": 1, "connection.created": 1, "connect_session.completed": 1,
    }  # fmt: skip

    project = admin.create_project("Quiet")["project_id"]
    admin.create_api_key(project)
    admin.set_project(project, [RETURN_URL])
    admin.sync_references(connection_id=demo["connection_id"])  # the created contact is re-synced too
    admin.sync_references(connection_id=demo["connection_id"])
    api.call("GET", "/accounting/invoices")
    api.call("GET", f"/accounting/contacts/{created.json['id']}")
    connect_sessions.forget_token(demo["project_id"], session["id"])  # the sweeper's; still connected

    records = streams.read()
    written = {record["dynamodb"]["Keys"]["sk"]["S"].split("#")[0] for record in records}
    assert {"PROJECT", "APIKEY", "REF", "CONNECT"} <= written
    assert f"REF#contact#{created.json['id']}" in {
        record["dynamodb"]["Keys"]["sk"]["S"] for record in records
    }
    assert events_of(records) == []


def test_a_replayed_record_makes_the_same_events_with_the_same_ids(
    api: Api, streams: Streams, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as down:
        provider_down(down)
        api.create({"total_amount": Decimal("1")})
    api.create({"total_amount": Decimal("2")})
    records = streams.read()

    first, again = events_of(records), events_of(json.loads(json.dumps(records)))

    assert [event["type"] for event in first] == ["invoice.pending", "invoice.synced"]
    assert again == first and len({event["id"] for event in first}) == 2


def test_records_of_another_table_or_a_removal_make_no_event(api: Api, streams: Streams) -> None:
    api.create({"total_amount": Decimal("4")})
    [synced] = [record for record in streams.read() if events_of([record])]
    elsewhere = {**synced, "eventSourceARN": synced["eventSourceARN"].replace("-invoices/", "-other/")}
    removed = {**synced, "eventName": "REMOVE", "dynamodb": {**synced["dynamodb"], "NewImage": None}}
    assert events_of([elsewhere, removed]) == []


# --- the events function --------------------------------------------------------------------------


def endpoint(project_id: str, events_wanted: list[str], enabled: bool = True) -> dict[str, Any]:
    """An endpoint stored as the management API stores one (never contacted here)."""
    webhook_id = str(uuid7())
    record = {
        "webhook_id": webhook_id,
        "project_id": project_id,
        "url": "https://hooks.example.com/ledgerbridge",
        "events": events_wanted,
        "description": "",
        "enabled": enabled,
        "created_at": now_text(),
        "modified_at": now_text(),
        "secrets_blob": store.encrypt_secrets(webhook_id, [{"secret": new_secret(), "expires_at": None}]),
    }
    store.put_endpoint(record)
    return record


@pytest.fixture
def events_function(aws: Stack, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in function_environment(aws, "WebhookEventsFunction").items():
        if not name.startswith("POWERTOOLS_"):
            monkeypatch.setenv(name, value)
    return load("webhook_events")


def webhook_messages() -> list[dict[str, Any]]:
    response = boto3.client("sqs").receive_message(
        QueueUrl=os.environ["LEDGERBRIDGE_WEBHOOK_QUEUE_URL"], MaxNumberOfMessages=10
    )
    return [json.loads(message["Body"]) for message in response.get("Messages", [])]


def stored_events() -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=settings().webhooks_table)["Items"]
    return [item for item in items if item["sk"]["S"] == "EVENT"]


def test_the_events_function_stores_and_queues_a_delivery_per_subscribed_endpoint_once(
    api: Api, demo: dict[str, Any], streams: Streams, events_function: Any, lambda_context: Any
) -> None:
    wanted = endpoint(demo["project_id"], ["invoice.synced", "invoice.failed"])
    other_type = endpoint(demo["project_id"], ["contact.synced"])
    switched_off = endpoint(demo["project_id"], ["invoice.synced"], enabled=False)
    api.create({"total_amount": Decimal("9")})
    event = {"Records": streams.read()}
    [expected] = events_of(event["Records"])

    assert events_function.handler(event, lambda_context) == {"batchItemFailures": []}
    assert events_function.handler(event, lambda_context) == {"batchItemFailures": []}  # a replayed batch

    [delivery], _ = store.list_deliveries(wanted["webhook_id"], 10, None)
    assert (delivery["event_id"], delivery["event_type"], delivery["status"]) == (
        expected["id"], "invoice.synced", "pending",
    )  # fmt: skip
    assert store.get_event_body(expected["id"]) == jsonutil.dumps(expected)
    assert len(stored_events()) == 1
    for unsent in (other_type, switched_off):
        assert store.list_deliveries(unsent["webhook_id"], 10, None) == ([], False)
    named = {
        "project_id": demo["project_id"],
        "webhook_id": wanted["webhook_id"],
        "delivery_id": delivery["delivery_id"],
    }
    assert webhook_messages() == [named, named]  # queued again on replay: delivery checks the stored status


def test_an_event_no_endpoint_subscribed_to_stores_nothing(
    api: Api, demo: dict[str, Any], streams: Streams, events_function: Any, lambda_context: Any
) -> None:
    other_project = admin.create_project("Other")["project_id"]
    endpoint(other_project, list(EVENT_TYPES))
    endpoint(demo["project_id"], ["connection.deleted"])
    api.create({"total_amount": Decimal("5")})

    assert events_function.handler({"Records": streams.read()}, lambda_context) == {"batchItemFailures": []}

    assert stored_events() == [] and webhook_messages() == []


def test_a_batch_reads_each_projects_endpoints_once_and_the_next_batch_reads_them_again(
    api: Api, demo: dict[str, Any], streams: Streams, events_function: Any, lambda_context: Any,
    api_module: Any,
) -> None:  # fmt: skip
    other = admin.create_project("Other")["project_id"]
    other_api = Api(api_module, lambda_context, {
        "x-api-key": admin.create_api_key(other)["api_key"],
        "x-connection-token": admin.create_connection(other, "sandbox")["connection_token"],
    })  # fmt: skip
    first = endpoint(demo["project_id"], ["invoice.synced"])
    endpoint(other, ["invoice.synced"])
    streams.read()  # the other project's setup is not this batch's
    for total in ("1", "2", "3"):
        api.create({"total_amount": Decimal(total)})
    other_api.create({"total_amount": Decimal("4")})
    batch = {"Records": streams.read()}
    assert [event["project_id"] for event in events_of(batch["Records"])].count(demo["project_id"]) == 3

    with counted() as calls:
        assert events_function.handler(batch, lambda_context) == {"batchItemFailures": []}

    assert calls.operations["dynamodb.Query"] == 2  # one per project, not one per event
    assert len(store.list_deliveries(first["webhook_id"], 10, None)[0]) == 3
    later = endpoint(demo["project_id"], ["invoice.synced"])
    api.create({"total_amount": Decimal("5")})
    next_batch = {"Records": streams.read()}
    with counted() as calls:
        assert events_function.handler(next_batch, lambda_context) == {"batchItemFailures": []}
    assert calls.operations["dynamodb.Query"] == 1
    assert len(store.list_deliveries(later["webhook_id"], 10, None)[0]) == 1, "read again, not kept"


def test_a_record_that_cannot_be_fanned_out_is_reported_failed_by_its_sequence_number(
    api: Api, demo: dict[str, Any], streams: Streams, events_function: Any, lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    endpoint(demo["project_id"], ["invoice.synced"])
    api.create({"total_amount": Decimal("6")})
    records = streams.read()
    [synced] = [record for record in records if events_of([record])]

    def unavailable(*args: Any) -> Any:
        raise RuntimeError("webhooks table unavailable")

    monkeypatch.setattr(events, "dispatch", unavailable)
    result = events_function.handler({"Records": records}, lambda_context)

    assert result == {"batchItemFailures": [{"itemIdentifier": synced["dynamodb"]["SequenceNumber"]}]}
