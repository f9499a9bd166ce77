"""The local API server's own answers over a raw socket: whatever it refuses, and however the
request is malformed, the client gets the API's JSON error shape."""

from __future__ import annotations

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


def ok(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": "{}"}


def crash(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise RuntimeError("handler bug")


def bound(method: str, path: str, handler: Any = ok) -> BoundRoute:
    route = Route(method, path, "ApiFunction", "app.handler", Path("."), "Prod")
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


UNREADABLE = [
    pytest.param(request("FOO /things/1 HTTP/1.1"), 405, "method_not_allowed", id="unknown-method"),
    pytest.param(request("TRACE /things/1 HTTP/1.1"), 405, "method_not_allowed", id="trace"),
    pytest.param(request("get /things/1 HTTP/1.1"), 405, "method_not_allowed", id="lower-case"),
    pytest.param(request("CONNECT local:443 HTTP/1.1"), 404, "not_found", id="connect"),
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


def test_an_unmatched_route_is_a_json_404_and_keeps_the_connection(address: tuple[str, int]) -> None:
    answer = exchange(address, request("GET /nowhere HTTP/1.1"))
    assert answer.status == 404
    assert answer.error()["error"] == "not_found"
    assert not answer.closed


def test_a_routed_path_with_another_method_is_405_with_allow(address: tuple[str, int]) -> None:
    answer = exchange(address, request("DELETE /things/1 HTTP/1.1"))
    assert answer.status == 405
    assert answer.error()["error"] == "method_not_allowed"
    assert answer.headers["allow"] == "GET, POST"


def test_head_gets_the_headers_without_a_body(address: tuple[str, int]) -> None:
    answer = exchange(address, request("HEAD /things/1 HTTP/1.1"), method="HEAD")
    assert (answer.status, answer.headers["allow"], answer.body) == (405, "GET, POST", b"")
    assert int(answer.headers["content-length"]) > 0
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
