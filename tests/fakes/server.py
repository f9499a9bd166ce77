"""Serve a provider fake over real HTTP on localhost, for the e2e tests.

The fakes are written as ``handle(httpx.Request) -> httpx.Response`` so unit tests can use
them through httpx.MockTransport; this adapter lets the local stack (another process) talk
to the very same fake through LEDGERBRIDGE_<PROVIDER>_API_URL / _TOKEN_URL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

Handler = Callable[[httpx.Request], httpx.Response]


def _request_handler(handle: Handler, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Adapter(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            request = httpx.Request(
                self.command,
                f"http://{self.headers.get('host', 'localhost')}{self.path}",
                headers=list(self.headers.items()),
                content=self.rfile.read(length) if length else b"",
            )
            try:
                with lock:  # fakes are plain objects; one request at a time keeps them simple
                    response = handle(request)
                response.read()
            except httpx.TimeoutException:
                self.close_connection = True  # an injected timeout: hang up without answering
                return
            self.send_response(response.status_code)
            for name, value in response.headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("content-length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

    return Adapter


@contextmanager
def serve(handle: Handler, port: int = 0) -> Iterator[str]:
    """Run ``handle`` on 127.0.0.1 and ``port`` (a free one by default); yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _request_handler(handle, threading.Lock()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
