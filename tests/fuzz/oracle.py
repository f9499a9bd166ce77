"""What every answer must be, whatever was asked: the fuzz suite's judge and its tally.

:class:`Oracle` looks at one exchange (the request as sent, the answer as received, how many
invoices the table holds now) and names every rule it breaks:

- ``5xx``: any 5xx, whatever its body (a 503 included: nothing here breaks the storage);
- ``unauthenticated_not_401``: a route that needs credentials, asked without the
  ``x-api-key``/``x-connection-token`` of one connection (a repeated header is its values
  joined with commas, as the HTTP API's event has it: never a key), answers anything but the
  one 401 (same status, Content-Type and body bytes for every such request);
- ``error_shape``: an error that is not ``application/json`` with exactly
  ``{"statusCode": <the status>, "error": str, "message": str, "details": [{"field": str,
  "reason": str}, ...]}`` (plus ``invoice_id``: str when the invoice was stored); the one
  exception is the HTTP API's own 404 ``{"message":"Not Found"}`` for a request no route
  matches, which never reaches a function, on AWS as here;
- ``schema_violations``: a documented operation answering (from the function: the gateway's
  own refusals, such as a body over its 10 MB, are not the document's) a status its OpenAPI
  document does not list, or a body the document's schema for that status refuses (the
  served ``/openapi.json``, validated with openapi-schema-validator);
- ``stored_for_refused``: an invoice or a contact was stored although the answer says nothing
  was (any error without ``invoice_id``/``contact_id``, any GET), or a fresh 201/202 did not
  store exactly one;
- ``leaks``: a traceback or a credential in the body;
- ``wrong_answer``: a valid invoice with valid credentials not answered 201/202, or a seeded
  invoice shown (2xx) to another project's credentials (see ``Harness.exchange``);
- ``schemathesis_checks``: a Schemathesis check failed (see test_schemathesis.py).

:class:`Tally` adds up requests, status codes and violations by category for the whole
session; ``conftest.py`` prints its summary line (and with ``LEDGERBRIDGE_FUZZ_TABLE`` set, its
table) at the end of the run.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from jsonschema.protocols import Validator
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ledgerbridge.local.stack import NOT_FOUND_BODY, path_pattern
from tests.fuzz.local_api import Received, Sent

KINDS = (
    "5xx",
    "schema_violations",
    "error_shape",
    "stored_for_refused",
    "unauthenticated_not_401",
    "leaks",
    "wrong_answer",
    "schemathesis_checks",
)
ERROR_KEYS = {"statusCode", "error", "message", "details"}
SECRET_HEADERS = ("x-api-key", "x-connection-token", "authorization", "cookie")
# Offending exchanges kept (and printed) per kind and test: $LEDGERBRIDGE_FUZZ_SHOW, default 3.
SHOWN_PER_KIND = int(os.environ.get("LEDGERBRIDGE_FUZZ_SHOW") or 3)
# A Python traceback, also as it reads inside a JSON string (quotes escaped).
_TRACEBACK = re.compile(rb'Traceback \(most recent call last\)|File \\?"/[^"\\]+\.py\\?", line \d+')


class _NonFinite(ValueError):
    pass


def _refuse_constant(literal: str) -> Any:
    raise _NonFinite(f"{literal} is not JSON")


def parse_json(body: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity (the standard library would accept them)."""
    return json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)


def media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


# --- the OpenAPI document as a contract ------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # the document's template, /accounting/invoices/{id}
    spec: dict[str, Any]

    @property
    def secured(self) -> bool:
        return bool(self.spec.get("security"))


class Contract:
    """The served OpenAPI document: which operation a request is, and what it may answer."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._uri = "urn:ledgerbridge-fuzz:openapi.json"
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self._registry = Registry().with_resource(self._uri, resource)
        self.operations = [
            (path_pattern(path), Operation(method.upper(), path, spec))
            for path, methods in document.get("paths", {}).items()
            for method, spec in methods.items()
            if isinstance(spec, dict) and "responses" in spec
        ]
        self._validators: dict[tuple[str, str, str], Validator | None] = {}

    def operation(self, method: str, target: str) -> Operation | None:
        try:
            path = urlsplit(target).path
        except ValueError:
            return None
        return next(
            (op for pattern, op in self.operations if op.method == method and pattern.match(path)), None
        )

    def _validator(self, op: Operation, status: str) -> Validator | None:
        key = (op.method, op.path, status)
        if key not in self._validators:
            content = op.spec["responses"][status].get("content") or {}
            if "application/json" not in content:
                self._validators[key] = None
            else:
                escaped = op.path.replace("~", "~0").replace("/", "~1")
                response = f"/paths/{escaped}/{op.method.lower()}/responses/{status}"
                pointer = f"{response}/content/application~1json/schema"
                self._validators[key] = OAS31Validator(
                    {"$ref": f"{self._uri}#{pointer}"},
                    registry=self._registry,
                    format_checker=oas31_format_checker,
                )
        return self._validators[key]

    def problems(self, op: Operation, received: Received, body: Any) -> list[str]:
        """How the answer breaks the operation's documented responses (empty when it does not)."""
        responses = op.spec["responses"]
        status = str(received.status)
        if status not in responses:
            status = f"{status[0]}XX" if f"{status[0]}XX" in responses else "default"
        if status not in responses:
            return [f"status {received.status} is not documented for {op.method} {op.path}"]
        content = responses[status].get("content") or {}
        if not content:
            return []
        if media_type(received.header("content-type")) not in content:
            return [
                f"Content-Type {received.header('content-type')!r} is not documented ({', '.join(content)})"
            ]
        validator = self._validator(op, status)
        if validator is None or body is _NO_BODY:
            return []
        return sorted(
            f"/{'/'.join(map(str, error.absolute_path))}: {_short(error.message)}"
            for error in validator.iter_errors(body)
        )[:5]


_NO_BODY = object()


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Ids an error carries when the record was stored before the ledger refused it.
STORED_ID_KEYS = {"invoice_id", "contact_id"}


def error_shape_problems(status: int, body: Any) -> list[str]:
    """How an error body differs from {"statusCode", "error", "message", "details"[, "invoice_id" |
    "contact_id"]}."""
    if not isinstance(body, dict):
        return [f"body is a JSON {type(body).__name__}, not an object"]
    problems = []
    keys = set(body)
    if missing := ERROR_KEYS - keys:
        problems.append(f"missing {sorted(missing)}")
    if extra := keys - ERROR_KEYS - STORED_ID_KEYS:
        problems.append(f"unexpected {sorted(extra)}")
    code = body.get("statusCode")
    if "statusCode" in body and (type(code) is not int or code != status):
        problems.append(f"statusCode {code!r} is not the HTTP status {status}")
    for name in ("error", "message"):
        if name in body and not (isinstance(body[name], str) and body[name]):
            problems.append(f"{name} {body[name]!r} is not a non-empty string")
    for name in STORED_ID_KEYS & keys:
        if not isinstance(body[name], str):
            problems.append(f"{name} {body[name]!r} is not a string")
    details = body.get("details")
    if "details" in body:
        if not isinstance(details, list):
            problems.append(f"details {details!r} is not a list")
        else:
            for index, detail in enumerate(details):
                if not (
                    isinstance(detail, dict)
                    and set(detail) == {"field", "reason"}
                    and all(isinstance(detail[k], str) for k in ("field", "reason"))
                ):
                    problems.append(
                        f"details[{index}] {_short(repr(detail), 120)} is not {{field: str, reason: str}}"
                    )
                    break
    return problems


# --- the judge ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    api_key: str
    connection_token: str

    def headers(self) -> tuple[tuple[str, str], ...]:
        return (("x-api-key", self.api_key), ("x-connection-token", self.connection_token))


@dataclass
class Violation:
    kind: str
    category: str
    reason: str
    sent: Sent
    received: Received

    def describe(self, secrets: Iterable[str] = ()) -> str:
        exchange = describe_exchange(self.sent, self.received, secrets)
        return f"[{self.kind}] {self.category}: {self.reason}\n{exchange}"


def _clip(data: bytes | str, limit: int) -> str:
    text = data.decode("utf-8", "backslashreplace") if isinstance(data, bytes) else data
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else f"{text[:limit]}... ({len(data):,} bytes)"


def describe_exchange(sent: Sent, received: Received, secrets: Iterable[str] = ()) -> str:
    """The request (secrets masked, body truncated) and the answer, for a failure message."""
    masked = set(secrets)

    def header(name: str, value: str | bytes) -> str:
        text = value.decode("iso-8859-1") if isinstance(value, bytes) else value
        if name.lower() in SECRET_HEADERS or text in masked:
            kind = "valid" if text in masked else "other"
            return f"{name}: <{kind} secret, {len(text)} chars>"
        return f"{name}: {_clip(text, 120)}"

    lines = [f"  > {_clip(sent.method, 40)} {_clip(sent.target, 300)}"]
    lines += [f"  > {header(name, value)}" for name, value in sent.headers]
    if sent.body:
        lines.append(f"  > body: {_clip(sent.body, 1500)}")
    lines.append(f"  < {received.status} ({received.seconds * 1000:.1f} ms)")
    lines += [
        f"  < {name}: {_clip(value, 120)}" for name, value in received.headers if name.lower() != "date"
    ]
    lines.append(f"  < body: {_clip(received.body, 600)}")
    if problem := log_problem(received.log):
        lines.append("  log:\n" + "\n".join("    " + line for line in problem.splitlines()))
    return "\n".join(lines)


def log_problem(log: str, limit: int = 1500) -> str:
    """The exception in what the function logged (Powertools' JSON ``exception`` field, or a
    printed traceback), else the last lines."""
    for line in reversed(log.splitlines()):
        if '"exception"' in line:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            text = str(record.get("exception") or "")
            return f"{record.get('message', '')}: ...{text[-limit:]}" if len(text) > limit else text
    if "Traceback" in log:
        return log[log.rindex("Traceback") :][-limit:]
    return log.strip()[-300:]


def _stored_problems(kind: str, grew: int, received: Received, body: Any) -> list[str]:
    """A fresh create of ``kind`` (its Location says so) stores exactly one; an error stores one at
    most, and only when it names the stored record (``invoice_id``/``contact_id``); nothing else
    stores any."""
    status = received.status
    creates = (received.header("location") or "").startswith(f"/accounting/{kind}s/")
    if creates and status in (201, 202) and received.header("idempotent-replayed") is None:
        return [] if grew == 1 else [f"{status} but {grew} {kind}s were stored, not 1"]
    names_stored = isinstance(body, dict) and isinstance(body.get(f"{kind}_id"), str)
    if grew and not (names_stored and grew == 1):
        return [f"{status} but {grew} {kind}s were stored"]
    return []


class Oracle:
    """The rules for one test's stack: its document, its credentials, its invoices table."""

    def __init__(
        self,
        contract: Contract,
        valid: Iterable[Credentials],
        unauthorized: Received,
        counters: dict[str, Callable[[], int]],
        secrets: Iterable[str],
    ) -> None:
        self.contract = contract
        self.valid = {(c.api_key, c.connection_token) for c in valid}
        self.unauthorized = unauthorized
        self.counters = counters  # kind of record ("invoice", "contact") -> how many are stored
        self.secrets = tuple(secrets)
        self._secret_bytes = tuple(s.encode() for s in self.secrets)
        self.stored = {kind: count() for kind, count in counters.items()}

    def authenticated(self, sent: Sent) -> bool:
        """Whether the request carries one connection's key and token. A repeated header is its
        values joined with commas, as in the event an HTTP API sends (payload format 2.0)."""
        keys, tokens = sent.header_values("x-api-key"), sent.header_values("x-connection-token")
        return bool(keys and tokens) and (",".join(keys), ",".join(tokens)) in self.valid

    def judge(self, sent: Sent, received: Received, *, expect_created: bool = False) -> list[tuple[str, str]]:
        """Every (kind, reason) this exchange breaks; also moves the record counts forward."""
        found: list[tuple[str, str]] = []
        before, self.stored = self.stored, {kind: count() for kind, count in self.counters.items()}
        status = received.status
        head = sent.method == "HEAD"
        body: Any = _NO_BODY
        if received.body and not head:
            try:
                body = parse_json(received.body)
            except ValueError as error:
                body = _NO_BODY
                if status >= 400 or media_type(received.header("content-type")) == "application/json":
                    found.append(
                        ("error_shape" if status >= 400 else "schema_violations", f"not JSON: {error}")
                    )
        if status >= 500:
            error = body.get("error") if isinstance(body, dict) else None
            found.append(("5xx", f"{status} {error or ''}".strip()))
        op = self.contract.operation(sent.method, sent.target)
        # The rule is the function's: what the gateway refuses itself (a body over its 10 MB, a
        # request it cannot frame) never reaches it, on AWS as here. The gateway never answers 2xx.
        reached = received.header("x-amzn-RequestId") is not None or 200 <= status < 300
        if op is not None and op.secured and reached and not self.authenticated(sent):
            same = (
                status == self.unauthorized.status
                and received.body == self.unauthorized.body
                and received.header("content-type") == self.unauthorized.header("content-type")
            ) or (head and status == self.unauthorized.status)
            if not same:
                found.append(("unauthenticated_not_401", f"{status} instead of the one 401 answer"))
        unrouted = (  # the HTTP API's answer to a request no route matches
            not reached
            and status == 404
            and media_type(received.header("content-type")) == "application/json"
            and (head or received.body == NOT_FOUND_BODY)
        )
        if status >= 400 and not unrouted:
            if media_type(received.header("content-type")) != "application/json":
                found.append(("error_shape", f"Content-Type {received.header('content-type')!r}"))
            elif body is not _NO_BODY:
                found += [("error_shape", problem) for problem in error_shape_problems(status, body)]
            elif not head:
                found.append(("error_shape", "no body"))
        if op is not None and reached:
            found += [
                ("schema_violations", problem) for problem in self.contract.problems(op, received, body)
            ]
        for kind in self.counters:
            grew = self.stored[kind] - before[kind]
            found += [
                ("stored_for_refused", problem) for problem in _stored_problems(kind, grew, received, body)
            ]
        if _TRACEBACK.search(received.body) or any(s in received.body for s in self._secret_bytes):
            found.append(("leaks", "a traceback or a credential in the body"))
        if expect_created and status not in (201, 202):
            reason = body.get("message") if isinstance(body, dict) else None
            found.append(("wrong_answer", f"{status}: {reason}"))
        return found


# --- the tally -----------------------------------------------------------------------------------


@dataclass
class Tally:
    """Requests, status codes and violations by category, for the whole session."""

    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    violations: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    busy: Counter[str] = field(default_factory=Counter)  # seconds the stack spent answering, by category

    @property
    def seconds(self) -> float:
        return sum(self.busy.values())

    @property
    def requests(self) -> int:
        return sum(sum(counter.values()) for counter in self.statuses.values())

    def count(self, kind: str) -> int:
        return sum(counter[kind] for counter in self.violations.values())

    def summary_line(self) -> str:
        counts = " ".join(f"{kind}={self.count(kind)}" for kind in KINDS)
        return f"fuzz: requests={self.requests} {counts}"

    def table(self) -> str:
        rows = [("category", "requests", "seconds", "status codes", "violations")]
        for category in sorted(self.statuses):
            codes = " ".join(f"{code}:{n}" for code, n in sorted(self.statuses[category].items()))
            bad = " ".join(f"{kind}:{n}" for kind, n in sorted(self.violations[category].items()) if n) or "-"
            requests = str(sum(self.statuses[category].values()))
            rows.append((category, requests, f"{self.busy[category]:.1f}", codes, bad))
        codes = " ".join(f"{code}:{n}" for code, n in sorted(sum(self.statuses.values(), Counter()).items()))
        bad = " ".join(f"{kind}:{self.count(kind)}" for kind in KINDS if self.count(kind)) or "-"
        rows.append(("all", str(self.requests), f"{self.seconds:.1f}", codes, bad))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [
            f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:<{widths[3]}}  {r[4]}"
            for r in rows
        ]
        lines.insert(1, "-" * len(lines[0]))
        lines.insert(len(lines) - 1, "-" * len(lines[0]))
        return "\n".join(lines)


@cache
def tally() -> Tally:
    """The session's tally (one per process)."""
    return Tally()


class Recorder:
    """One test's exchanges: judged, added to the session tally, offenders kept for the report."""

    def __init__(self, oracle: Oracle, session: Tally | None = None) -> None:
        self.oracle = oracle
        self.session = session or tally()
        self.requests = 0
        self.counts: Counter[str] = Counter()
        self.shown: dict[str, list[Violation]] = defaultdict(list)

    def record(
        self,
        category: str,
        sent: Sent,
        received: Received,
        *,
        expect_created: bool = False,
        extra: Iterable[tuple[str, str]] = (),
    ) -> list[tuple[str, str]]:
        found = [*self.oracle.judge(sent, received, expect_created=expect_created), *extra]
        self.requests += 1
        self.session.statuses[category][received.status] += 1
        self.session.busy[category] += received.seconds
        for kind, reason in found:
            self.add(kind, category, reason, sent, received)
        return found

    def add(self, kind: str, category: str, reason: str, sent: Sent, received: Received) -> None:
        self.counts[kind] += 1
        self.session.violations[category][kind] += 1
        if len(self.shown[kind]) < SHOWN_PER_KIND:
            self.shown[kind].append(Violation(kind, category, reason, sent, received))

    def report(self) -> str:
        """The failure message: counts by kind, then the first few offenders of each kind."""
        if not self.counts:
            return ""
        head = ", ".join(f"{kind}={n}" for kind, n in sorted(self.counts.items()))
        parts = [f"{sum(self.counts.values())} violations in {self.requests} requests: {head}"]
        for kind in sorted(self.shown):
            parts += [violation.describe(self.oracle.secrets) for violation in self.shown[kind]]
        return "\n\n".join(parts)

    def assert_clean(self) -> None:
        __tracebackhide__ = True
        if self.counts:
            raise AssertionError(self.report())
