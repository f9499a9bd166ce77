"""``make run``: Ledgerbridge on this machine, with no AWS account and no Docker (design §5).

An embedded moto server plays AWS on ``127.0.0.1:$AWS_PORT`` (4566); the tables and key are
the ones template.yaml declares; a demo project, API key and sandbox connection are seeded;
and ``127.0.0.1:$API_PORT`` (3000) turns each HTTP request into the API Gateway REST (v1)
proxy event that AWS would send, and gives it to the handler that the template names, in
this process, with the environment that the template gives it.

Differences from AWS, on purpose: every function shares this one process and environment;
there is no stage prefix in local URLs; an unknown route answers a JSON 404 (API Gateway
says 403 "Missing Authentication Token"); there is no timeout enforcement, only
``get_remaining_time_in_millis``.

``LOG_LEVEL=DEBUG make run`` sets the template's LogLevel parameter (POWERTOOLS_LOG_LEVEL):
the template's environment replaces this process's, so exporting that variable would not.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import logging
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
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ledgerbridge import jsonutil
from ledgerbridge.local.template import (
    LOCAL_ACCOUNT_ID,
    Route,
    Stack,
    api_routes,
    create_resources,
    function_environment,
    load_template,
)

HOST = "127.0.0.1"
STACK_NAME = "ledgerbridge"  # table names ledgerbridge-invoices/-accounts, the admin CLI's defaults
READY_LINE = "Ledgerbridge local stack ready"
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's REST API payload limit
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
_HOP_BY_HOP = {"connection", "content-length", "keep-alive", "transfer-encoding"}
_JSON_HEADERS = {"content-type": "application/json"}

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class LocalFunction:
    """A template function imported into this process, with what its Lambda context reports.

    It is one warm container: Lambda gives a container one event at a time, and handlers
    rely on that (Powertools keeps the current event on the resolver), so ``busy`` makes
    concurrent HTTP requests take turns.
    """

    name: str
    arn: str
    handler: Handler
    memory_mb: int
    timeout_seconds: int
    busy: threading.Lock = field(default_factory=threading.Lock, compare=False)


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
    """The event a REST API's Lambda proxy integration sends (payload format 1.0).

    As on AWS: ``path`` stays percent-encoded, path and query parameters are decoded, and
    single-value maps hold the last value of a repeated header or parameter.
    """
    url = urlsplit(request.target)
    headers = _group(request.headers, fold_case=True)
    query = _group(parse_qsl(url.query, keep_blank_values=True), fold_case=False)
    body, is_base64 = _event_body(request.body)
    now = time.time()
    return {
        "resource": route.path,
        "path": url.path,
        "httpMethod": request.method,
        "headers": _last_values(headers),
        "multiValueHeaders": headers or None,
        "queryStringParameters": _last_values(query),
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT_ID,
            "apiId": "local",
            "resourceId": "local",
            "stage": route.stage,
            "requestId": str(uuid.uuid4()),
            "resourcePath": route.path,
            "httpMethod": request.method,
            "path": f"/{route.stage}{url.path}",
            "protocol": "HTTP/1.1",
            "domainName": _header(headers, "host") or HOST,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": request.source_ip, "userAgent": _header(headers, "user-agent")},
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


def _group(pairs: Iterable[tuple[str, str]], fold_case: bool) -> dict[str, list[str]]:
    """Values by name, in order. Header names are case-insensitive (the first spelling is kept);
    query parameter names are not."""
    grouped: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}
    for name, value in pairs:
        key = spelling.setdefault(name.lower(), name) if fold_case else name
        grouped.setdefault(key, []).append(value)
    return grouped


def _last_values(grouped: dict[str, list[str]]) -> dict[str, str] | None:
    return {name: values[-1] for name, values in grouped.items()} or None


def _header(headers: dict[str, list[str]], name: str) -> str | None:
    return next((values[-1] for key, values in headers.items() if key.lower() == name), None)


def _event_body(body: bytes) -> tuple[str | None, bool]:
    """Text bodies pass as text; bytes that are not UTF-8 pass base64-encoded, flagged as such."""
    if not body:
        return None, False
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def proxy_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body from a proxy integration's result; ValueError when malformed."""
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        raise ValueError(
            f"malformed Lambda proxy response: {type(result).__name__} without an int statusCode"
        )
    body = result.get("body") or ""
    if not isinstance(body, str):
        raise ValueError("malformed Lambda proxy response: body is not a string")
    payload = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    multi = result.get("multiValueHeaders") or {}
    single = result.get("headers") or {}
    multi_names = {name.lower() for name in multi}
    headers = [(name, str(value)) for name, values in multi.items() for value in values]
    headers += [(name, str(value)) for name, value in single.items() if name.lower() not in multi_names]
    return result["statusCode"], [(n, v) for n, v in headers if n.lower() not in _HOP_BY_HOP], payload


def _json_response(status: int, body: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, list(_JSON_HEADERS.items()), json.dumps(body).encode("utf-8")


class ApiServer(ThreadingHTTPServer):
    """The local API Gateway: one thread per connection, all sharing one :class:`Gateway`."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], gateway: Gateway) -> None:
        self.gateway = gateway
        super().__init__(address, ApiRequestHandler)


class ApiRequestHandler(BaseHTTPRequestHandler):
    """Turns one HTTP request into a proxy event, invokes the handler, writes its response."""

    server: ApiServer
    protocol_version = "HTTP/1.1"  # keep-alive, as API Gateway; every response has a Content-Length

    def do_GET(self) -> None:
        self._send(*self._answer())

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _answer(self) -> tuple[int, list[tuple[str, str]], bytes]:
        length = self.headers.get("content-length") or "0"
        if not length.isdigit() or "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            self.close_connection = True  # the body's end is unknown: nothing more can be read
            return _json_response(411, {"message": "Length Required"})
        if int(length) > MAX_PAYLOAD_BYTES:
            self.close_connection = True
            return _json_response(413, {"message": "Request Too Long"})
        body = self.rfile.read(int(length))
        request = Request(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
        path = urlsplit(request.target).path
        found = self.server.gateway.match(request.method, path)
        if found is None:
            message = f"No route for {request.method} {path} in template.yaml"
            return _json_response(404, {"statusCode": 404, "error": "not_found", "message": message})
        bound, path_parameters = found
        return _invoke(bound, proxy_event(bound.route, path_parameters, request))

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _invoke(bound: BoundRoute, event: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    """Call the handler as Lambda would; a crash or a malformed result is API Gateway's 502."""
    try:
        with bound.function.busy:
            result = bound.function.handler(event, LambdaContext(bound.function))
        status, headers, body = proxy_response(result)
    except Exception:
        traceback.print_exc()  # what the function's log would show
        return _json_response(502, {"message": "Internal server error"})
    return status, [*headers, ("x-amzn-RequestId", event["requestContext"]["requestId"])], body


def load_functions(stack: Stack, routes: Iterable[Route]) -> dict[str, LocalFunction]:
    """Import each routed function's handler from its CodeUri, as Lambda does from /var/task."""
    functions: dict[str, LocalFunction] = {}
    for route in routes:
        if route.function not in functions:
            functions[route.function] = _load_function(stack, route)
    return functions


def _load_function(stack: Stack, route: Route) -> LocalFunction:
    properties = stack.template.function_properties(route.function)
    module_name, _, attribute = route.handler.rpartition(".")
    if str(route.code_uri) not in sys.path:
        sys.path.insert(0, str(route.code_uri))
    handler = getattr(importlib.import_module(module_name), attribute)
    name = f"{stack.name}-{route.function}"
    return LocalFunction(
        name=name,
        arn=f"arn:aws:lambda:{stack.region}:{stack.account_id}:function:{name}",
        handler=handler,
        memory_mb=int(properties.get("MemorySize", 128)),
        timeout_seconds=int(properties.get("Timeout", 3)),
    )


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
    _require_free(port, "AWS_PORT")
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    return server


def _bind_api(port: int, gateway: Gateway) -> ApiServer:
    try:
        return ApiServer((HOST, port), gateway)
    except OSError as error:
        raise SystemExit(f"cannot listen on {HOST}:{port} ({error}); set API_PORT to a free port") from None


def deploy(stack: Stack) -> Gateway:
    """Create the template's resources, give this process the functions' environment, import them."""
    import boto3  # dev-only here; imported once AWS_ENDPOINT_URL points at moto

    create_resources(stack, boto3.client("dynamodb"), boto3.client("kms"), boto3.client("secretsmanager"))
    routes = api_routes(stack.template)
    for function in {route.function for route in routes}:
        os.environ.update(function_environment(stack, function))
    functions = load_functions(stack, routes)
    return Gateway(BoundRoute(route, functions[route.function]) for route in routes)


def banner(demo: dict[str, str], api_url: str, aws: dict[str, str]) -> str:
    """What to paste: the demo credentials (shown only here), admin CLI setup and two curls."""
    auth = [
        f"  -H {shlex.quote('x-api-key: ' + demo['api_key'])}",
        f"  -H {shlex.quote('x-connection-token: ' + demo['connection_token'])}",
    ]
    body = jsonutil.dumps(DEMO_INVOICE)
    exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in aws.items() if name != "AWS_REGION")
    return "\n".join(
        [
            "Ledgerbridge local stack",
            f"  api-url: {api_url}",
            f"  aws-endpoint: {aws['AWS_ENDPOINT_URL']}",
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
        ]
    )


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


def main(argv: list[str] | None = None) -> None:
    """Start moto, create and seed the stack, serve the API until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="ledgerbridge-local", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--template", type=Path, help="template.yaml (default: found from the source tree)")
    args = parser.parse_args(argv)
    stop = _stop_on_signals()
    api_port, aws_port = _port("API_PORT", 3000), _port("AWS_PORT", 4566)
    template = load_template(args.template)
    with ExitStack() as cleanup:
        api = _bind_api(api_port, Gateway([]))
        cleanup.callback(api.server_close)
        cleanup.callback(_start_moto(aws_port).stop)
        aws = aws_environment(aws_port)
        _use_environment(aws)
        log_level = {"LogLevel": os.environ["LOG_LEVEL"]} if os.environ.get("LOG_LEVEL") else {}
        stack = Stack(template, name=STACK_NAME, region=aws["AWS_REGION"], parameters=log_level)
        api.gateway = deploy(stack)
        from ledgerbridge.admin import seed_demo  # after the environment points at moto

        print(banner(seed_demo(), f"http://{HOST}:{api_port}", aws), flush=True)
        if not stop.is_set():
            _serve(api, stop)


if __name__ == "__main__":
    main()
