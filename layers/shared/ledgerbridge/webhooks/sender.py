"""One webhook delivery attempt: a POST pinned to the addresses ``check_url`` just approved.

Decisions:

- The URL is checked again at delivery time (DNS can change after registration), and the
  connection goes to one of the addresses that check returned: the request is made to the IP
  literal, with ``Host`` and the TLS SNI/certificate check set to the hostname (httpcore's
  ``sni_hostname`` extension), so a DNS server that answers differently a second later
  (rebinding) is never asked again.
- httpcore directly (httpx's own transport, already in the layer) rather than httpx: it takes a
  network backend, which is how the whole attempt gets one deadline. Every connect, TLS
  handshake, write and read is given at most the time left of ``total_timeout``, so a server
  that trickles a byte at a time cannot hold the Lambda past it; connect alone is bounded by
  ``connect_timeout``. At most 4 KB of the answer body is read, then discarded.
- Redirects are never followed: a 3xx is a failed attempt (following one would let an approved
  host bounce us to an internal one).
- A fresh connection pool per attempt and ``Connection: close``: no connection is ever reused
  for another hostname (SNI must match). The ``ssl.SSLContext`` (certifi's CA bundle, as httpx
  uses) is built once per container, lazily; tests inject their own.
- httpcore is imported inside ``post``: modules that only register endpoints pay nothing at
  cold start (``ssl`` too, which costs about 20 ms to import).
- Network trouble never raises: it becomes an ``Attempt`` with a short, safe ``error``. Neither
  the body nor the signature is logged or returned.
"""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ledgerbridge.webhooks.urls import UnsafeUrl, check_url

if TYPE_CHECKING:
    import ssl

CONNECT_TIMEOUT_SECONDS = 3.0
TOTAL_TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 4096
USER_AGENT = "Ledgerbridge-Webhooks/1"

_OWN_HEADERS = {"host", "content-length", "connection", "transfer-encoding"}

_ssl_context: ssl.SSLContext | None = None


@dataclass(frozen=True)
class Attempt:
    status_code: int | None  # None when no HTTP answer
    latency_ms: int
    error: str | None  # short, safe text: "connection refused", "timed out after 10 s", ...

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def default_ssl_context() -> ssl.SSLContext:
    """The container's one TLS context: certifi's CA bundle, hostname checking on."""
    global _ssl_context
    if _ssl_context is None:
        import ssl

        import certifi

        _ssl_context = ssl.create_default_context(cafile=certifi.where())
    return _ssl_context


class _DeadlineExceeded(Exception):
    pass


def _deadline_backend(deadline: float) -> Any:
    """An httpcore network backend whose every blocking call ends by ``deadline``."""
    import httpcore

    def remaining(timeout: float | None) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("deadline")
        return left if timeout is None else min(timeout, left)

    class Stream(httpcore.NetworkStream):
        def __init__(self, inner: httpcore.NetworkStream) -> None:
            self._inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self._inner.read(max_bytes, remaining(timeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._inner.write(buffer, remaining(timeout))

        def close(self) -> None:
            self._inner.close()

        def start_tls(
            self,
            ssl_context: ssl.SSLContext,
            server_hostname: str | None = None,
            timeout: float | None = None,
        ) -> httpcore.NetworkStream:
            return Stream(self._inner.start_tls(ssl_context, server_hostname, remaining(timeout)))

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    class Backend(httpcore.SyncBackend):
        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Any = None,
        ) -> httpcore.NetworkStream:
            inner = super().connect_tcp(host, port, remaining(timeout), local_address, socket_options)
            return Stream(inner)

    return Backend()


def _error_text(exc: Exception, connect_timeout: float, total_timeout: float) -> str:
    import ssl

    import httpcore

    if isinstance(exc, httpcore.ConnectTimeout):
        return f"connect timed out after {connect_timeout:g} s"
    if isinstance(exc, httpcore.TimeoutException):
        return f"timed out after {total_timeout:g} s"
    text = str(exc)
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ConnectionRefusedError) or "refused" in text.lower():
        return "connection refused"
    if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return "tls certificate verification failed"
    if isinstance(cause, ssl.SSLError) or "SSL" in text:
        return "tls handshake failed"
    if isinstance(exc, httpcore.RemoteProtocolError):
        return "invalid HTTP response"
    if isinstance(cause, OSError) and cause.errno == errno.ECONNRESET:
        return "connection reset"
    return "connection failed"


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    total_timeout: float = TOTAL_TIMEOUT_SECONDS,
    ssl_context: ssl.SSLContext | None = None,
) -> Attempt:
    """check_url at delivery time too (DNS can change after registration), then POST to one of the
    checked addresses (pinned: connect to the IP, Host header and TLS SNI/cert check = the hostname),
    never following redirects; never raises for network trouble."""
    started = time.monotonic()

    def attempt(status_code: int | None, error: str | None) -> Attempt:
        return Attempt(status_code, int((time.monotonic() - started) * 1000), error)

    try:
        target = check_url(url)
    except UnsafeUrl as exc:
        return attempt(None, f"unsafe url: {exc}")

    import httpcore

    address = target.addresses[0]
    literal = f"[{address}]" if ":" in address else address
    host = f"[{target.host}]" if ":" in target.host else target.host
    default_port = 443 if target.scheme == "https" else 80
    host_header = host if target.port == default_port else f"{host}:{target.port}"
    request_headers = [
        ("Host", host_header),
        ("Content-Type", "application/json"),
        ("User-Agent", USER_AGENT),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
    ]
    request_headers += [(name, value) for name, value in headers.items() if name.lower() not in _OWN_HEADERS]
    extensions: dict[str, Any] = {
        "timeout": {"connect": connect_timeout, "read": total_timeout, "write": total_timeout, "pool": 0.0}
    }
    if target.scheme == "https":
        extensions["sni_hostname"] = target.host
    pool = httpcore.ConnectionPool(
        ssl_context=ssl_context or default_ssl_context(),
        max_keepalive_connections=0,
        network_backend=_deadline_backend(started + total_timeout),
    )
    try:
        with pool.stream(
            "POST",
            f"{target.scheme}://{literal}:{target.port}{target.target}",
            headers=request_headers,
            content=body,
            extensions=extensions,
        ) as response:
            read = 0
            for chunk in response.iter_stream():
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES:
                    break
            status = response.status
    except httpcore.TimeoutException as exc:
        return attempt(None, _error_text(exc, connect_timeout, total_timeout))
    except (httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
        return attempt(None, _error_text(exc, connect_timeout, total_timeout))
    finally:
        pool.close()
    if 300 <= status < 400:
        return attempt(status, f"redirect not followed ({status})")
    if not 200 <= status < 300:
        return attempt(status, f"HTTP {status}")
    return attempt(status, None)
