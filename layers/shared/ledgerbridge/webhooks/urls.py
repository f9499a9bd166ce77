"""Which webhook URLs Ledgerbridge may contact: the guard against server-side request forgery.

A webhook URL is chosen by an API caller and fetched from inside our VPC/Lambda, so without a
guard it is a way to reach the instance metadata service (169.254.169.254), internal load
balancers or anything else only Ledgerbridge can see. ``check_url`` therefore refuses any URL
whose host resolves to an address that is not globally routable, and returns the resolved
addresses so the sender connects to exactly those (no second lookup a rebinding DNS server could
answer differently).

Decisions:

- The host is resolved with ``socket.getaddrinfo`` and *what it returns* is checked, never the
  text of the host: IP literals in any spelling the resolver accepts (``2130706433``, ``0x7f.1``,
  ``017700000001``, ``[::1]``) come back as ordinary addresses and are judged like any other.
- One bad address refuses the URL, even next to public ones: the sender could be handed either.
- ``ipaddress``'s ``is_global`` is the base test; explicit checks cover what it lets through or
  hides inside IPv6: IPv4-mapped and IPv4-compatible addresses, NAT64 (64:ff9b::/96) and 6to4
  (2002::/16) embedding a non-public IPv4 address, global-scope multicast and the newer
  documentation prefix 3fff::/20.
- Only ``https`` when deployed; no userinfo (credentials in a URL end up in logs and are a
  classic parser-confusion trick); fragments are dropped (never sent over HTTP); at most 2048
  characters; ports 1-65535.
- The local stack and the tests set ``LEDGERBRIDGE_WEBHOOK_ALLOW_LOOPBACK=true``: then a URL
  whose every address is loopback may use ``http`` or ``https``. Nothing else is relaxed, so
  private and metadata addresses stay refused there too.
- Messages name the problem and the offending address; they are safe to return to the caller
  (the caller supplied the host, and the address is what their own DNS says).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_EXTRA_REFUSED = (
    ipaddress.IPv4Network("100.64.0.0/10"),  # carrier-grade NAT
    ipaddress.IPv4Network("0.0.0.0/8"),
    ipaddress.IPv4Network("192.0.2.0/24"),  # documentation
    ipaddress.IPv4Network("198.51.100.0/24"),
    ipaddress.IPv4Network("203.0.113.0/24"),
    ipaddress.IPv6Network("2001:db8::/32"),
    ipaddress.IPv6Network("3fff::/20"),
)


class UnsafeUrl(ValueError):
    """A URL Ledgerbridge must not contact. The message is safe to show an API caller and names
    the problem, e.g. "url must use https", "url host resolves to a private address (10.0.0.1)"."""


@dataclass(frozen=True)
class Target:
    url: str  # as registered (without a fragment)
    scheme: str  # "https" (or "http" only when loopback is allowed)
    host: str  # hostname as written (IDNA-encoded, lower case), used for Host and SNI
    port: int
    target: str  # path + query to request ("/" when empty)
    addresses: tuple[str, ...]  # resolved IPs, every one checked


def loopback_allowed() -> bool:
    """LEDGERBRIDGE_WEBHOOK_ALLOW_LOOPBACK == "true" (the local stack and tests set it)."""
    return os.environ.get("LEDGERBRIDGE_WEBHOOK_ALLOW_LOOPBACK") == "true"


def _kind(address: IPAddress) -> str:
    """The class of a non-public address, for the refusal message."""
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if address.is_private:
        return "private"
    return "non-public"


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not globally routable ("private", "link-local", ...), or None if it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded: ipaddress.IPv4Address | None = address.ipv4_mapped or address.sixtofour
        if embedded is None and (address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1)):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = refusal(embedded)
            if inner is not None:
                return inner
            if address.ipv4_mapped is not None or address in _NAT64:
                return None
    if any(address.version == network.version and address in network for network in _EXTRA_REFUSED):
        return "reserved" if address.is_reserved else "non-public"
    if not address.is_global or address.is_multicast or address.is_reserved:
        return _kind(address)
    return None


def _resolve(host: str, port: int) -> tuple[str, ...]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrl("url host does not resolve") from exc
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeUrl("url host does not resolve")
    return tuple(addresses)


def check_url(url: str) -> Target:
    """Refuse anything a deployed stack must not contact; resolve the host (socket.getaddrinfo)
    and refuse if ANY address is not public. Raises UnsafeUrl."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"url is longer than {MAX_URL_LENGTH} characters")
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise UnsafeUrl("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl("url is not a valid URL (check the host and port)") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeUrl("url must use https")
    if "@" in parts.netloc:
        raise UnsafeUrl("url must not contain a user name or password")
    host = parts.hostname or ""
    if not host:
        raise UnsafeUrl("url has no host")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise UnsafeUrl("url host is not a valid host name") from exc
    host = host.lower()
    if port is None:
        port = 443 if scheme == "https" else 80
    if not 1 <= port <= 65535:
        raise UnsafeUrl("url port must be between 1 and 65535")
    local = loopback_allowed()
    if scheme != "https" and not local:
        raise UnsafeUrl("url must use https")
    addresses = _resolve(host, port)
    parsed = [ipaddress.ip_address(address) for address in addresses]
    if not (local and all(address.is_loopback for address in parsed)):
        if scheme != "https":
            raise UnsafeUrl("url must use https")
        for address in parsed:
            reason = refusal(address)
            if reason is not None:
                raise UnsafeUrl(f"url host resolves to a {reason} address ({address})")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    registered = urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
    return Target(url=registered, scheme=scheme, host=host, port=port, target=target, addresses=addresses)
