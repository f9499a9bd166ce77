"""check_url: which webhook URLs are refused, deployed and with loopback allowed.

Hostnames resolve through a fake ``getaddrinfo`` (a fixed table) so the matrix does not depend on
the network; IP literals in odd spellings go through the real resolver, because what it makes
of them is exactly what must be checked."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from ledgerbridge.webhooks import urls
from ledgerbridge.webhooks.urls import UnsafeUrl, check_url

PUBLIC = "93.184.215.14"
FAKE_DNS = {
    "hooks.example.com": [PUBLIC],
    "dual.example.com": [PUBLIC, "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "internal.example": ["10.0.0.5"],
    "rebind.example": [PUBLIC, "10.0.0.1"],
    "metadata.example": ["169.254.169.254"],
    "cgnat.example": ["100.64.0.7"],
    "mapped.example": ["::ffff:10.0.0.1"],
    "nat64.example": ["64:ff9b::a9fe:a9fe"],
    "sixtofour.example": ["2002:c0a8:0101::1"],
    "ula.example": ["fd00::1"],
    "linklocal6.example": ["fe80::1"],
    "doc.example": ["203.0.113.7"],
    "local.test": ["127.0.0.1"],
    "localdual.test": ["127.0.0.1", "::1"],
    "mixed.test": ["127.0.0.1", PUBLIC],
}
real_getaddrinfo = socket.getaddrinfo


def fake_getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
    if host in FAKE_DNS:
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, port),
            )
            for address in FAKE_DNS[host]
        ]
    if host.endswith((".example", ".example.com", ".test")):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return real_getaddrinfo(host, port, *args, **kwargs)


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urls.socket, "getaddrinfo", fake_getaddrinfo)
    monkeypatch.delenv("LEDGERBRIDGE_WEBHOOK_ALLOW_LOOPBACK", raising=False)


@pytest.fixture
def loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERBRIDGE_WEBHOOK_ALLOW_LOOPBACK", "true")


REFUSED_EVERYWHERE = [
    ("https://169.254.169.254/latest/meta-data/", "link-local address (169.254.169.254)"),
    ("http://169.254.169.254/latest/meta-data/", None),
    ("https://10.0.0.1/hook", "private address (10.0.0.1)"),
    ("http://10.0.0.1/hook", None),
    ("https://internal.example/hook", "private address (10.0.0.5)"),
    ("https://rebind.example/hook", "private address (10.0.0.1)"),
    ("https://metadata.example/", "link-local address (169.254.169.254)"),
    ("https://cgnat.example/", "(100.64.0.7)"),
    ("https://mapped.example/", "private address (::ffff:"),
    ("https://nat64.example/", "link-local address (64:ff9b::a9fe:a9fe)"),
    ("https://sixtofour.example/", "private address (2002:c0a8:101::1)"),
    ("https://ula.example/", "private address (fd00::1)"),
    ("https://linklocal6.example/", "link-local address (fe80::1)"),
    ("https://doc.example/", "(203.0.113.7)"),
    ("https://[::ffff:169.254.169.254]/", "link-local address (::ffff:a9fe:a9fe)"),
    ("https://0.0.0.0/", "(0.0.0.0)"),
    ("https://224.0.0.1/", "multicast address (224.0.0.1)"),
    ("https://255.255.255.255/", "(255.255.255.255)"),
    ("https://100.100.100.200/", "(100.100.100.200)"),
    ("https://[fc00::1]/", "private address (fc00::1)"),
    ("https://mixed.test/", "loopback address (127.0.0.1)"),
    ("https://user:pass@hooks.example.com/", "user name or password"),
    ("https://user@hooks.example.com/", "user name or password"),
    ("https:///hook", "url has no host"),
    ("https://hooks.example.com:0/", "port"),
    ("https://hooks.example.com:65536/", "port"),
    ("https://hooks.example.com/" + "a" * 2030, "longer than 2048"),
    ("ftp://hooks.example.com/", "url must use https"),
    ("file:///etc/passwd", "url must use https"),
    ("http://hooks.example.com/", "url must use https"),
    ("https://nowhere.example/", "url host does not resolve"),
    ("https://hooks.example.com/a b", "spaces or control characters"),
]


@pytest.mark.parametrize(("url", "message"), REFUSED_EVERYWHERE)
@pytest.mark.parametrize("mode", ["deployed", "loopback allowed"])
def test_refused_in_both_modes(
    url: str, message: str | None, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if mode == "loopback allowed":
        monkeypatch.setenv("LEDGERBRIDGE_WEBHOOK_ALLOW_LOOPBACK", "true")
    with pytest.raises(UnsafeUrl) as refused:
        check_url(url)
    if message is not None:
        assert message in str(refused.value)


LOOPBACK_URLS = [
    "http://127.0.0.1:8080/hook",
    "https://127.0.0.1/hook",
    "http://[::1]:9000/",
    "http://localhost:8080/",
    "http://local.test/",
    "http://localdual.test/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://017700000001/",
    "http://127.1/",
]


@pytest.mark.parametrize("url", LOOPBACK_URLS)
def test_loopback_in_any_spelling_is_refused_when_deployed(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        check_url(url)
    https = "https://" + url.split("://", 1)[1]
    with pytest.raises(UnsafeUrl, match="loopback address"):
        check_url(https)


@pytest.mark.parametrize("url", LOOPBACK_URLS)
def test_loopback_in_any_spelling_is_accepted_when_allowed(url: str, loopback: None) -> None:
    target = check_url(url)
    assert target.addresses
    assert all(address in ("127.0.0.1", "::1") for address in target.addresses)


def test_a_public_https_url_is_accepted_with_its_request_parts() -> None:
    target = check_url("https://Hooks.Example.COM:8443/ledger/events?tenant=7#section")
    assert target == urls.Target(
        url="https://Hooks.Example.COM:8443/ledger/events?tenant=7",
        scheme="https",
        host="hooks.example.com",
        port=8443,
        target="/ledger/events?tenant=7",
        addresses=(PUBLIC,),
    )


def test_every_resolved_address_is_returned_and_the_default_port_is_filled_in() -> None:
    target = check_url("https://dual.example.com")
    assert target.port == 443
    assert target.target == "/"
    assert target.addresses == (PUBLIC, "2606:2800:21f:cb07:6820:80da:af6b:8b2c")


def test_public_urls_are_accepted_with_loopback_allowed_too(loopback: None) -> None:
    assert check_url("https://hooks.example.com/x").addresses == (PUBLIC,)


def test_an_internationalised_host_is_idna_encoded(monkeypatch: pytest.MonkeyPatch) -> None:
    FAKE_DNS["xn--bcher-kva.example.com"] = [PUBLIC]
    try:
        target = check_url("https://Bücher.example.com/")
    finally:
        del FAKE_DNS["xn--bcher-kva.example.com"]
    assert target.host == "xn--bcher-kva.example.com"


def test_the_flag_must_be_exactly_true(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERBRIDGE_WEBHOOK_ALLOW_LOOPBACK", "1")
    assert not urls.loopback_allowed()
    with pytest.raises(UnsafeUrl):
        check_url("http://127.0.0.1/")
    monkeypatch.setenv("LEDGERBRIDGE_WEBHOOK_ALLOW_LOOPBACK", "true")
    assert urls.loopback_allowed()
