"""Credential header checks: every failure is the same 401, and it comes first."""

from __future__ import annotations

from typing import Any

import pytest

from ledgerbridge import admin, auth
from tests.integration.conftest import Api

UNAUTHORIZED = {
    "statusCode": 401,
    "error": "unauthorized",
    "message": "Missing or invalid x-api-key or x-connection-token.",
    "details": [],
}
UNROUTABLE = "/accounting/invoices/a\\b"  # any id reaches the function; no route pattern takes a backslash
ROUTES = [
    ("POST", "/accounting/invoices", {"total_amount": 5}),
    ("GET", "/accounting/invoices", None),
    ("GET", "/accounting/invoices/01a2127c-0000-7000-8000-000000000000", None),
    ("GET", UNROUTABLE, None),
]


@pytest.fixture
def other_project() -> dict[str, Any]:
    project = admin.create_project("Other")
    key = admin.create_api_key(project["project_id"])
    connection = admin.create_connection(project["project_id"], "sandbox")
    return {"api_key": key["api_key"], "connection_token": connection["connection_token"]}


def credential_cases(demo: dict[str, Any], other: dict[str, Any]) -> dict[str, dict[str, str]]:
    key, token = demo["api_key"], demo["connection_token"]
    return {
        "no headers": {},
        "missing key": {"x-connection-token": token},
        "missing token": {"x-api-key": key},
        "unknown key": {"x-api-key": key[:-2] + "xx", "x-connection-token": token},
        "unknown token": {"x-api-key": key, "x-connection-token": token[:-2] + "xx"},
        "another project's token": {"x-api-key": key, "x-connection-token": other["connection_token"]},
        "another project's key": {"x-api-key": other["api_key"], "x-connection-token": token},
        "empty values": {"x-api-key": "", "x-connection-token": ""},
    }


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_bad_credential_gets_the_same_401(
    api: Api, demo: dict[str, Any], other_project: dict[str, Any], method: str, path: str, body: Any
) -> None:
    for case, headers in credential_cases(demo, other_project).items():
        answer = api.call(method, path, body=body, headers=headers, auth=False)
        assert (answer.status, answer.json) == (401, UNAUTHORIZED), case


def test_an_unroutable_id_is_404_only_with_valid_credentials(api: Api) -> None:
    answer = api.call("GET", UNROUTABLE)
    assert (answer.status, answer.json["error"], answer.json["message"]) == (
        404, "not_found", "Route not found.",
    )  # fmt: skip


def test_a_revoked_key_is_refused(api: Api, demo: dict[str, Any]) -> None:
    assert api.create({"total_amount": 5}).status == 201
    admin.revoke_api_key(demo["key_id"])
    auth._cache.clear()  # a new container; warm ones forget within LEDGERBRIDGE_AUTH_CACHE_SECONDS
    assert api.create({"total_amount": 5}).status == 401


def test_auth_is_checked_before_the_body(api: Api) -> None:
    for raw in ("not json", "[]", '{"currency": "XYZ"}'):
        answer = api.call("POST", "/accounting/invoices", raw=raw, auth=False)
        assert (answer.status, answer.json) == (401, UNAUTHORIZED), raw
    answer = api.call("GET", "/accounting/invoices", query={"limit": "0"}, auth=False)
    assert answer.status == 401


def test_header_names_are_case_insensitive(api: Api, demo: dict[str, Any]) -> None:
    headers = {"X-Api-Key": demo["api_key"], "X-Connection-Token": demo["connection_token"]}
    assert api.call("GET", "/accounting/invoices", headers=headers, auth=False).status == 200


def test_warm_requests_do_not_read_the_accounts_table(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    assert api.call("GET", "/accounting/invoices").status == 200

    def no_reads(*_: Any) -> None:
        raise AssertionError("auth read DynamoDB on a warm request")

    monkeypatch.setattr(auth.accounts, "find_api_key", no_reads)
    monkeypatch.setattr(auth.accounts, "find_connection_token", no_reads)
    assert api.call("GET", "/accounting/invoices").status == 200
