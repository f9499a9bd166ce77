"""The front door: hostile and sloppy requests get a 4xx JSON error, never a 5xx, and store nothing.

Each body here once answered 500 (or 201 for something that is not an invoice). Every one is
sent twice: without credentials, where the answer must be the one 401 whatever the body, and
with valid credentials, where it must be a 4xx in the documented error shape with nothing
stored. Bodies are raw bytes, sent the way an HTTP API delivers them: text when the Content-Type
is JSON and the bytes are UTF-8, else base64 (a missing Content-Type included).
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest

from ledgerbridge.store import invoices
from tests.integration.conftest import Api, http_event

DEEP = b"[" * 1000 + b"]" * 1000
HOSTILE: dict[str, tuple[bytes, int]] = {
    "invalid utf-8": (b"\xff", 400),
    "invalid utf-8 inside a string": (b'{"memo":"caf\xe9"}', 400),
    "1000-deep arrays": (DEEP, 400),
    "1000-deep objects": (b'{"a":' * 1000 + b"1" + b"}" * 1000, 400),
    "40-deep but parseable": (b'{"field_mappings":' + b'{"a":' * 40 + b"1" + b"}" * 41, 400),
    "number past Decimal": (b'{"total_amount":1e99999999999999999999}', 400),
    "5000-digit integer": (b'{"total_amount":' + b"9" * 5000 + b"}", 422),
    "lone surrogate value": (b'{"currency":"\\ud800"}', 400),
    "lone surrogate key": (b'{"\\udfff":1}', 400),
    "lone surrogate in a line": (b'{"line_items":[{"description":"\\ud83d"}]}', 400),
    "type as list": (b'{"type":[]}', 422),
    "type as object": (b'{"type":{}}', 422),
    "status as object": (b'{"status":{"a":1}}', 422),
    "currency as number": (b'{"currency":840}', 422),
    "field mapping 1e400": (b'{"field_mappings":{"n":1e400}}', 422),
    "field mapping NaN": (b'{"field_mappings":{"n":NaN}}', 422),
    "field mapping 40 digits": (b'{"field_mappings":{"n":' + b"1" * 40 + b"}}", 422),
    "field mapping 1e-131": (b'{"field_mappings":{"n":1e-131}}', 422),
    "field mapping empty key": (b'{"field_mappings":{"":1}}', 422),
    "field mapping blank key": (b'{"field_mappings":{" ":1}}', 422),
    "field mapping control key": (b'{"field_mappings":{"a\\u0000":1}}', 422),
    "amount below Decimal's range": (b'{"balance":1e-1000030}', 422),
    "amount string below Decimal's range": (b'{"balance":"1e-1000030"}', 422),
    "amount string past Decimal": (b'{"balance":"1e99999999999999999999"}', 422),
    "field mapping nested": (b'{"field_mappings":{"n":{"deeper":[1]}}}', 422),
    "field mapping too big": (b'{"field_mappings":{"n":"' + b"x" * 1001 + b'"}}', 422),
    "array with an invoice": (b'[{"currency":"USD"}]', 400),
    "bare number": (b"1.5", 400),
    "bare NaN": (b"NaN", 400),
    "bare 1e400": (b"1e400", 400),
    "null": (b"null", 400),
    "empty": (b"", 400),
    "duplicate member": (b'{"currency":"USD","currency":"EUR"}', 400),
    "trailing garbage": (b'{"currency":"USD"} {}', 400),
}
VALID = {"currency": "USD", "line_items": [{"description": "Work", "quantity": 1, "unit_price": "10.00"}]}
NOT_JSON_TYPES = [
    "application/jsonp",
    "application/json-seq",
    "application/json\x00",
    "multipart/form-data",
    "application/x-www-form-urlencoded",
    "text/plain",
    "application/json; charset",
    "json",
]


def _send(
    module: ModuleType, context: Any, body: bytes, headers: dict[str, str], method: str = "POST"
) -> dict[str, Any]:
    sent = {"content-type": None, **headers}
    try:
        if (sent["content-type"] or "").split(";")[0].strip().lower() != "application/json":
            raise ValueError("not a text media type")
        text, encoded = body.decode("utf-8"), False
    except ValueError:  # UnicodeDecodeError included
        text, encoded = base64.b64encode(body).decode(), True
    event = http_event(method, "/accounting/invoices", route="/accounting/invoices", body=text, headers=sent)
    event["isBase64Encoded"] = encoded
    return module.handler(event, context)


def _error_body(result: dict[str, Any]) -> dict[str, Any]:
    """The documented error shape, checked whole."""
    assert result["headers"]["Content-Type"] == "application/json"
    body = json.loads(result["body"])
    assert set(body) <= {"statusCode", "error", "message", "details", "invoice_id", "contact_id"}, body
    assert body["statusCode"] == result["statusCode"]
    assert isinstance(body["error"], str) and isinstance(body["message"], str)
    assert all(set(detail) == {"field", "reason"} for detail in body["details"])
    return body


@pytest.fixture
def stored(demo: dict[str, Any]):
    return lambda: len(invoices.query(demo["connection_id"], 100).records)


@pytest.mark.parametrize("name", HOSTILE)
def test_without_credentials_every_hostile_body_is_the_one_401(
    api_module: ModuleType, lambda_context: Any, demo: dict[str, Any], name: str
) -> None:
    body, _ = HOSTILE[name]
    reference = _send(api_module, lambda_context, b"{}", {"content-type": "application/json"})
    foreign = {"x-api-key": "lbk_nope", "x-connection-token": demo["connection_token"]}
    for headers in ({}, {"content-type": "multipart/form-data"}, foreign):
        result = _send(api_module, lambda_context, body, headers)
        assert result["statusCode"] == 401, (name, result["body"])
        assert result["body"] == reference["body"]
        _error_body(result)


@pytest.mark.parametrize("name", HOSTILE)
def test_with_credentials_every_hostile_body_is_a_4xx_json_error_and_nothing_is_stored(
    api_module: ModuleType, lambda_context: Any, api: Api, stored: Any, name: str
) -> None:
    body, status = HOSTILE[name]
    result = _send(api_module, lambda_context, body, {**api.credentials, "content-type": "application/json"})
    assert result["statusCode"] == status, (name, result["body"])
    error = _error_body(result)
    assert "\\ud8" not in result["body"].lower() and "\\udf" not in result["body"].lower()
    assert stored() == 0
    if status == 422:
        assert error["details"] and all(detail["field"] for detail in error["details"])


def test_field_mapping_errors_name_the_key(api: Api) -> None:
    answer = api.create({"field_mappings": {"po": "PO-1", "n": {"a": 1}, "k" * 65: 1}})
    assert answer.status == 422
    fields = {detail["field"] for detail in answer.json["details"]}
    assert fields == {"field_mappings.n", f"field_mappings.{'k' * 65}"}


def test_field_mappings_that_fit_are_stored_exactly(api: Api) -> None:
    mappings = {
        "po": "PO-1",
        "n": "12.50",
        "exact": Decimal("12.5"),
        "big": 10**37,
        "flag": True,
        "none": None,
    }
    answer = api.create({**VALID, "field_mappings": mappings})
    assert answer.status == 201, answer.text
    got = api.call("GET", f"/accounting/invoices/{answer.json['id']}").json["field_mappings"]
    assert got == mappings
    assert '"exact":12.5' in answer.text and f'"big":{10**37}' in answer.text


def test_numbers_are_stored_in_a_form_dynamodb_takes_and_read_back_equal(api: Api) -> None:
    body = {**VALID, "balance": "0e-1000030", "field_mappings": {"round": 10**39, "zero": Decimal("0E-9")}}
    answer = api.create(body)
    assert answer.status == 201, answer.text
    got = api.call("GET", f"/accounting/invoices/{answer.json['id']}").json
    assert got["field_mappings"] == {"round": 10**39, "zero": 0}
    assert got["balance"] == 0


def test_a_query_parameter_given_twice_is_refused_as_a_list(api: Api) -> None:
    """The event joins a repeated parameter's values with commas; its rawQueryString still tells
    ``?remote_data=true&remote_data=true`` (a list: refused by type) from one value holding a
    comma (the string, refused by the flag's own rule)."""
    twice = api.call("GET", "/accounting/invoices", query=[("remote_data", "true"), ("remote_data", "true")])
    once = api.call("GET", "/accounting/invoices", query={"remote_data": "true,true"})
    assert (twice.status, once.status) == (400, 400)
    assert twice.json["details"] == [{"field": "remote_data", "reason": "Input should be a valid string"}]
    assert once.json["details"] == [{"field": "remote_data", "reason": "must be true, false, 1 or 0"}]


@pytest.mark.parametrize("content_type", NOT_JSON_TYPES)
def test_look_alike_media_types_are_415(api: Api, stored: Any, content_type: str) -> None:
    answer = api.create({"currency": "USD"}, headers={"content-type": content_type})
    assert answer.status == 415, answer.text
    assert stored() == 0


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON; charset=UTF-8",
        "application/vnd.api+json",
        'application/json;x="a;b"',
    ],
)
def test_json_media_types_with_parameters_are_read(api: Api, content_type: str) -> None:
    answer = api.create(VALID, headers={"content-type": content_type})
    assert answer.status == 201, answer.text


def test_the_list_keeps_working_after_every_hostile_body(
    api_module: ModuleType, lambda_context: Any, api: Api
) -> None:
    for body, _ in HOSTILE.values():
        _send(api_module, lambda_context, body, {**api.credentials, "content-type": "application/json"})
    created = api.create({**VALID, "field_mappings": {"po": "PO-1"}})
    listed = api.call("GET", "/accounting/invoices")
    assert listed.status == 200
    assert [invoice["id"] for invoice in listed.json["data"]] == [created.json["id"]]


def test_no_log_key_of_one_request_reaches_the_next(
    api_module: ModuleType, lambda_context: Any, api: Api
) -> None:
    from ledgerbridge.observability import logger

    created = api.create(VALID)
    assert created.status == 201
    assert logger.get_current_keys().get("invoice_id") == created.json["id"]  # appended while serving
    result = _send(api_module, lambda_context, b"{}", {"content-type": "application/json"})
    assert result["statusCode"] == 401
    keys = logger.get_current_keys()
    assert "invoice_id" not in keys and "provider" not in keys, keys
    assert created.json["id"] not in json.dumps(keys, default=str)


@pytest.mark.parametrize(
    "api_key", ["", "lbk_\ud800", "lbk_é", "lbk_" + "x" * 10_000, "lbk_\x00", None], ids=repr
)
def test_odd_credential_headers_are_the_one_401(
    api_module: ModuleType, lambda_context: Any, demo: dict[str, Any], api_key: str | None
) -> None:
    reference = _send(api_module, lambda_context, b"{}", {"content-type": "application/json"})
    for token in (demo["connection_token"], api_key):
        headers = {"x-api-key": api_key, "x-connection-token": token, "content-type": "application/json"}
        result = _send(api_module, lambda_context, b'{"currency":"USD"}', headers)
        assert result["statusCode"] == 401
        assert result["body"] == reference["body"]
