"""The webhooks routes fuzzed the way an attacker would: all nine, through the local stack's front door.

Each request travels as HTTP bytes through the same gateway, proxy event and handler as
``make run`` (:class:`~tests.fuzz.local_api.LocalApi`), in deployed mode
(``LEDGERBRIDGE_WEBHOOK_ALLOW_LOOPBACK`` unset: https and public addresses only). Each entry of
:data:`CATEGORIES` is one test per round with a fresh moto account and its share of the suite's
request budget (``share``: 0.2 of it in all, about 2,000 requests in the default run, on top
of the invoice routes' full budget); Hypothesis only
generates, from a fixed seed, with no example database and no shrinking, as in
test_mutations.py. Every answer goes through the suite's :class:`~tests.fuzz.oracle.Oracle`
(5xx, the error shape, tracebacks and credentials in a body) and, on top, through
:meth:`Webhooks.judge`, the rules these routes promise (functions/webhooks/app.py and
ledgerbridge/webhooks/endpoints.py):

- a status from the route's own set (:data:`ROUTE_STATUSES`; the gateway's refusals of what
  routes nowhere, :data:`GATEWAY_STATUSES`); the webhooks routes are not in /openapi.json, so
  that set is this file's, taken from those modules (a 503 only when storage fails, which
  nothing here makes happen: any 5xx is a violation), and the oracle gets no document;
- without a valid ``x-api-key`` (a repeated one is its values joined with commas, as in the
  HTTP API's event: never a key) the one 401 answer,
  whatever else the request holds; with one, never a 401;
- the text ``whsec_`` only in a 201 create or a 200 rotation, each time a secret never shown
  before and no other; no ``x-api-key`` value sent ever comes back;
- storage read back from moto after every request: a create, change, delete or rotation that
  succeeded changed exactly its endpoint, of the caller's project, to what the answer shows,
  which is what was asked (a rotation only its secrets); a test ping stored one event and one
  delivery; anything else, every refusal included, stored nothing (endpoints and the seeded
  deliveries compared item by item, the rest counted);
- a 2xx naming a webhook is about one of the caller's own; an accepted URL is one
  ``urls.check_url`` accepts in deployed mode, https, without userinfo, resolving only to
  global addresses.

Host names never reach DNS (the machine may have no network, and a lookup that hangs would
hang the suite): :func:`offline_getaddrinfo` answers from the unit tests' fixed table and turns
IP literals into addresses with ``AI_NUMERICHOST``, so ``2130706433``, ``0x7f.1`` and
``017700000001`` are judged as the real resolver reads them; any other name does not resolve.

Every example starts from the same seeded state: the seeded endpoints and deliveries are put
back as they were when a request changed them (a PATCH, a DELETE, a rotation, a retry), and
the endpoints a project's fuzzed creates add are removed once there are six, or, one time in
four, once a create meets the limit of 20 (so the limit's 409 is met too). ``make fuzz``
prints the table by category (``webhooks/...``); every run prints one line for these routes
(:class:`_Summary`).
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from ledgerbridge.local.template import Stack
from ledgerbridge.store.dynamo import dynamodb
from ledgerbridge.webhooks import EVENT_TYPES, urls
from tests.fuzz.harness import logs_per_request, round_seed, rounds, share
from tests.fuzz.local_api import Header, LocalApi, Received, Sent
from tests.fuzz.oracle import KINDS, Contract, Oracle, Recorder, parse_json, tally
from tests.fuzz.strategies import (
    EXTRA_HEADERS,
    INVALID_UTF8,
    LONE_SURROGATES,
    MEDIA_TYPES,
    METHODS,
    PRINTABLE,
    QUERY_VALUES,
    TOP_LEVELS,
    WRONG_TYPES,
    Pairs,
    Probe,
    encode,
    latin1_text,
    surrogate_text,
    weighted,
)
from tests.unit.test_webhook_urls import FAKE_DNS, PUBLIC, fake_getaddrinfo, real_getaddrinfo

pytestmark = pytest.mark.fuzz
ROUNDS = [pytest.param(n, id=f"round{n + 1}") for n in range(rounds())]
PREFIX = "webhooks/"  # of this file's categories in the session tally

# The routes as template.yaml declares them, by what they do.
CREATE, LIST = ("POST", "/webhooks"), ("GET", "/webhooks")
GET, PATCH, DELETE = (
    ("GET", "/webhooks/{webhook_id}"),
    ("PATCH", "/webhooks/{webhook_id}"),
    ("DELETE", "/webhooks/{webhook_id}"),
)
ROTATE, TEST = ("POST", "/webhooks/{webhook_id}/rotate-secret"), ("POST", "/webhooks/{webhook_id}/test")
DELIVERIES = ("GET", "/webhooks/{webhook_id}/deliveries")
RETRY = ("POST", "/webhooks/{webhook_id}/deliveries/{delivery_id}/retry")
# What each route answers (a 503 aside): 401 first; 400/413/415 from the body's front door;
# 404 for an id that is not one of the caller's; 409 for the limit, a rotation race, a disabled
# endpoint; 422 naming the field.
ROUTE_STATUSES: dict[tuple[str, str], frozenset[int]] = {
    CREATE: frozenset({201, 400, 401, 409, 413, 415, 422}),
    LIST: frozenset({200, 401}),
    GET: frozenset({200, 401, 404}),
    PATCH: frozenset({200, 400, 401, 404, 413, 415, 422}),
    DELETE: frozenset({204, 401, 404}),
    ROTATE: frozenset({200, 401, 404, 409}),
    TEST: frozenset({202, 401, 404, 409}),
    DELIVERIES: frozenset({200, 400, 401, 404}),
    RETRY: frozenset({202, 401, 404, 409}),
}
# The local gateway's own refusals (ledgerbridge/local/stack.py): framing, and the HTTP API's 404
# for a method and path no route matches.
GATEWAY_STATUSES = frozenset({400, 404, 411, 413, 414, 431})
VIEW_FIELDS = frozenset(
    ("id", "url", "events", "description", "enabled", "created_at", "modified_at", "failing_since")
) | {"disabled"}
DELIVERY_FIELDS = frozenset(
    {"id", "event_id", "event_type", "status", "attempts", "next_attempt_at", "created_at"}
)
SECRET_MARK = b"whsec_"
FEW, FILL_EVERY = 6, 4  # see Webhooks.restore
MIN_ECHO = 12  # a sent x-api-key this long must never come back (shorter ones occur in any text)
# Hosts of the unit tests' table and its refusal of other names under these suffixes.
FAKE_SUFFIXES = (".example", ".example.com", ".test")


def offline_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
    """``socket.getaddrinfo`` without DNS: the fixed table's names, IP literals as the resolver
    reads them (``AI_NUMERICHOST``: never a lookup), no other name."""
    name = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
    if name in FAKE_DNS or name.endswith(FAKE_SUFFIXES):
        return fake_getaddrinfo(name, port)
    try:
        return real_getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_NUMERICHOST
        )
    except (OSError, UnicodeError, ValueError):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


def _accepted_url_problems(url: Any) -> list[str]:
    """Why a URL a create or change accepted should not have been: ``check_url`` refuses it in
    deployed mode, or, judged apart from it, it is not https, has userinfo, or its host resolves
    to an address that is not global (an IPv4-mapped address judged by its IPv4)."""
    if not isinstance(url, str):
        return [f"url {url!r} is not text"]
    try:
        urls.check_url(url)
    except urls.UnsafeUrl as exc:
        return [f"accepted {url!r}, which check_url refuses: {exc}"]
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or "@" in parts.netloc:
        return [f"accepted {url!r}: not https, or with userinfo"]
    try:
        infos = offline_getaddrinfo((parts.hostname or "").encode("idna").decode("ascii"), parts.port or 443)
    except (OSError, UnicodeError) as exc:
        return [f"accepted {url!r}, whose host does not resolve: {exc}"]
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        inner = getattr(address, "ipv4_mapped", None) or address
        if not inner.is_global or inner.is_multicast:
            return [f"accepted {url!r}, which resolves to {address}, not a global address"]
    return []


# --- the target: seeded projects and endpoints, storage read from moto ----------------------------


@dataclass(frozen=True)
class Seeds:
    main: str  # the demo project's enabled endpoint, with two deliveries
    disabled: str  # the demo project's disabled endpoint, with a delivery
    foreign: str  # the other project's endpoint, with a delivery
    gone: str  # a deleted endpoint of the demo project
    delivery: str  # main's failed delivery
    pending: str  # main's pending delivery
    disabled_delivery: str  # failed, as the next one: a retry refused after reopening it shows
    foreign_delivery: str
    cursors: tuple[str, ...]  # next_cursor values main's deliveries list returned


@dataclass
class State:
    """What the webhooks table holds: endpoints by project (moto's JSON of each item), the seeded
    deliveries' items, and how many other items (events, deliveries) there are."""

    endpoints: dict[str, dict[str, dict[str, Any]]]
    deliveries: dict[str, dict[str, Any] | None]
    others: int


@dataclass
class Webhooks:
    """One test's stack: two projects, their keys, the seeded endpoints, the judge and its tally."""

    api: LocalApi
    recorder: Recorder
    read: Callable[[], State]
    keys: dict[str, str]  # valid x-api-key -> project id
    demo_key: str
    other_key: str
    revoked: str
    token: str  # the demo connection's token (a credential, but not a project key)
    seeds: Seeds
    unauthorized: Received
    seeded: State  # the state every example starts from
    raw_items: dict[tuple[str, str], dict[str, Any]]  # (pk, sk) -> the item as boto3 reads it
    issued: set[str] = field(default_factory=set)  # every signing secret shown so far
    cleanups: Counter[str] = field(default_factory=Counter)  # by project: see restore
    state: State | None = None

    def exchange(self, category: str, probe: Probe) -> Received:
        before = self.state or self.read()
        received = self.api.send(probe.sent, content_length=probe.content_length)
        after = self.read()
        extra = self.judge(probe.sent, received, before, after)
        self.recorder.record(f"{PREFIX}{category}", probe.sent, received, extra=extra)
        self.state = self.restore(probe.sent, received, after)
        return received

    # --- which route, which caller ---

    def route(self, sent: Sent) -> tuple[tuple[str, str], dict[str, str]] | None:
        """The webhooks route the gateway gives the request and its (decoded) path parameters."""
        target = sent.target
        if target.startswith("//"):  # the front door's http.server reads "//x" as "/x", as CPython does
            target = "/" + target.lstrip("/")
        try:
            path = urlsplit(target).path
        except ValueError:
            return None
        found = self.api.gateway.match(sent.method, path)
        if found is None or not found[0].route.path.startswith("/webhooks"):
            return None
        bound, params = found
        return (bound.route.method, bound.route.path), params

    def caller(self, sent: Sent) -> tuple[str, str | None]:
        """("valid", project), ("invalid", None), or ("either", project) for a valid key with
        blanks around it (HTTP servers differ on trimming them, and either answer is sound)."""
        value = ",".join(sent.header_values("x-api-key"))  # as the HTTP API's event holds it
        if value in self.keys:
            return "valid", self.keys[value]
        if value.strip(" \t") in self.keys:
            return "either", self.keys[value.strip(" \t")]
        return "invalid", None

    # --- the rules ---

    def judge(self, sent: Sent, received: Received, before: State, after: State) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        status = received.status
        reached = received.header("x-amzn-RequestId") is not None
        routed = self.route(sent)
        key, params = routed if routed else (None, {})
        verdict, project = self.caller(sent)
        body = _json_or_none(received)
        if not reached:
            if status < 500 and status not in GATEWAY_STATUSES:
                found.append(("schema_violations", f"gateway answered {status}"))
            key = None  # nothing reached the function: nothing may have changed
        elif key is not None:
            if status < 500 and status not in ROUTE_STATUSES[key]:
                allowed = sorted(ROUTE_STATUSES[key])
                found.append(("schema_violations", f"{status} is not one {' '.join(key)} answers {allowed}"))
            if verdict == "invalid" and not self.is_unauthorized(received):
                found.append(("unauthenticated_not_401", f"{status} without a valid x-api-key"))
            if verdict == "valid" and status == 401:
                found.append(("wrong_answer", "401 for a valid x-api-key"))
            if 200 <= status < 300 and project is not None:
                found += self.success_problems(key, params, project, sent, received, body, before, after)
        found += self.secret_problems(key, sent, received, body)
        found += self.storage_problems(key, status, project, params, body, before, after)
        return found

    def is_unauthorized(self, received: Received) -> bool:
        one = self.unauthorized
        return (received.status, received.header("content-type"), received.body) == (
            one.status,
            one.header("content-type"),
            one.body,
        )

    def success_problems(
        self,
        key: tuple[str, str],
        params: dict[str, str],
        project: str,
        sent: Sent,
        received: Received,
        body: Any,
        before: State,
        after: State,
    ) -> list[tuple[str, str]]:
        """A 2xx: the body's shape, and what it says against what was asked and what is stored."""
        mine, stored = before.endpoints.get(project, {}), after.endpoints.get(project, {})
        webhook_id = params.get("webhook_id")
        if webhook_id is not None and webhook_id not in mine:
            return [("wrong_answer", f"{received.status} for a webhook that is not the caller's")]
        shapes = {
            CREATE: VIEW_FIELDS | {"secret"},
            GET: VIEW_FIELDS,
            PATCH: VIEW_FIELDS,
            ROTATE: {"id", "secret", "previous_secret_expires_at"},
            TEST: {"event_id", "delivery_id"},
            DELIVERIES: {"data", "next_cursor"},
            RETRY: DELIVERY_FIELDS,
            LIST: {"data"},
        }
        if key == DELETE:
            return [] if received.body == b"" else [("schema_violations", "204 with a body")]
        if not isinstance(body, dict) or set(body) != shapes[key]:
            keys = sorted(body) if isinstance(body, dict) else type(body).__name__
            return [("schema_violations", f"{received.status} body has {keys}, not {sorted(shapes[key])}")]
        problems: list[str] = []
        if key in (GET, PATCH) and body["id"] != webhook_id:
            problems.append(f"answered webhook {body['id']!r}, asked for {webhook_id!r}")
        if key == LIST:
            items = body["data"] if isinstance(body["data"], list) else [None]
            if not all(isinstance(item, dict) and set(item) == VIEW_FIELDS for item in items):
                problems.append("a listed endpoint has other fields than the view's")
            elif sorted(str(item["id"]) for item in items) != sorted(stored):
                problems.append("the list is not the project's stored endpoints")
        if key in (CREATE, PATCH):
            problems += _matches_request(sent.body, body, created=key == CREATE)
            problems += _matches_stored(body, stored.get(str(body["id"])))
            problems += _accepted_url_problems(body["url"])
        if key == TEST and not mine[str(webhook_id)].get("enabled", {}).get("BOOL"):
            problems.append("a disabled endpoint was sent a test ping")
        if key == RETRY and body["id"] != params.get("delivery_id"):
            problems.append("answered another delivery than the one retried")
        if key == DELIVERIES and (
            not isinstance(body["data"], list) or any(set(d) != DELIVERY_FIELDS for d in body["data"])
        ):
            problems.append("a listed delivery has other fields than the view's")
        return [("wrong_answer", problem) for problem in problems]

    def secret_problems(
        self, key: tuple[str, str] | None, sent: Sent, received: Received, body: Any
    ) -> list[tuple[str, str]]:
        """``whsec_`` only where a secret is issued, a new one each time; no x-api-key echoed."""
        found: list[tuple[str, str]] = []
        issues = (key == CREATE and received.status == 201) or (key == ROTATE and received.status == 200)
        if issues:
            secret = body.get("secret") if isinstance(body, dict) else None
            if not (isinstance(secret, str) and secret.startswith("whsec_")) or secret in self.issued:
                found.append(("wrong_answer", f"{received.status} without a new whsec_ secret"))
            elif received.body.count(SECRET_MARK) != 1:
                found.append(("leaks", "another signing secret next to the one issued"))
            if isinstance(secret, str):
                self.issued.add(secret)
        elif SECRET_MARK in received.body:
            found.append(("leaks", "whsec_ in an answer that issues no secret"))
        for value in sent.header_values("x-api-key"):
            spellings = (value.encode(), json.dumps(value)[1:-1].encode())  # as is, or as a JSON string
            if (
                len(value) >= MIN_ECHO
                and value not in sent.target
                and any(s in received.body for s in spellings)
            ):
                found.append(("leaks", "the x-api-key sent came back in the answer"))
        return found

    def storage_problems(
        self,
        key: tuple[str, str] | None,
        status: int,
        project: str | None,
        params: dict[str, str],
        body: Any,
        before: State,
        after: State,
    ) -> list[tuple[str, str]]:
        """What changed in the table against what the answer allows to have changed."""
        webhook_id = params.get("webhook_id")
        allowed: set[tuple[str, str, str]] = set()
        required: set[tuple[str, str, str]] = set()
        others = 0
        if project is not None:
            if key == CREATE and status == 201 and isinstance(body, dict):
                allowed = required = {(project, str(body.get("id")), "added")}
            elif key in (PATCH, ROTATE) and status == 200 and webhook_id:
                allowed = {(project, webhook_id, "changed")}
                required = allowed if key == ROTATE else set()
            elif key == DELETE and status == 204 and webhook_id:
                allowed = required = {(project, webhook_id, "removed")}
            elif key == TEST and status == 202:
                others = 2  # the ping event and its delivery
        changes = _changes(before.endpoints, after.endpoints)
        kind = "stored_for_refused" if status >= 400 else "wrong_answer"
        found = [
            (kind, f"{status} but endpoint {wid} was {how}") for _, wid, how in sorted(changes - allowed)
        ]
        found += [
            ("wrong_answer", f"{status} but endpoint {wid} was not {how}")
            for _, wid, how in required - changes
        ]
        if after.others - before.others != others:
            found.append((kind, f"{status} but {after.others - before.others} events/deliveries stored"))
        retried = params.get("delivery_id") if key == RETRY and status == 202 else None
        for delivery_id, item in after.deliveries.items():
            if item != before.deliveries[delivery_id] and delivery_id != retried:
                found.append((kind, f"{status} but delivery {delivery_id} changed"))
        if key == ROTATE and status == 200 and webhook_id and project is not None:
            old = before.endpoints[project].get(webhook_id) or {}
            new = after.endpoints[project].get(webhook_id) or {}
            changed = {name for name in set(old) | set(new) if old.get(name) != new.get(name)}
            if changed - {"secrets_blob", "modified_at"}:
                found.append(("wrong_answer", f"a rotation changed {sorted(changed)}, not only the secrets"))
        return found

    # --- back to the seeded state ---

    def restore(self, sent: Sent, received: Received, after: State) -> State:
        """Put back what the request changed of the seeded items, and remove the endpoints the
        fuzzer added to a project once there are :data:`FEW` of them, or, every
        :data:`FILL_EVERY` times, once a create has met the limit (moto takes longer to list
        more endpoints, and every accepted create lists them)."""
        table, writes = _webhooks_table(), 0
        for (pk, sk), item in self.raw_items.items():
            if pk.startswith("PROJECT#"):
                project, webhook_id = pk.removeprefix("PROJECT#"), sk.removeprefix("WEBHOOK#")
                now = after.endpoints.get(project, {}).get(webhook_id)
                then = self.seeded.endpoints[project][webhook_id]
            else:
                delivery_id = sk.removeprefix("DELIVERY#")
                now, then = after.deliveries.get(delivery_id), self.seeded.deliveries[delivery_id]
            if now != then:
                dynamodb().put_item(TableName=table, Item=item)
                writes += 1
        routed = self.route(sent)
        limited = self.caller(sent)[1] if routed and routed[0] == CREATE and received.status == 409 else None
        for project, endpoints in after.endpoints.items():
            added = set(endpoints) - set(self.seeded.endpoints.get(project, {}))
            filling = self.cleanups[project] % FILL_EVERY == FILL_EVERY - 1
            if (len(added) >= FEW and not filling) or project == limited:
                for webhook_id in added:
                    key = {"pk": {"S": f"PROJECT#{project}"}, "sk": {"S": f"WEBHOOK#{webhook_id}"}}
                    dynamodb().delete_item(TableName=table, Key=key)
                    writes += 1
                self.cleanups[project] += 1
        return self.read() if writes else after


def _json_or_none(received: Received) -> Any:
    try:
        return parse_json(received.body) if received.body else None
    except ValueError:
        return None


def _changes(
    before: dict[str, dict[str, dict[str, Any]]], after: dict[str, dict[str, dict[str, Any]]]
) -> set[tuple[str, str, str]]:
    found: set[tuple[str, str, str]] = set()
    for project in set(before) | set(after):
        old, new = before.get(project, {}), after.get(project, {})
        found |= {(project, wid, "added") for wid in set(new) - set(old)}
        found |= {(project, wid, "removed") for wid in set(old) - set(new)}
        found |= {(project, wid, "changed") for wid in set(old) & set(new) if old[wid] != new[wid]}
    return found


def _matches_request(asked_bytes: bytes, body: dict[str, Any], *, created: bool) -> list[str]:
    """The answer to an accepted create or change shows each field as asked (the URL as
    check_url registers it, without a fragment; no description is an empty one), and a new
    endpoint is enabled."""
    try:
        asked = parse_json(asked_bytes)
    except ValueError:
        return ["accepted a body that is not strict JSON"]
    if not isinstance(asked, dict):
        return ["accepted a body that is not an object"]
    expected = {name: asked[name] for name in ("events", "enabled") if name in asked}
    if created:
        expected["enabled"] = True
    if "description" in asked or created:
        expected["description"] = asked.get("description") or ""
    if "url" in asked:
        try:
            expected["url"] = urls.check_url(asked["url"]).url
        except (urls.UnsafeUrl, TypeError) as exc:
            return [f"accepted url {asked['url']!r}, which check_url refuses: {exc}"]
    shown = {name: body.get(name) for name in expected}
    return [] if shown == expected else [f"asked for {expected}, answered {shown}"]


def _matches_stored(body: dict[str, Any], item: dict[str, Any] | None) -> list[str]:
    """The answer's url, events, description and enabled are what the table now holds."""
    if item is None:
        return ["the endpoint answered is not stored"]
    stored = {
        "url": item.get("url", {}).get("S"),
        "events": [event.get("S") for event in item.get("events", {}).get("L", [])],
        "description": item.get("description", {}).get("S", ""),
        "enabled": item.get("enabled", {}).get("BOOL", False),
    }
    shown = {name: body.get(name) for name in stored}
    return [] if shown == stored else [f"answered {shown}, stored {stored}"]


def _webhooks_table() -> str:
    from ledgerbridge.config import settings

    return settings().webhooks_table


def state_reader(stack: Stack, projects: tuple[str, ...], deliveries: dict[str, str]) -> Callable[[], State]:
    """Read the webhooks table in-process from moto (cheap enough for every request): the
    projects' endpoint partitions item by item, ``deliveries`` (delivery id -> webhook id) item
    by item, and the count of all other items."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.dynamo_type import DynamoType

    table = dynamodb_backends[stack.account_id][stack.region].get_table(_webhooks_table())
    partitions = {project: DynamoType({"S": f"PROJECT#{project}"}) for project in projects}
    watched = {
        delivery_id: (
            DynamoType({"S": f"WEBHOOK#{webhook_id}"}),
            DynamoType({"S": f"DELIVERY#{delivery_id}"}),
        )
        for delivery_id, webhook_id in deliveries.items()
    }

    def read() -> State:
        endpoints = {
            project: {
                str(sort_key.value).removeprefix("WEBHOOK#"): item.to_json()["Attributes"]
                for sort_key, item in table.items.get(partition, {}).items()
            }
            for project, partition in partitions.items()
        }
        seen = {
            delivery_id: (
                item.to_json()["Attributes"]
                if (item := table.items.get(pk, {}).get(sk)) is not None
                else None
            )
            for delivery_id, (pk, sk) in watched.items()
        }
        return State(endpoints, seen, len(table) - sum(map(len, endpoints.values())))

    return read


# --- seeding ------------------------------------------------------------------------------------


def _send(api: LocalApi, method: str, path: str, key: str | None, body: Any = None) -> Received:
    headers: tuple[Header, ...] = (("x-api-key", key),) if key else ()
    data = json.dumps(body).encode() if body is not None else b""
    if data:
        headers += (("content-type", "application/json"),)
    return api.send(Sent(method, path, headers, data))


def _ok(received: Received, what: str) -> Any:
    assert 200 <= received.status < 300, f"{what}: {received.status} {received.body[:300]!r}"
    return json.loads(received.body) if received.body else None


def build_webhooks(stack: Stack) -> Webhooks:
    """Two projects (the demo one: a key, a revoked key and a connection, whose token is not a
    project key; another: a key), their endpoints and deliveries seeded through the routes
    themselves, as a client would; and the raw items the examples are restored to."""
    from ledgerbridge.admin import create_api_key, create_connection, create_project, revoke_api_key
    from ledgerbridge.store import webhooks as store

    api = LocalApi(stack)
    demo_project = create_project("Fuzz: webhooks")["project_id"]
    demo_key = create_api_key(demo_project)["api_key"]
    token = create_connection(demo_project, "sandbox")["connection_token"]
    other_project = create_project("Fuzz: another project")["project_id"]
    other_key = create_api_key(other_project)["api_key"]
    revoked = create_api_key(demo_project)
    revoke_api_key(revoked["key_id"])
    issued: set[str] = set()

    def endpoint(key: str, events: list[str]) -> str:
        created = _ok(
            _send(api, "POST", "/webhooks", key, {"url": f"https://{PUBLIC}/seed", "events": events}), "seed"
        )
        issued.add(created["secret"])
        return created["id"]

    def ping(key: str, webhook_id: str) -> str:
        return _ok(_send(api, "POST", f"/webhooks/{webhook_id}/test", key), "seed ping")["delivery_id"]

    main, disabled = (
        endpoint(demo_key, ["invoice.synced"]),
        endpoint(demo_key, ["contact.synced", "invoice.failed"]),
    )
    foreign, gone = endpoint(other_key, ["invoice.synced"]), endpoint(demo_key, ["invoice.pending"])
    failed, pending = ping(demo_key, main), ping(demo_key, main)
    attempt = {"at": "2026-01-01T00:00:01Z", "status_code": 503, "latency_ms": 120, "error": "HTTP 503"}
    disabled_delivery, foreign_delivery = ping(demo_key, disabled), ping(other_key, foreign)
    for webhook_id, delivery_id in (
        (main, failed),
        (disabled, disabled_delivery),
        (foreign, foreign_delivery),
    ):
        store.record_attempt(webhook_id, delivery_id, attempt, "failed", None)
    _ok(_send(api, "PATCH", f"/webhooks/{disabled}", demo_key, {"enabled": False}), "seed disable")
    _ok(_send(api, "DELETE", f"/webhooks/{gone}", demo_key), "seed delete")
    page = _ok(_send(api, "GET", f"/webhooks/{main}/deliveries?limit=1", demo_key), "deliveries page")
    seeds = Seeds(
        main=main,
        disabled=disabled,
        foreign=foreign,
        gone=gone,
        delivery=failed,
        pending=pending,
        disabled_delivery=disabled_delivery,
        foreign_delivery=foreign_delivery,
        cursors=(page["next_cursor"],),
    )
    unauthorized = _send(api, "GET", "/webhooks", None)
    assert unauthorized.status == 401, unauthorized

    table = _webhooks_table()
    deliveries = {failed: main, pending: main, disabled_delivery: disabled, foreign_delivery: foreign}
    keys = [
        *((f"PROJECT#{demo_project}", f"WEBHOOK#{w}") for w in (main, disabled)),
        (f"PROJECT#{other_project}", f"WEBHOOK#{foreign}"),
        *((f"WEBHOOK#{w}", f"DELIVERY#{d}") for d, w in deliveries.items()),
    ]
    raw_items = {
        (pk, sk): dynamodb().get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}})["Item"]
        for pk, sk in keys
    }
    read = state_reader(stack, (demo_project, other_project), deliveries)
    secrets = (demo_key, token, other_key, revoked["api_key"])
    # No document: these routes are not in /openapi.json, and the document's rules would want
    # an x-connection-token too; the routes' own are in Webhooks.judge.
    oracle = Oracle(Contract({"openapi": "3.1.0", "paths": {}}), (), unauthorized, {}, secrets)
    seeded = read()
    return Webhooks(
        api=api,
        recorder=Recorder(oracle),
        read=read,
        keys={demo_key: demo_project, other_key: other_project},
        demo_key=demo_key,
        other_key=other_key,
        revoked=revoked["api_key"],
        token=token,
        seeds=seeds,
        unauthorized=unauthorized,
        seeded=seeded,
        raw_items=raw_items,
        issued=issued,
        state=seeded,
    )


@pytest.fixture
def webhooks(aws: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhooks]:
    monkeypatch.delenv("LEDGERBRIDGE_WEBHOOK_ALLOW_LOOPBACK", raising=False)
    monkeypatch.setattr(urls.socket, "getaddrinfo", offline_getaddrinfo)
    with logs_per_request():
        yield build_webhooks(aws)


# --- strategies ---------------------------------------------------------------------------------
# Each strategy is built once (here, or per test from the seeded ids) and only drawn from: one
# made anew at every draw costs Hypothesis its setup each time, most of a category's generation.

JSON: tuple[Header, ...] = (("content-type", "application/json"),)
ROUTED: dict[str, tuple[str, ...]] = {
    "/webhooks": ("GET", "POST"),
    "/webhooks/{id}": ("GET", "PATCH", "DELETE"),
    "/webhooks/{id}/rotate-secret": ("POST",),
    "/webhooks/{id}/test": ("POST",),
    "/webhooks/{id}/deliveries": ("GET",),
    "/webhooks/{id}/deliveries/{delivery}/retry": ("POST",),
}

# --- URLs

PUBLIC_HOSTS = (
    PUBLIC, "hooks.example.com", "dual.example.com", "HOOKS.Example.COM", "[::ffff:93.184.216.34]",
    "[2606:2800:220:1:248:1893:25c8:1946]", "1572395042", "0x5db8d822", "0135.0270.0330.042",
    "[64:ff9b::5db8:d822]",
)  # fmt: skip
REFUSED_HOSTS = (
    "127.0.0.1", "2130706433", "0x7f000001", "017700000001", "0x7f.1", "127.1", "0", "0.0.0.0", "localhost",
    "localhost.", "169.254.169.254", "2852039166", "0xa9fea9fe", "0251.0376.0251.0376", "10.0.0.1",
    "192.168.0.1", "100.64.0.7", "[::1]", "[::]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
    "[::ffff:169.254.169.254]", "[0:0:0:0:0:ffff:a9fe:a9fe]", "[64:ff9b::a9fe:a9fe]", "[2002:c0a8:101::1]",
    "[fe80::1%25eth0]", "[fd00::1]", "[ff02::1]", "224.0.0.1", "255.255.255.255", "internal.example",
    "rebind.example", "metadata.example", "mapped.example", "local.test", "metadata.google.internal",
    "instance-data", "nowhere.example.com", "93.184.216.34.", "[93.184.216.34]", "[::1", "::1",
    "hooks.example.com\\@10.0.0.1", "203.0.113.7",
)  # fmt: skip
ODD_HOSTS = (
    "h\u00f6\u00f6ks.example.com", "\uff48\uff4f\uff4f\uff4b\uff53.example.com", "\u0430pple.com",
    "\u4f8b\u3048.\u30c6\u30b9\u30c8", "\u2603.net", "hooks.example.com\u3002", "\u210cooks.example.com",
    "hook\u00ad.example.com", "xn--", "xn--zz.example.com", "a" * 64 + ".example.com", "a" * 3000,
    ("a" * 63 + ".") * 5 + "com", "-leading.example.com", "under_score.example.com", "", ".", "..",
    "%31%32%37.0.0.1", "127.0.0.1%00", "\u3000hooks.example.com", "hooks.example.com\ufe16x",
)  # fmt: skip
SCHEMES = (
    "http://", "HTTPS://", "HtTpS://", "file://", "javascript:", "javascript://", "ftp://", "gopher://",
    "data:text/html,", "ws://", "wss://", "//", "https:/", "https:", "https:///", "https:\\\\", " https://",
    "\thttps://", "https\x00://",
)  # fmt: skip
USERINFO = ("user:pass@", "user@", "@", ":@", f"{PUBLIC}@", "user%40evil@", "a:b@c@")
PORTS = (
    ":443", ":8443", ":0", ":65535", ":65536", ":-1", ":abc", ":", ":0443", ":99999999999999999999", ": 443",
)  # fmt: skip
URL_PATHS = (
    "", "/", "/hooks/ledgerbridge?x=1&y=2", "/hook#frag", "/%2e%2e/%2e%2e/", "/\u00e9", "/a b", "/\x00",
    "/" + "p" * 2100, "?only=query", "#only", "/\\evil", "/hook\u2028", "/\U0001f600",
)  # fmt: skip
WHOLE_URLS = (
    "", " ", "https://", "javascript:alert(1)", "file:///etc/passwd", "http://169.254.169.254/latest/meta-data/",
    f"https://{PUBLIC}\\@10.0.0.1/", f"https://10.0.0.1#@{PUBLIC}/", f"https://{PUBLIC}:443@10.0.0.1/",
    f"https://{PUBLIC}" + "/a" * 1100, f"https://{PUBLIC}/" + "a" * 2030, "https://[::1]:443/",
    "HTTPS://HOOKS.EXAMPLE.COM/Hook", f"https://{PUBLIC}/\ud83d\ude00", "//hooks.example.com/",
    "https:hooks.example.com", "https://hooks.example.com:443:443/", "https://[2606:2800:220:1::]:99999/",
)  # fmt: skip

_URL_PATH = st.text(st.characters(categories=("L", "N"), max_codepoint=0x7F), max_size=12).map(
    lambda p: f"/{p}"
)
_PUBLIC_HOST = st.sampled_from(PUBLIC_HOSTS)
ACCEPTED_URLS = st.builds(lambda host, path: f"https://{host}{path}", _PUBLIC_HOST, _URL_PATH)
_URL_PARTS: dict[str, st.SearchStrategy[str]] = {
    "scheme": st.sampled_from(SCHEMES),
    "userinfo": st.sampled_from(USERINFO),
    "host": weighted(
        (4, st.sampled_from(REFUSED_HOSTS)), (2, st.sampled_from(ODD_HOSTS)), (1, st.text(max_size=20))
    ),
    "port": st.sampled_from(PORTS),
    "path": st.one_of(
        st.sampled_from(URL_PATHS), st.text(PRINTABLE, max_size=30).map(lambda p: "/" + quote(p))
    ),
}
_TRICKED_PARTS = st.sets(st.sampled_from(list(_URL_PARTS)), min_size=1, max_size=3)


@st.composite
def _tricked_url(draw: st.DrawFn) -> str:
    """A URL the stack would take, with one or more of its parts swapped for a trick."""
    parts = {
        "scheme": "https://",
        "userinfo": "",
        "host": draw(_PUBLIC_HOST),
        "port": "",
        "path": draw(_URL_PATH),
    }
    for name in draw(_TRICKED_PARTS):
        parts[name] = draw(_URL_PARTS[name])
    return "".join(parts[name] for name in ("scheme", "userinfo", "host", "port", "path"))


# URLs an attacker tries: each part of a good URL swapped for a trick (other schemes, userinfo,
# IP literals in every spelling, long and Unicode hosts, ports), whole odd URLs, and good ones.
URL_TEXT = weighted((2, ACCEPTED_URLS), (6, _tricked_url()), (1, st.sampled_from(WHOLE_URLS)))

# --- bodies

EVENT_LISTS = st.lists(st.sampled_from(EVENT_TYPES), min_size=1, max_size=len(EVENT_TYPES), unique=True)
_DESCRIPTION = st.text(PRINTABLE, max_size=60)
CREATE_BODIES = st.fixed_dictionaries(
    {"url": ACCEPTED_URLS, "events": EVENT_LISTS}, optional={"description": st.none() | _DESCRIPTION}
)
_PATCH_VALUES = {
    "url": ACCEPTED_URLS,
    "events": EVENT_LISTS,
    "enabled": st.booleans(),
    "description": _DESCRIPTION,
}
PATCH_BODIES = st.fixed_dictionaries({}, optional=_PATCH_VALUES).filter(bool)
VALID_BODIES = st.one_of(CREATE_BODIES, PATCH_BODIES)
EXTRA_FIELDS: tuple[tuple[str, Any], ...] = (
    ("secret", "whsec_mine"), ("id", "00000000-0000-0000-0000-000000000000"), ("webhook_id", "x"),
    ("project_id", "p"), ("created_at", "2020-01-01T00:00:00Z"), ("secrets_blob", "AAAA"), ("enabled", True),
    ("disabled", None), ("failing_since", "2020-01-01T00:00:00Z"), ("__proto__", {"polluted": True}),
    ("URL", f"https://{PUBLIC}/"), ("Events", ["invoice.synced"]), ("", 1), ("k" * 10_000, 1),
    ("pk", "PROJECT#x"),
)  # fmt: skip
EVENT_MUTATIONS: tuple[Any, ...] = (
    ["invoice.synced", "invoice.synced"], ["ping"], ["invoice.paid"], ["Invoice.Synced"], [" invoice.synced"],
    [None], [["invoice.synced"]], [{"type": "invoice.synced"}], [], list(EVENT_TYPES), [*EVENT_TYPES, "ping"],
    [*EVENT_TYPES, EVENT_TYPES[0]], "invoice.synced", ["e" * 10_000], ["invoice.*"], ["*"], [Decimal("1")],
    ["invoice.synced\x00"], ["invoice.synced"] * 500,
)  # fmt: skip
FIELD_NAMES = ("url", "events", "description", "enabled")


def _wrong_type(body: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    return {**body, name: value}


def _dropped(body: dict[str, Any], index: int) -> dict[str, Any]:
    names = sorted(body)
    return {name: value for name, value in body.items() if name != names[index % len(names)]}


def _extra(body: dict[str, Any], extra: tuple[str, Any]) -> dict[str, Any]:
    return {**body, extra[0]: extra[1]}


def _huge(body: dict[str, Any], size: int, char: str, in_url: bool) -> dict[str, Any]:
    if in_url:
        return {**body, "url": f"https://{PUBLIC}/" + char * (size - len(PUBLIC) - 9)}
    return {**body, "description": char * size}


# Valid bodies changed in one field: a wrong type, a field missing or extra, a huge value, odd
# events, a non-boolean enabled, or no field that may change at all.
MUTATED_BODIES = st.one_of(
    st.builds(_wrong_type, VALID_BODIES, st.sampled_from(FIELD_NAMES), st.sampled_from(WRONG_TYPES)),
    st.builds(_dropped, VALID_BODIES, st.integers(0, 3)),
    st.builds(_extra, VALID_BODIES, st.sampled_from(EXTRA_FIELDS)),
    st.builds(
        _huge,
        VALID_BODIES,
        st.sampled_from([500, 501, 2048, 2049, 10_000, 100_000]),
        st.sampled_from(["x", "\u00e9", "\U0001f600", " "]),
        st.booleans(),
    ),
    st.builds(_wrong_type, VALID_BODIES, st.just("events"), st.sampled_from(EVENT_MUTATIONS)),
    st.builds(
        _wrong_type,
        VALID_BODIES,
        st.just("enabled"),
        st.sampled_from(["true", 1, 0, None, "false", [], "yes"]),
    ),
    st.sampled_from([{}, {"colour": "blue"}, {"description": None}, {"url": None}, {"events": None}]),
)


def _nested(kind: int, depth: int) -> bytes:
    return [
        "[" * depth + "]" * depth,
        '{"a":' * depth + "1" + "}" * depth,
        '{"url": "https://x", "events": ' + "[" * depth + "]" * depth + "}",
        '{"description": ' + '{"a":' * depth + "1" + "}" * depth + "}",
        "[" * depth,
    ][kind].encode()


def _surrogate(body: dict[str, Any], where: str, text: str, escaped: bool) -> bytes:
    if where == "events":
        body = {**body, "events": [text]}
    elif where == "key":
        body = {**body, text: 1}
    else:
        body = {**body, where: text}
    return encode(body, ascii=escaped)


def _big(body: dict[str, Any], size: int, how: str) -> bytes:
    if how == "description":
        return encode({**body, "description": "d" * size})
    if how == "padded":
        text = encode(body)
        return text[:-1] + b" " * max(0, size - len(text)) + b"}"
    return encode({**body, "events": ["invoice.synced"] * (size // 18)})


def _spliced(body: bytes, at: int, bad: bytes) -> bytes:
    at %= len(body) + 1
    return body[:at] + bad + body[at:]


RAW_BODIES = (
    b"\xff", b"\x00", b"\xef\xbb\xbf{}", b'{"url": "\xff"}', b'{"\xff": 1}', b'{"events": ["\xed\xa0\x80"]}',
    b'{"url": "https://93.184.216.34/\xc0\xaf"}', b'{"url": "https://x"', b"\r\n\r\n", b"\x1f\x8b\x08\x00",
    b"{" + b" " * (10 * 2**20) + b"}",  # over the gateway's 10 MB: its own 413
    *TOP_LEVELS,
)  # fmt: skip
# Raw bytes, broken UTF-8, lone surrogates (escaped, or as CESU-8 bytes), JSON scalars and
# arrays, deep nesting, huge bodies, repeated member names.
HOSTILE_BODIES = st.one_of(
    st.sampled_from(RAW_BODIES),
    st.builds(_spliced, VALID_BODIES.map(encode), st.integers(0, 400), st.sampled_from(INVALID_UTF8)),
    VALID_BODIES.map(lambda body: encode(body).decode().encode("utf-16")),
    VALID_BODIES.map(lambda body: b"\xef\xbb\xbf" + encode(body)),
    VALID_BODIES.map(lambda body: encode(body)[: len(encode(body)) // 2]),
    VALID_BODIES.map(lambda body: encode([body])),
    VALID_BODIES.map(lambda body: json.dumps(encode(body).decode()).encode()),
    st.binary(min_size=1, max_size=200),
    st.builds(_nested, st.integers(0, 4), st.sampled_from([33, 1000, 50_000, 200_000])),
    st.builds(
        _surrogate,
        VALID_BODIES,
        st.sampled_from(["url", "events", "description", "key"]),
        st.one_of(surrogate_text(), st.sampled_from(LONE_SURROGATES)),
        weighted((4, st.just(True)), (1, st.just(False))),
    ),
    st.builds(
        _big,
        VALID_BODIES,
        st.sampled_from([10_000, 999_000, 1_000_001, 1_500_000]),
        st.sampled_from(["description", "padded", "events"]),
    ),
    st.builds(
        lambda body, name, value: encode(Pairs([*body.items(), (name, value)])),
        VALID_BODIES,
        st.sampled_from(FIELD_NAMES),
        st.sampled_from([f"https://{PUBLIC}/x", "https://10.0.0.1/", ["invoice.synced"], None, True]),
    ),
)
SOME_BODY = st.one_of(st.just(b""), VALID_BODIES.map(encode), st.just(b"\xff"))

# --- keys, ids and routes, from the seeded target


def keys(w: Webhooks, invalid_percent: int = 10) -> st.SearchStrategy[tuple[Header, ...]]:
    """Mostly the demo project's key, sometimes the other project's, sometimes no valid key."""
    valid = st.sampled_from(
        [
            (("x-api-key", w.demo_key),),
            (("X-API-Key", w.demo_key),),
            (("X-API-KEY", w.demo_key), ("x-connection-token", w.token)),
        ]
    )
    other = st.just((("x-api-key", w.other_key),))
    return weighted((90 - invalid_percent, valid), (10, other), (invalid_percent, bad_keys(w)))


def bad_keys(w: Webhooks) -> st.SearchStrategy[tuple[Header, ...]]:
    key = w.demo_key
    fixed: list[tuple[Header, ...]] = [
        (),
        (("x-api-key", ""),),
        (("x-api-key", w.revoked),),
        (("x-api-key", w.token),),  # a connection token is not a project key
        (("x-connection-token", w.token),),
        (("authorization", f"Bearer {key}"),),
        (("x-api_key", key),),
        (("x-api-key", key.upper()),),
        (("x-api-key", key[:-1]),),
        (("x-api-key", key + "x"),),
        (("x-api-key", key + "\x00"),),
        (("x-api-key", key.encode() + b"\xff"),),
        (("x-api-key", b"\xff\xfe"),),
        (("x-api-key", "lbk_" + "A" * 9000),),
        (("x-api-key", "\u043a\u043b\u044e\u0447-" + key),),  # not Latin-1: sent as UTF-8 bytes
        (("x-api-key", key), ("x-api-key", "garbage")),  # joined: "key,garbage"
        (("x-api-key", "garbage"), ("x-api-key", key)),  # joined: "garbage,key"
        (("x-api-key", key), ("x-api-key", key)),  # joined: "key,key"
        (("x-api-key", "null"),),
        (("x-api-key", "' OR 1=1 --"),),
        (("x-api-key", f" {key}"),),
        (("x-api-key", f"{key}\t"),),
    ]
    return st.one_of(st.sampled_from(fixed), latin1_text(max_size=80).map(lambda v: (("x-api-key", v),)))


def seeded_pairs(w: Webhooks) -> list[tuple[str, str]]:
    """(webhook, delivery) ids to put in a path, mostly main's: a delivery with its own endpoint
    (enabled, disabled, the other project's), with another endpoint, and a deleted endpoint."""
    s = w.seeds
    return [
        (s.main, s.delivery), (s.main, s.pending), (s.main, s.delivery), (s.disabled, s.disabled_delivery),
        (s.foreign, s.foreign_delivery), (s.main, s.foreign_delivery), (s.main, s.disabled_delivery),
        (s.gone, s.delivery),
    ]  # fmt: skip


def fill(w: Webhooks, template: str) -> st.SearchStrategy[str]:
    """The route's path with seeded ids."""
    return st.sampled_from(seeded_pairs(w)).map(
        lambda pair: template.replace("{id}", pair[0]).replace("{delivery}", pair[1])
    )


def routes(w: Webhooks) -> st.SearchStrategy[tuple[str, str]]:
    """(method, path) of any of the nine routes, as routed."""
    return st.one_of(*(st.tuples(st.sampled_from(ROUTED[t]), fill(w, t)) for t in ROUTED))


def body_routes(w: Webhooks) -> st.SearchStrategy[tuple[str, str]]:
    """A route that reads a body: the create, or a change of a seeded endpoint (mostly main)."""
    patches = fill(w, "/webhooks/{id}").map(lambda path: ("PATCH", path))
    return weighted((3, st.just(("POST", "/webhooks"))), (2, patches))


# --- the categories


def methods(w: Webhooks) -> st.SearchStrategy[Probe]:
    """Every method, routed or not, on every route."""

    def probe(route: tuple[str, str], method: str, headers: tuple[Header, ...], body: bytes) -> Probe:
        return Probe("methods", method, route[1], headers + JSON, body)

    method = st.one_of(st.sampled_from(METHODS), st.sampled_from(["GET", "POST", "PATCH", "DELETE"]))
    return st.builds(probe, routes(w), method, keys(w), SOME_BODY)


def path_ids(w: Webhooks) -> list[str]:
    """Ids as an attacker writes them: other spellings of a real one, traversal, encodings, and
    characters the resolver's route patterns refuse (quotes, backslashes, symbols, controls)."""
    s = w.seeds
    main = s.main
    return [
        main, main.upper(), "{" + main + "}", f"urn:uuid:{main}", main.replace("-", ""), s.foreign,
        s.disabled, s.gone, s.delivery, "00000000-0000-0000-0000-000000000000",
        "01234567-89ab-7def-8123-456789abcdef", "", "abc", "%00", "%ff", "%2F", "..", "%2e%2e", ".",
        "a" * 5000, "%C3%A9", "\u00e9", "%ED%A0%80", "%20", "null", "undefined", "*", "'%20OR%201=1",
        main + "%00", main + "%0A", main + ";x", main + "%2F..", "".join(f"%{ord(c):02X}" for c in main),
        quote(main.upper()), main[:-1], main + "0", "%", "%%", "%zz", '"', "`", "\\", "<script>", "|", "^",
        "{}", "~", "%7B%7D", "$(id)", "\u0661", "\u00ff" * 40, "\u00a7", "a\u00abb", "\u00b11", "\u00d7",
        "\u00bf", "a\x01b", "a\x7fb", main + '"', main + "\\",
    ]  # fmt: skip


def paths(w: Webhooks) -> st.SearchStrategy[Probe]:
    """Garbage where the ids go, and paths that look like the routes but are not."""
    s, main = w.seeds, w.seeds.main
    shapes = [
        "/webhooks/", "//webhooks", "/WEBHOOKS", "/Webhooks", f"/webhooks/{main}/", f"/webhooks/{main}//test",
        f"/webhooks/{main}/deliveries/", f"/webhooks/{main}/deliveries/{s.delivery}",
        f"/webhooks/{main}/deliveries/{s.delivery}/retry/x", "/webhooks/../webhooks",
        "/webhooks/%2e%2e/webhooks", f"/webhooks/{main}/rotate-secret/..", "/webhooks;x", "/webhooks#frag",
        "/webhooks?", "/webhooks%00", "/webhooks/" + "a" * 8000, f"/webhooks/{main}/../{s.foreign}",
        f"/webhooks/./{main}", "/webhooks/%2Fwebhooks", f"/webhooks/{main}/test%00", f"/webhooks/{main}/TEST",
        "/webhooks\\x", f"http://evil.example/webhooks/{main}", "*",
    ]  # fmt: skip
    pairs, garbage = seeded_pairs(w), st.sampled_from(path_ids(w))
    ids = st.one_of(  # garbage for the webhook, for the delivery, or neither
        st.tuples(garbage, st.sampled_from([delivery for _, delivery in pairs])),
        st.tuples(st.sampled_from([webhook for webhook, _ in pairs]), garbage),
        st.sampled_from(pairs),
    )
    templated = st.builds(
        lambda route, pair: (route[0], route[1].replace("{id}", pair[0]).replace("{delivery}", pair[1])),
        st.sampled_from([(method, t) for t in list(ROUTED)[1:] for method in ROUTED[t]]),
        ids,
    )
    lookalikes = st.tuples(st.sampled_from(["GET", "POST", "PATCH", "DELETE"]), st.sampled_from(shapes))

    def probe(where: tuple[str, str], headers: tuple[Header, ...], body: bytes) -> Probe:
        method, path = where
        data = body if method in ("POST", "PATCH") else b""
        return Probe("paths", method, path, headers + (JSON if data else ()), data)

    targets = weighted((3, templated), (1, lookalikes))
    return st.builds(probe, targets, keys(w, invalid_percent=30), SOME_BODY)


def headers(w: Webhooks) -> st.SearchStrategy[Probe]:
    """x-api-key in every shape, on every route; Content-Type variants; odd extra headers."""

    def probe(
        creds: tuple[Header, ...],
        route: tuple[str, str],
        content_type: str | bytes | None,
        extra: tuple[Header, ...],
        body: bytes,
    ) -> Probe:
        method, path = route
        types: tuple[Header, ...] = () if content_type is None else (("Content-Type", content_type),)
        framing = any(name.lower() in ("content-length", "transfer-encoding") for name, _ in extra)
        return Probe("headers", method, path, creds + types + extra, body, content_length=not framing)

    creds = weighted((1, keys(w, invalid_percent=0)), (1, bad_keys(w)))
    extras = weighted((3, st.just(())), (1, st.sampled_from(EXTRA_HEADERS)))
    return st.builds(probe, creds, routes(w), st.sampled_from(MEDIA_TYPES), extras, SOME_BODY)


def bodies(w: Webhooks) -> st.SearchStrategy[Probe]:
    """Hostile bodies on the routes that read one, and a few on routes that read none."""

    def probe(route: tuple[str, str], creds: tuple[Header, ...], body: bytes) -> Probe:
        return Probe("bodies", route[0], route[1], creds + JSON, body)

    no_body = st.one_of(
        *(
            fill(w, t).map(lambda path, m=m: (m, path))
            for t in list(ROUTED)[1:]
            for m in ROUTED[t]
            if m != "PATCH"
        )
    )
    return st.builds(probe, weighted((9, body_routes(w)), (1, no_body)), keys(w), HOSTILE_BODIES)


def fields(w: Webhooks) -> st.SearchStrategy[Probe]:
    """Valid bodies changed in one field (:data:`MUTATED_BODIES`), created or patched."""

    def probe(route: tuple[str, str], creds: tuple[Header, ...], body: dict[str, Any]) -> Probe:
        return Probe("fields", route[0], route[1], creds + JSON, encode(body))

    return st.builds(probe, body_routes(w), keys(w, invalid_percent=5), MUTATED_BODIES)


def urls_(w: Webhooks) -> st.SearchStrategy[Probe]:
    """URL tricks (:data:`URL_TEXT`) in a create or a change, mostly with the demo key, so that
    the URL is what is judged."""

    def probe(route: tuple[str, str], creds: tuple[Header, ...], url: str, events: list[str]) -> Probe:
        body: dict[str, Any] = {"url": url} if route[0] == "PATCH" else {"url": url, "events": events}
        return Probe("urls", route[0], route[1], creds + JSON, encode(body))

    return st.builds(probe, body_routes(w), keys(w, invalid_percent=3), URL_TEXT, EVENT_LISTS)


def queries(w: Webhooks) -> st.SearchStrategy[Probe]:
    """The deliveries list's limit and cursor in every shape (and query strings where none is read)."""
    from ledgerbridge.params import encode_cursor

    s = w.seeds
    cursors = [
        *QUERY_VALUES["cursor"], *s.cursors, encode_cursor("before", s.delivery),
        encode_cursor("after", s.foreign_delivery), encode_cursor("after", s.delivery.upper()),
        encode_cursor("after", "not-a-uuid"), encode_cursor("sideways", s.delivery),
        encode_cursor("after", "{" + s.delivery + "}"), encode_cursor("after", s.pending) + "==",
        quote(encode_cursor("after", s.pending)), "%E2%82%AC",
        encode_cursor("after", "00000000-0000-0000-0000-000000000000"), "YWZ0ZXI6" * 500,
    ]  # fmt: skip
    limits = st.sampled_from(QUERY_VALUES["limit"]) | latin1_text(max_size=10).map(quote)
    pair = st.one_of(
        st.builds("limit={}".format, limits),
        st.builds("cursor={}".format, st.sampled_from(cursors)),
        st.builds("{}={}".format, st.sampled_from(["LIMIT", "limit[]", "unknown", "Cursor"]), limits),
    )
    raw = st.sampled_from(["?", "?&&==&", "?%", "?limit", "?;", "?limit=5;limit=6", "?#frag", "??limit=1"])
    query_text = st.one_of(st.lists(pair, min_size=1, max_size=3).map(lambda p: "?" + "&".join(p)), raw)
    ids = st.sampled_from([s.main, s.main, s.main, s.main, s.disabled, s.foreign, s.gone])
    deliveries = st.builds(lambda i, q: f"/webhooks/{i}/deliveries{q}", ids, query_text)
    elsewhere = st.builds(str.__add__, st.sampled_from(["/webhooks", f"/webhooks/{s.main}"]), query_text)
    targets = weighted((5, deliveries), (1, elsewhere))
    return st.builds(lambda t, creds: Probe("query", "GET", t, creds), targets, keys(w))


# name -> (strategy factory, share of the suite's request budget): 0.2 in all
CATEGORIES: dict[str, tuple[Callable[[Webhooks], st.SearchStrategy[Probe]], float]] = {
    "methods": (methods, 0.02),
    "paths": (paths, 0.03),
    "headers": (headers, 0.03),
    "bodies": (bodies, 0.035),
    "fields": (fields, 0.04),
    "urls": (urls_, 0.03),
    "query": (queries, 0.015),
}


# --- the test -------------------------------------------------------------------------------------


class _Summary:
    """Prints one line for these routes at the end of the run (requests, status codes, violations),
    next to the suite's own line; registered once, by the first test of this file."""

    name = "ledgerbridge-webhooks-fuzz-summary"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        session = tally()
        mine = [category for category in session.statuses if category.startswith(PREFIX)]
        if not mine:
            return
        statuses = sum((session.statuses[category] for category in mine), Counter())
        violations = Counter({kind: sum(session.violations[c][kind] for c in mine) for kind in KINDS})
        codes = " ".join(f"{code}:{n}" for code, n in sorted(statuses.items()))
        bad = " ".join(f"{kind}={n}" for kind, n in violations.items())
        terminalreporter.write_line(f"fuzz webhooks: requests={statuses.total()} statuses {codes} {bad}")


@pytest.fixture(autouse=True)
def _summary(request: pytest.FixtureRequest) -> None:
    manager = request.config.pluginmanager
    if not manager.has_plugin(_Summary.name):
        manager.register(_Summary(), _Summary.name)


@pytest.mark.parametrize("round_number", ROUNDS)
@pytest.mark.parametrize("category", list(CATEGORIES))
def test_webhooks_fuzz(webhooks: Webhooks, category: str, round_number: int) -> None:
    factory, weight = CATEGORIES[category]
    examples = share(weight)

    @seed(round_seed("webhooks", category, round_number))
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(factory(webhooks))
    def send(probe: Probe) -> None:
        webhooks.exchange(category, probe)

    send()
    ran = webhooks.recorder.requests
    assert ran >= 0.9 * examples, (
        f"{category}: Hypothesis ran {ran} of {examples} examples: too few distinct?"
    )
    webhooks.recorder.assert_clean()
