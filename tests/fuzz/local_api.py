"""The local stack's front door, in memory: raw HTTP bytes in, raw HTTP bytes out.

Each request is written as HTTP/1.1 bytes and handed to the local stack's own
:class:`~ledgerbridge.local.stack.ApiRequestHandler` over an in-memory connection, so it is
parsed, routed (the template's routes, :class:`~ledgerbridge.local.stack.Gateway`), turned
into the HTTP API's payload format 2.0 event (:func:`~ledgerbridge.local.stack.proxy_event`)
and answered (:func:`~ledgerbridge.local.stack.proxy_response`) exactly as ``make run`` does it,
with no socket and no thread. :meth:`LocalApi.wsgi` is the same door as a WSGI application,
for Schemathesis (``schemathesis.openapi.from_wsgi``).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from ledgerbridge.local.stack import ApiRequestHandler, BoundRoute, Gateway, load_functions
from ledgerbridge.local.template import Stack, api_routes

HOST = "ledgerbridge.test"
Header = tuple[str, str | bytes]


@dataclass(frozen=True)
class Sent:
    """One request as it went over the wire (the bytes are rebuilt from these parts)."""

    method: str
    target: str
    headers: tuple[Header, ...]
    body: bytes

    def header_values(self, name: str) -> list[str]:
        """Every value of a header, as the server reads it (ISO-8859-1), case-insensitively."""
        return [_text(value) for key, value in self.headers if key.lower() == name.lower()]


@dataclass(frozen=True)
class Received:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    log: str = ""  # what the server and handler wrote (logs, tracebacks) while answering
    seconds: float = 0.0

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)


@dataclass
class _Connection:
    """A socket as socketserver's StreamRequestHandler uses it: read the request, collect the answer."""

    data: bytes
    written: bytearray = field(default_factory=bytearray)

    def makefile(self, mode: str, buffering: int = -1) -> io.BytesIO:
        assert "r" in mode, mode
        return io.BytesIO(self.data)

    def sendall(self, data: bytes) -> None:
        self.written += data

    def settimeout(self, timeout: float | None) -> None:
        pass

    def setsockopt(self, *args: Any) -> None:
        pass


class _QuietHandler(ApiRequestHandler):
    """The stack's handler without its access log (one line per request, tens of thousands here)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Socket:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, mode: str, buffering: int = -1) -> io.BytesIO:
        return io.BytesIO(self._data)


def _text(value: str | bytes) -> str:
    return value.decode("iso-8859-1") if isinstance(value, bytes) else value


def _raw(value: str | bytes) -> bytes:
    """A header value's bytes: ISO-8859-1 as HTTP clients write text, UTF-8 beyond it."""
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("iso-8859-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def wire_bytes(sent: Sent, *, content_length: bool = True) -> bytes:
    """The request as HTTP/1.1 bytes: request line, Host, the headers, Content-Length, body."""
    lines = [f"{sent.method} {sent.target} HTTP/1.1".encode("iso-8859-1", "replace")]
    names = {name.lower() for name, _ in sent.headers}
    if "host" not in names:
        lines.append(f"Host: {HOST}".encode())
    lines += [name.encode("iso-8859-1", "replace") + b": " + _raw(value) for name, value in sent.headers]
    if content_length and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(sent.body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + sent.body


class LocalApi:
    """The template's API routes served by the stack's HTTP handler, in this process."""

    def __init__(self, stack: Stack) -> None:
        routes = api_routes(stack.template)
        functions = load_functions(stack, routes)
        self.gateway = Gateway(BoundRoute(route, functions[route.function]) for route in routes)
        self._server = SimpleNamespace(gateway=self.gateway)

    def send(self, sent: Sent, *, content_length: bool = True) -> Received:
        """One request through the local stack's front door; the connection is then closed."""
        return self.send_bytes(wire_bytes(sent, content_length=content_length), head=sent.method == "HEAD")

    def send_bytes(self, data: bytes, *, head: bool = False) -> Received:
        """Raw request bytes in, the parsed answer out. A server that raises or answers nothing
        parseable is recorded as a 502 (what API Gateway would send) with the reason in ``log``."""
        connection = _Connection(data)
        log = io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
            try:
                _QuietHandler(connection, ("127.0.0.1", 40000), self._server)  # type: ignore[arg-type]
            except Exception:
                traceback.print_exc()
        seconds = time.perf_counter() - started
        socket = _Socket(bytes(connection.written))
        response = http.client.HTTPResponse(socket, method="HEAD" if head else None)  # type: ignore[arg-type]
        try:
            response.begin()
            body = response.read()
        except (http.client.HTTPException, OSError, ValueError) as error:
            written = bytes(connection.written)[:200]
            note = f"\nno parseable HTTP answer ({error!r}); the server wrote {written!r}"
            return Received(502, (), b"", log.getvalue() + note, seconds)
        return Received(response.status, tuple(response.getheaders()), body, log.getvalue(), seconds)

    def wsgi(self, observe: Callable[[Sent, Received], None]) -> Callable[..., Iterable[bytes]]:
        """This door as a WSGI application; ``observe`` sees every exchange (Schemathesis's too)."""

        def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            sent = sent_from_environ(environ)
            received = self.send(sent)
            observe(sent, received)
            reason = http.client.responses.get(received.status, "Unknown")
            hop_by_hop = {"connection", "keep-alive", "transfer-encoding"}
            start_response(
                f"{received.status} {reason}",
                [(name, value) for name, value in received.headers if name.lower() not in hop_by_hop],
            )
            return [received.body]

        return application


def sent_from_environ(environ: dict[str, Any]) -> Sent:
    """The request a WSGI environ describes, as it would have gone over the wire."""
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
    query = environ.get("QUERY_STRING") or ""
    if query and "?" not in target:  # werkzeug's test client keeps the query out of RAW_URI
        target += f"?{query}"
    headers: list[Header] = []
    for key, value in environ.items():
        if key.startswith("HTTP_") and key != "HTTP_CONTENT_LENGTH":
            headers.append((key[5:].replace("_", "-").title(), value.encode("iso-8859-1")))
    if environ.get("CONTENT_TYPE"):
        headers.append(("Content-Type", environ["CONTENT_TYPE"].encode("iso-8859-1")))
    stream = environ.get("wsgi.input")
    length = environ.get("CONTENT_LENGTH") or ""
    body = stream.read(int(length)) if stream is not None and length.isdigit() else b""
    return Sent(environ["REQUEST_METHOD"], target, tuple(headers), body)
