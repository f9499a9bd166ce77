"""sender.post against real servers on 127.0.0.1 (threads), loopback allowed unless a test says.

Each server records the connections it accepted (local address, request line, headers, body),
so a test can assert what arrived and, as important, what never did."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ledgerbridge.webhooks import sender, urls

real_getaddrinfo = socket.getaddrinfo


@dataclass
class Seen:
    local_address: str
    request_line: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Server:
    port: int
    seen: list[Seen]


def read_request(conn: socket.socket, seen: Seen) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    seen.request_line = lines[0]
    seen.headers = {
        name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])
    }
    length = int(seen.headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = conn.recv(4096)
        if not chunk:
            break
        rest += chunk
    seen.body = rest


def respond(status: int, extra: str = "", body: bytes = b"") -> Callable[[socket.socket], None]:
    def handler(conn: socket.socket) -> None:
        conn.sendall(
            f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n".encode()
            + body
        )

    return handler


@contextmanager
def serve(
    handler: Callable[[socket.socket], None],
    host: str = "127.0.0.1",
    port: int = 0,
    tls: ssl.SSLContext | None = None,
) -> Iterator[Server]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen()
    listener.settimeout(0.1)
    server = Server(listener.getsockname()[1], [])
    stop = threading.Event()

    def connection(conn: socket.socket) -> None:
        seen = Seen(conn.getsockname()[0])
        server.seen.append(seen)
        try:
            if tls is not None:
                conn = tls.wrap_socket(conn, server_side=True)
            read_request(conn, seen)
            handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(30)
            threading.Thread(target=connection, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join()
        listener.close()


@pytest.fixture(autouse=True)
def loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERBRIDGE_WEBHOOK_ALLOW_LOOPBACK", "true")


def test_a_2xx_is_a_successful_attempt() -> None:
    with serve(respond(200, body=b"thanks")) as server:
        attempt = sender.post(f"http://127.0.0.1:{server.port}/hook", b"{}", {})
    assert attempt.ok
    assert attempt.status_code == 200
    assert attempt.error is None
    assert len(server.seen) == 1


def test_a_500_is_a_failed_attempt_with_its_status() -> None:
    with serve(respond(500, body=b"secret internal detail")) as server:
        attempt = sender.post(f"http://127.0.0.1:{server.port}/hook", b"{}", {})
    assert not attempt.ok
    assert attempt.status_code == 500
    assert attempt.error == "HTTP 500"


def test_redirects_are_not_followed() -> None:
    with serve(respond(200)) as second:
        location = f"Location: http://127.0.0.1:{second.port}/elsewhere\r\n"
        with serve(respond(302, extra=location)) as first:
            attempt = sender.post(f"http://127.0.0.1:{first.port}/hook", b"{}", {})
        time.sleep(0.2)  # room for a (wrong) follow-up request to arrive before counting
    assert attempt.status_code == 302
    assert not attempt.ok
    assert attempt.error == "redirect not followed (302)"
    assert len(first.seen) == 1
    assert second.seen == []


def test_the_request_carries_the_body_and_headers_as_sent() -> None:
    body = b'{"type":"invoice.created"}'
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": "v1,abc="}
    with serve(respond(204)) as server:
        attempt = sender.post(f"http://127.0.0.1:{server.port}/in/hook?x=1#frag", body, headers)
    assert attempt.ok
    (seen,) = server.seen
    assert seen.request_line == "POST /in/hook?x=1 HTTP/1.1"
    assert seen.body == body
    assert seen.headers["host"] == f"127.0.0.1:{server.port}"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["user-agent"] == "Ledgerbridge-Webhooks/1"
    assert {name: seen.headers[name] for name in headers} == headers


def test_a_server_that_accepts_and_never_answers_times_out() -> None:
    with serve(lambda conn: time.sleep(5)) as server:
        attempt = sender.post(f"http://127.0.0.1:{server.port}/", b"{}", {}, total_timeout=0.5)
    assert attempt.status_code is None
    assert attempt.error == "timed out after 0.5 s"


def test_a_server_that_trickles_bytes_is_cut_off_by_the_total_timeout() -> None:
    def trickle(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(100):  # 20 s at most: without the deadline this ends as a broken response
            conn.sendall(b"a")
            time.sleep(0.2)

    with serve(trickle) as server:
        attempt = sender.post(f"http://127.0.0.1:{server.port}/", b"{}", {}, total_timeout=1.0)
    assert attempt.status_code is None
    assert attempt.error == "timed out after 1 s"


def test_a_closed_port_is_connection_refused() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    attempt = sender.post(f"http://127.0.0.1:{port}/", b"{}", {})
    assert attempt == sender.Attempt(None, attempt.latency_ms, "connection refused")


def test_deployed_a_loopback_url_is_refused_before_any_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGERBRIDGE_WEBHOOK_ALLOW_LOOPBACK")
    with serve(respond(200)) as server:
        attempt = sender.post(f"https://127.0.0.1:{server.port}/", b"{}", {})
        time.sleep(0.2)
    assert attempt.status_code is None
    assert attempt.error is not None
    assert attempt.error.startswith("unsafe url: url host resolves to a loopback address")
    assert server.seen == []


def test_the_connection_goes_to_the_checked_address_without_a_second_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lookups: list[str] = []

    def rebinding_dns(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host == "hooks.test":
            lookups.append(host)
            address = "127.0.0.1" if len(lookups) == 1 else "127.0.0.2"
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(urls.socket, "getaddrinfo", rebinding_dns)
    with serve(respond(200)) as checked, serve(respond(200), host="127.0.0.2", port=checked.port) as rebound:
        attempt = sender.post(f"http://hooks.test:{checked.port}/", b"{}", {})
    assert attempt.ok
    assert lookups == ["hooks.test"]
    (seen,) = checked.seen
    assert seen.local_address == "127.0.0.1"
    assert seen.headers["host"] == f"hooks.test:{checked.port}"
    assert rebound.seen == []


def make_cert(directory: Path, hostname: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{hostname}.pem", directory / f"{hostname}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, ssl.SSLContext]:
    """Server contexts for hooks.test and other.test, and a client context trusting both."""

    def dns(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host == "hooks.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(urls.socket, "getaddrinfo", dns)
    client = ssl.create_default_context()
    contexts = {"client": client}
    for hostname in ("hooks.test", "other.test"):
        cert_path, key_path = make_cert(tmp_path, hostname)
        client.load_verify_locations(cafile=str(cert_path))
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(cert_path, key_path)
        contexts[hostname] = server
    return contexts


def test_tls_is_verified_against_the_hostname_while_connecting_to_the_pinned_ip(
    tls: dict[str, ssl.SSLContext],
) -> None:
    with serve(respond(200), tls=tls["hooks.test"]) as server:
        attempt = sender.post(f"https://hooks.test:{server.port}/", b"{}", {}, ssl_context=tls["client"])
    assert attempt.ok, attempt.error
    (seen,) = server.seen
    assert seen.local_address == "127.0.0.1"
    assert seen.headers["host"] == f"hooks.test:{server.port}"


def test_a_trusted_certificate_for_another_name_is_refused(tls: dict[str, ssl.SSLContext]) -> None:
    with serve(respond(200), tls=tls["other.test"]) as server:
        attempt = sender.post(f"https://hooks.test:{server.port}/", b"{}", {}, ssl_context=tls["client"])
    assert attempt.status_code is None
    assert attempt.error == "tls certificate verification failed"
    assert server.seen[0].request_line == ""
