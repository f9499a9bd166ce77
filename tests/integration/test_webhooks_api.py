"""The /webhooks routes (functions/webhooks/app.py) and the admin CLI's webhook commands, against moto.

Each call is one Lambda invocation of the real handler with an HTTP API event (payload format 2.0).
URLs are IP literals, so checking them needs no DNS.
"""

from __future__ import annotations

import base64
import json
import time
from types import ModuleType
from typing import Any

import boto3
import pytest

from ledgerbridge import admin
from ledgerbridge.config import settings
from ledgerbridge.params import encode_cursor
from ledgerbridge.store import webhooks as store
from tests.conftest import load_handler_module
from tests.integration.conftest import Answer, http_event
from tests.integration.test_webhooks_store import messages, queue  # noqa: F401 (a fixture)

PUBLIC_URL = "https://93.184.216.34/hooks/ledgerbridge"


@pytest.fixture(scope="module")
def webhooks_module() -> ModuleType:
    return load_handler_module("webhooks")


def _route(path: str) -> tuple[str, dict[str, str] | None]:
    """The route's path and the path parameters of a /webhooks path, as the template declares them."""
    parts = path.split("/")[2:]  # after "/webhooks"
    if not parts:
        return "/webhooks", None
    params = {"webhook_id": parts[0]}
    if len(parts) == 4:
        params["delivery_id"] = parts[2]
        return "/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", params
    return "/webhooks/{webhook_id}" + "".join(f"/{part}" for part in parts[1:]), params


class Client:
    def __init__(self, module: ModuleType, context: Any, api_key: str):
        self._module, self._context, self.api_key = module, context, api_key

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: str | None = None,
        base64_body: bytes | None = None,
        api_key: str | None = "",
        query: dict[str, str] | None = None,
    ) -> Answer:
        key = self.api_key if api_key == "" else api_key
        route, params = _route(path)
        text = raw if raw is not None else (json.dumps(body) if body is not None else None)
        event = http_event(
            method,
            path,
            route=route,
            body=text,
            headers={"x-api-key": key},
            query=query,
            path_parameters=params,
        )
        if base64_body is not None:
            event.update(body=base64.b64encode(base64_body).decode(), isBase64Encoded=True)
        result = self._module.handler(event, self._context)
        assert result["statusCode"] != 500, result["body"]
        return Answer(result["statusCode"], result.get("headers") or {}, result["body"])

    def create(self, url: str = PUBLIC_URL, events: list[str] | None = None, **fields: Any) -> Answer:
        return self.call("POST", "/webhooks", {"url": url, "events": events or ["invoice.synced"], **fields})


@pytest.fixture
def client(webhooks_module: ModuleType, lambda_context: Any, demo: dict[str, Any], queue: str) -> Client:  # noqa: F811
    return Client(webhooks_module, lambda_context, demo["api_key"])


@pytest.fixture
def other(webhooks_module: ModuleType, lambda_context: Any, demo: dict[str, Any]) -> Client:
    """A second project's key."""
    project = admin.create_project("Someone else")
    return Client(webhooks_module, lambda_context, admin.create_api_key(project["project_id"])["api_key"])


@pytest.fixture(autouse=True)
def deployed_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGERBRIDGE_WEBHOOK_ALLOW_LOOPBACK", raising=False)


def table_text() -> str:
    return repr(boto3.client("dynamodb").scan(TableName=settings().webhooks_table)["Items"])


VIEW_FIELDS = {
    "id",
    "url",
    "events",
    "description",
    "enabled",
    "created_at",
    "modified_at",
    "failing_since",
    "disabled",
}


def test_create_shows_the_secret_once_and_never_again(client: Client) -> None:
    created = client.create(events=["invoice.synced", "invoice.failed"], description="billing")
    assert created.status == 201
    assert set(created.json) == VIEW_FIELDS | {"secret"}
    secret = created.json["secret"]
    assert secret.startswith("whsec_")
    assert (created.json["url"], created.json["events"], created.json["enabled"]) == (
        PUBLIC_URL,
        ["invoice.synced", "invoice.failed"],
        True,
    )
    assert created.json["failing_since"] is None and created.json["disabled"] is None

    listed = client.call("GET", "/webhooks")
    got = client.call("GET", f"/webhooks/{created.json['id']}")
    assert listed.status == got.status == 200
    assert listed.json == {"data": [got.json]}
    assert set(got.json) == VIEW_FIELDS
    assert secret not in listed.text + got.text
    assert secret not in table_text() and secret.removeprefix("whsec_") not in table_text()


@pytest.mark.parametrize("key", [None, "lbk_0000000000000000_not-a-key", "x" * 300])
def test_every_route_needs_the_projects_key(client: Client, key: str | None) -> None:
    webhook_id = client.create().json["id"]
    routes = [
        ("POST", "/webhooks", {"url": "not even checked"}),
        ("GET", "/webhooks", None),
        ("GET", f"/webhooks/{webhook_id}", None),
        ("PATCH", f"/webhooks/{webhook_id}", {"enabled": False}),
        ("DELETE", f"/webhooks/{webhook_id}", None),
        ("POST", f"/webhooks/{webhook_id}/rotate-secret", None),
        ("POST", f"/webhooks/{webhook_id}/test", None),
        ("GET", f"/webhooks/{webhook_id}/deliveries", None),
        ("POST", f"/webhooks/{webhook_id}/deliveries/{webhook_id}/retry", None),
    ]
    for method, path, body in routes:
        answer = client.call(method, path, body, api_key=key)
        assert (answer.status, answer.json["error"]) == (401, "unauthorized"), (method, path)
    assert client.call("GET", f"/webhooks/{webhook_id}").json["enabled"] is True  # nothing changed


def test_another_projects_webhook_is_not_found(client: Client, other: Client) -> None:
    webhook_id = client.create().json["id"]
    [delivery] = [client.call("POST", f"/webhooks/{webhook_id}/test").json["delivery_id"]]
    for method, path, body in [
        ("GET", f"/webhooks/{webhook_id}", None),
        ("PATCH", f"/webhooks/{webhook_id}", {"enabled": False}),
        ("DELETE", f"/webhooks/{webhook_id}", None),
        ("POST", f"/webhooks/{webhook_id}/rotate-secret", None),
        ("POST", f"/webhooks/{webhook_id}/test", None),
        ("GET", f"/webhooks/{webhook_id}/deliveries", None),
        ("POST", f"/webhooks/{webhook_id}/deliveries/{delivery}/retry", None),
    ]:
        answer = other.call(method, path, body)
        assert (answer.status, answer.json["error"]) == (404, "not_found"), (method, path)
    assert other.call("GET", "/webhooks").json == {"data": []}
    assert client.call("GET", f"/webhooks/{webhook_id}").json["enabled"] is True
    assert client.call("GET", "/webhooks/not-an-id").status == 404


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://93.184.216.34/hook", "url must use https"),
        ("https://169.254.169.254/latest/meta-data/", "link-local address (169.254.169.254)"),
        ("https://10.0.0.1/hook", "private address (10.0.0.1)"),
        ("http://127.0.0.1:8080/hook", "url must use https"),
        ("https://user:pass@93.184.216.34/hook", "user name or password"),
    ],
)
def test_unsafe_urls_are_refused_naming_url(client: Client, url: str, reason: str) -> None:
    refused = client.create(url=url)
    assert (refused.status, refused.json["error"]) == (422, "validation_error")
    [detail] = refused.json["details"]
    assert detail["field"] == "url" and reason in detail["reason"]
    assert client.call("GET", "/webhooks").json == {"data": []}


def test_a_loopback_url_is_accepted_when_the_stack_allows_it(client: Client, monkeypatch: Any) -> None:
    monkeypatch.setenv("LEDGERBRIDGE_WEBHOOK_ALLOW_LOOPBACK", "true")
    created = client.create(url="http://127.0.0.1:8080/hook")
    assert created.status == 201 and created.json["url"] == "http://127.0.0.1:8080/hook"
    still_refused = client.create(url="https://10.0.0.1/hook")  # only loopback is relaxed
    assert still_refused.status == 422


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"url": PUBLIC_URL, "events": ["invoice.paid"]}, ["events[0]"]),
        (
            {"url": PUBLIC_URL, "events": ["invoice.synced", "ping", "invoice.synced", 7]},
            ["events[1]", "events[2]", "events[3]"],
        ),
        ({"url": PUBLIC_URL, "events": []}, ["events"]),
        ({"url": PUBLIC_URL, "events": ["invoice.synced"] * 11}, ["events"]),
        ({"url": 7, "events": "invoice.synced"}, ["url", "events"]),
        ({"url": PUBLIC_URL}, ["events"]),
        ({"events": ["invoice.synced"]}, ["url"]),
        ({"url": PUBLIC_URL, "events": ["invoice.synced"], "description": "x" * 501}, ["description"]),
        ({"url": PUBLIC_URL, "events": ["invoice.synced"], "secret": "whsec_mine"}, ["secret"]),
    ],
)
def test_bad_fields_are_422_naming_each(client: Client, body: dict[str, Any], fields: list[str]) -> None:
    refused = client.call("POST", "/webhooks", body)
    assert refused.status == 422
    assert [detail["field"] for detail in refused.json["details"]] == fields
    assert client.call("GET", "/webhooks").json == {"data": []}


@pytest.mark.parametrize(
    "sent",
    [
        {"raw": "{not json"},
        {"raw": '["an", "array"]'},
        {"raw": '{"url": "a", "url": "b"}'},
        {"base64_body": b'{"url": "\xff\xfe"}'},
        {"raw": None},
    ],
)
def test_unreadable_bodies_are_400(client: Client, sent: dict[str, Any]) -> None:
    webhook_id = client.create().json["id"]
    for method, path in (("POST", "/webhooks"), ("PATCH", f"/webhooks/{webhook_id}")):
        answer = client.call(method, path, **sent)
        assert (answer.status, answer.json["error"]) == (400, "bad_request"), (method, path)


def test_patch_changes_fields_and_enabling_clears_the_failure_state(client: Client) -> None:
    created = client.create().json
    webhook_id = created["id"]
    changed = client.call(
        "PATCH",
        f"/webhooks/{webhook_id}",
        {"url": "https://93.184.216.35/new", "events": ["contact.synced"], "description": "new"},
    )
    assert changed.status == 200
    assert (changed.json["url"], changed.json["events"], changed.json["description"]) == (
        "https://93.184.216.35/new",
        ["contact.synced"],
        "new",
    )
    assert changed.json["created_at"] == created["created_at"] <= changed.json["modified_at"]

    project_id = client_project(client)
    store.note_failing(project_id, webhook_id, "2026-01-01T00:00:00Z")
    note = {"reason": "webhook.disabled", "at": "2026-01-06T00:00:00Z", "message": "failing for 5 days"}
    store.disable_endpoint(project_id, webhook_id, note)
    disabled = client.call("GET", f"/webhooks/{webhook_id}").json
    assert (disabled["enabled"], disabled["disabled"], disabled["failing_since"]) == (
        False,
        note,
        "2026-01-01T00:00:00Z",
    )
    enabled = client.call("PATCH", f"/webhooks/{webhook_id}", {"enabled": True})
    assert enabled.status == 200
    assert (enabled.json["enabled"], enabled.json["disabled"], enabled.json["failing_since"]) == (
        True,
        None,
        None,
    )

    assert client.call("PATCH", f"/webhooks/{webhook_id}", {"enabled": False}).json["enabled"] is False
    for body, field in (
        ({}, "body"),
        ({"enabled": "yes"}, "enabled"),
        ({"url": "https://10.0.0.1/"}, "url"),
        ({"events": ["nope"]}, "events[0]"),
        ({"colour": "blue"}, "colour"),
    ):
        refused = client.call("PATCH", f"/webhooks/{webhook_id}", body)
        assert refused.status == 422 and [d["field"] for d in refused.json["details"]] == [field], body
    assert client.call("GET", f"/webhooks/{webhook_id}").json["url"] == "https://93.184.216.35/new"


def client_project(client: Client) -> str:
    from ledgerbridge.auth import authenticate_project

    return authenticate_project(client.api_key)


def test_delete_removes_the_endpoint(client: Client) -> None:
    webhook_id = client.create().json["id"]
    deleted = client.call("DELETE", f"/webhooks/{webhook_id}")
    assert (deleted.status, deleted.text) == (204, "")
    assert client.call("GET", f"/webhooks/{webhook_id}").status == 404
    assert client.call("DELETE", f"/webhooks/{webhook_id}").status == 404
    assert client.call("GET", "/webhooks").json == {"data": []}


def test_rotation_keeps_the_previous_secret_for_24_hours(client: Client) -> None:
    created = client.create().json
    webhook_id, first = created["id"], created["secret"]
    before = time.time()
    rotated = client.call("POST", f"/webhooks/{webhook_id}/rotate-secret")
    assert rotated.status == 200
    assert set(rotated.json) == {"id", "secret", "previous_secret_expires_at"}
    second = rotated.json["secret"]
    assert rotated.json["id"] == webhook_id and second.startswith("whsec_") and second != first
    from datetime import datetime

    expires = datetime.fromisoformat(rotated.json["previous_secret_expires_at"].replace("Z", "+00:00"))
    assert before + 86400 - 2 <= expires.timestamp() <= time.time() + 86400
    assert second not in client.call("GET", f"/webhooks/{webhook_id}").text

    endpoint = store.get_endpoint(client_project(client), webhook_id)
    assert endpoint is not None
    assert store.endpoint_secrets(endpoint, time.time()) == [second, first]
    assert store.endpoint_secrets(endpoint, time.time() + 86401) == [second]


def test_rotating_again_drops_expired_secrets_and_keeps_a_bounded_list(client: Client) -> None:
    from ledgerbridge.webhooks import endpoints

    webhook_id = client.create().json["id"]
    project_id = client_project(client)
    now = time.time()
    old = endpoints.rotate_secret(project_id, webhook_id, now=now - 2 * 86400)[
        "secret"
    ]  # its grace has ended
    newer = endpoints.rotate_secret(project_id, webhook_id, now=now)["secret"]
    endpoint = store.get_endpoint(project_id, webhook_id) or {}
    entries = store.secret_entries(endpoint)
    assert [entry["secret"] for entry in entries] == [newer, old]  # the first secret was dropped
    for _ in range(endpoints.MAX_SECRETS + 2):
        endpoints.rotate_secret(project_id, webhook_id, now=now)
    endpoint = store.get_endpoint(project_id, webhook_id) or {}
    assert len(store.secret_entries(endpoint)) == endpoints.MAX_SECRETS


def test_the_test_route_queues_a_ping_for_this_endpoint_only(client: Client, queue: str) -> None:  # noqa: F811
    webhook_id = client.create(events=["invoice.failed"]).json["id"]
    client.create(events=["invoice.failed"])  # another endpoint: not pinged
    answer = client.call("POST", f"/webhooks/{webhook_id}/test")
    assert answer.status == 202 and set(answer.json) == {"event_id", "delivery_id"}
    event_id, delivery_id = answer.json["event_id"], answer.json["delivery_id"]

    body = json.loads(store.get_event_body(event_id) or "null")
    assert (body["id"], body["type"], body["data"], body["connection_id"]) == (
        event_id,
        "ping",
        {"webhook_id": webhook_id},
        None,
    )
    assert body["project_id"] == client_project(client) and body["created_at"].endswith("Z")
    delivery = store.get_delivery(webhook_id, delivery_id)
    assert delivery is not None and (delivery["status"], delivery["event_id"]) == ("pending", event_id)
    assert messages(queue) == [
        {"project_id": client_project(client), "webhook_id": webhook_id, "delivery_id": delivery_id}
    ]

    client.call("PATCH", f"/webhooks/{webhook_id}", {"enabled": False})
    refused = client.call("POST", f"/webhooks/{webhook_id}/test")
    assert (refused.status, refused.json["error"]) == (409, "webhook_disabled")
    assert messages(queue) == []


def test_deliveries_are_listed_newest_first_with_a_cursor(client: Client) -> None:
    webhook_id = client.create().json["id"]
    sent = [client.call("POST", f"/webhooks/{webhook_id}/test").json["delivery_id"] for _ in range(3)]
    first = client.call("GET", f"/webhooks/{webhook_id}/deliveries", query={"limit": "2"})
    assert first.status == 200
    assert [d["id"] for d in first.json["data"]] == sent[::-1][:2]
    assert set(first.json["data"][0]) == {
        "id", "event_id", "event_type", "status", "attempts", "next_attempt_at", "created_at"
    }  # fmt: skip
    assert first.json["data"][0]["event_type"] == "ping" and first.json["data"][0]["attempts"] == []
    rest = client.call(
        "GET", f"/webhooks/{webhook_id}/deliveries", query={"limit": "2", "cursor": first.json["next_cursor"]}
    )
    assert [d["id"] for d in rest.json["data"]] == [sent[0]] and rest.json["next_cursor"] is None
    backwards = encode_cursor("before", sent[0])  # the list pages forward only
    for query in ({"cursor": "nonsense"}, {"cursor": backwards}, {"limit": "0"}, {"limit": "101"}):
        bad = client.call("GET", f"/webhooks/{webhook_id}/deliveries", query=query)
        assert bad.status == 400, query


def test_retry_reopens_the_delivery_and_queues_it(client: Client, queue: str) -> None:  # noqa: F811
    webhook_id = client.create().json["id"]
    delivery_id = client.call("POST", f"/webhooks/{webhook_id}/test").json["delivery_id"]
    messages(queue)
    attempt = {"at": "2026-01-01T00:00:01Z", "status_code": 503, "latency_ms": 120, "error": "HTTP 503"}
    store.record_attempt(webhook_id, delivery_id, attempt, "failed", None)

    retried = client.call("POST", f"/webhooks/{webhook_id}/deliveries/{delivery_id}/retry")
    assert retried.status == 202
    assert (retried.json["id"], retried.json["status"]) == (delivery_id, "pending")
    assert retried.json["attempts"] == [attempt]
    assert messages(queue) == [
        {"project_id": client_project(client), "webhook_id": webhook_id, "delivery_id": delivery_id}
    ]
    listed = client.call("GET", f"/webhooks/{webhook_id}/deliveries").json["data"]
    assert [(d["id"], d["status"]) for d in listed] == [(delivery_id, "pending")]
    missing = client.call("POST", f"/webhooks/{webhook_id}/deliveries/{webhook_id}/retry")
    assert missing.status == 404 and messages(queue) == []


def test_a_project_has_at_most_twenty_webhooks(client: Client) -> None:
    for _ in range(20):
        assert client.create().status == 201
    refused = client.create()
    assert (refused.status, refused.json["error"]) == (409, "webhook_limit_reached")
    assert len(client.call("GET", "/webhooks").json["data"]) == 20


def test_admin_creates_and_lists_webhooks(
    demo: dict[str, Any],
    queue: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    def run(*args: str) -> Any:
        assert admin.main(["--json", *args]) == 0
        return json.loads(capsys.readouterr().out)

    project = demo["project_id"]
    created = run("webhook-create", "--project", project, "--url", PUBLIC_URL, "--event", "invoice.synced",
                  "--event", "invoice.failed", "--description", "ops")  # fmt: skip
    assert created["secret"].startswith("whsec_") and created["events"] == [
        "invoice.synced",
        "invoice.failed",
    ]
    [listed] = run("webhook-list", "--project", project)
    assert listed["id"] == created["id"] and "secret" not in listed
    pinged = run("webhook-test", "--project", project, "--webhook", created["id"])
    page = run("webhook-deliveries", "--project", project, "--webhook", created["id"])
    assert [d["id"] for d in page["data"]] == [pinged["delivery_id"]]
    rotated = run("webhook-rotate-secret", "--project", project, "--webhook", created["id"])
    assert rotated["secret"] != created["secret"]
    assert run("webhook-delete", "--project", project, "--webhook", created["id"])["deleted"] is True

    assert (
        admin.main(["webhook-create", "--project", project, "--url", "https://10.0.0.1/", "--event", "ping"])
        == 2
    )
    error = capsys.readouterr().err
    assert "url: url host resolves to a private address (10.0.0.1)" in error and "events[0]" in error


def test_aws_failures_are_503_and_safe_to_retry(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    from ledgerbridge.webhooks import dispatch

    def refuse(*_: Any, **__: Any) -> None:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "Call")

    webhook_id = client.create().json["id"]
    monkeypatch.setattr(store, "encrypt_secrets", refuse)
    for answer in (client.create(), client.call("POST", f"/webhooks/{webhook_id}/rotate-secret")):
        assert (answer.status, answer.json["error"]) == (503, "storage_unavailable")
    monkeypatch.setattr(dispatch, "enqueue", refuse)
    answer = client.call("POST", f"/webhooks/{webhook_id}/test")
    assert (answer.status, answer.json["error"]) == (503, "storage_unavailable")
    assert len(client.call("GET", "/webhooks").json["data"]) == 1


def test_a_failed_write_condition_is_404_and_any_other_dynamodb_failure_503(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from ledgerbridge.aws import client as aws_client

    webhook_id, gone = client.create().json["id"], client.create().json["id"]
    assert client.call("DELETE", f"/webhooks/{gone}").status == 204
    assert client.call("DELETE", f"/webhooks/{gone}").json["error"] == "not_found"  # its condition failed
    dynamodb = aws_client("dynamodb")
    send = dynamodb._make_api_call

    def throttle_writes(operation: str, params: dict[str, Any]) -> Any:
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, operation)
        return send(operation, params)

    with monkeypatch.context() as throttled:
        throttled.setattr(dynamodb, "_make_api_call", throttle_writes)
        for method, body in (("PATCH", {"enabled": False}), ("DELETE", None)):
            answer = client.call(method, f"/webhooks/{webhook_id}", body)
            assert (answer.status, answer.json["error"]) == (503, "storage_unavailable"), method
    assert client.call("GET", f"/webhooks/{webhook_id}").json["enabled"] is True
