"""The judge can fail: each rule of the oracle, broken on purpose by a made-up exchange."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fuzz.local_api import Received, Sent, wire_bytes
from tests.fuzz.oracle import Contract, Credentials, Oracle, Recorder, Tally

pytestmark = pytest.mark.fuzz
KEY, TOKEN = "lbk_valid_key", "lbc_valid_token"
ERROR = {"$ref": "#/components/schemas/ErrorBody"}
DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/accounting/invoices": {
            "post": {
                "security": [{"apiKey": [], "connectionToken": []}],
                "responses": {
                    "201": {
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Invoice"}}}
                    },
                    **{
                        code: {"content": {"application/json": {"schema": ERROR}}}
                        for code in ("400", "401", "422")
                    },
                },
            }
        }
    },
    "components": {
        "schemas": {
            "Invoice": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "total_amount": {"type": "number"}},
                "required": ["id"],
            },
            "ErrorBody": {
                "type": "object",
                "properties": {"statusCode": {"type": "integer"}, "error": {"type": "string"}},
                "required": ["statusCode", "error"],
            },
        }
    },
}
UNAUTHORIZED = {"statusCode": 401, "error": "unauthorized", "message": "Missing or invalid.", "details": []}
JSON_TYPE = ("Content-Type", "application/json")
FROM_FUNCTION = ("x-amzn-RequestId", "r-1")


def answer(status: int, body: Any, *headers: tuple[str, str]) -> Received:
    text = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Received(status, (JSON_TYPE, FROM_FUNCTION, *headers), text)


def post(*headers: tuple[str, str], body: bytes = b"{}") -> Sent:
    return Sent("POST", "/accounting/invoices", headers, body)


AUTH = (("x-api-key", KEY), ("x-connection-token", TOKEN))
CREATED = ("Location", "/accounting/invoices/1")  # how a created invoice is told from a contact


class Table:
    def __init__(self) -> None:
        self.items = 0

    def __call__(self) -> int:
        return self.items


def judge(
    sent: Sent, received: Received, *, grows: int = 0, contacts_grow: int = 0, **kwargs: Any
) -> set[str]:
    invoices, contacts = Table(), Table()
    counters = {"invoice": invoices, "contact": contacts}
    oracle = Oracle(
        Contract(DOCUMENT), [Credentials(KEY, TOKEN)], answer(401, UNAUTHORIZED), counters, (KEY, TOKEN)
    )
    invoices.items += grows
    contacts.items += contacts_grow
    return {kind for kind, _ in oracle.judge(sent, received, **kwargs)}


def test_a_documented_refusal_breaks_nothing() -> None:
    refusal = {"statusCode": 422, "error": "validation_error", "message": "Invalid.", "details": []}
    assert judge(post(*AUTH), answer(422, refusal)) == set()
    assert judge(post(*AUTH), answer(201, {"id": "1", "total_amount": 1.5}, CREATED), grows=1) == set()


def test_any_5xx_is_a_violation() -> None:
    body = {"statusCode": 503, "error": "storage_unavailable", "message": "Later.", "details": []}
    assert "5xx" in judge(post(*AUTH), answer(503, body))


@pytest.mark.parametrize(
    "body",
    [
        {"statusCode": 400, "error": "bad_request", "message": "No details."},
        {"statusCode": 422, "error": "bad_request", "message": "Wrong status.", "details": []},
        {"statusCode": 400, "error": "bad_request", "message": "m", "details": [{"field": "x"}]},
        {"statusCode": 400, "error": "bad_request", "message": "m", "details": [], "trace": "..."},
        {"message": "Internal server error"},
        b"<html>Bad request</html>",
    ],
)
def test_an_error_not_in_the_documented_shape_is_a_violation(body: Any) -> None:
    assert "error_shape" in judge(post(*AUTH), answer(400, body))


def test_the_gateways_not_found_is_the_one_error_outside_the_shape() -> None:
    """The HTTP API's 404 for a request no route matches never reached a function: its body is
    the gateway's own. The same body from a function is still a violation."""
    not_found = b'{"message":"Not Found"}'
    unrouted = Sent("PUT", "/accounting/invoices", AUTH, b"{}")
    assert judge(unrouted, Received(404, (JSON_TYPE,), not_found)) == set()
    assert "error_shape" in judge(unrouted, Received(404, (JSON_TYPE, FROM_FUNCTION), not_found))
    assert "error_shape" in judge(unrouted, Received(404, (JSON_TYPE,), b'{"message":"Missing"}'))


def test_an_error_that_is_not_json_is_a_violation() -> None:
    html = Received(400, (("Content-Type", "text/html"), FROM_FUNCTION), b"<h1>400</h1>")
    assert "error_shape" in judge(post(*AUTH), html)


def test_a_body_the_document_refuses_is_a_violation() -> None:
    assert "schema_violations" in judge(post(*AUTH), answer(201, {"id": "1", "total_amount": "1.5"}), grows=1)
    assert "schema_violations" in judge(
        post(*AUTH), answer(201, b'{"id": "1", "total_amount": NaN}'), grows=1
    )


def test_a_status_the_document_does_not_list_is_a_violation() -> None:
    body = {"statusCode": 404, "error": "not_found", "message": "m", "details": []}
    assert "schema_violations" in judge(post(*AUTH), answer(404, body))


@pytest.mark.parametrize(
    "headers",
    [
        (),
        (("x-api-key", KEY),),
        (("x-api-key", "other"), ("x-connection-token", TOKEN)),
        (*AUTH, ("x-api-key", "x")),
        (*AUTH, ("x-api-key", KEY)),  # repeated, same value: the event holds "key,key"
    ],
)
def test_without_valid_credentials_only_the_one_401_will_do(headers: tuple[tuple[str, str], ...]) -> None:
    assert judge(post(*headers), answer(401, UNAUTHORIZED)) == set()
    other_401 = {**UNAUTHORIZED, "message": "Unknown API key."}
    assert "unauthenticated_not_401" in judge(post(*headers), answer(401, other_401))
    refusal = {"statusCode": 422, "error": "validation_error", "message": "Invalid.", "details": []}
    assert "unauthenticated_not_401" in judge(post(*headers), answer(422, refusal))


def test_a_refusal_that_stored_something_is_a_violation() -> None:
    refusal = {"statusCode": 422, "error": "validation_error", "message": "Invalid.", "details": []}
    assert "stored_for_refused" in judge(post(*AUTH), answer(422, refusal), grows=1)
    rejected = {**refusal, "error": "provider_rejected", "invoice_id": "1"}
    assert judge(post(*AUTH), answer(422, rejected), grows=1) == set()  # stored, and says so
    assert "stored_for_refused" in judge(post(*AUTH), answer(201, {"id": "1"}, CREATED), grows=0)


def test_contacts_are_held_to_the_same_rule() -> None:
    refusal = {"statusCode": 422, "error": "validation_error", "message": "Invalid.", "details": []}
    assert "stored_for_refused" in judge(post(*AUTH), answer(422, refusal), contacts_grow=1)
    rejected = {**refusal, "error": "provider_rejected", "contact_id": "1"}
    assert judge(post(*AUTH), answer(422, rejected), contacts_grow=1) == set()
    assert "stored_for_refused" in judge(post(*AUTH), answer(422, rejected), grows=1)  # not an invoice
    assert "stored_for_refused" in judge(
        post(*AUTH), answer(201, {"id": "1"}, CREATED), grows=1, contacts_grow=1
    )


def test_a_traceback_or_a_secret_in_a_body_is_a_leak() -> None:
    trace = {
        "statusCode": 400,
        "error": "bad_request",
        "message": 'File "/var/task/app.py", line 3',
        "details": [],
    }
    assert "leaks" in judge(post(*AUTH), answer(400, trace))
    secret = {"statusCode": 400, "error": "bad_request", "message": f"bad key {KEY}", "details": []}
    assert "leaks" in judge(post(*AUTH), answer(400, secret))


def test_a_valid_invoice_must_be_created() -> None:
    refusal = {"statusCode": 422, "error": "validation_error", "message": "Invalid.", "details": []}
    assert "wrong_answer" in judge(post(*AUTH), answer(422, refusal), expect_created=True)


def test_the_report_shows_the_offender_with_its_secrets_masked() -> None:
    counters = {"invoice": Table(), "contact": Table()}
    oracle = Oracle(
        Contract(DOCUMENT), [Credentials(KEY, TOKEN)], answer(401, UNAUTHORIZED), counters, (KEY, TOKEN)
    )
    recorder = Recorder(oracle, Tally())
    body = {"statusCode": 500, "error": "internal_error", "message": "Oops.", "details": []}
    recorder.record("raw_bytes", post(*AUTH, body=b"\xff" * 5000), answer(500, body))
    with pytest.raises(AssertionError) as failure:
        recorder.assert_clean()
    report = str(failure.value)
    assert "5xx=1" in report and "[5xx] raw_bytes: 500 internal_error" in report
    assert "> POST /accounting/invoices" in report and "(5,000 bytes)" in report
    assert KEY not in report and TOKEN not in report and "<valid secret" in report


def test_a_request_goes_over_the_wire_as_sent() -> None:
    sent = Sent(
        "POST", "/accounting/invoices?x=1", (("x-api-key", b"k\xff"), ("X-Other", "caf\u00e9")), b"{}"
    )
    assert wire_bytes(sent) == (
        b"POST /accounting/invoices?x=1 HTTP/1.1\r\nHost: ledgerbridge.test\r\nx-api-key: k\xff\r\n"
        b"X-Other: caf\xe9\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert sent.header_values("X-API-KEY") == ["k\u00ff"]
