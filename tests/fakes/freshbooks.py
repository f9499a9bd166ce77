"""A fake FreshBooks (Accounting API and token endpoint) that behaves like the recorded one.

One stateful object, used as ``httpx.MockTransport(fake.handle)`` in unit tests or behind a real
HTTP server end to end (tests/fakes/server.py). Records come from tests/fixtures/providers/
freshbooks: the recorded clients and invoices of account ``ZyQ04o``; items, taxes, the token
answer and the error envelope are written by hand from FreshBooks' documentation (each such
fixture says so in its ``note``).

What it models:
- ``GET /oauth/authorize`` (auth.freshbooks.com's path): the consent screen (tests/fakes/consent.py)
  with the client id, the registered redirect URI and every scope FreshBooks documents for the
  calls the fake serves (tests/fixtures/providers/freshbooks/scopes.json) required. No PKCE:
  FreshBooks documents none, so a challenge is neither asked for nor checked unless one is sent.
  Approving redirects with ``code`` and ``state`` and nothing else, as FreshBooks does.
- ``POST /auth/oauth/token`` with ``grant_type=authorization_code``: the JSON body is first checked
  against FreshBooks' Node SDK's token request (tests/fixtures/specs/freshbooks/auth.json; 400
  ``invalid_request`` listing the problems), then the code must be unused and bound to this client
  and redirect URI (400 ``invalid_grant`` otherwise). The answer has the SDK's TokenResponse
  fields (exchange-code.json) with the consented scope; its pair becomes the connection's, and
  the previous refresh token is retired (FreshBooks keeps one refresh token per user and app).
- ``POST /auth/oauth/revoke``: a JSON body with the app's client id and secret (401
  ``invalid_client`` otherwise) and ``token``; revoking a refresh token or its access token ends
  both (one grant in FreshBooks' OAuth server), and the answer is 200 ``{}`` whatever the token.
  Revoked tokens are kept in ``revoked``.
- ``GET /auth/api/v1/users/me``: a known bearer token (401 otherwise), then ``identity``, the
  recorded answer (get-account-id.json); tests may change its ``business_memberships``.
- ``POST /auth/oauth/token`` refreshes: a JSON body (``grant_type=refresh_token``, ``client_id``,
  ``client_secret``, ``refresh_token``, ``redirect_uri``; a form body is refused here so the
  test proves JSON is sent). ``redirect_uri`` must be the app's registered one: FreshBooks'
  Node SDK sends it on every refresh, so a refresh without it (or with another) is refused
  with 400 ``invalid_request``, as the real server may. Each refresh issues a new access token
  and a new refresh token and retires the one used (FreshBooks refresh tokens are single
  use): presenting it again answers 400 ``invalid_grant``; a wrong client answers 401
  ``invalid_client`` (Doorkeeper's codes).
- ``/accounting/account/{account}/...``: a known bearer token (401 otherwise) and this account
  (403 otherwise).
- ``GET users/clients``, ``items/items``, ``taxes/taxes``, ``invoices/invoices``: ``page`` /
  ``per_page`` (capped at 100; page 0 is page 1), ``{"response": {"result": {<key>: [...],
  "page", "pages", "per_page", "total"}}}``; invoices newest first, deleted ones hidden,
  ``search[customerid]`` and ``search[invoice_number]`` filters, ``include[]=lines``; clients
  with the documented ``search[note_like]`` (the note contains it) and ``search[email]``
  (exact) filters.
- ``POST users/clients``: the body is first checked against the SDK's Client model
  (tests/fixtures/specs/freshbooks/clients.json) as invoices are. Then FreshBooks' own rule
  (its support pages: "either the First & Last Name or Company is required"): no
  ``organization``, ``fname`` or ``lname`` is a 422 in the invoices' error envelope. Nothing
  else is unique: the recorded business has two active clients with one email, so a duplicate
  name or email is accepted, as FreshBooks does. The client is recorded in the recorded
  clients' shape (``organization`` defaults to the first and last name, ``currency_code`` to
  the business's; ``signup_date`` in UTC, ``updated`` in US Eastern time) and joins the list
  the reference sync and the invoice create read.
- Every invoice body (create and update) is first checked against FreshBooks' official Node SDK
  models (tests/fixtures/specs/freshbooks/invoices.json, via tests/support/specs.py): a field
  the SDK does not send, a wrong type, or a missing ``customerid``/``create_date`` (required in
  the SDK's Invoice model) answers 400 in FreshBooks' error envelope listing each problem, so
  every body any test sends is checked.
- ``POST invoices/invoices``: FreshBooks' rules as far as the tests need them (a known client,
  lines in the invoice's currency, a unique invoice number, valid dates), then a draft record
  in the recorded shape: numbered after the recorded ``0000008``, line amounts and taxes
  (``taxAmount`` is a percentage) computed, ``due_date = create_date + due_offset_days``,
  timestamps in US Eastern time as FreshBooks writes them. Errors are FreshBooks' envelope
  ``{"response": {"errors": [{errno, field, message, object, value}]}}`` with HTTP 422 (the
  status and the wording of the messages are a paraphrase).
- ``GET|PUT invoices/invoices/{id}``: ``action_mark_as_sent`` (draft -> sent) and
  ``vis_state: 1`` (delete); other updates are not modelled.

Fault injection on API calls (not the token endpoint), in FIFO order: ``fail_next(status,
headers, times)`` (e.g. 429 + Retry-After, 503), ``timeout_next(times, after_processing)``
(httpx.ReadTimeout before, or after, the fake did the work: a lost response). Every request
received is kept in ``requests``.
"""

from __future__ import annotations

import copy
import math
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from ledgerbridge import jsonutil
from tests.fakes.consent import ConsentScreen, invalid_grant
from tests.fakes.faults import Faults
from tests.support.specs import schema_errors

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "freshbooks"
ACCOUNT_ID = "ZyQ04o"  # the recorded account
TOKEN_PATH = "/auth/oauth/token"
AUTHORIZE_PATH = "/oauth/authorize"  # on auth.freshbooks.com
REVOKE_PATH = "/auth/oauth/revoke"
IDENTITY_PATH = "/auth/api/v1/users/me"
API_PREFIX = "/accounting/account/"
CLIENT_ID = "fake-freshbooks-client-id"
CLIENT_SECRET = "fake-freshbooks-client-secret"
REDIRECT_URI = "https://ledgerbridge.example/connect/callback"  # the fake app's registered one
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 15
EASTERN = ZoneInfo("America/New_York")  # FreshBooks' accounting timestamps
CENT = Decimal("0.01")
VALIDATION_STATUS = 422
SPEC = "freshbooks/invoices"
AUTH_SPEC = "freshbooks/auth"  # the Node SDK's token request and answer
CLIENT_SPEC = "freshbooks/clients"
BASE_CURRENCY = "USD"  # the fake business's own currency: a client created without one gets it
# What describes one client, as a client created without it has it (FreshBooks' create answer).
NEW_CLIENT: dict[str, Any] = {
    **{name: "" for name in ("fname", "lname", "organization", "email", "bus_phone", "mob_phone", "fax")},
    **{name: None for name in ("note", "home_phone", "vat_name", "vat_number")},
    **{f"{p}_{f}": "" for p in "ps" for f in ("street", "street2", "city", "province", "code", "country")},
}
LISTS = {"users/clients": "clients", "items/items": "items", "taxes/taxes": "taxes"}


def fixture(name: str) -> dict[str, Any]:
    """A fixture file, numbers as Decimals."""
    return jsonutil.loads((FIXTURES / f"{name}.json").read_bytes())


def documented_scopes() -> tuple[str, ...]:
    """Every scope FreshBooks documents for a call the fake serves, each once (scopes.json)."""
    return tuple(dict.fromkeys(fixture("scopes")["resources"].values()))


def recorded_body(name: str) -> Any:
    """The response body of the first exchange of a fixture."""
    return fixture(name)["exchanges"][0]["response"]["body"]


def recorded_result(name: str) -> dict[str, Any]:
    return recorded_body(name)["response"]["result"]


def eastern_text(moment: datetime) -> str:
    """``2026-06-29 12:52:44``: how FreshBooks writes ``updated`` / ``created_at``."""
    return moment.astimezone(EASTERN).strftime("%Y-%m-%d %H:%M:%S")


class _Invalid(Exception):
    """One FreshBooks validation error."""

    def __init__(self, errno: int, field_name: str, message: str, value: Any, obj: str = "invoice"):
        super().__init__(message)
        self.error = {"errno": errno, "field": field_name, "message": message, "object": obj, "value": value}


class FakeFreshBooks:
    """See the module docstring."""

    def __init__(
        self,
        *,
        account_id: str = ACCOUNT_ID,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        redirect_uri: str = REDIRECT_URI,
        access_token: str = "fb-access-0",
        refresh_token: str = "fb-refresh-0",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.account_id, self.client_id, self.client_secret = account_id, client_id, client_secret
        self.redirect_uri = redirect_uri
        self.access_tokens = {access_token}
        self.refresh_token: str | None = refresh_token
        self.retired_refresh_tokens: list[str] = []
        self.revoked: list[str] = []
        self._access_of = {refresh_token: access_token}  # each live refresh token's access token
        self.consent = ConsentScreen(
            path=AUTHORIZE_PATH,
            client_id=client_id,
            redirect_uri=redirect_uri,
            required_scopes=documented_scopes(),
            pkce=False,  # FreshBooks documents none
        )
        self.identity: dict[str, Any] = recorded_body("get-account-id")
        self.clock = clock
        self.requests: list[httpx.Request] = []
        self.clients: list[dict[str, Any]] = recorded_result("list-clients")["clients"]
        self.items: list[dict[str, Any]] = recorded_result("list-items")["items"]
        self.taxes: list[dict[str, Any]] = recorded_result("list-taxes")["taxes"]
        recorded = recorded_result("list-invoices")["invoices"]
        self.invoices: dict[int, dict[str, Any]] = {int(r["id"]): {**r, "lines": []} for r in recorded}
        self.created_ids: list[int] = []
        self._template = recorded_body("create-invoice")["response"]["result"]["invoice"]
        self._faults = Faults("FreshBooks")
        self._issued = 0
        self._next_id = max(self.invoices) + 2
        self.created_client_ids: list[int] = []
        self._lock = threading.RLock()

    # --- test controls ----------------------------------------------------------------------

    def fail_next(self, status: int, headers: dict[str, str] | None = None, times: int = 1) -> None:
        """Answer the next ``times`` API requests with ``status`` (e.g. 429 + Retry-After, 503)."""
        with self._lock:
            self._faults.fail(status, headers, times)

    def timeout_next(self, times: int = 1, after_processing: bool = False) -> None:
        """Raise httpx.ReadTimeout for the next API requests; ``after_processing``: do the work first."""
        with self._lock:
            self._faults.timeout(times, after_processing)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far now answers 401."""
        with self._lock:
            self.access_tokens.clear()

    def add_client(self, organization: str, currency: str = BASE_CURRENCY) -> dict[str, Any]:
        """A new client in the recorded shape (for paging tests)."""
        with self._lock:
            record = copy.deepcopy(self.clients[-1])
            client_id = self._next_client_id()
            record.update(
                {
                    "id": client_id,
                    "userid": client_id,
                    "organization": organization,
                    "currency_code": currency,
                    "uuid": str(uuid.uuid4()),
                    "updated": eastern_text(self.clock()),
                }
            )
            self.clients.append(record)
            return record

    def created(self) -> list[dict[str, Any]]:
        """The invoices this fake created (not the recorded ones), oldest first."""
        with self._lock:
            return [copy.deepcopy(self.invoices[i]) for i in self.created_ids]

    def created_clients(self) -> list[dict[str, Any]]:
        """The clients ``POST users/clients`` created (not the recorded ones), oldest first."""
        with self._lock:
            return [copy.deepcopy(c) for c in self.clients if int(c["id"]) in self.created_client_ids]

    def invoice_posts(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST" and r.url.path.endswith("/invoices/invoices")]

    def client_posts(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST" and r.url.path.endswith("/users/clients")]

    @staticmethod
    def body_of(request: httpx.Request) -> Any:
        return jsonutil.loads(request.content)

    # --- dispatch ---------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            request.read()
            self.requests.append(request)
            if self.consent.handles(request):
                return self.consent.handle(request)
            if request.url.path == TOKEN_PATH:
                return self._token(request)
            if request.url.path == REVOKE_PATH:
                return self._revoke(request)
            fault = self._faults.take(request, lambda: self._route(request))
            if fault:
                return _json(
                    fault.status, {"error_type": "unavailable", "message": "Try again later."}, fault.headers
                )
            return self._route(request)

    def _route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == IDENTITY_PATH and request.method == "GET":
            return self._bearer_refusal(request) or _json(200, copy.deepcopy(self.identity))
        if not path.startswith(API_PREFIX):
            return _not_found()
        refused = self._refuse_access(request)
        if refused:
            return refused
        resource = path[len(API_PREFIX) :].split("/", 1)[1] if "/" in path[len(API_PREFIX) :] else ""
        if resource == "users/clients":
            if request.method == "POST":
                return self._create_client(request)
            if request.method == "GET":
                return self._list(request, self._client_list(request), "clients")
        if request.method == "GET" and resource in LISTS:
            return self._list(request, self._records(resource), LISTS[resource])
        if resource == "invoices/invoices":
            if request.method == "POST":
                return self._create(request)
            if request.method == "GET":
                return self._list(request, self._invoice_list(request), "invoices")
        if resource.startswith("invoices/invoices/") and request.method in ("GET", "PUT"):
            return self._one_invoice(request, resource.rsplit("/", 1)[1])
        return _not_found()

    def _refuse_access(self, request: httpx.Request) -> httpx.Response | None:
        refused = self._bearer_refusal(request)
        if refused:
            return refused
        account = request.url.path[len(API_PREFIX) :].split("/", 1)[0]
        if account != self.account_id:
            error = _Invalid(
                1003, "accountid", "The server could not verify that you are authorized.", account, "account"
            )
            return _errors(403, [error])
        return None

    def _bearer_refusal(self, request: httpx.Request) -> httpx.Response | None:
        """401 unless the request carries an access token this fake issued and has not revoked."""
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            return _json(
                401,
                {
                    "error": "unauthenticated",
                    "error_description": "This action requires authentication to continue.",
                },
            )
        if authorization[7:] not in self.access_tokens:
            headers = {"www-authenticate": 'Bearer realm="Doorkeeper", error="invalid_token"'}
            return _json(
                401, {"error": "invalid_token", "error_description": "The access token is invalid"}, headers
            )
        return None

    # --- token endpoint ---------------------------------------------------------------------

    def _client_body(self, request: httpx.Request) -> dict[str, Any] | httpx.Response:
        """The JSON body of an OAuth request naming this app with its secret, else the refusal."""
        body = _body(request) if request.method == "POST" else None
        if not isinstance(body, dict) or "application/json" not in request.headers.get("content-type", ""):
            return _json(400, {"error": "invalid_request", "error_description": "Send a JSON body."})
        if (body.get("client_id"), body.get("client_secret")) != (self.client_id, self.client_secret):
            return _json(
                401, {"error": "invalid_client", "error_description": "Client authentication failed."}
            )
        return body

    def _token(self, request: httpx.Request) -> httpx.Response:
        body = self._client_body(request)
        if isinstance(body, httpx.Response):
            return body
        if body.get("grant_type") == "authorization_code":
            return self._exchange_code(body)
        if body.get("grant_type") != "refresh_token":
            return _json(
                400, {"error": "unsupported_grant_type", "error_description": "Unsupported grant type."}
            )
        if body.get("redirect_uri") != self.redirect_uri:
            description = (
                "Missing required parameter: redirect_uri."
                if "redirect_uri" not in body
                else "The redirect uri included is not valid."
            )
            return _json(400, {"error": "invalid_request", "error_description": description})
        if self.refresh_token is None or body.get("refresh_token") != self.refresh_token:
            return _json(
                400, {"error": "invalid_grant", "error_description": "The provided grant is invalid."}
            )
        return self._issue(recorded_body("refresh-token"))

    def _exchange_code(self, body: dict[str, Any]) -> httpx.Response:
        """The authorization-code grant: the SDK's body, then a single-use code bound to its request."""
        problems = schema_errors(body, AUTH_SPEC, "TokenRequest")
        if problems:
            return _json(400, {"error": "invalid_request", "error_description": "; ".join(problems)})
        refusal = self.consent.exchange(body, body.get("client_id"))
        if refusal:
            return invalid_grant(refusal)
        granted = self.consent.codes[str(body["code"])].scope
        return self._issue({**recorded_body("exchange-code"), "scope": granted})

    def _issue(self, answer: dict[str, Any]) -> httpx.Response:
        """A new token pair, the connection's from now on (the previous refresh token is retired)."""
        self._issued += 1
        access, refresh = f"fb-access-{self._issued}", f"fb-refresh-{self._issued}"
        if self.refresh_token is not None:
            self.retired_refresh_tokens.append(self.refresh_token)
            self._access_of.pop(self.refresh_token, None)
        self.refresh_token = refresh
        self.access_tokens.add(access)
        self._access_of[refresh] = access
        answer = copy.deepcopy(answer)
        answer.update(access_token=access, refresh_token=refresh, created_at=int(self.clock().timestamp()))
        return _json(200, answer)

    def _revoke(self, request: httpx.Request) -> httpx.Response:
        """Either token of a pair ends both; 200 ``{}`` even for a token already dead (RFC 7009 2.2)."""
        body = self._client_body(request)
        if isinstance(body, httpx.Response):
            return body
        token = str(body.get("token") or "")
        self.revoked.append(token)
        refresh = token if token in self._access_of else None
        refresh = refresh or next((r for r, access in self._access_of.items() if access == token), None)
        if refresh is not None:
            self.access_tokens.discard(self._access_of.pop(refresh))
            if self.refresh_token == refresh:
                self.refresh_token = None
        return _json(200, recorded_body("revoke-token"))

    # --- reads ------------------------------------------------------------------------------

    def _records(self, resource: str) -> list[dict[str, Any]]:
        return {"users/clients": self.clients, "items/items": self.items, "taxes/taxes": self.taxes}[resource]

    def _client_list(self, request: httpx.Request) -> list[dict[str, Any]]:
        params = request.url.params
        records = self.clients
        if "search[note_like]" in params:
            records = [c for c in records if params["search[note_like]"] in (c.get("note") or "")]
        if "search[email]" in params:
            records = [c for c in records if c.get("email") == params["search[email]"]]
        return records

    def _invoice_list(self, request: httpx.Request) -> list[dict[str, Any]]:
        params = request.url.params
        records = [r for r in self.invoices.values() if r.get("vis_state") != 1]
        if "search[customerid]" in params:
            records = [r for r in records if str(r["customerid"]) == params["search[customerid]"]]
        if "search[invoice_number]" in params:
            records = [r for r in records if r.get("invoice_number") == params["search[invoice_number]"]]
        with_lines = "lines" in params.get_list("include[]")
        return [_shown(r, with_lines) for r in sorted(records, key=lambda r: -int(r["id"]))]

    def _list(self, request: httpx.Request, records: list[dict[str, Any]], key: str) -> httpx.Response:
        params = request.url.params
        try:
            page = max(1, int(params.get("page", "1")))
            per_page = min(MAX_PER_PAGE, max(1, int(params.get("per_page", str(DEFAULT_PER_PAGE)))))
        except ValueError:
            return _errors(400, [_Invalid(2001, "page", "page must be a number", params.get("page"), key)])
        chunk = copy.deepcopy(records[(page - 1) * per_page : page * per_page])
        result = {
            key: chunk,
            "page": page,
            "pages": math.ceil(len(records) / per_page),
            "per_page": per_page,
            "total": len(records),
        }
        return _json(200, {"response": {"result": result}})

    def _one_invoice(self, request: httpx.Request, invoice_id: str) -> httpx.Response:
        record = self.invoices.get(int(invoice_id)) if invoice_id.isdigit() else None
        if record is None:
            return _errors(404, [_Invalid(1012, "invoiceid", "Invoice not found.", invoice_id)])
        if request.method == "PUT":
            body = _body(request)
            refused = _off_spec(body, "UpdateInvoice")
            if refused:
                return refused
            update = body.get("invoice") if isinstance(body, dict) else None
            if not isinstance(update, dict):
                return _errors(VALIDATION_STATUS, [_Invalid(2001, "invoice", "Invalid invoice.", None)])
            self._update(record, update)
        with_lines = "lines" in request.url.params.get_list("include[]")
        return _json(200, {"response": {"result": {"invoice": _shown(record, with_lines)}}})

    def _update(self, record: dict[str, Any], update: dict[str, Any]) -> None:
        if update.get("action_mark_as_sent") and record["v3_status"] == "draft":
            record.update(status=2, v3_status="sent", display_status="sent")
        if update.get("vis_state") == 1:
            record["vis_state"] = 1
        now = self.clock()
        record.update(updated=eastern_text(now), version=eastern_text(now) + ".000000")

    # --- create -----------------------------------------------------------------------------

    def _create(self, request: httpx.Request) -> httpx.Response:
        body = _body(request)
        refused = _off_spec(body, "CreateInvoice")
        if refused:
            return refused
        invoice = body.get("invoice") if isinstance(body, dict) else None
        if not isinstance(invoice, dict):
            return _errors(VALIDATION_STATUS, [_Invalid(2001, "invoice", "Invalid invoice.", None)])
        try:
            record = self._build(invoice)
        except _Invalid as invalid:
            return _errors(VALIDATION_STATUS, [invalid])
        self.invoices[record["id"]] = record
        self.created_ids.append(record["id"])
        with_lines = "lines" in request.url.params.get_list("include[]")
        return _json(200, {"response": {"result": {"invoice": _shown(record, with_lines)}}})

    def _build(self, invoice: dict[str, Any]) -> dict[str, Any]:
        """The draft FreshBooks would record; raises _Invalid for what it would refuse."""
        client = self._client(invoice.get("customerid"))
        currency = invoice.get("currency_code") or client["currency_code"]
        created = _date(invoice["create_date"], "create_date")  # required by the SDK's model
        offset = invoice.get("due_offset_days") or 0
        if not isinstance(offset, int) or offset < 0:
            raise _Invalid(2001, "due_offset_days", "Invalid value for field due_offset_days.", offset)
        number = invoice.get("invoice_number") or self._next_number()
        if any(r.get("invoice_number") == number and r.get("vis_state") != 1 for r in self.invoices.values()):
            raise _Invalid(2030, "invoice_number", f"Invoice number {number} is already in use.", number)
        lines = [_line(line, n, currency) for n, line in enumerate(invoice.get("lines") or [], start=1)]
        return self._record(invoice, client, currency, created, offset, number, lines)

    def _record(
        self,
        invoice: dict[str, Any],
        client: dict[str, Any],
        currency: str,
        created: date,
        offset: int,
        number: str,
        lines: list[tuple[dict[str, Any], Decimal]],
    ) -> dict[str, Any]:
        subtotal = sum((_dec(line["amount"]["amount"]) for line, _ in lines), Decimal(0))
        tax = sum((line_tax for _, line_tax in lines), Decimal(0))
        total = f"{(subtotal + tax).quantize(CENT):f}"
        now, invoice_id = self.clock(), self._next_id
        self._next_id += 2
        record = copy.deepcopy(self._template)
        zero = {"amount": "0.00", "code": currency}
        record.update(
            {
                "id": invoice_id,
                "invoiceid": invoice_id,
                "invoice_number": number,
                "customerid": int(client["id"]),
                "organization": client.get("organization") or "",
                "current_organization": client.get("organization") or "",
                "fname": client.get("fname") or "",
                "lname": client.get("lname") or "",
                "create_date": created.isoformat(),
                "due_offset_days": offset,
                "due_date": (created + timedelta(days=offset)).isoformat(),
                "currency_code": currency,
                "amount": {"amount": total, "code": currency},
                "outstanding": {"amount": total, "code": currency},
                "paid": dict(zero),
                "net_paid_amount": dict(zero),
                "discount_total": dict(zero),
                "discount": {"amount": dict(zero), "rate": "0", "type": "percent"},
                "notes": invoice.get("notes") or "",
                "po_number": invoice.get("po_number"),
                "status": 1,
                "v3_status": "draft",
                "display_status": "draft",
                "payment_status": "unpaid",
                "created_at": eastern_text(now),
                "updated": eastern_text(now),
                "version": eastern_text(now) + ".000000",
                "uuid": str(uuid.uuid4()),
                "vis_state": 0,
                "lines": [{**line, "invoiceid": invoice_id} for line, _ in lines],
            }
        )
        return record

    # --- clients ----------------------------------------------------------------------------

    def _create_client(self, request: httpx.Request) -> httpx.Response:
        body = _body(request)
        refused = _off_spec(body, "CreateClient", CLIENT_SPEC, "client")
        if refused:
            return refused
        client = body.get("client") if isinstance(body, dict) else None
        if not isinstance(client, dict):
            return _errors(VALIDATION_STATUS, [_Invalid(2001, "client", "Invalid client.", None, "client")])
        if not any((client.get(name) or "").strip() for name in ("organization", "fname", "lname")):
            missing = _Invalid(
                2001, "organization", "A client needs a company or a first and last name.", None, "client"
            )
            return _errors(VALIDATION_STATUS, [missing])
        record = self._client_record(client)
        self.clients.append(record)
        self.created_client_ids.append(record["id"])
        return _json(200, {"response": {"result": {"client": copy.deepcopy(record)}}})

    def _client_record(self, client: dict[str, Any]) -> dict[str, Any]:
        """The client FreshBooks would record: the recorded shape, blank where nothing was sent."""
        now, client_id = self.clock(), self._next_client_id()
        record = {**copy.deepcopy(self.clients[0]), **NEW_CLIENT}
        record.update({key: value for key, value in client.items() if key in record})
        person = " ".join(part for part in (client.get("fname"), client.get("lname")) if part)
        record.update(
            {
                "id": client_id,
                "userid": client_id,
                "accounting_systemid": self.account_id,
                "organization": client.get("organization") or person,
                "currency_code": client.get("currency_code") or BASE_CURRENCY,
                "role": "client",
                "username": f"client{client_id}",
                "signup_date": now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "updated": eastern_text(now),
                "uuid": str(uuid.uuid4()),
                "vis_state": client.get("vis_state") or 0,
            }
        )
        return record

    def _next_client_id(self) -> int:
        return max(int(c["id"]) for c in self.clients) + 2

    def _client(self, customer_id: Any) -> dict[str, Any]:
        client = next((c for c in self.clients if str(c["id"]) == str(customer_id)), None)
        if client is None:
            raise _Invalid(1012, "customerid", "Client not found.", customer_id, "client")
        return client

    def _next_number(self) -> str:
        numbers = [
            int(r["invoice_number"]) for r in self.invoices.values() if str(r["invoice_number"]).isdigit()
        ]
        return f"{max(numbers, default=0) + 1:07d}"


# --- helpers --------------------------------------------------------------------------------


def _off_spec(body: Any, schema: str, spec: str = SPEC, obj: str = "invoice") -> httpx.Response | None:
    """A 400 listing how ``body`` departs from the SDK's model, or None when it fits."""
    problems = schema_errors(body, spec, schema) if body is not None else ["/: no JSON body"]
    if not problems:
        return None
    return _errors(400, [_Invalid(2001, obj, f"Invalid body: {p}", None, obj) for p in problems])


def _body(request: httpx.Request) -> Any:
    try:
        return jsonutil.loads(request.content) if request.content else None
    except ValueError:
        return None


def _dec(value: Any) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise ValueError(value)
    return number


def _date(value: Any, name: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise _Invalid(2001, name, f"Invalid value for field {name}.", value) from None


def _line(line: Any, number: int, currency: str) -> tuple[dict[str, Any], Decimal]:
    """A stored line and its tax (amount and tax computed as FreshBooks does, rounded per line)."""
    if not isinstance(line, dict):
        raise _Invalid(2001, "lines", "Invalid line.", line, "line")
    cost = line.get("unit_cost") or {}
    if cost.get("code", currency) != currency:
        raise _Invalid(
            2001, "unit_cost", "Line currency must match the invoice currency.", cost.get("code"), "line"
        )
    try:
        unit, qty = _dec(cost.get("amount")), _dec(line.get("qty", 1))
    except ValueError as exc:
        raise _Invalid(2001, "unit_cost", "Invalid value for field unit_cost.", str(exc), "line") from None
    amount = (unit * qty).quantize(CENT, rounding=ROUND_HALF_UP)
    tax = Decimal(0)
    stored = {
        "lineid": number,
        "type": line.get("type", 0),
        "name": line.get("name") or "",
        "description": line.get("description") or "",
        "qty": f"{qty:f}",
        "unit_cost": {"amount": f"{unit.quantize(CENT):f}", "code": currency},
        "amount": {"amount": f"{amount:f}", "code": currency},
        "taxName1": "",
        "taxAmount1": "0",
        "taxName2": "",
        "taxAmount2": "0",
        "compounded_tax": False,
        "updated": None,
    }
    for n in (1, 2):
        name, percent = line.get(f"taxName{n}"), line.get(f"taxAmount{n}")
        if name and percent is not None:
            stored[f"taxName{n}"], stored[f"taxAmount{n}"] = name, f"{_dec(percent):f}"
            tax += (amount * _dec(percent) / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    return stored, tax


def _shown(record: dict[str, Any], with_lines: bool) -> dict[str, Any]:
    """An invoice as answered: lines only when ``include[]=lines`` asked for them."""
    shown = copy.deepcopy(record)
    if not with_lines:
        shown.pop("lines", None)
    return shown


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        headers={"content-type": "application/json", **(headers or {})},
        content=jsonutil.dumps(body).encode(),
    )


def _errors(status: int, errors: list[_Invalid]) -> httpx.Response:
    return _json(status, {"response": {"errors": [error.error for error in errors]}})


def _not_found() -> httpx.Response:
    return _json(404, {"error_type": "not_found", "message": "The requested resource was not found."})
