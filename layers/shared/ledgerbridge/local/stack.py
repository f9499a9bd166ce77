"""``make run``: Ledgerbridge on this machine, with no AWS account and no Docker.

An embedded moto server plays AWS on ``127.0.0.1:$AWS_PORT`` (4566); the tables, key,
secret, queues and bucket are the ones template.yaml declares; a demo project, API key and
sandbox connection are seeded; and ``127.0.0.1:$API_PORT`` (3000) turns each HTTP request
into the event an HTTP API sends its Lambda integration (payload format 2.0), and gives it to
the handler that the template names, in this process, with the environment that the template
gives it.

The template's other event sources run too, in threads of this process: each ``Type: SQS``
event gets a poller that long-polls its queue, invokes the handler with the event Lambda's
SQS event source mapping would send, and deletes what succeeded (:class:`QueuePoller`); each
``Type: DynamoDB`` event gets a poller that reads moto's record of the table's stream
directly, invokes the handler with Lambda's DynamoDB stream event, and removes what it
consumed, so that moto's streams do not grow without end (:class:`StreamPoller`); each
``Type: Schedule``/``ScheduleV2`` event invokes its handler every ``$LOCAL_SCHEDULE_SECONDS``
(60; 0 turns schedules off) instead of on its rate or cron expression (:class:`Scheduler`).

Requests are served side by side, as Lambda runs several containers of a function: each
connection has a thread, and each event a container of its own, a copy of the handler's
module (:class:`LocalFunction`), up to ``$LOCAL_CONCURRENCY`` (4) per function.

Differences from AWS, on purpose: every function shares this one process and environment,
and the modules its handler imports (``ledgerbridge``; Powertools, whose state of the
invocation under way is kept per thread here: :func:`patch_powertools`); there is no stage
prefix in local URLs; there is no timeout enforcement, only ``get_remaining_time_in_millis``;
an event beyond a function's concurrency waits for a container (Lambda would refuse it with
429); and queue messages that fail go back to the queue and its redrive policy, as on AWS,
but with moto's clock and receive counts, while stream records that fail are retried until
the handler takes them, never skipped after MaximumRetryAttempts, so that no record is lost
to a bug being fixed. The embedded moto is patched so that the stack stays as fast, and
grows only by what it stores, after thousands of requests (:func:`patch_moto`).

A request that no route matches, by its path or by its method, is answered as the HTTP API
answers it, before any function runs: 404 with ``{"message":"Not Found"}``. The stack's other
refusals are its own, in the API's JSON error shape (``statusCode``, ``error``, ``message``,
``details``): requests that cannot be read keep the status the HTTP server gives them (400,
414, 431, 505) and close the connection; HTTP/0.9 requests are refused with 400, as their
answer could carry no status or Content-Type. A method the server has no handler for at all
(``FOO``, ``TRACE``, lower-case ``get``) is answered like any unrouted request, 404, not the
stdlib's 501: it is the caller's mistake, and no 5xx answers a request.

``LOG_LEVEL=DEBUG make run`` sets the template's LogLevel parameter (POWERTOOLS_LOG_LEVEL):
the template's environment replaces this process's, so exporting that variable would not.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import copy
import importlib.util
import inspect
import json
import logging
import marshal
import math
import os
import re
import shlex
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from ledgerbridge import jsonutil
from ledgerbridge.errors import ApiError
from ledgerbridge.local.template import (
    LOCAL_ACCOUNT_ID,
    SQS_MAX_BATCH_SIZE,
    STREAM_DEFAULT_BATCH_SIZE,
    STREAM_STARTING_POSITIONS,
    Route,
    ScheduleEvent,
    Stack,
    Template,
    api_routes,
    create_resources,
    function_environment,
    load_template,
    queue_events,
    schedule_events,
    stream_events,
)
from ledgerbridge.webhooks import EVENT_TYPES

HOST = "127.0.0.1"
STACK_NAME = "ledgerbridge"  # table names ledgerbridge-invoices/-accounts, the admin CLI's defaults
READY_LINE = "Ledgerbridge local stack ready"
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # an HTTP API's payload limit (a REST API's too)
DEMO_INVOICE = {
    "currency": "USD",
    "issue_date": "2026-11-24",
    "due_date": "2026-12-24",
    "memo": "Demo invoice",
    "line_items": [
        {"description": "Consulting", "quantity": 2, "unit_price": Decimal("150.25")},
        {"description": "Expenses", "quantity": 1, "unit_price": Decimal("0.1")},
    ],
}
SCHEDULE_SECONDS_VARIABLE = "LOCAL_SCHEDULE_SECONDS"
DEFAULT_SCHEDULE_SECONDS = 60.0
CONCURRENCY_VARIABLE = "LOCAL_CONCURRENCY"
DEFAULT_CONCURRENCY = 4  # containers per function; another costs ~5 ms and <1 MB (its module only)
LOCAL_RECEIVER_URL = "http://127.0.0.1:8000/hooks"  # what the banner suggests pointing a webhook at
LONG_POLL_SECONDS = 1  # ReceiveMessage's WaitTimeSeconds: also how soon a poller sees a stop
STREAM_IDLE_SECONDS = 0.2  # how soon a stream poller with nothing to read looks again
STREAM_RETRY_SECONDS = (1.0, 10.0)  # a failed stream batch is retried after 1 s, doubling up to 10 s
STOP_TIMEOUT_SECONDS = 5.0  # how long shutdown waits for a handler that is still running
_HOP_BY_HOP = {"connection", "content-length", "keep-alive", "transfer-encoding"}
_JSON_HEADERS = {"content-type": "application/json"}
NOT_FOUND_BODY = b'{"message":"Not Found"}'  # an HTTP API's answer when no route matches
_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    411: "length_required",
    413: "payload_too_large",
    414: "uri_too_long",
    431: "header_too_large",
    500: "internal_error",
    501: "not_implemented",
    502: "bad_gateway",
    505: "http_version_not_supported",
}

Handler = Callable[[dict[str, Any], Any], Any]


class Containers:
    """A function's warm containers, each an imported copy of its handler that takes one event at
    a time (see :class:`LocalFunction`): :meth:`take` lends an idle one (the one used last, as
    Lambda reuses its warmest), else starts one while there are fewer than ``limit``, else waits
    for one to be given back."""

    def __init__(self, first: Handler, start: Callable[[int], Handler] | None, limit: int) -> None:
        self._idle = [first]
        self._start = start
        self._limit = max(1, limit) if start is not None else 1
        self.started = 1
        self._returned = threading.Condition()

    @contextmanager
    def take(self) -> Iterator[Handler]:
        with self._returned:
            while not self._idle and self.started >= self._limit:
                self._returned.wait()
            if self._idle:
                handler: Handler | None = self._idle.pop()
            else:
                self.started += 1
                handler, number = None, self.started
        if handler is None:
            assert self._start is not None
            try:
                handler = self._start(number)  # a cold start, in the caller's thread
            except BaseException:
                with self._returned:
                    self.started -= 1
                    self._returned.notify()
                raise
        try:
            yield handler
        finally:
            with self._returned:
                self._idle.append(handler)
                self._returned.notify()


@dataclass(frozen=True)
class LocalFunction:
    """A template function imported into this process, with what its Lambda context reports.

    Lambda gives a container one event at a time, and handlers rely on that (module globals
    such as the Powertools resolver hold what the event under way needs), so each container
    here is a copy of the handler's module: ``handler`` is the first's, ``start(n)`` imports
    the n-th (:func:`import_handler`), and an invocation takes an idle container, or starts
    another while there are fewer than ``concurrency`` (a cold start, as Lambda scales out),
    or waits for one (Lambda at its concurrency limit would refuse with 429 instead). So
    requests are served side by side, each by a container of its own; what Powertools keeps
    for the whole process is kept per thread (:func:`patch_powertools`).
    """

    name: str
    arn: str
    handler: Handler
    memory_mb: int
    timeout_seconds: int
    concurrency: int = 1
    start: Callable[[int], Handler] | None = None
    containers: Containers = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "containers", Containers(self.handler, self.start, self.concurrency))


class LambdaContext:
    """The part of Lambda's context object that handlers and Powertools read."""

    def __init__(self, function: LocalFunction) -> None:
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function.arn
        self.memory_limit_in_mb = function.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + function.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Request:
    """An HTTP request as received, before API Gateway's event mapping."""

    method: str
    target: str  # the request-target: path and query, still percent-encoded
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str


@dataclass(frozen=True)
class BoundRoute:
    """A template route with its imported function and the regex its resource path compiles to."""

    route: Route
    function: LocalFunction
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", path_pattern(self.route.path))


def path_pattern(path: str) -> re.Pattern[str]:
    """A regex for a resource path: ``{id}`` is one segment, ``{proxy+}`` the rest of the path."""
    regex = ""
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{") and part.endswith("+}"):
            regex += f"(?P<{part[1:-2]}>.+)"
        elif part.startswith("{"):
            regex += f"(?P<{part[1:-1]}>[^/]+)"
        else:
            regex += re.escape(part)
    return re.compile(f"^{regex}$")


class Gateway:
    """API Gateway's routing: a method and path to a route, its function and path parameters."""

    def __init__(self, routes: Iterable[BoundRoute]) -> None:
        # Like API Gateway, prefer literal segments to variables, and variables to greedy ones.
        self._routes = sorted(
            routes,
            key=lambda bound: (
                bound.route.path.count("+}"),
                bound.route.path.count("{"),
                bound.route.method == "ANY",
            ),
        )

    def match(self, method: str, path: str) -> tuple[BoundRoute, dict[str, str]] | None:
        for bound in self._routes:
            found = bound.pattern.match(path) if bound.route.method in (method, "ANY") else None
            if found:
                return bound, {name: unquote(value) for name, value in found.groupdict().items()}
        return None


def proxy_event(route: Route, path_parameters: dict[str, str], request: Request) -> dict[str, Any]:
    """The event an HTTP API's Lambda integration sends with payload format 2.0.

    As on AWS: header names are lower case, and a repeated header or query parameter is one
    value, its values joined with commas (2.0 has no multi-value maps: ``rawQueryString``
    tells ``?a=1&a=2`` from ``?a=1%2C2``); cookies are taken out of the headers into
    ``cookies``; ``rawPath`` and ``rawQueryString`` stay percent-encoded while path and query
    parameters are decoded; ``rawPath`` and ``requestContext.http.path`` start with the stage
    unless it is ``$default``, as on the stage's own URL (local URLs have no stage prefix);
    keys with nothing to hold (``queryStringParameters``, ``pathParameters``, ``cookies``,
    ``body``) are left out.
    """
    url = urlsplit(request.target)
    headers = _group(request.headers, lower_names=True)
    cookies = [part.strip() for value in headers.pop("cookie", []) for part in value.split(";")]
    query = _group(parse_qsl(url.query, keep_blank_values=True), lower_names=False)
    body, is_base64 = _event_body(request.body, _header(headers, "content-type"))
    route_key = f"{route.method} {route.path}"
    path = url.path if route.stage == "$default" else f"/{route.stage}{url.path}"
    domain = _header(headers, "host") or HOST
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": url.query,
        "headers": _joined(headers),
        "requestContext": {
            "accountId": LOCAL_ACCOUNT_ID,
            "apiId": "local",
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": request.method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.source_ip,
                "userAgent": _header(headers, "user-agent") or "",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": route.stage,
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": is_base64,
    }
    optional = {
        "cookies": [cookie for cookie in cookies if cookie],
        "queryStringParameters": _joined(query),
        "pathParameters": path_parameters,
    }
    event.update((key, value) for key, value in optional.items() if value)
    if body is not None:
        event["body"] = body
    return event


def _group(pairs: Iterable[tuple[str, str]], lower_names: bool) -> dict[str, list[str]]:
    """Values by name, in order. Header names are case-insensitive (an HTTP API lower-cases
    them); query parameter names are not."""
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name.lower() if lower_names else name, []).append(value)
    return grouped


def _joined(grouped: dict[str, list[str]]) -> dict[str, str]:
    """One value per name, a repeated one's values joined with commas, as payload format 2.0 has them."""
    return {name: ",".join(values) for name, values in grouped.items()}


def _header(headers: dict[str, list[str]], name: str) -> str | None:
    """A header's value as the event has it (``headers`` by lower-case name), or None."""
    values = headers.get(name)
    return ",".join(values) if values else None


# Content types whose bodies an HTTP API passes as text; any other body, a missing Content-Type
# and application/x-www-form-urlencoded included, arrives base64-encoded. AWS documents only that
# binary bodies are base64-encoded; this split is the one HTTP APIs were observed to make.
_TEXT_MEDIA_TYPES = ("application/json", "application/xml", "application/javascript")


def _event_body(body: bytes, content_type: str | None) -> tuple[str | None, bool]:
    """The event's ``body`` and ``isBase64Encoded``: text for a text media type, else base64.

    Bytes that are not UTF-8 go base64-encoded whatever the media type, so the function still
    gets them exactly as sent (what AWS does with them under a text type is not documented).
    """
    if not body:
        return None, False
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type.startswith("text/") or media_type in _TEXT_MEDIA_TYPES:
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def proxy_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body from a payload format 2.0 response; ValueError when malformed.

    ``headers`` hold one value per name (a repeated header's values already joined) and each
    ``cookies`` entry becomes a Set-Cookie header. An HTTP API would also take a response
    without ``statusCode`` as a 200 whose body is the response itself; no function here
    answers so, so it is refused as malformed rather than guessed at.
    """
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        raise ValueError(
            f"malformed Lambda proxy response: {type(result).__name__} without an int statusCode"
        )
    body = result.get("body") or ""
    if not isinstance(body, str):
        raise ValueError("malformed Lambda proxy response: body is not a string")
    payload = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    headers = [(name, str(value)) for name, value in (result.get("headers") or {}).items()]
    headers += [("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or []]
    return result["statusCode"], [(n, v) for n, v in headers if n.lower() not in _HOP_BY_HOP], payload


def _json_response(
    status: int, message: str, headers: Sequence[tuple[str, str]] = ()
) -> tuple[int, list[tuple[str, str]], bytes]:
    """The API's error shape, so a client parses the stack's own refusals as it parses the handler's."""
    body = ApiError(status, _error_code(status), message).body()
    return status, [*_JSON_HEADERS.items(), *headers], json.dumps(body).encode("utf-8")


def _error_code(status: int) -> str:
    """A status not named here (none is sent today) is named after its reason phrase, so one
    that a later Python's HTTP server sends still gets a readable code."""
    if status in _ERROR_CODES:
        return _ERROR_CODES[status]
    phrase = BaseHTTPRequestHandler.responses.get(status, ("error",))[0]
    return re.sub(r"\W+", "_", phrase.lower()).strip("_")


class ApiServer(ThreadingHTTPServer):
    """The local API Gateway: one thread per connection, all sharing one :class:`Gateway`."""

    daemon_threads = True
    request_queue_size = 64  # connections waiting to be accepted (the stdlib's 5 refuses a burst)

    def __init__(self, address: tuple[str, int], gateway: Gateway) -> None:
        self.gateway = gateway
        super().__init__(address, ApiRequestHandler)


_CONNECT_LITERALS = ("/connect/sessions", "/connect/callback", "/connect/tenant")


class ApiRequestHandler(BaseHTTPRequestHandler):
    """Turns one HTTP request into a proxy event, invokes the handler, writes its response."""

    server: ApiServer
    protocol_version = "HTTP/1.1"  # keep-alive, as API Gateway; every response has a Content-Length

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """The access log line, without what a URL may carry that must never reach a log: the query
        (an OAuth ``code`` and ``state``) and a connect page's token (its capability)."""
        target = getattr(self, "path", "") or ""  # unset when the request line was unreadable
        path = target.split("?", 1)[0].split("#", 1)[0]  # not urlsplit: a hostile target must still log
        if path.count("/") == 2 and path.startswith("/connect/") and path not in _CONNECT_LITERALS:
            path = "/connect/<page token>"
        command = getattr(self, "command", None) or "-"
        self.log_message('"%s %s" %s %s', command, path or "-", str(code), str(size))

    def do_GET(self) -> None:
        try:
            answer = self._answer()
        except Exception:  # a bug here: still answer, in the API's shape, and show the traceback
            traceback.print_exc()
            self.close_connection = True  # the body may be unread
            answer = _json_response(500, "The local API server failed; see its log.")
        self._send(*answer)

    # API Gateway's methods (https://docs.aws.amazon.com/apigateway/latest/api/API_PutMethod.html);
    # any other reaches send_error as 501, which answers it as an unrouted method.
    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_GET

    def _answer(self) -> tuple[int, list[tuple[str, str]], bytes]:
        refused = self._refused_body()
        if refused:
            self.close_connection = True  # the body is left unread: nothing after it can be read
            return refused
        body = self.rfile.read(int(self.headers.get("content-length") or "0"))
        request = Request(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
        try:
            path = urlsplit(request.target).path
        except ValueError as error:  # e.g. http://[/: a host that is not one
            return _json_response(400, f"Bad request target {request.target!r}: {error}.")
        found = self.server.gateway.match(request.method, path)
        if found is None:
            return self._unrouted()
        bound, path_parameters = found
        return _invoke(bound, proxy_event(bound.route, path_parameters, request))

    def _refused_body(self) -> tuple[int, list[tuple[str, str]], bytes] | None:
        length = self.headers.get("content-length") or "0"
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            return _json_response(411, "A request body needs a Content-Length; chunked bodies are refused.")
        if not length.isdigit():  # RFC 9112 section 6.3: the framing is broken, 400
            return _json_response(400, f"Content-Length {length!r} is not a number of bytes.")
        if int(length) > MAX_PAYLOAD_BYTES:
            return _json_response(413, f"Request body is over {MAX_PAYLOAD_BYTES // 2**20} MB.")
        return None

    def _unrouted(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """What an HTTP API answers when no route matches the method and path: 404, ``{"message":
        "Not Found"}``, whether the path is unknown or routes only other methods."""
        return 404, list(_JSON_HEADERS.items()), NOT_FOUND_BODY

    def parse_request(self) -> bool:
        """Refuse HTTP/0.9 ("GET /"): its answer would be a bare body, with no status or Content-Type."""
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":
            self.send_error(400, f"Bad request syntax ({self.requestline!r})", "no HTTP version")
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's refusals (unreadable request line or headers, unknown method) in the API's
        JSON shape instead of its HTML page. The request was not read to its end, so whatever
        follows on the connection cannot be trusted: it is closed."""
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # set before the version was read: answer in HTTP/1.1
            self.request_version = self.protocol_version
        if code == 501 and self.command:  # a method with no do_ handler: the caller's mistake, a 4xx
            self._send(*self._unknown_method())
            return
        text = message or self.responses.get(code, ("Error",))[0]
        self._send(*_json_response(int(code), f"{text} ({explain})" if explain else text))

    def _unknown_method(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """404, as for a known method that is not routed (400 for a request target that is not one)."""
        try:
            urlsplit(self.path)
        except ValueError as error:
            return _json_response(400, f"Bad request target {self.path!r}: {error}.")
        return self._unrouted()

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Write one response; a HEAD's says how long the body would be, without it."""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def invoke(function: LocalFunction, event: Any) -> Any:
    """One invocation, as Lambda gives it: to a container of the function that has no other
    event under way, with a fresh context."""
    with function.containers.take() as handler:
        return handler(event, LambdaContext(function))


def _invoke(bound: BoundRoute, event: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    """Call the handler as Lambda would; a crash or a malformed result is API Gateway's 502."""
    try:
        status, headers, body = proxy_response(invoke(bound.function, event))
    except Exception:
        traceback.print_exc()  # what the function's log would show
        return _json_response(502, "Internal server error")
    return status, [*headers, ("x-amzn-RequestId", event["requestContext"]["requestId"])], body


class FunctionCode(Protocol):
    """What a template event says about its function: a Route, QueueEvent, StreamEvent or ScheduleEvent."""

    @property
    def function(self) -> str: ...  # logical id
    @property
    def handler(self) -> str: ...
    @property
    def code_uri(self) -> Path: ...


def load_functions(
    stack: Stack, events: Iterable[FunctionCode], concurrency: int = 1
) -> dict[str, LocalFunction]:
    """Import each event's function handler from its CodeUri, as Lambda does from /var/task;
    each function may start up to ``concurrency`` containers (see :class:`LocalFunction`),
    which needs what Powertools keeps of an invocation kept per thread (:func:`patch_powertools`)."""
    if concurrency > 1:
        patch_powertools()
    functions: dict[str, LocalFunction] = {}
    for event in events:
        if event.function not in functions:
            functions[event.function] = _load_function(stack, event, concurrency)
    return functions


def _load_function(stack: Stack, code: FunctionCode, concurrency: int) -> LocalFunction:
    properties = stack.template.function_properties(code.function)
    name = f"{stack.name}-{code.function}"
    return LocalFunction(
        name=name,
        arn=f"arn:aws:lambda:{stack.region}:{stack.account_id}:function:{name}",
        handler=import_handler(code.function, code.code_uri, code.handler),
        memory_mb=int(properties.get("MemorySize", 128)),
        timeout_seconds=int(properties.get("Timeout", 3)),
        concurrency=concurrency,
        start=partial(import_handler, code.function, code.code_uri, code.handler),
    )


def import_handler(function: str, code_uri: Path, handler: str, container: int = 1) -> Handler:
    """The handler ``module.attribute`` from ``code_uri``, with ``code_uri`` on sys.path as
    /var/task is in Lambda, so the module imports its siblings as it would there.

    Every function's module is ``app``: each is imported from its file under its own name
    (``app__ApiFunction``) so that one function's ``app`` does not replace another's. A
    handler module may not use relative imports. Container n > 1 of a function imports the
    file again, as ``app__ApiFunction__n``: its module globals are its own, as in another
    Lambda container, while what it imports by name (``ledgerbridge``, a sibling module) is
    imported once for the whole process.
    """
    module_name, _, attribute = handler.rpartition(".")
    if str(code_uri) not in sys.path:
        sys.path.insert(0, str(code_uri))
    unique_name = f"{module_name.replace('.', '_')}__{function}" + (f"__{container}" if container > 1 else "")
    module = sys.modules.get(unique_name)
    if module is None:
        relative = Path(*module_name.split("."))
        path = code_uri / relative.with_suffix(".py")
        if not path.is_file():
            path = code_uri / relative / "__init__.py"
        spec = importlib.util.spec_from_file_location(unique_name, path)
        if spec is None or spec.loader is None or not path.is_file():
            raise ImportError(f"{function}: no module {module_name} in {code_uri} (Handler {handler})")
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique_name] = module  # before running it: dataclasses and pydantic look it up
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[unique_name]
            raise
    return getattr(module, attribute)  # type: ignore[no-any-return]


# --- event sources: SQS pollers and schedules ---------------------------------------------


def sqs_event(messages: Sequence[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping sends for ``messages`` (ReceiveMessage's
    ``Messages``, received with every system and message attribute)."""
    return {"Records": [_sqs_record(message, queue_arn, region) for message in messages]}


def _sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return {**record, "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region}


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """A message attribute as Lambda spells it: camelCase, binary values base64-encoded."""
    attribute: dict[str, Any] = {}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    attribute["stringListValues"] = list(value.get("StringListValues", []))
    attribute["binaryListValues"] = [
        base64.b64encode(item).decode("ascii") for item in value.get("BinaryListValues", [])
    ]
    attribute["dataType"] = value["DataType"]
    return attribute


def failed_message_ids(result: Any, message_ids: Sequence[str], report_batch_item_failures: bool) -> set[str]:
    """The messages of a batch that Lambda would leave on the queue after the handler returned
    (or, given their sequence numbers, the stream records it would send again).

    Without ReportBatchItemFailures a return means the whole batch succeeded. With it, the
    ``batchItemFailures`` list names the failures (none when it is empty, null or missing);
    a malformed response, or an ``itemIdentifier`` that is empty or not in the batch, fails
    the whole batch, as Lambda documents.
    """
    if not report_batch_item_failures or result is None:
        return set()
    if isinstance(result, dict):
        failures = result.get("batchItemFailures")
        if failures is None:
            return set()
        if isinstance(failures, list) and all(
            isinstance(item, dict) and item.get("itemIdentifier") in message_ids for item in failures
        ):
            return {item["itemIdentifier"] for item in failures}
    print(
        f"malformed batch response, the whole batch failed: {result!r:.500}",
        file=sys.stderr,
        flush=True,
    )
    return set(message_ids)


class Worker:
    """A daemon thread that runs until :meth:`stop` (or the shared ``stopping`` event)."""

    def __init__(self, name: str, stopping: threading.Event | None = None) -> None:
        self.name = name
        self.stopping = stopping or threading.Event()
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)

    def run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> bool:
        """Ask the thread to stop and wait for it; False when a handler is still running."""
        self.stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


class QueuePoller(Worker):
    """Lambda's event source mapping for one ``Type: SQS`` event, on a thread.

    It long-polls the queue (WaitTimeSeconds 1, so that it sees a stop within a second) for
    up to ``batch_size`` messages with all their attributes, invokes the function with them
    (one batch at a time, by a container of the function), and deletes the messages that
    succeeded (see :func:`failed_message_ids`). A handler that raises deletes none: they
    come back after the queue's visibility timeout, and its redrive policy moves them to
    the dead-letter queue after maxReceiveCount receives.
    """

    def __init__(
        self,
        function: LocalFunction,
        sqs: Any,
        queue_arn: str,
        *,
        region: str,
        batch_size: int = SQS_MAX_BATCH_SIZE,
        report_batch_item_failures: bool = False,
        name: str | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        super().__init__(name or f"sqs:{function.name}", stopping)
        _, _, _, _, account, queue_name = queue_arn.split(":", 5)
        self.function = function
        self.sqs = sqs
        self.queue_arn = queue_arn
        self.queue_url: str = sqs.get_queue_url(QueueName=queue_name, QueueOwnerAWSAccountId=account)[
            "QueueUrl"
        ]
        self.region = region
        self.batch_size = min(max(1, batch_size), SQS_MAX_BATCH_SIZE)
        self.report_batch_item_failures = report_batch_item_failures

    def run(self) -> None:
        errors = 0
        while not self.stopping.is_set():
            try:
                # When messages are visible a short poll gets them at once; and when a FIFO
                # message group in flight holds them back, moto would spin a CPU through a
                # long poll, so the poller waits here instead.
                wait_seconds = 0 if self.waiting() else LONG_POLL_SECONDS
                received = self.poll(wait_seconds)
            except Exception as error:
                if self.stopping.is_set():
                    break
                errors += 1
                print(f"{self.name}: polling {self.queue_url} failed: {error!r}", file=sys.stderr, flush=True)
                self.stopping.wait(min(errors, 10))
                continue
            errors = 0
            if not received and wait_seconds == 0:
                self.stopping.wait(LONG_POLL_SECONDS)

    def poll(self, wait_seconds: int = LONG_POLL_SECONDS) -> int:
        """Receive one batch, invoke the function with it, delete what succeeded; the count received."""
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if messages:
            self.handle(messages)
        return len(messages)

    def handle(self, messages: Sequence[dict[str, Any]]) -> None:
        event = sqs_event(messages, self.queue_arn, self.region)
        try:
            result = invoke(self.function, event)
        except Exception:
            print(
                f"{self.name}: the handler raised; {len(messages)} message(s) stay on the queue",
                file=sys.stderr,
            )
            traceback.print_exc()  # what the function's log would show
            return
        ids = [message["MessageId"] for message in messages]
        failed = failed_message_ids(result, ids, self.report_batch_item_failures)
        self._delete([message for message in messages if message["MessageId"] not in failed])

    def _delete(self, messages: Sequence[dict[str, Any]]) -> None:
        if not messages:
            return
        entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)]
        response = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        for failure in response.get("Failed", []):
            print(f"{self.name}: could not delete a message: {failure}", file=sys.stderr, flush=True)

    def waiting(self) -> bool:
        """Whether a FIFO queue has visible messages (ApproximateNumberOfMessages)."""
        if not self.queue_url.endswith(".fifo"):
            return False
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", "0")) > 0


def stream_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """One record of the event Lambda's DynamoDB event source mapping sends, from a record of
    moto's stream shard (``StreamRecord.record``, shared with moto: it is copied, not changed).

    ApproximateCreationDateTime is in epoch seconds, rounded down as DynamoDB rounds it; the
    images go through JSON, which copies them and turns moto's typed values nested in maps and
    lists into DynamoDB's JSON, as Lambda sends them.
    """
    source = record["dynamodb"]
    created = source["ApproximateCreationDateTime"]  # moto: a naive UTC datetime
    if isinstance(created, datetime):
        created = created.replace(tzinfo=UTC).timestamp()
    dynamodb = {
        "ApproximateCreationDateTime": math.floor(created),
        "Keys": source["Keys"],
        **{image: source[image] for image in ("NewImage", "OldImage") if image in source},
        "SequenceNumber": source["SequenceNumber"],
        "SizeBytes": source["SizeBytes"],
        "StreamViewType": source["StreamViewType"],
    }
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": json.loads(json.dumps(dynamodb, default=_attribute_value_json)),
        "eventSourceARN": stream_arn,
    }


def _unchanged(record: dict[str, Any]) -> bool:
    """A write that left the item as it was: moto records it, DynamoDB writes no stream record.
    Only a NEW_AND_OLD_IMAGES record shows it."""
    images = record["dynamodb"]
    return (
        record["eventName"] == "MODIFY"
        and "OldImage" in images
        and images.get("NewImage") == images["OldImage"]
    )


class StreamPoller(Worker):
    """Lambda's event source mapping for one ``Type: DynamoDB`` event, on a thread.

    It reads moto's shard of the table's stream in this process (the table's
    ``stream_shard.items``, under the lock every DynamoDB action takes), not through the
    DynamoDB Streams API: a poll costs no HTTP round trip, so it polls every
    ``idle_seconds`` (0.2) when idle and again at once after a batch. It invokes the function
    with up to ``batch_size`` records in stream order, shaped as Lambda sends them
    (:func:`stream_record`), and then removes what was consumed from the shard: moto keeps
    every stream record forever, and a stack under load (thousands of creates) would grow
    without end. So each stream has one reader here (:func:`event_sources` refuses a second),
    and its position is always the front of the shard; the shard's ``starting_sequence_number``
    moves with what is removed, so moto keeps numbering records where it left off.

    A batch that fails is sent again, never skipped: when the handler raises, the same records
    (the first half of them with BisectBatchOnFunctionError, down to one); with
    ReportBatchItemFailures, the records from the lowest failed sequence number on (what
    comes before it is consumed). A retry waits ``retry_seconds[0]`` (1 s), doubling up to
    ``retry_seconds[1]`` (10 s). Lambda would give up after MaximumRetryAttempts and send the
    batch's description to the on-failure destination; here the records stay until the
    handler takes them, so a bug being fixed loses none, and the log says what Lambda would do.
    A write that changed nothing reaches no handler, as DynamoDB writes no record for it.
    """

    def __init__(
        self,
        function: LocalFunction,
        stream_arn: str,
        *,
        region: str,
        batch_size: int = STREAM_DEFAULT_BATCH_SIZE,
        starting_position: str = "TRIM_HORIZON",
        report_batch_item_failures: bool = False,
        bisect_batch_on_function_error: bool = False,
        maximum_retry_attempts: int = -1,
        idle_seconds: float = STREAM_IDLE_SECONDS,
        retry_seconds: tuple[float, float] = STREAM_RETRY_SECONDS,
        name: str | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        if starting_position not in STREAM_STARTING_POSITIONS:
            raise ValueError(
                f"StartingPosition {starting_position!r} is not one of {STREAM_STARTING_POSITIONS}"
            )
        super().__init__(name or f"stream:{function.name}", stopping)
        # arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>
        _, _, _, self._table_region, self._account, resource = stream_arn.split(":", 5)
        self._table_name = resource.split("/")[1]
        self.function = function
        self.stream_arn = stream_arn
        self.region = region
        self.batch_size = max(1, batch_size)
        self.report_batch_item_failures = report_batch_item_failures
        self.bisect_batch_on_function_error = bisect_batch_on_function_error
        self.maximum_retry_attempts = maximum_retry_attempts
        self.idle_seconds = idle_seconds
        self.retry_seconds = retry_seconds
        self.failures = 0  # invocations in a row that left records of their batch unconsumed
        self._limit = self.batch_size  # smaller while a failing batch is bisected
        if starting_position == "LATEST":  # what is there now is not read
            with _DYNAMODB_LOCK:
                shard = self.shard()
                if shard is not None:
                    self._remove_through(shard.starting_sequence_number + len(shard.items) - 1)

    def shard(self) -> Any:
        """moto's shard of this stream; None when the table or this stream of it is gone."""
        from moto.dynamodb.models import dynamodb_backends

        table = dynamodb_backends[self._account][self._table_region].tables.get(self._table_name)
        if table is None or table.stream_shard is None:
            return None
        if f"{table.table_arn}/stream/{table.latest_stream_label}" != self.stream_arn:
            return None
        return table.stream_shard

    def run(self) -> None:
        errors = 0
        while not self.stopping.is_set():
            try:
                consumed = self.poll()
            except Exception as error:  # moto's, not the handler's: handle() reports those
                errors += 1
                print(
                    f"{self.name}: reading {self.stream_arn} failed: {error!r}", file=sys.stderr, flush=True
                )
                self.stopping.wait(min(errors, 10))
                continue
            errors = 0
            if self.failures:
                first, most = self.retry_seconds
                self.stopping.wait(min(first * 2 ** (self.failures - 1), most))
            elif not consumed:
                self.stopping.wait(self.idle_seconds)

    def poll(self) -> int:
        """Invoke the function with the records at the front of the stream and remove those it
        consumed; how many were removed (0: none to read, or the first of them failed)."""
        with _DYNAMODB_LOCK:
            shard = self.shard()
            if shard is None:
                return 0
            records = [
                stream_record(item.to_json(), self.stream_arn, self.region)
                for item in shard.items[: self._limit]
            ]
        if not records:
            return 0
        batch = [record for record in records if not _unchanged(record)]
        consumed = self.handle(batch) if batch else 0
        if consumed is None:  # the handler raised
            self._failed(batch, consumed=0)
            if self.bisect_batch_on_function_error and len(batch) > 1:
                self._limit = math.ceil(len(records) / 2)
            return 0
        if consumed < len(batch):
            self._failed(batch, consumed)
            last = records.index(batch[consumed]) - 1  # records before the failed one, with unchanged ones
        else:
            self.failures, self._limit = 0, self.batch_size
            last = len(records) - 1
        if last < 0:
            return 0
        return self._remove_through(int(records[last]["dynamodb"]["SequenceNumber"]))

    def handle(self, records: Sequence[dict[str, Any]]) -> int | None:
        """Invoke the function with ``records``: how many of them, from the first, it consumed
        (None when it raised)."""
        try:
            result = invoke(self.function, {"Records": list(records)})
        except Exception:
            print(
                f"{self.name}: the handler raised; its {len(records)} record(s) will be sent again",
                file=sys.stderr,
            )
            traceback.print_exc()  # what the function's log would show
            return None
        numbers = [record["dynamodb"]["SequenceNumber"] for record in records]
        failed = failed_message_ids(result, numbers, self.report_batch_item_failures)
        return min((numbers.index(number) for number in failed), default=len(records))

    def _failed(self, batch: Sequence[dict[str, Any]], consumed: int) -> None:
        self.failures += 1
        if self.failures == self.maximum_retry_attempts + 1:  # never with -1, Lambda's default
            number = batch[consumed]["dynamodb"]["SequenceNumber"]
            print(
                f"{self.name}: record {number} failed {self.failures} time(s): Lambda would skip its batch"
                f" now (MaximumRetryAttempts {self.maximum_retry_attempts}); the local stack keeps retrying",
                file=sys.stderr,
                flush=True,
            )

    def _remove_through(self, sequence_number: int) -> int:
        """Remove the shard's records up to ``sequence_number``; how many were removed."""
        with _DYNAMODB_LOCK:
            shard = self.shard()
            if shard is None:
                return 0
            count = min(max(0, sequence_number - shard.starting_sequence_number + 1), len(shard.items))
            del shard.items[:count]
            shard.starting_sequence_number += count
            return count


def scheduled_event(schedule: ScheduleEvent, stack: Stack) -> Any:
    """The event a schedule sends: its Input if it declares one, else the default notification
    of EventBridge Scheduler (ScheduleV2) or of an EventBridge scheduled rule (Schedule)."""
    if schedule.input is not None:
        given = stack.resolve(schedule.input)
        return json.loads(given) if isinstance(given, str) else given
    scheduler = schedule.kind == "ScheduleV2"
    prefix = f"arn:{stack.resolve({'Ref': 'AWS::Partition'})}"
    if scheduler:
        resource = f"{prefix}:scheduler:{stack.region}:{stack.account_id}:schedule/{schedule.group_name}"
    else:
        resource = f"{prefix}:events:{stack.region}:{stack.account_id}:rule"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler" if scheduler else "aws.events",
        "account": stack.account_id,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": stack.region,
        "resources": [f"{resource}/{schedule.schedule_name}"],
        "detail": "{}" if scheduler else {},
    }


class Scheduler(Worker):
    """A schedule: invokes the function with ``event()`` every ``period`` seconds, the first time
    ``first`` seconds (one period) after :meth:`start`. A handler that raises is reported and
    the schedule goes on; ticks missed while the handler ran are skipped, not caught up."""

    def __init__(
        self,
        function: LocalFunction,
        event: Callable[[], Any],
        period: float,
        *,
        first: float | None = None,
        name: str | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        if not period > 0:
            raise ValueError(f"a schedule's period must be positive, not {period}")
        super().__init__(name or f"schedule:{function.name}", stopping)
        self.function = function
        self.event = event
        self.period = period
        self.first = period if first is None else first

    def run(self) -> None:
        due = time.monotonic() + self.first
        while not self.stopping.wait(max(0.0, due - time.monotonic())):
            try:
                invoke(self.function, self.event())
            except Exception:
                print(f"{self.name}: the handler raised; the schedule goes on", file=sys.stderr)
                traceback.print_exc()
            due += self.period
            now = time.monotonic()
            if due <= now:
                due += math.ceil((now - due) / self.period) * self.period


def schedule_seconds() -> float:
    """``$LOCAL_SCHEDULE_SECONDS``: every schedule's local period (default 60; 0 turns them off)."""
    value = os.environ.get(SCHEDULE_SECONDS_VARIABLE) or str(DEFAULT_SCHEDULE_SECONDS)
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise SystemExit(
            f"{SCHEDULE_SECONDS_VARIABLE}={value!r} is not a number of seconds (0 turns schedules off)"
        )
    return seconds


def function_concurrency() -> int:
    """``$LOCAL_CONCURRENCY``: how many containers each function may run at once (default 4;
    1 serves one request at a time)."""
    value = os.environ.get(CONCURRENCY_VARIABLE) or str(DEFAULT_CONCURRENCY)
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"{CONCURRENCY_VARIABLE}={value!r} is not a number of containers (1 or more)")
    return int(value)


def event_sources(
    stack: Stack,
    functions: dict[str, LocalFunction],
    sqs: Any,
    period: float,
    stopping: threading.Event | None = None,
) -> list[Worker]:
    """A poller for each SQS and DynamoDB stream event and, unless ``period`` is 0, a scheduler
    for each schedule event of the template (not started), all stopping together with
    ``stopping``. Two events reading one stream are refused: a stream poller removes what it
    consumed (see :class:`StreamPoller`), which the other would then never see.

    The schedules are staggered over their first period (the first fires one period after
    the start, the next a fraction later): functions share this process's Powertools logger,
    and two handlers that run at once log with each other's Lambda context.
    """
    stopping = stopping or threading.Event()
    schedules = schedule_events(stack.template) if period > 0 else []
    sources: list[Worker] = [
        QueuePoller(
            functions[event.function],
            sqs,
            stack.resolve(event.queue),
            region=stack.region,
            batch_size=event.batch_size,
            report_batch_item_failures=event.report_batch_item_failures,
            name=f"{event.function}.{event.name}",
            stopping=stopping,
        )
        for event in queue_events(stack.template)
    ]
    readers: dict[str, str] = {}
    for event in stream_events(stack.template):
        stream_arn = stack.resolve(event.stream)
        name = f"{event.function}.{event.name}"
        if stream_arn in readers:
            raise ValueError(
                f"{name} and {readers[stream_arn]} read one stream: the local stack allows one reader"
            )
        readers[stream_arn] = name
        sources.append(
            StreamPoller(
                functions[event.function],
                stream_arn,
                region=stack.region,
                batch_size=event.batch_size,
                starting_position=event.starting_position,
                report_batch_item_failures=event.report_batch_item_failures,
                bisect_batch_on_function_error=event.bisect_batch_on_function_error,
                maximum_retry_attempts=event.maximum_retry_attempts,
                name=name,
                stopping=stopping,
            )
        )
    sources += [
        Scheduler(
            functions[event.function],
            partial(scheduled_event, event, stack),
            period,
            first=period * (1 + n / len(schedules)),
            name=f"{event.function}.{event.name}",
            stopping=stopping,
        )
        for n, event in enumerate(schedules)
    ]
    return sources


class EventSources:
    """The template's pollers (queues and streams) and schedules, started and stopped together."""

    def __init__(self, sources: Sequence[Worker]) -> None:
        self.sources = list(sources)

    def start(self) -> None:
        for source in self.sources:
            source.start()

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop every source; a handler still running after ``timeout`` is left to exit with the process."""
        for source in self.sources:
            source.stopping.set()
        deadline = time.monotonic() + timeout
        for source in self.sources:
            if not source.stop(max(0.0, deadline - time.monotonic())):
                print(f"{source.name}: still running after {timeout:g} s, not waiting", file=sys.stderr)


def aws_environment(aws_port: int) -> dict[str, str]:
    """Point every AWS SDK in this process (and a shell that exports it) at the embedded moto."""
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
    return {
        "AWS_ENDPOINT_URL": f"http://{HOST}:{aws_port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }


def _use_environment(aws: dict[str, str]) -> None:
    """Fake credentials only, so nothing here can ever reach a real AWS account."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(aws)
    os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"  # no X-Ray daemon here


def _port(name: str, default: int) -> int:
    value = os.environ.get(name) or str(default)
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SystemExit(f"{name}={value!r} is not a TCP port")
    return int(value)


def _require_free(port: int, name: str) -> None:
    """Fail with a clear message; moto's server thread would otherwise hang on a taken port."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as error:
            raise SystemExit(f"cannot listen on {HOST}:{port} ({error}); set {name} to a free port") from None


def _start_moto(port: int) -> Any:
    from moto.server import ThreadedMotoServer  # dev-only dependency, imported only when run

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per AWS call is noise
    patch_moto()
    _require_free(port, "AWS_PORT")
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    return server


def patch_powertools() -> None:
    """What Powertools keeps of the invocation under way, one per thread, for this process
    only; idempotent.

    Powertools keeps it once per process, and in Lambda a process runs one invocation at a
    time; here several run at once, in containers that are threads of one process (see
    :class:`LocalFunction`). An invocation runs in one thread from start to end, so what is
    kept per thread is kept per invocation, as in its own Lambda container:

    - The REST resolver's event and Lambda context: Powertools sets them on the class every
      resolver derives from (``BaseRouter.current_event``, ``lambda_context``), so even a
      resolver of another copy of the module would read them. With requests side by side, one
      handler read another's headers and body: a create took another's ``Idempotency-Key``.
      They become attributes with a value per thread (:class:`_PerThread`), on the class and
      on its metaclass, since Powertools sets and reads them on both.
    - The logger's keys (``function_request_id``, ``correlation_id``, ``invoice_id``): one dict,
      ``log_format``, that each invocation clears and fills, so each logged with the others'
      keys, and a line formatted while another thread added a key failed ("dictionary changed
      size during iteration"). It becomes one dict per thread (:class:`_KeysPerThread`), a new
      thread starting from a copy of the keys of the thread that made the logger.
    """
    from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    if not isinstance(LambdaPowertoolsFormatter.__dict__.get("log_format"), _KeysPerThread):
        LambdaPowertoolsFormatter.log_format = _KeysPerThread()  # type: ignore[assignment]
    if not isinstance(BaseRouter.__dict__.get("current_event"), _PerThread):
        state = {name: _PerThread(name) for name in ("current_event", "lambda_context")}
        for name, attribute in state.items():
            setattr(BaseRouter, name, attribute)  # read and set on a resolver: self.current_event
        # read and set on the class (BaseRouter.current_event = ...): first in the metaclass
        BaseRouter.__class__ = type("PerThreadRouterType", (type(BaseRouter),), state)


class _PerThread:
    """An attribute with one value per thread (unset, as an attribute never set, in a thread
    that has not set it): a data descriptor, on a class for its instances and on its metaclass
    for the class itself, both holding the same values."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._values = threading.local()

    def __get__(self, owner: Any, owner_type: Any = None) -> Any:
        try:
            return self._values.value
        except AttributeError:
            raise AttributeError(self._name) from None

    def __set__(self, owner: Any, value: Any) -> None:
        self._values.value = value


class _KeysPerThread:
    """A Powertools formatter's ``log_format``, one per thread (see :func:`patch_powertools`)."""

    def __get__(self, formatter: Any, owner: Any = None) -> Any:
        if formatter is None:
            return self
        threads = formatter.__dict__.setdefault("_log_format_threads", threading.local())
        keys = getattr(threads, "keys", None)
        if keys is None:
            keys = threads.keys = dict(formatter.__dict__["log_format"])
        return keys

    def __set__(self, formatter: Any, keys: Any) -> None:
        formatter.__dict__.setdefault("log_format", keys)  # the first, which a new thread copies
        formatter.__dict__.setdefault("_log_format_threads", threading.local()).keys = keys


_DYNAMODB_LOCK = threading.RLock()
_ITEM_READS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem"})
_READ_ONLY = _ITEM_READS | {"TransactGetItems", "DescribeTable", "ListTables"}
# Key conditions (moto's spelling) whose keys have a lower bound, and the operand that is the upper one.
_LOWER_BOUNDED = frozenset({"=", ">", ">=", "BETWEEN", "BEGINS_WITH"})
_UPPER_BOUND = {"=": 0, "<": 0, "<=": 0, "BETWEEN": 1}
_TOUCHED: list[Any] = []  # items whose attributes were read or set during the DynamoDB action under way
_ZLIB_HEADER = 0x78  # the first byte of what zlib's compressobj writes (a marshal'ed dict: 0x7B or 0xFB)
# By the attribute names of packed items (the items of a table mostly share a few sets of them):
# that set, shared by the items that have it, and the first item packed with it, unpacked, which
# is zlib's preset dictionary for the others.
_DICTIONARIES: dict[frozenset[str], tuple[frozenset[str], bytes]] = {}


class _Action(threading.local):
    reads = False  # the DynamoDB action under way in this thread only reads items
    item_read = False  # ... and answers with them (GetItem, Query, Scan, BatchGetItem)


_ACTION = _Action()


def patch_moto() -> None:
    """Fixes to the embedded moto, for this process only (the deployed code never imports moto);
    idempotent. What moto keeps or copies per request grows with every create, so a
    long-running stack got slower and bigger with each one; here each create costs what the
    last did, and what stays is the items themselves, packed.

    - moto records every model object it ever creates (``BaseModel.instances_tracked``, for its
      ``/moto-api/data.json`` page): every item, every copy of an item an update or a condition
      makes, every stream record, for the life of the process (~40 KB a create, most of the
      stack's growth). Nothing is recorded here; that page lists nothing.
    - Items at rest are packed (:func:`_pack_items`): moto's typed attribute values take ~3x
      an item's size in Python objects (~7 KB for a sandbox create's three items, ~2.2 KB
      marshalled); unpacked, the stack grew by ~10 MB per 1,000 creates (``make load``).
    - TransactWriteItems: moto deep-copies every table a transaction touches before it starts,
      to roll back on a cancellation: hundreds of MB over a few hundred creates, and each
      transaction slower than the last. Here a transaction saves only the items it names (and
      the length of their tables' stream shards) and a cancelled one puts exactly those back,
      as DynamoDB's own all-or-nothing promise is about the items named.
    - Several requests at once: moto's conditional writes check and write in two steps, and
      its threaded server runs requests side by side, so two ``attribute_not_exists`` puts of
      one key could both succeed. DynamoDB applies each write atomically; here every DynamoDB
      action takes one lock, which keeps that promise (its actions take a millisecond or so).
    - Query (of a table, not of an index): moto sorts every item of the table, then skips to
      the page, so the first page of one connection's invoices took longer with every invoice
      stored (over 300 ms at 1,000). Here a partition keeps its sort keys in order
      (:class:`_SortedPartition`), and moto is given only the items from where the page starts
      (after ``ExclusiveStartKey``, within the key condition) to one past its ``Limit``: it
      answers as before, at the cost of one page. A Query of an index is given only the
      items that have the index's key attributes (:func:`_index_candidates`): the sweeper's
      query of the sparse PendingIndex read every invoice (~0.9 s at 10,000, every minute,
      with every other DynamoDB call waiting), and now reads the pending ones.
    - Reading items: moto turns every answer into plain values (``dynamo_to_dict``) and then
      writes it through a serializer that walks the operation's output shape value by value
      (about 4 ms an invoice, 250 ms for a page of 51). The items GetItem, Query, Scan and
      BatchGetItem answer with are DynamoDB's JSON already (typed values, binary as base64,
      numbers as strings), so those answers are written with ``json.dumps`` as they are;
      anything else, or an answer with a value JSON cannot hold, goes through moto's
      conversion and serializer as before.
    """
    from moto.core.common_models import BaseModel
    from moto.core.responses import ActionResult
    from moto.dynamodb import models, responses
    from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, Table
    from moto.dynamodb.responses import DynamoHandler

    backend_class = models.DynamoDBBackend
    if getattr(backend_class, "_ledgerbridge_patched", False):
        return
    original_transact = backend_class.transact_write_items
    original_call_action = DynamoHandler.call_action
    original_table_init, original_query, original_all_items = Table.__init__, Table.query, Table.all_items
    original_serialized, original_to_dict = DynamoHandler.serialized, responses.dynamo_to_dict
    query_parameters = inspect.signature(original_query)
    queried = threading.local()  # (table, the items to give it) of the table Query under way in this thread

    def untracked(cls: type, *args: Any, **kwargs: Any) -> Any:
        return super(BaseModel, cls).__new__(cls)

    class _TablesAreNotCopied:
        """``copy`` for moto's models module: a Table passes uncopied, anything else is deep-copied."""

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = []
        for entry in transact_items:
            operation = next(iter(entry.values()), {})
            table = self.tables.get(operation.get("TableName"))
            if table is None:
                continue
            key = operation.get("Key") or {
                name: operation.get("Item", {}).get(name)
                for name in (table.hash_key_attr, table.range_key_attr)
                if name is not None
            }
            try:
                hash_key, range_key = self.get_keys_value(table, key)
            except Exception:  # a malformed key: moto's own validation refuses it below
                continue
            shard = table.stream_shard
            item = table.get_item(hash_key, range_key)
            saved.append((table, hash_key, range_key, copy.deepcopy(item), len(shard.items) if shard else 0))
        try:
            original_transact(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item, stream_length in reversed(saved):
                _put_back(table, hash_key, range_key, item)
                if table.stream_shard is not None:
                    del table.stream_shard.items[stream_length:]
            raise

    def call_action(self: Any) -> Any:
        with _DYNAMODB_LOCK:
            _ACTION.reads = self._get_action() in _READ_ONLY
            _ACTION.item_read = self._get_action() in _ITEM_READS
            try:
                return original_call_action(self)
            finally:
                _pack_touched(writes=not _ACTION.reads)
                _ACTION.reads = _ACTION.item_read = False

    def serialized(self: Any, action_result: Any) -> Any:
        result = action_result.result
        if isinstance(result, dict) and self._get_action() in _ITEM_READS:
            try:
                body = json.dumps(result, separators=(",", ":"), default=_attribute_value_json)
            except (TypeError, ValueError):
                return original_serialized(self, ActionResult(original_to_dict(result)))
            headers = {"Content-Type": "application/x-amz-json-1.0", **self.response_headers}
            return 200, headers, body
        return original_serialized(self, action_result)

    def to_dict(result: Any) -> Any:
        return result if _ACTION.item_read else original_to_dict(result)

    def table_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_table_init(self, *args, **kwargs)
        if self.range_key_attr is not None and not self.items:
            self.items = defaultdict(_SortedPartition)

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = query_parameters.bind(self, *args, **kwargs).arguments
        if arguments.get("index_name") is None:
            window = _query_window(self, arguments, RESULT_SIZE_LIMIT)
        else:
            window = _index_candidates(self, arguments["index_name"])
        if window is None:
            return original_query(self, *args, **kwargs)
        queried.window = (self, window)
        try:
            return original_query(self, *args, **kwargs)
        finally:
            queried.window = None

    def all_items(self: Any) -> list[Any]:
        table, window = getattr(queried, "window", None) or (None, None)
        return window if table is self else original_all_items(self)

    BaseModel.__new__ = untracked  # type: ignore[assignment,method-assign]
    _pack_items()
    models.copy = _TablesAreNotCopied()  # type: ignore[assignment]
    backend_class.transact_write_items = transact_write_items
    DynamoHandler.call_action = call_action
    DynamoHandler.serialized = serialized
    responses.dynamo_to_dict = to_dict  # type: ignore[attr-defined]
    Table.__init__, Table.query, Table.all_items = table_init, query, all_items
    backend_class._ledgerbridge_patched = True


def _pack_items() -> None:
    """Keep moto's items packed at rest: one blob of their attributes per item (:func:`_pack`:
    ~1.1 KB a sandbox create instead of ~7 KB of ``DynamoType`` objects).

    ``Item.attrs`` becomes a property: reading it unpacks the item (~20 µs), setting it keeps
    the new value; either way the item is noted, and when the DynamoDB action ends (under the
    lock every action takes) :func:`_pack_touched` packs it again. So moto sees and changes
    ``attrs`` as always, whatever it does with an item, and between actions every stored item
    is one blob, its keys (``hash_key``, ``range_key``) left as they were. A value that
    ``marshal`` cannot hold leaves its item unpacked.

    The blob also makes cheap what moto does to every item it reads: a copy (for an answer,
    or the old image of an update) is a new item sharing the blob, unpacked only if read,
    while the blob is the item's current state (packed, or within a read); ``size()``, which
    walks every value, is kept on the item from a read until a write touches it (a page of 51
    invoices took 30 ms of moto's time, mostly those two); and the names of its attributes
    are kept with the blob (one set shared by the items that have the same), so a Query of
    an index need not unpack an item to know it is not in the index.
    """
    from moto.dynamodb.models.dynamo_type import Item

    original_deepcopy, original_size = Item.__deepcopy__, Item.size

    def get(item: Any) -> Any:
        attrs = getattr(item, "_attrs", None)  # not item.__dict__: that would make each item a dict
        if attrs is None:
            packed = getattr(item, "_packed", None)
            if packed is None:  # an item made before the patch
                try:
                    return item.__dict__["attrs"]
                except KeyError:
                    raise AttributeError("attrs") from None
            attrs = item._attrs = _unpack(packed, item._names)
            _TOUCHED.append(item)
        return attrs

    def set_(item: Any, attrs: Any) -> None:
        item._attrs, item._packed, item._size = attrs, None, None
        _TOUCHED.append(item)

    def deepcopy(item: Any, memo: dict[int, Any]) -> Any:
        packed = getattr(item, "_packed", None)
        if packed is None or not (_ACTION.reads or getattr(item, "_attrs", None) is None):
            return original_deepcopy(item, memo)
        twin = type(item).__new__(type(item))
        memo[id(item)] = twin
        twin.hash_key = copy.deepcopy(item.hash_key, memo)
        twin.range_key = copy.deepcopy(item.range_key, memo)
        twin._attrs, twin._packed = None, packed
        twin._size, twin._names = getattr(item, "_size", None), getattr(item, "_names", None)
        return twin

    def size(item: Any) -> int:
        known = getattr(item, "_size", None)
        if known is not None and _ACTION.reads:
            return known  # type: ignore[no-any-return]
        computed: int = original_size(item)
        if _ACTION.reads:
            item._size = computed
        return computed

    Item.attrs = property(get, set_)  # type: ignore[attr-defined]
    Item.__deepcopy__, Item.size = deepcopy, size  # type: ignore[method-assign]


def _pack_touched(writes: bool) -> None:
    """Pack the items the action unpacked or set: all of them after an action that writes (moto
    changes an item's attributes in place, and its size with them); after a read, an item
    keeps the blob it had."""
    while _TOUCHED:
        item = _TOUCHED.pop()
        attrs = item._attrs
        if attrs is None:  # noted twice, or packed since
            continue
        if writes:
            item._packed, item._names = _pack(attrs)
            item._size = None
        elif item._packed is None:  # a copy a read made for its answer: garbage once sent
            continue
        if item._packed is not None:
            item._attrs = None


def _pack(attrs: dict[str, Any]) -> tuple[bytes | None, frozenset[str]]:
    """An item's attributes as one blob (None when a value is not one ``marshal`` can hold),
    and their names (one set shared by the items that have the same).

    The blob is compressed when that makes it smaller, against the first item packed with the
    same names as zlib's preset dictionary: items of one table mostly share their names and
    many values, and an invoice packs to ~590 bytes instead of ~1,050 compressed alone (~1,350
    not compressed), a sandbox create's three items to ~1.1 KB instead of ~2.2 KB, for ~40 µs.
    Packed but not compressed, RSS grew by 5.5 MB per 1,000 creates instead of 2.0 (a
    ``make load`` level of 1,500). The process keeps one dictionary per set of names: the
    tables here have a handful; items that each had names of their own would keep one each.
    """
    try:
        packed = marshal.dumps({name: _plain(value) for name, value in attrs.items()})
    except (AttributeError, TypeError, ValueError):
        return None, frozenset(attrs)
    names = frozenset(attrs)
    names, dictionary = _DICTIONARIES.setdefault(names, (names, packed))
    compressor = zlib.compressobj(1, zdict=dictionary)
    compressed = compressor.compress(packed) + compressor.flush()
    return (compressed if len(compressed) < len(packed) else packed), names


def _plain(value: Any) -> Any:
    """A ``DynamoType`` as a string (type S, the most common) or (type, value): maps and lists
    of them recursively, the rest (number strings, bytes, booleans, sets as lists) as moto
    holds them."""
    if value.type == "S":
        return value.value
    if value.type == "M":
        return "M", {name: _plain(member) for name, member in value.value.items()}
    if value.type == "L":
        return "L", [_plain(member) for member in value.value]
    return value.type, value.value


def _unpack(packed: bytes, names: frozenset[str]) -> Any:
    """The attributes :func:`_pack` packed with these names, as moto's ``LimitedSizeDict`` of
    ``DynamoType``, filled without its per-attribute size check (the item passed it when it
    was written)."""
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict

    if packed[0] == _ZLIB_HEADER:
        packed = zlib.decompressobj(zdict=_DICTIONARIES[names][1]).decompress(packed)
    attrs = LimitedSizeDict.__new__(LimitedSizeDict)
    dict.update(attrs, {name: _typed(value, DynamoType) for name, value in marshal.loads(packed).items()})
    return attrs


def _typed(plain: Any, dynamo_type: type) -> Any:
    typed: Any = dynamo_type.__new__(dynamo_type)
    if isinstance(plain, str):
        typed.type, typed.value = "S", plain
        return typed
    kind, value = plain
    typed.type = kind
    if kind == "M":
        typed.value = {name: _typed(member, dynamo_type) for name, member in value.items()}
    elif kind == "L":
        typed.value = [_typed(member, dynamo_type) for member in value]
    else:
        typed.value = value
    return typed


class _SortedPartition(dict[Any, Any]):
    """One partition of a moto table that has a sort key: its items by sort key, as moto keeps
    them, and the sort keys in order (``keys_in_order``, and ``order`` their values as moto
    compares them), so that a Query finds where its page starts by bisection. Every way of
    adding or removing an item keeps them in step; a copy (a backup) is rebuilt item by item.
    Its items share one partition key object (``hash_key``) instead of one each."""

    def __init__(self) -> None:
        super().__init__()
        self.keys_in_order: list[Any] = []
        self.order: list[Any] = []
        self.hash_key: Any = None

    def __setitem__(self, key: Any, item: Any) -> None:
        if key not in self:
            position = bisect.bisect_left(self.order, key.cast_value)
            self.order.insert(position, key.cast_value)
            self.keys_in_order.insert(position, key)
        shared = self.hash_key
        if shared is None:
            self.hash_key = getattr(item, "hash_key", None)
        elif getattr(item, "hash_key", shared) is not shared and item.hash_key == shared:
            item.hash_key = shared
        super().__setitem__(key, item)

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._forget(key)

    def pop(self, key: Any, *default: Any) -> Any:
        if key not in self:
            return super().pop(key, *default)
        item = super().pop(key)
        self._forget(key)
        return item

    def popitem(self) -> tuple[Any, Any]:
        key, item = super().popitem()
        self._forget(key)
        return key, item

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, item in dict(*args, **kwargs).items():
            self[key] = item

    def __ior__(self, other: Any) -> _SortedPartition:  # type: ignore[override,misc]
        self.update(other)
        return self

    def clear(self) -> None:
        super().clear()
        self.keys_in_order.clear()
        self.order.clear()

    def __reduce_ex__(self, protocol: Any) -> Any:
        return type(self), (), None, None, iter(self.items())

    def _forget(self, key: Any) -> None:
        position = bisect.bisect_left(self.order, key.cast_value)
        del self.order[position], self.keys_in_order[position]


def _query_window(table: Any, arguments: dict[str, Any], size_limit: int) -> list[Any] | None:
    """The items of a table Query's partition that moto needs to answer it: from where the page
    starts, in the query's direction, through the page's last item and one more (moto sets
    LastEvaluatedKey when it sees an item past a full page). None: a query this does not
    narrow (of an index, with a legacy QueryFilter, of a partition restored as a plain dict),
    which moto answers from every item as before.

    The keys a key condition selects are contiguous in sort order: the window starts at the
    first key past ``ExclusiveStartKey`` within the condition's bound (one key equal to a ``>``
    or ``<`` bound may come first, and is skipped), and ends at the first key after them.
    """
    from moto.dynamodb.models.dynamo_type import DynamoType

    hash_key = arguments.get("hash_key")
    if arguments.get("index_name") is not None or hash_key is None or arguments.get("filter_kwargs"):
        return None
    if (
        len(arguments.get("range_key_conditions") or ()) > 1
        or len(arguments.get("hash_key_conditions") or ()) > 1
    ):
        return None
    if table.range_key_attr is None:
        item = table.items.get(hash_key)
        return [] if item is None else [item]
    partition = table.items.get(hash_key)
    if partition is None:
        return []
    if not isinstance(partition, _SortedPartition):
        return None
    comparison, bounds = arguments.get("range_comparison"), arguments.get("range_objs") or []
    start, limit = arguments.get("exclusive_start_key"), arguments.get("limit")
    after = None
    if start is not None:
        if table.hash_key_attr not in start or table.range_key_attr not in start:
            return None
        if DynamoType(start[table.hash_key_attr]) != hash_key:
            return None
        after = DynamoType(start[table.range_key_attr]).cast_value
    order, keys = partition.order, partition.keys_in_order
    if arguments.get("scan_index_forward") is not False:
        low = bisect.bisect_left(order, bounds[0].cast_value) if comparison in _LOWER_BOUNDED else 0
        if after is not None:
            low = max(low, bisect.bisect_right(order, after))
        positions: Iterable[int] = range(low, len(keys))
    else:
        high = len(keys)
        if comparison in _UPPER_BOUND:
            high = bisect.bisect_right(order, bounds[_UPPER_BOUND[comparison]].cast_value)
        elif comparison == "BEGINS_WITH":  # past every key that sorts before the prefix or starts with it
            prefix = bounds[0].cast_value
            high = bisect.bisect_left(
                order, True, key=lambda value: not (value < prefix or value.startswith(prefix))
            )
        if after is not None:
            high = min(high, bisect.bisect_left(order, after))
        positions = range(high - 1, -1, -1)
    window: list[Any] = []
    matched = size = 0
    skipped = False
    for position in positions:
        key = keys[position]
        item = partition[key]
        window.append(item)
        if (limit is not None and matched >= limit) or size > size_limit:
            break  # the page is full: moto stops at this item
        if comparison is not None and not key.compare(comparison, bounds):
            if matched or skipped:
                break  # past the keys the condition selects
            skipped = True
            continue
        matched += 1
        size += item.size()
    return window


def _index_candidates(table: Any, index_name: str) -> list[Any] | None:
    """The items of the table that may be in one of its indexes: those that have every key
    attribute of the index (moto's index Query skips the others; a sparse index, such as the
    invoices' PendingIndex, holds few), found by the names their blobs were packed with, not
    by unpacking every item of the table. None: no such index (moto refuses the query)."""
    index = next((index for index in table.all_indexes() if index.name == index_name), None)
    if index is None:
        return None
    needed = frozenset(key["AttributeName"] for key in index.schema)
    items = (
        (item for partition in table.items.values() for item in partition.values())
        if table.range_key_attr is not None
        else iter(table.items.values())
    )
    return [item for item in items if _may_have(item, needed)]


def _may_have(item: Any, names: frozenset[str]) -> bool:
    """Whether ``item`` may have these attributes: it does, or it is not packed (so the names
    packed with it, if any, may be out of date)."""
    packed_names = getattr(item, "_names", None)
    if (
        packed_names is None
        or getattr(item, "_packed", None) is None
        or getattr(item, "_attrs", None) is not None
    ):
        return True
    return names <= packed_names


def _attribute_value_json(value: Any) -> Any:
    """moto's typed attribute values (``DynamoType``) as DynamoDB's JSON (``{"S": ...}``, maps
    and lists holding more of them), bytes as base64."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    to_json = getattr(value, "to_json", None)
    if to_json is None:
        raise TypeError(f"{type(value).__name__} is not JSON")
    return to_json()


def _put_back(table: Any, hash_key: Any, range_key: Any, item: Any) -> None:
    """Restore one item of a moto table as it was (``None``: it did not exist)."""
    if table.has_range_key:
        if item is None:
            table.items.get(hash_key, {}).pop(range_key, None)
        else:
            table.items[hash_key][range_key] = item
    elif item is None:
        table.items.pop(hash_key, None)
    else:
        table.items[hash_key] = item


def _bind_api(port: int, gateway: Gateway) -> ApiServer:
    try:
        return ApiServer((HOST, port), gateway)
    except OSError as error:
        raise SystemExit(f"cannot listen on {HOST}:{port} ({error}); set API_PORT to a free port") from None


@dataclass(frozen=True)
class Deployment:
    """The template's API routes and event sources, bound to the imported functions."""

    gateway: Gateway
    sources: EventSources
    fields: dict[str, str]  # banner lines: each polled queue's URL, the schedule period


def deploy(stack: Stack, period: float = DEFAULT_SCHEDULE_SECONDS, concurrency: int = 1) -> Deployment:
    """Create the template's resources, give this process the functions' environment, import them
    (each function may then start up to ``concurrency`` containers)."""
    import boto3  # dev-only here; imported once AWS_ENDPOINT_URL points at moto

    sqs = boto3.client("sqs")
    clients = [boto3.client(name) for name in ("dynamodb", "kms", "secretsmanager")]
    create_resources(stack, *clients, sqs, boto3.client("s3"))
    routes = api_routes(stack.template)
    queues, schedules = queue_events(stack.template), schedule_events(stack.template)
    events: list[FunctionCode] = [*routes, *queues, *stream_events(stack.template), *schedules]
    for function in dict.fromkeys(event.function for event in events):
        os.environ.update(function_environment(stack, function))
    functions = load_functions(stack, events, concurrency)
    sources = event_sources(stack, functions, sqs, period)
    return Deployment(
        gateway=Gateway(BoundRoute(route, functions[route.function]) for route in routes),
        sources=EventSources(sources),
        fields=banner_fields(stack, sources, period if schedules else None),
    )


def banner_fields(stack: Stack, sources: Sequence[Worker], period: float | None) -> dict[str, str]:
    """``retry-queue: <url>`` for each polled queue (named after its logical id), and the period."""
    queue_ids = {
        stack.attributes.get((logical_id, "Arn")): logical_id
        for logical_id in stack.template.resources("AWS::SQS::Queue")
    }
    fields = {}
    for source in sources:
        if isinstance(source, QueuePoller):
            name = queue_ids.get(source.queue_arn) or source.queue_arn.rsplit(":", 1)[-1]
            words = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", name.removesuffix(".fifo"))
            fields[re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1-\2", words).lower()] = source.queue_url
    if period is not None:
        fields["schedule-seconds"] = f"{period:g}"
    return fields


def banner(
    demo: dict[str, str], api_url: str, aws: dict[str, str], fields: dict[str, str] | None = None
) -> str:
    """What to paste: the demo credentials (shown only here), admin CLI setup and two curls;
    ``fields`` (the polled queues' URLs, the schedule period) follow the AWS endpoint."""
    auth = [
        f"  -H {shlex.quote('x-api-key: ' + demo['api_key'])}",
        f"  -H {shlex.quote('x-connection-token: ' + demo['connection_token'])}",
    ]
    body = jsonutil.dumps(DEMO_INVOICE)
    webhook = jsonutil.dumps({"url": LOCAL_RECEIVER_URL, "events": list(EVENT_TYPES)})
    exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in aws.items() if name != "AWS_REGION")
    return "\n".join(
        [
            "Ledgerbridge local stack",
            f"  api-url: {api_url}",
            f"  aws-endpoint: {aws['AWS_ENDPOINT_URL']}",
            *(f"  {name}: {value}" for name, value in (fields or {}).items()),
            f"  project-id: {demo['project_id']}",
            f"  connection-id: {demo['connection_id']}",
            *([f"  contact-id: {demo['contact_id']}"] if demo.get("contact_id") else []),
            f"  x-api-key: {demo['api_key']}",
            f"  x-connection-token: {demo['connection_token']}",
            "",
            "Use ledgerbridge-admin (or any AWS SDK) against this stack:",
            f"export {exports}",
            "",
            "Create an invoice:",
            f"curl -sS -X POST {api_url}/accounting/invoices \\",
            *(line + " \\" for line in auth),
            "  -H 'content-type: application/json' \\",
            f"  -d {shlex.quote(body)}",
            "",
            "List invoices:",
            f"curl -sS {api_url}/accounting/invoices \\",
            auth[0] + " \\",
            auth[1],
            "",
            "Send every event to a receiver on this machine (README, Webhooks, has one to run):",
            f"curl -sS -X POST {api_url}/webhooks \\",
            auth[0] + " \\",
            "  -H 'content-type: application/json' \\",
            f"  -d {shlex.quote(webhook)}",
            "",
        ]
    )


def admin_webhook_environment(stack: Stack) -> dict[str, str]:
    """What ``ledgerbridge-admin webhook-*`` needs besides AWS: the webhook queue (its test ping
    is queued there) and the local stack's allowance of loopback receivers."""
    if "WebhookQueue" not in stack.refs:
        return {}
    return {
        "LEDGERBRIDGE_WEBHOOK_QUEUE_URL": stack.refs["WebhookQueue"],
        "LEDGERBRIDGE_WEBHOOK_ALLOW_LOOPBACK": "true",
    }


def _serve(server: ApiServer, stop: threading.Event) -> None:
    """Serve until SIGINT/SIGTERM sets ``stop``; serve_forever runs in a thread so shutdown can join it."""
    thread = threading.Thread(target=server.serve_forever, name="api", daemon=True)
    thread.start()
    print(READY_LINE, flush=True)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    thread.join()


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stop


def local_parameters(template: Template, api_url: str, log_level: str) -> dict[str, str]:
    """The template parameters of the local stack, those of them the template declares: links
    (connect pages, the OAuth callback) point at ``api_url``; ``$LOG_LEVEL`` if set; and webhook
    endpoints may be on loopback addresses, where a developer's receiver listens."""
    wanted = {
        "PublicUrl": api_url,
        **({"LogLevel": log_level} if log_level else {}),
        "WebhookAllowLoopback": "true",
    }
    declared = template.body.get("Parameters", {})
    return {name: value for name, value in wanted.items() if name in declared}


def main(argv: list[str] | None = None) -> None:
    """Start moto, create and seed the stack, serve the API until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="ledgerbridge-local", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--template", type=Path, help="template.yaml (default: found from the source tree)")
    args = parser.parse_args(argv)
    stop = _stop_on_signals()
    api_port, aws_port = _port("API_PORT", 3000), _port("AWS_PORT", 4566)
    period, concurrency = schedule_seconds(), function_concurrency()
    template = load_template(args.template)
    with ExitStack() as cleanup:
        api = _bind_api(api_port, Gateway([]))
        cleanup.callback(api.server_close)
        cleanup.callback(_start_moto(aws_port).stop)
        aws = aws_environment(aws_port)
        _use_environment(aws)
        api_url = f"http://{HOST}:{api_port}"
        parameters = local_parameters(template, api_url, os.environ.get("LOG_LEVEL", ""))
        stack = Stack(template, name=STACK_NAME, region=aws["AWS_REGION"], parameters=parameters)
        deployment = deploy(stack, period, concurrency)
        api.gateway = deployment.gateway
        cleanup.callback(deployment.sources.stop)  # runs before moto stops: pollers call it
        from ledgerbridge.admin import seed_demo  # after the environment points at moto
        from ledgerbridge.connect import create_session

        demo = seed_demo()
        session = create_session(demo["project_id"], {"end_user": {"id": "demo-user"}}, api_url)
        fields = {**deployment.fields, "connect-url": session["url"]}
        print(banner(demo, api_url, {**aws, **admin_webhook_environment(stack)}, fields), flush=True)
        if not stop.is_set():
            deployment.sources.start()
            _serve(api, stop)


if __name__ == "__main__":
    main()
