"""The local API server's own answers over a raw socket: a request no route matches gets what
the HTTP API answers (404 ``{"message":"Not Found"}``, whatever the method); whatever else it
refuses, and however the request is malformed, the client gets the API's JSON error shape."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledgerbridge.local.stack import ApiServer, BoundRoute, Gateway, LocalFunction
from ledgerbridge.local.template import Route

ERROR_KEYS = {"statusCode", "error", "message", "details"}
NOT_FOUND = b'{"message":"Not Found"}'  # the HTTP API's answer when no route matches
Start = Callable[..., tuple[str, int]]  # starts a server for a Gateway (default: GATEWAY)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    closed: bool  # the server closed the connection after answering

    def error(self) -> dict[str, Any]:
        """The body, checked to be the API's error shape for this status."""
        assert self.headers["content-type"] == "application/json"
        body = json.loads(self.body)
        assert set(body) == ERROR_KEYS
        assert body["statusCode"] == self.status
        assert body["details"] == []
        assert isinstance(body["message"], str) and body["message"]
        return body

    def is_not_found(self) -> bool:
        """The HTTP API's own 404 for a request no route matches."""
        return (self.status, self.headers["content-type"], self.body) == (404, "application/json", NOT_FOUND)


def ok(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": "{}"}


def crash(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise RuntimeError("handler bug")


def bound(method: str, path: str, handler: Any = ok, stage: str = "Prod") -> BoundRoute:
    route = Route(method, path, "ApiFunction", "app.handler", Path("."), stage)
    function = LocalFunction("ledgerbridge-ApiFunction", "arn:local", handler, 128, 3)
    return BoundRoute(route, function)


GATEWAY = Gateway(
    [
        bound("GET", "/things/{id}"),
        bound("POST", "/things/{id}"),
        bound("ANY", "/anything"),
        bound("GET", "/crash", crash),
        bound("GET", "/malformed", lambda event, context: {"body": "{}"}),
    ]
)


@pytest.fixture
def serve() -> Iterator[Start]:
    """A server per test on a free port, so a connection that one test leaves open cannot
    answer another's request."""
    servers: list[tuple[ApiServer, threading.Thread]] = []

    def start(gateway: Gateway = GATEWAY) -> tuple[str, int]:
        server = ApiServer(("127.0.0.1", 0), gateway)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        thread.start()
        servers.append((server, thread))
        host, port = server.server_address[:2]
        return str(host), int(port)

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def address(serve: Start) -> tuple[str, int]:
    return serve()


def exchange(address: tuple[str, int], raw: bytes, method: str = "GET") -> Answer:
    """Send raw bytes, read one response, and whether the server then closed the connection."""
    with socket.create_connection(address, timeout=2) as connection:
        connection.sendall(raw)
        response = http.client.HTTPResponse(connection, method=method)
        response.begin()
        body = response.read()
        closed = _closed(connection)
        return Answer(response.status, response.headers, body, closed)


def _closed(connection: socket.socket) -> bool:
    connection.settimeout(0.2)
    try:
        return connection.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def request(line: str, *headers: str, body: bytes = b"") -> bytes:
    return "\r\n".join([line, "Host: local", *headers, "", ""]).encode("latin-1") + body


UNKNOWN_METHODS = [
    pytest.param(request("FOO /things/1 HTTP/1.1"), id="unknown-method"),
    pytest.param(request("TRACE /things/1 HTTP/1.1"), id="trace"),
    pytest.param(request("get /things/1 HTTP/1.1"), id="lower-case"),
    pytest.param(request("CONNECT local:443 HTTP/1.1"), id="connect"),
]


@pytest.mark.parametrize("raw", UNKNOWN_METHODS)
def test_a_method_the_server_has_no_handler_for_is_the_http_apis_404_and_closes(
    address: tuple[str, int], raw: bytes
) -> None:
    """No route has such a method: the HTTP API's 404, not the stdlib's 501 (no 5xx for a caller's
    mistake); the request was not read to its end, so the connection is closed."""
    answer = exchange(address, raw)
    assert answer.is_not_found()
    assert answer.headers["connection"] == "close"
    assert answer.closed


UNREADABLE = [
    pytest.param(request("GET /" + "a" * 70_000 + " HTTP/1.1"), 414, "uri_too_long", id="long-line"),
    pytest.param(
        request("GET / HTTP/1.1", "x-big: " + "b" * 70_000), 431, "header_too_large", id="long-header"
    ),
    pytest.param(
        request("GET / HTTP/1.1", *(f"x-h{n}: v" for n in range(200))),
        431,
        "header_too_large",
        id="200-headers",
    ),
    pytest.param(request("GET /things/1 HTTP/1.1 extra"), 400, "bad_request", id="four-words"),
    pytest.param(request("GET /things/1 FOO/1.1"), 400, "bad_request", id="not-http"),
    pytest.param(request("GET"), 400, "bad_request", id="no-target"),
    pytest.param(request("GET /things/1"), 400, "bad_request", id="http-0.9"),
    pytest.param(request("GET /things/1 HTTP/2.0"), 505, "http_version_not_supported", id="http-2"),
    pytest.param(
        request("POST /things/1 HTTP/1.1", "Transfer-Encoding: chunked", body=b"2\r\n{}\r\n0\r\n\r\n"),
        411,
        "length_required",
        id="chunked",
    ),
    pytest.param(
        request("POST /things/1 HTTP/1.1", "Content-Length: two"), 400, "bad_request", id="length-text"
    ),
    pytest.param(
        request("POST /things/1 HTTP/1.1", "Content-Length: -1"), 400, "bad_request", id="length-negative"
    ),
    pytest.param(
        request("POST /things/1 HTTP/1.1", "Content-Length: 10485761"),
        413,
        "payload_too_large",
        id="over-10-mb",
    ),
]


@pytest.mark.parametrize(("raw", "status", "error"), UNREADABLE)
def test_an_unreadable_request_is_a_json_error_and_closes(
    address: tuple[str, int], raw: bytes, status: int, error: str
) -> None:
    answer = exchange(address, raw)
    assert answer.status == status
    assert answer.error()["error"] == error
    assert answer.headers["connection"] == "close"
    assert answer.closed


def test_an_unmatched_path_is_the_http_apis_404_and_keeps_the_connection(address: tuple[str, int]) -> None:
    answer = exchange(address, request("GET /nowhere HTTP/1.1"))
    assert answer.is_not_found()
    assert not answer.closed


def test_a_routed_path_with_another_method_is_the_same_404_without_allow(address: tuple[str, int]) -> None:
    """An HTTP API routes a method and a path together: another method is no route at all."""
    answer = exchange(address, request("DELETE /things/1 HTTP/1.1"))
    assert answer.is_not_found()
    assert "allow" not in answer.headers


def test_head_gets_the_headers_without_a_body(address: tuple[str, int]) -> None:
    answer = exchange(address, request("HEAD /things/1 HTTP/1.1"), method="HEAD")
    assert (answer.status, answer.body) == (404, b"")
    assert int(answer.headers["content-length"]) == len(NOT_FOUND)
    assert not answer.closed, "no body followed the headers: the connection is still in step"


def test_head_is_routed_as_api_gateway_routes_it(address: tuple[str, int]) -> None:
    answer = exchange(address, request("HEAD /anything HTTP/1.1"), method="HEAD")
    assert (answer.status, answer.headers["content-length"], answer.body) == (200, "2", b"")


def test_a_refused_head_has_no_body(address: tuple[str, int]) -> None:
    answer = exchange(address, request("HEAD /things/1 HTTP/1.1", "Transfer-Encoding: chunked"), "HEAD")
    assert (answer.status, answer.body) == (411, b"")


def test_a_bad_request_target_is_400(address: tuple[str, int]) -> None:
    answer = exchange(address, request("GET http://[/things/1 HTTP/1.1"))
    assert answer.status == 400
    assert answer.error()["error"] == "bad_request"


@pytest.mark.parametrize("path", ["/crash", "/malformed"])
def test_a_handler_that_fails_is_a_json_502(address: tuple[str, int], path: str) -> None:
    answer = exchange(address, request(f"GET {path} HTTP/1.1"))
    assert answer.status == 502
    body = answer.error()
    assert (body["error"], body["message"]) == ("bad_gateway", "Internal server error")


class BrokenGateway(Gateway):
    def match(self, method: str, path: str) -> Any:
        raise RuntimeError("routing bug")


def test_a_bug_in_the_server_is_a_json_500(serve: Start) -> None:
    answer = exchange(serve(BrokenGateway([])), request("GET /things/1 HTTP/1.1"))
    assert answer.status == 500
    assert answer.error()["error"] == "internal_error"


def test_a_routed_request_reaches_the_handler(address: tuple[str, int]) -> None:
    answer = exchange(address, request("GET /things/1 HTTP/1.1"))
    assert (answer.status, answer.body, answer.closed) == (200, b"{}", False)


# --- the event the handler gets, and what its answer becomes ---------------------------------


@pytest.fixture
def events(serve: Start) -> tuple[tuple[str, int], list[dict[str, Any]]]:
    """A server whose routes record the event they get (stage v1 under /things, $default under
    /root), and that list."""
    seen: list[dict[str, Any]] = []

    def record(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(event)
        return {"statusCode": 200, "body": "{}"}

    routes = [bound("GET", "/things/{id}", record, "v1"), bound("POST", "/things/{id}", record, "v1")]
    return serve(Gateway([*routes, bound("GET", "/root", record, "$default")])), seen


def test_the_event_is_http_api_payload_format_2(events: tuple[tuple[str, int], list[dict[str, Any]]]) -> None:
    address, seen = events
    raw = request(
        "GET /things/a%20b?x=1&x=2&y=%2C HTTP/1.1",
        "X-Multi: a",
        "x-multi: b",
        "Cookie: s=1; t=2",
        "Cookie: u=3",
        "User-Agent: probe/1",
    )
    assert exchange(address, raw).status == 200
    [event] = seen
    assert event["version"] == "2.0"
    assert (event["routeKey"], event["rawPath"], event["rawQueryString"]) == (
        "GET /things/{id}",
        "/v1/things/a%20b",  # percent-encoded, and the stage first, as on the stage's own URL
        "x=1&x=2&y=%2C",
    )
    assert event["queryStringParameters"] == {"x": "1,2", "y": ","}  # joined: only rawQueryString tells
    assert event["pathParameters"] == {"id": "a b"}
    assert event["headers"] == {"host": "local", "x-multi": "a,b", "user-agent": "probe/1"}
    assert event["cookies"] == ["s=1", "t=2", "u=3"]
    context = event["requestContext"]
    assert (context["routeKey"], context["stage"]) == ("GET /things/{id}", "v1")
    assert context["http"] == {
        "method": "GET",
        "path": "/v1/things/a%20b",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "probe/1",
    }
    assert (context["domainName"], context["domainPrefix"]) == ("local", "local")
    assert event["isBase64Encoded"] is False and "body" not in event
    assert not {"multiValueHeaders", "multiValueQueryStringParameters", "httpMethod", "path"} & set(event)


def test_the_default_stage_adds_nothing_to_the_path_and_empty_parts_are_left_out(
    events: tuple[tuple[str, int], list[dict[str, Any]]],
) -> None:
    address, seen = events
    assert exchange(address, request("GET /root HTTP/1.1")).status == 200
    [event] = seen
    assert (event["rawPath"], event["requestContext"]["http"]["path"], event["rawQueryString"]) == (
        "/root",
        "/root",
        "",
    )
    assert not {"queryStringParameters", "pathParameters", "cookies", "body"} & set(event)


@pytest.mark.parametrize(
    ("content_type", "body", "as_text"),
    [
        ("application/json", b'{"a":"\xc3\xa9"}', True),
        ("Application/JSON; charset=utf-8", b"{}", True),
        ("text/plain", b"hello", True),
        ("application/json", b'{"a":"\xe9"}', False),  # not UTF-8: the bytes as sent, base64
        ("application/x-www-form-urlencoded", b"provider=sandbox", False),
        ("application/vnd.api+json", b"{}", False),
        (None, b"{}", False),
    ],
)
def test_bodies_are_text_only_for_text_media_types(
    events: tuple[tuple[str, int], list[dict[str, Any]]], content_type: str | None, body: bytes, as_text: bool
) -> None:
    address, seen = events
    headers = [f"Content-Type: {content_type}"] if content_type else []
    raw = request("POST /things/1 HTTP/1.1", *headers, f"Content-Length: {len(body)}", body=body)
    assert exchange(address, raw).status == 200
    [event] = seen
    assert event["isBase64Encoded"] is not as_text
    assert event["body"] == (body.decode() if as_text else base64.b64encode(body).decode())


def test_the_answer_takes_headers_cookies_and_a_base64_body(serve: Start) -> None:
    def answer(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {
            "statusCode": 201,
            "headers": {"Location": "/things/1", "Vary": "a, b"},
            "cookies": ["s=1; Path=/; HttpOnly", "t=2"],
            "body": base64.b64encode(b"\x00binary").decode(),
            "isBase64Encoded": True,
        }

    got = exchange(serve(Gateway([bound("GET", "/things/{id}", answer)])), request("GET /things/1 HTTP/1.1"))
    assert (got.status, got.body) == (201, b"\x00binary")
    assert (got.headers["location"], got.headers["vary"]) == ("/things/1", "a, b")
    assert got.headers.get_all("set-cookie") == ["s=1; Path=/; HttpOnly", "t=2"]
