"""A fake Exact Online (REST API v1 and OAuth server) that behaves like the recorded one.

One stateful object, used as ``httpx.MockTransport(fake.handle)`` in unit tests or behind a
real HTTP server end to end. It serves:

- ``POST /api/oauth2/token`` (``grant_type=refresh_token``, client id and secret in the form
  body): a new access token valid for 10 minutes (``expires_in`` is the string ``"600"``, as
  Exact sends it) and a *new* refresh token; the refresh token used dies, so presenting it
  again answers 400 ``{"error": "invalid_grant"}``. Wrong client credentials: 400
  ``invalid_client``. Too early: while the newest access token has more than 30 seconds left
  (issued less than 9.5 minutes ago and not expired with ``expire_access_tokens``), Exact
  refuses a new one: 400 ``{"error": "access_denied", "error_description": "Rate limit
  exceeded: access_token not expired"}`` and a ``Reason: TooEarlyToRefreshTokens: ...`` header,
  as Exact answers (the answer picqer/exact-php-client users quote); the refresh token stays
  valid.
- ``GET /api/oauth2/auth``: Exact's consent screen, a shared ``ConsentScreen`` (tests/fakes/consent.py)
  holding the request to what Exact documents: ``client_id``, the registered ``redirect_uri``,
  ``response_type=code`` and a ``state``; no scope is required (an Exact app's scopes are its App
  Store registration, see ``app_scopes``) and no PKCE (Exact documents none). Approving redirects
  with ``code`` and ``state`` only, as Exact's documented redirect does.
- ``POST /api/oauth2/token`` with ``grant_type=authorization_code`` (client id and secret in the
  form body, checked as for a refresh): the consent's code, single use, same client and
  ``redirect_uri``; refused: 400 ``invalid_grant``. Granted: the token answer of a refresh (a
  10-minute access token, ``expires_in`` a string, a refresh token), and the refresh token
  held before dies, as a new consent replaces the app's tokens.
- ``GET /api/v1/current/Me`` (the recorded user; ``$select`` honoured) and
  ``/api/v1/{division}/...`` for this division only (403 otherwise), with a bearer token issued
  less than 10 minutes ago by the fake's clock (401 with ``WWW-Authenticate`` otherwise).
- ``GET hrm/Divisions``: the divisions the consent gave the app (list-divisions.json), listed
  like every other list.
- App scopes: with ``app_scopes`` (scope name -> "Read" or "Manage", as an app registers them in
  Exact's App Store) each resource answers only within its scope, the one Exact's REST API
  reference names for it (``RESOURCE_SCOPES``, from api-scopes.json; current/Me and
  hrm/Divisions need none): a read
  outside the app's scopes, or a write with only "Read", is 403 "Forbidden - Application Scope
  Violated", as Exact answers. Without ``app_scopes`` nothing is checked (a self-registered app
  has no data scoping).
- ``POST salesinvoice/SalesInvoices``, ``salesentry/SalesEntries`` and
  ``purchaseentry/PurchaseEntries``: every body is first checked against Exact's own .NET client
  models (tests/fixtures/specs/exact-online/models.json): a property the entity does not have,
  one the models mark read-only, or a value of the wrong type is a 400 naming the problem
  (``validate_schema=False`` turns this off: then an unknown property is Exact's OData error and
  a read-only one is ignored, as the recorded purchase entry's AmountDC was). Then Exact's checks
  (journal, customer/supplier, items, G/L accounts, VAT codes, currencies, cost centres and
  units), VAT and totals computed; status 20, sales invoices unnumbered until processed, entries
  numbered (purchase entries from 24600007, after the recorded 24600006). A sales invoice's
  read-only ``InvoiceDate`` is its ``OrderDate`` at entry (as the recorded create came back);
  an entry keeps its ``EntryDate``. ``Rate`` is read as a double (the models' type) and books
  ``AmountDC = AmountFC x Rate`` (to the cent) in the division's currency (``division_currency``,
  EUR as recorded). The answer is the entity with its lines only linked (``__deferred``), as
  recorded; ``GET Entity(guid'...')?$expand=Lines`` reads it back with them.
- ``POST crm/Accounts``: the body checked against Exact's Account model as documents are, then
  Exact's rules: ``Name`` is mandatory (the one mandatory property on Exact's Accounts reference
  page); ``Code`` is the account's unique key (18 characters, the number right-aligned): one
  already taken is refused, none given gets the next number; ``Status`` is one of A, S, P, C (A
  when absent, as the recorded supplier shows); ``Country`` is a two-letter code; a sales or
  purchase currency must be one the division accepts. Names may repeat (Exact allows two
  accounts of one name). The account joins the accounts list, so invoices and entries can
  name it and the list serves it; the answer is 201 with the whole account, as Exact answers
  a POST.
- Lists (``crm/Accounts``, ``logistics/Items``, ``financial/GLAccounts``, ``hrm/Costcenters``,
  ``hrm/Costunits``, and the three document lists): ``$select`` (unknown properties are an
  error), ``$filter`` (``Prop eq 'text'|number|true|false`` joined by ``and``/``or``), 60
  records a page with an absolute ``__next`` link carrying ``$skiptoken=guid'<last id>'``.

Records come from tests/fixtures/providers/exact-online (recorded exchanges, trimmed; the
accounts, cost centres and cost units are written in the documented shape, see their notes).
The recorded items are given G/L accounts and a VAT code the recorded ``$select`` did not ask
for (GLRevenue: the account the recorded invoice line was booked on; GLCosts: the account of
the recorded purchase entry). VAT codes and rates, the error wording and the currencies the
division accepts are the fake's own (Exact's error shape, paraphrased messages).

Fault injection: ``fail_next(status, headers, times, body)`` answers the next requests with that
status (e.g. 429 with Retry-After, 503); ``timeout_next(times, after_processing)`` raises
httpx.ReadTimeout instead of answering, before or after doing the work (a lost response);
``expire_access_tokens()`` makes every issued access token answer 401. Every request is kept
in ``requests``; a lock makes the fake safe to share between threads.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import httpx

from ledgerbridge import jsonutil
from tests.fakes.consent import ConsentScreen, invalid_grant
from tests.fakes.faults import Faults
from tests.support.specs import document, schema_errors

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "exact-online"
DIVISION = 124132  # the recorded division
TOKEN_PATH = "/api/oauth2/token"
AUTHORIZE_PATH = "/api/oauth2/auth"
REDIRECT_URI = "https://ledgerbridge.example/connect/callback"  # the app's registered redirect URI
CLIENT_ID = "fake-exact-client-id"
CLIENT_SECRET = "fake-exact-client-secret"
ACCESS_TOKEN_SECONDS = 600
REFRESH_WINDOW_SECONDS = 30  # Exact issues a new access token only in the old one's last half minute
PAGE_SIZE = 60
SALES_JOURNAL, PURCHASE_JOURNAL = "70", "60"
DIVISION_CURRENCY = "EUR"
CURRENCIES = frozenset({"EUR", "USD", "GBP"})
VAT_CODES = {"AB": Decimal("0.20"), "V20": Decimal("0.20"), "V55": Decimal("0.055"), "0": Decimal(0)}
REVENUE_ACCOUNT = {
    "ID": "93182378-d983-4d91-88ea-a5004ebdb4cc",  # the recorded sales line's GLAccount
    "Code": "701000",
    "Description": "Ventes de produits finis",
    "Modified": "/Date(1537503556347)/",
}
COSTS_ACCOUNT = "f1edc15b-3506-4db1-9f32-00e6ff1910d6"  # the recorded purchase line's GLAccount (622000)
CENT = Decimal("0.01")
ACCOUNT_STATUSES = frozenset({"A", "S", "P", "C"})  # none, suspect, prospect, customer
ACCOUNT_CODE_WIDTH = 18
NEXT_SAFE = "$',"  # Exact's __next links keep these unescaped
_EPOCH = datetime(1970, 1, 1)


SPEC = "exact-online/models"  # Exact's .NET client models, as JSON Schema


def writable(model: str) -> frozenset[str]:
    """The properties Exact's models let a client write on ``model``."""
    return frozenset(document(SPEC)["schemas"][model]["properties"])


def read_only(model: str) -> frozenset[str]:
    """The properties Exact's models mark read-only on ``model`` (Exact ignores them when sent)."""
    return frozenset(document(SPEC)["schemas"][model]["x-read-only"])


def fixture(name: str) -> dict[str, Any]:
    """A recorded (or documented) exchange file, numbers as Decimals."""
    return jsonutil.loads((FIXTURES / f"{name}.json").read_bytes())


# The scope Exact's REST API reference names for each resource served (None: no scope needed).
RESOURCE_SCOPES: dict[str, str | None] = fixture("api-scopes")["scopes"]


def recorded_body(name: str, index: int = 0) -> Any:
    return fixture(name)["exchanges"][index]["response"]["body"]


def recorded_records(name: str) -> list[dict[str, Any]]:
    """The records of a recorded list answer, with or without the ``results`` wrapper."""
    data = recorded_body(name)["d"]
    return data if isinstance(data, list) else data["results"]


def _last_sunday(year: int, month: int) -> datetime:
    day = datetime(year, month + 1, 1) - timedelta(days=1)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def server_wall_time(instant: datetime) -> datetime:
    """What Exact's servers' clock (CET/CEST) shows at ``instant``, naive."""
    utc = instant.astimezone(UTC).replace(tzinfo=None)
    summer = _last_sunday(utc.year, 3).replace(hour=1) <= utc < _last_sunday(utc.year, 10).replace(hour=1)
    return utc + timedelta(hours=2 if summer else 1)


def ms_date(moment: datetime | date) -> str:
    """Exact's ``/Date(ms)/``: a wall-clock time (dates at midnight) counted as if it were UTC."""
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day)
    return f"/Date({(moment.replace(tzinfo=None) - _EPOCH) // timedelta(milliseconds=1)})/"


class ExactError(Exception):
    """An answer in Exact's error shape."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class _Collection:
    """A list the fake serves: its records, OData type and key."""

    records: list[dict[str, Any]]
    model: str
    key: str = "ID"


class FakeExactOnline:
    """See the module docstring."""

    def __init__(
        self,
        *,
        division: int = DIVISION,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        access_token: str = "exact-access-0",
        refresh_token: str = "exact-refresh-0",
        page_size: int = PAGE_SIZE,
        clock: Callable[[], float] = time.time,
        division_currency: str = DIVISION_CURRENCY,
        validate_schema: bool = True,
        redirect_uri: str = REDIRECT_URI,
        app_scopes: dict[str, str] | None = None,
    ):
        self.division, self.client_id, self.client_secret = division, client_id, client_secret
        self.page_size, self.clock = page_size, clock
        self.division_currency, self.validate_schema = division_currency, validate_schema
        self.access_tokens: dict[str, float] = {access_token: clock()}
        self.newest_access_token = access_token
        self.refresh_token = refresh_token
        self.retired_refresh_tokens: list[str] = []
        self.requests: list[httpx.Request] = []
        self.accounts = [_account_shape(account) for account in _plain(recorded_records("list-accounts"))]
        self.items = [
            {**item, "GLRevenue": REVENUE_ACCOUNT["ID"], "GLCosts": COSTS_ACCOUNT, "SalesVatCode": None,
             "StandardSalesPrice": Decimal(0)}
            for item in _plain(recorded_records("list-items"))
        ]  # fmt: skip
        self.gl_accounts = [*_plain(recorded_records("list-gl-accounts")), dict(REVENUE_ACCOUNT)]
        self.cost_centers = _plain(recorded_records("list-cost-centers"))
        self.cost_units = _plain(recorded_records("list-cost-units"))
        self.divisions = _plain(recorded_records("list-divisions"))
        self.app_scopes = app_scopes
        self.consent = ConsentScreen(
            AUTHORIZE_PATH, client_id, redirect_uri, required_scopes=(), pkce=False
        )  # Exact's authorisation request names no scope and takes no PKCE
        self.sales_invoices: dict[str, dict[str, Any]] = {}
        self.sales_entries: dict[str, dict[str, Any]] = {}
        self.purchase_entries: dict[str, dict[str, Any]] = {}
        self._faults = Faults("Exact Online")
        self._issued = 0
        self._next_order_number = 20  # the recorded direct sales invoice was order 19
        self._next_entry_number = 24600007  # after the recorded purchase entry 24600006
        self._next_sales_entry_number = 24700007  # after the recorded sales invoice 24700006
        self._lock = threading.RLock()

    # --- test controls ----------------------------------------------------------------------

    def fail_next(
        self, status: int, headers: dict[str, str] | None = None, times: int = 1, body: Any = None
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (e.g. 429 + Retry-After, 503)."""
        with self._lock:
            self._faults.fail(status, headers, times, body)

    def timeout_next(self, times: int = 1, after_processing: bool = False) -> None:
        """Raise httpx.ReadTimeout for the next requests; ``after_processing``: the work is done first."""
        with self._lock:
            self._faults.timeout(times, after_processing)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far now answers 401."""
        with self._lock:
            self.access_tokens.clear()

    def create_requests(self) -> list[httpx.Request]:
        """The POSTs that create documents, in order."""
        return [
            r
            for r in self.requests
            if r.method == "POST"
            and r.url.path.endswith(("/SalesInvoices", "/SalesEntries", "/PurchaseEntries"))
        ]

    def account_requests(self) -> list[httpx.Request]:
        """The POSTs that create accounts (contacts), in order."""
        return [r for r in self.requests if r.method == "POST" and r.url.path.endswith("/crm/Accounts")]

    def token_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == TOKEN_PATH]

    @staticmethod
    def body_of(request: httpx.Request) -> Any:
        return jsonutil.loads(request.content)

    # --- dispatch ---------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            request.read()
            self.requests.append(request)
            fault = self._faults.take(request, lambda: self._route(request))
            if fault:
                return fault.response()
            return self._route(request)

    def _route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if self.consent.handles(request):
            return self.consent.handle(request)
        if path == TOKEN_PATH:
            return self._token(request)
        if not path.startswith("/api/v1/"):
            return _error(404, "Not found")
        refused = self._refuse_access(request)
        if refused:
            return refused
        if path == "/api/v1/current/Me":
            return self._me(request)
        division, _, resource = path[len("/api/v1/") :].partition("/")
        if division != str(self.division):
            return _error(403, "Forbidden: you have no access to this division")
        try:
            self._check_scope(request, resource)
            return self._resource(request, resource)
        except ExactError as exc:
            return _error(exc.status, str(exc))

    def _refuse_access(self, request: httpx.Request) -> httpx.Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        issued = self.access_tokens.get(token) if scheme.lower() == "bearer" else None
        if issued is None or self.clock() - issued >= ACCESS_TOKEN_SECONDS:
            response = _error(401, "Unauthorized")
            response.headers["www-authenticate"] = 'Bearer error="invalid_token"'
            return response
        return None

    def _me(self, request: httpx.Request) -> httpx.Response:
        body = copy.deepcopy(recorded_body("get-current-user"))
        select = request.url.params.get("$select")
        body["d"]["results"] = [
            {"__metadata": user["__metadata"], **_select(user, select)} for user in body["d"]["results"]
        ]
        return _json(200, body)

    def _check_scope(self, request: httpx.Request, resource: str) -> None:
        """Exact's data scoping: the resource's scope, registered by the app at the access it needs."""
        if self.app_scopes is None:
            return
        scope = RESOURCE_SCOPES.get(resource.partition("(")[0])
        if scope is None:
            return
        access = self.app_scopes.get(scope)
        writing = request.method != "GET"
        if access is None or (writing and access != "Manage"):
            verb, technical = "manage" if writing else "read", scope.lower().replace(" ", ".")
            message = f"Forbidden - Application Scope Violated. Cannot {verb} '{technical}' scope."
            raise ExactError(message, 403)

    def _resource(self, request: httpx.Request, resource: str) -> httpx.Response:
        name, _, key = resource.partition("(")
        documents = {
            "salesinvoice/SalesInvoices": (
                self.sales_invoices, "SalesInvoice", "InvoiceID", "SalesInvoiceLines",
                self._create_sales_invoice),
            "salesentry/SalesEntries": (
                self.sales_entries, "SalesEntry", "EntryID", "SalesEntryLines", self._create_sales_entry),
            "purchaseentry/PurchaseEntries": (
                self.purchase_entries, "PurchaseEntry", "EntryID", "PurchaseEntryLines",
                self._create_purchase_entry),
        }  # fmt: skip
        if name in documents:
            store, model, key_name, lines, create = documents[name]
            if key:
                return self._get_document(request, name, store, model, key, lines)
            if request.method == "POST":
                record = create(self._checked(_body(request), model))
                return _json(200, {"d": self._document(request, name, model, record, lines, expand=False)})
            rows = [{**r, lines: {"__deferred": {}}} for r in store.values()]
            return self._list(request, name, _Collection(rows, model, key_name))
        if name == "crm/Accounts" and request.method == "POST" and not key:
            account = self._create_account(self._checked(_body(request), "Account"))
            return _json(201, {"d": self._entity(request, name, "Account", account)})
        collections = {
            "crm/Accounts": _Collection(self.accounts, "Account"),
            "logistics/Items": _Collection(self.items, "Item"),
            "financial/GLAccounts": _Collection(self.gl_accounts, "GLAccount"),
            "hrm/Costcenters": _Collection(self.cost_centers, "Costcenter"),
            "hrm/Costunits": _Collection(self.cost_units, "Costunit"),
            "hrm/Divisions": _Collection(self.divisions, "HRM.Division", key="Code"),
        }
        if request.method != "GET" or name not in collections or key:
            raise ExactError(f"Resource not found for the segment '{resource}'", 404)
        return self._list(request, name, collections[name])

    # --- OAuth ------------------------------------------------------------------------------

    def _token(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST":
            return _json(405, {"error": "invalid_request"})
        form = {key: values[0] for key, values in parse_qs(request.content.decode()).items()}
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.client_secret):
            return _json(400, {"error": "invalid_client"})
        if form.get("grant_type") == "authorization_code":
            refused = self.consent.exchange(form, form.get("client_id"))
            return invalid_grant(refused) if refused else self._issue_tokens()
        if form.get("grant_type") != "refresh_token":
            return _json(400, {"error": "unsupported_grant_type"})
        if form.get("refresh_token") != self.refresh_token:
            return _json(
                400, {"error": "invalid_grant", "error_description": "The refresh token is invalid."}
            )
        if self._too_early():
            refusal = {
                "error": "access_denied",
                "error_description": "Rate limit exceeded: access_token not expired",
            }
            too_early = _json(400, refusal)
            too_early.headers["Reason"] = f"TooEarlyToRefreshTokens: {refusal['error_description']}"
            return too_early
        return self._issue_tokens()

    def _issue_tokens(self) -> httpx.Response:
        """A new access token and refresh token; the refresh token held until now dies."""
        self._issued += 1
        access, refresh = f"exact-access-{self._issued}", f"exact-refresh-{self._issued}"
        self.retired_refresh_tokens.append(self.refresh_token)
        self.refresh_token = refresh
        self.access_tokens[access] = self.clock()
        self.newest_access_token = access
        return _json(
            200,
            {
                "access_token": access,
                "token_type": "bearer",
                "expires_in": str(ACCESS_TOKEN_SECONDS),
                "refresh_token": refresh,
            },
        )

    def _too_early(self) -> bool:
        """Whether the newest access token still has more than Exact's half minute to live."""
        issued = self.access_tokens.get(self.newest_access_token)
        return issued is not None and self.clock() - issued < ACCESS_TOKEN_SECONDS - REFRESH_WINDOW_SECONDS

    # --- reads ------------------------------------------------------------------------------

    def _base(self, request: httpx.Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc.decode()}/api/v1/{self.division}"

    def _list(self, request: httpx.Request, name: str, collection: _Collection) -> httpx.Response:
        params = request.url.params
        records = [r for r in collection.records if _matches(r, params.get("$filter"))]
        token = params.get("$skiptoken")
        if token:
            last = token.removeprefix("guid'").removesuffix("'")
            ids = [str(r[collection.key]) for r in records]
            records = records[ids.index(last) + 1 :] if last in ids else []
        page = records[: self.page_size]
        select = params.get("$select")
        base = self._base(request)
        results = [
            {
                "__metadata": {
                    "uri": f"{base}/{name}(guid'{r[collection.key]}')",
                    "type": f"Exact.Web.Api.Models.{collection.model}",
                },
                **_select(copy.deepcopy(r), select),
            }
            for r in page
        ]
        data: dict[str, Any] = {"results": results}
        if len(records) > self.page_size:
            kept = {k: v for k, v in params.items() if k in ("$select", "$filter")}
            kept["$skiptoken"] = f"guid'{page[-1][collection.key]}'"
            data["__next"] = f"{base}/{name}?{urlencode(kept, safe=NEXT_SAFE, quote_via=quote)}"
        return _json(200, {"d": data})

    def _get_document(
        self,
        request: httpx.Request,
        name: str,
        store: dict[str, dict[str, Any]],
        model: str,
        key: str,
        lines: str,
    ) -> httpx.Response:
        if request.method != "GET":
            raise ExactError("Method not allowed", 405)
        record = store.get(key.removeprefix("guid'").removesuffix("')"))
        if record is None:
            raise ExactError("Resource not found", 404)
        expand = request.url.params.get("$expand") == lines
        return _json(200, {"d": self._document(request, name, model, record, lines, expand)})

    def _document(
        self, request: httpx.Request, name: str, model: str, record: dict[str, Any], lines: str, expand: bool
    ) -> dict[str, Any]:
        """A document as Exact answers it: its lines expanded, or only linked (``__deferred``)."""
        uri = f"{self._base(request)}/{name}(guid'{record.get('InvoiceID') or record.get('EntryID')}')"
        answer = {
            "__metadata": {"uri": uri, "type": f"Exact.Web.Api.Models.{model}"},
            **copy.deepcopy(record),
        }
        answer[lines] = {"results": answer[lines]} if expand else {"__deferred": {"uri": f"{uri}/{lines}"}}
        return answer

    # --- creates ----------------------------------------------------------------------------

    def _now(self) -> str:
        return ms_date(server_wall_time(datetime.fromtimestamp(self.clock(), UTC)))

    def _today(self) -> date:
        return server_wall_time(datetime.fromtimestamp(self.clock(), UTC)).date()

    def _checked(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        """The body checked against Exact's models, or (unchecked) filtered as Exact itself does."""
        if self.validate_schema:
            problems = schema_errors(body, SPEC, model)
            if problems:
                raise ExactError(f"Body breaks Exact's {model} model: " + "; ".join(problems))
            return body
        return _known_properties(body, model)

    def _create_account(self, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("Name"):
            raise ExactError("Mandatory: Name")
        code = _account_code(body.get("Code") or str(self._next_account_number()))
        if any(account["Code"] == code for account in self.accounts):
            raise ExactError(f"Code: an account with code {code.strip()} already exists")
        status = body.get("Status") or "A"
        if status not in ACCOUNT_STATUSES:
            raise ExactError(f"Status: invalid value '{status}'")
        country = body.get("Country")
        if country is not None and not (len(country) == 2 and country.isalpha() and country.isupper()):
            raise ExactError(f"Country: Not found ({country})")
        for label in ("SalesCurrency", "PurchaseCurrency"):
            if body.get(label) is not None:
                self._currency(body[label])
        now = self._now()
        account = _account_shape({
            **body, "ID": str(uuid.uuid4()), "Code": code, "Status": status,
            "IsSupplier": bool(body.get("IsSupplier")), "Blocked": bool(body.get("Blocked")),
            "Created": now, "Modified": now, "Division": self.division, "Type": "A",
            "Creator": "cc20a11b-c137-48cc-8e55-09d4adbd4ac9", "CreatorFullName": "Samuel Bodin",
        })  # fmt: skip
        self.accounts.append(account)
        return account

    def _next_account_number(self) -> int:
        numbers = [int(a["Code"]) for a in self.accounts if str(a.get("Code") or "").strip().isdigit()]
        return max(numbers, default=0) + 1

    def _entity(
        self, request: httpx.Request, name: str, model: str, record: dict[str, Any]
    ) -> dict[str, Any]:
        """One entity as Exact answers it, with its ``__metadata``."""
        uri = f"{self._base(request)}/{name}(guid'{record['ID']}')"
        return {"__metadata": {"uri": uri, "type": f"Exact.Web.Api.Models.{model}"}, **copy.deepcopy(record)}

    def _create_sales_invoice(self, body: dict[str, Any]) -> dict[str, Any]:
        journal = body.get("Journal")
        if not journal:
            raise ExactError("Mandatory: Journal")
        if journal != SALES_JOURNAL:
            raise ExactError(f"Journal: '{journal}' is not a sales journal")
        customer = self._account(body.get("OrderedBy"), "Ordered by", supplier=False)
        currency = self._currency(body.get("Currency"))
        lines_in = body.get("SalesInvoiceLines")
        if not isinstance(lines_in, list) or not lines_in:
            raise ExactError("Mandatory: Sales invoice lines")
        invoice_id = str(uuid.uuid4())
        lines = [self._sales_line(invoice_id, n, line) for n, line in enumerate(lines_in, start=1)]
        issued = _date(body.get("OrderDate"), "Order date") or self._today()
        due = _date(body.get("DueDate"), "Due date") or issued
        excl = sum((line["AmountFC"] for line in lines), Decimal(0))
        vat = sum((line["VATAmountFC"] for line in lines), Decimal(0))
        order_number = body.get("OrderNumber") or self._next_order_number
        self._next_order_number = max(self._next_order_number, int(order_number)) + 1
        now = self._now()
        record = {
            "AmountFC": excl + vat, "AmountDiscount": 0, "AmountDC": excl + vat, "AmountDiscountExclVat": 0,
            "AmountFCExclVat": excl, "Created": now, "Creator": "cc20a11b-c137-48cc-8e55-09d4adbd4ac9",
            "CreatorFullName": "Samuel Bodin", "Currency": currency, "DeliverTo": customer["ID"],
            "DeliverToName": customer["Name"], "Description": body.get("Description"), "Discount": 0,
            "DiscountType": 1, "Division": self.division, "DueDate": ms_date(due),
            "InvoiceDate": ms_date(issued),
            "InvoiceID": invoice_id, "InvoiceTo": body.get("InvoiceTo") or customer["ID"],
            "InvoiceToName": customer["Name"], "InvoiceNumber": None, "Journal": journal,
            "JournalDescription": "Ventes", "Modified": now, "OrderDate": ms_date(issued),
            "OrderedBy": customer["ID"], "OrderedByName": customer["Name"], "OrderNumber": int(order_number),
            "PaymentCondition": "00", "PaymentConditionDescription": "Comptant",
            "PaymentReference": body.get("PaymentReference"), "Remarks": body.get("Remarks"), "Status": 20,
            "StatusDescription": "Open", "Type": body.get("Type") or 8020,
            "TypeDescription": "Direct sales invoice" if body.get("Type") == 8023 else "Sales invoice",
            "VATAmountFC": vat, "VATAmountDC": vat, "YourRef": body.get("YourRef"),
            "SalesInvoiceLines": lines,
        }  # fmt: skip
        self.sales_invoices[invoice_id] = record
        return record

    def _sales_line(self, invoice_id: str, number: int, line: Any) -> dict[str, Any]:
        if not isinstance(line, dict):
            raise ExactError("Sales invoice lines: invalid value")
        line = _known_properties(line, "SalesInvoiceLine")
        item = self._item(line.get("Item"))
        quantity = _number(line.get("Quantity"), "Quantity", Decimal(1))
        price = _number(line.get("NetPrice"), "Net price", None)
        if price is not None:
            amount = (quantity * price).quantize(CENT, rounding=ROUND_HALF_UP)
        elif line.get("AmountFC") is not None:
            amount = _number(line.get("AmountFC"), "Amount", Decimal(0))
            price = amount / quantity if quantity else Decimal(0)
        else:
            price = item["StandardSalesPrice"]
            amount = (quantity * price).quantize(CENT, rounding=ROUND_HALF_UP)
        code = line.get("VATCode") or item.get("SalesVatCode")
        rate = self._vat_rate(code)
        vat = (amount * rate).quantize(CENT, rounding=ROUND_HALF_UP)
        return {
            "AmountDC": amount, "AmountFC": amount, "CostCenter": self._cost_center(line.get("CostCenter")),
            "CostUnit": self._cost_unit(line.get("CostUnit")),
            "Description": line.get("Description") or item["Description"], "Discount": 0,
            "Division": self.division, "GLAccount": item["GLRevenue"],
            "GLAccountDescription": REVENUE_ACCOUNT["Description"], "ID": str(uuid.uuid4()),
            "InvoiceID": invoice_id, "Item": item["ID"], "ItemCode": item["Code"],
            "ItemDescription": item["Description"], "LineNumber": number, "NetPrice": price,
            "Quantity": quantity, "UnitCode": "pc", "UnitPrice": price, "VATAmountFC": vat,
            "VATAmountDC": vat,
            "VATCode": code, "VATPercentage": rate if code else None,
        }  # fmt: skip

    def _create_purchase_entry(self, body: dict[str, Any]) -> dict[str, Any]:
        supplier = self._account(body.get("Supplier"), "Supplier", supplier=True)
        entry = self._entry(body, _PURCHASES, supplier)
        self.purchase_entries[entry["EntryID"]] = entry
        return entry

    def _create_sales_entry(self, body: dict[str, Any]) -> dict[str, Any]:
        customer = self._account(body.get("Customer"), "Customer", supplier=False)
        number = self._next_sales_entry_number
        self._next_sales_entry_number += 1
        entry = self._entry(body, _SALES, customer, number)
        self.sales_entries[entry["EntryID"]] = entry
        return entry

    def _entry(
        self, body: dict[str, Any], side: _EntrySide, account: dict[str, Any], number: int | None = None
    ) -> dict[str, Any]:
        """A purchase or sales entry: lines booked on G/L accounts, in the division's currency at ``Rate``."""
        journal = body.get("Journal")
        if not journal:
            raise ExactError("Mandatory: Journal")
        if journal != side.journal:
            raise ExactError(f"Journal: '{journal}' is not a {side.label} journal")
        currency = self._currency(body.get("Currency"))
        rate = _double(body.get("Rate"), "Rate", Decimal(1))
        lines_in = body.get(side.lines)
        if not isinstance(lines_in, list) or not lines_in:
            raise ExactError(f"Mandatory: {side.label.capitalize()} entry lines")
        entry_id = str(uuid.uuid4())
        lines = [self._entry_line(entry_id, n, line, rate, side) for n, line in enumerate(lines_in, start=1)]
        entered = _date(body.get("EntryDate"), "Entry date") or self._today()
        due = _date(body.get("DueDate"), "Due date") or entered + timedelta(days=30)
        excl = sum((line["AmountFC"] for line in lines), Decimal(0))
        vat = sum((line["VATAmountFC"] for line in lines), Decimal(0))
        if number is None:
            number = self._next_entry_number
            self._next_entry_number += 1
        now = self._now()
        record = {
            "EntryID": entry_id, "AmountDC": _booked(excl + vat, rate), "AmountFC": excl + vat,
            "BatchNumber": None, "Created": now, "Creator": "cc20a11b-c137-48cc-8e55-09d4adbd4ac9",
            "CreatorFullName": "Samuel Bodin", "Currency": currency, side.contact: account["ID"],
            f"{side.contact}Name": account["Name"], "Description": body.get("Description"),
            "Division": self.division,
            "DueDate": ms_date(due), "EntryDate": ms_date(entered), "EntryNumber": number,
            "InvoiceNumber": number, "Journal": journal, "JournalDescription": side.journal_name,
            "Modified": now, "PaymentCondition": "30", "PaymentConditionDescription": "30 jours",
            "PaymentReference": body.get("PaymentReference"), "Rate": rate, "ReportingYear": entered.year,
            "ReportingPeriod": entered.month, "Reversal": False, "Status": 20, "StatusDescription": "Open",
            "Type": side.type, "TypeDescription": f"{side.label.capitalize()} entry",
            "VATAmountDC": _booked(vat, rate), "VATAmountFC": vat, "YourRef": body.get("YourRef"),
            side.lines: lines,
        }  # fmt: skip
        return record

    def _entry_line(
        self, entry_id: str, number: int, line: Any, rate: Decimal, side: _EntrySide
    ) -> dict[str, Any]:
        if not isinstance(line, dict):
            raise ExactError(f"{side.label.capitalize()} entry lines: invalid value")
        line = _known_properties(line, side.line_model)
        account = next((a for a in self.gl_accounts if a["ID"] == line.get("GLAccount")), None)
        if not line.get("GLAccount"):
            raise ExactError("Mandatory: G/L account")
        if account is None:
            raise ExactError(f"G/L account: Not found ({line.get('GLAccount')})")
        amount = _number(line.get("AmountFC"), "Amount", Decimal(0))
        code = line.get("VATCode")
        vat_rate = self._vat_rate(code)
        vat = (amount * vat_rate).quantize(CENT, rounding=ROUND_HALF_UP)
        return {
            "ID": str(uuid.uuid4()), "AmountDC": _booked(amount, rate), "AmountFC": amount,
            "CostCenter": self._cost_center(line.get("CostCenter")),
            "CostUnit": self._cost_unit(line.get("CostUnit")), "Description": line.get("Description"),
            "Division": self.division, "EntryID": entry_id, "GLAccount": account["ID"],
            "GLAccountCode": account["Code"], "GLAccountDescription": account["Description"],
            "LineNumber": number, "Quantity": line.get("Quantity"), "Type": side.type, "VATAmountFC": vat,
            "VATAmountDC": _booked(vat, rate), "VATCode": code,
            "VATPercentage": vat_rate if code else None,
        }  # fmt: skip

    # --- lookups ----------------------------------------------------------------------------

    def _account(self, account_id: Any, label: str, supplier: bool) -> dict[str, Any]:
        if not account_id:
            raise ExactError(f"Mandatory: {label}")
        account = next((a for a in self.accounts if a["ID"] == account_id), None)
        if account is None:
            raise ExactError(f"{label}: Not found ({account_id})")
        if supplier and not account.get("IsSupplier"):
            raise ExactError(f"{label}: account '{account['Name']}' is not a supplier")
        if not supplier and account.get("Status") != "C":
            raise ExactError(f"{label}: account '{account['Name']}' is not a customer")
        if account.get("Blocked"):
            raise ExactError(f"{label}: account '{account['Name']}' is blocked")
        return account

    def _currency(self, code: Any) -> str:
        currency = code or self.division_currency
        if currency not in CURRENCIES | {self.division_currency}:
            raise ExactError(f"Currency: Not found ({currency})")
        return str(currency)

    def _item(self, item_id: Any) -> dict[str, Any]:
        if not item_id:
            raise ExactError("Mandatory: Item")
        item = next((i for i in self.items if i["ID"] == item_id), None)
        if item is None:
            raise ExactError(f"Item: Not found ({item_id})")
        if not item.get("IsSalesItem"):
            raise ExactError(f"Item '{item['Code']}' is not a sales item")
        return item

    def _vat_rate(self, code: Any) -> Decimal:
        if code is None:
            return Decimal(0)
        if code not in VAT_CODES:
            raise ExactError(f"VAT code: Not found ({code})")
        return VAT_CODES[code]

    def _cost_center(self, code: Any) -> str | None:
        if code is not None and not any(c["Code"] == code for c in self.cost_centers):
            raise ExactError(f"Cost center: Not found ({code})")
        return code

    def _cost_unit(self, code: Any) -> str | None:
        if code is not None and not any(c["Code"] == code for c in self.cost_units):
            raise ExactError(f"Cost unit: Not found ({code})")
        return code


# --- helpers --------------------------------------------------------------------------------


def _plain(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without their ``__metadata`` (the fake writes its own, for its own host)."""
    return [{k: v for k, v in record.items() if k != "__metadata"} for record in records]


def _account_shape(record: dict[str, Any]) -> dict[str, Any]:
    """An account with every property of Exact's Account model (unset ones null), as Exact answers it."""
    properties = sorted(writable("Account") | read_only("Account"))
    return {**dict.fromkeys(properties), **record}


def _account_code(code: str) -> str:
    """Exact's account code: 18 characters, the number right-aligned with leading spaces."""
    return code.strip().rjust(ACCOUNT_CODE_WIDTH)


def _body(request: httpx.Request) -> dict[str, Any]:
    try:
        body = jsonutil.loads(request.content)
    except ValueError:
        raise ExactError("Error processing request stream. The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ExactError("Error processing request stream. An entity was expected.")
    return body


def _known_properties(body: dict[str, Any], model: str) -> dict[str, Any]:
    """What Exact reads of a body: an unknown property is its OData error, a read-only one is ignored."""
    for name in body:
        if name not in writable(model) | read_only(model):
            raise ExactError(
                f"Error processing request stream. The property name '{name}' specified for type "
                f"'Exact.Web.Api.Models.{model}' is not valid."
            )
    return {name: value for name, value in body.items() if name not in read_only(model)}


def _double(value: Any, label: str, default: Decimal) -> Decimal:
    """A number Exact's models type as Double: what Exact keeps is the nearest double."""
    number = _number(value, label, default)
    return Decimal(repr(float(number)))


def _booked(amount: Decimal, rate: Decimal) -> Decimal:
    """An amount in the division's currency: AmountFC x Rate, to the cent."""
    return (amount * rate).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class _EntrySide:
    """What differs between a purchase entry and a sales entry in the fake."""

    label: str
    journal: str
    journal_name: str
    contact: str
    lines: str
    line_model: str
    type: int


_PURCHASES = _EntrySide(
    "purchase", PURCHASE_JOURNAL, "Achats", "Supplier", "PurchaseEntryLines", "PurchaseEntryLine", 30
)
_SALES = _EntrySide("sales", SALES_JOURNAL, "Ventes", "Customer", "SalesEntryLines", "SalesEntryLine", 20)


def _number(value: Any, label: str, default: Decimal | None) -> Decimal:
    if value is None:
        return default  # type: ignore[return-value]
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ExactError(f"{label}: invalid number")
    return Decimal(value)


def _date(value: Any, label: str) -> date | None:
    """Exact takes ISO dates, date-times, and its own /Date(ms)/ form."""
    if value is None:
        return None
    text = str(value)
    try:
        if text.startswith("/Date("):
            return (_EPOCH + timedelta(milliseconds=int(text[6:].split(")")[0]))).date()
        return date.fromisoformat(text[:10])
    except (ValueError, InvalidOperation):
        raise ExactError(f"{label}: invalid date '{text}'") from None


def _select(record: dict[str, Any], select: str | None) -> dict[str, Any]:
    if not select:
        return record
    names = [name.strip() for name in select.split(",") if name.strip()]
    missing = [name for name in names if name not in record]
    if missing:
        raise ExactError(f"No property '{missing[0]}' exists in the type of the resource")
    return {name: record[name] for name in names}


def _literal(text: str) -> Any:
    text = text.strip()
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("''", "'")
    if text in ("true", "false"):
        return text == "true"
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ExactError(f"The $filter value {text} is not supported by this fake") from None


def _matches(record: dict[str, Any], expression: str | None) -> bool:
    """``A eq x or B eq y and C eq z`` (``and`` binds tighter), no parentheses."""
    if not expression:
        return True
    for alternative in expression.split(" or "):
        terms = [term.strip() for term in alternative.split(" and ")]
        if all(_term(record, term) for term in terms):
            return True
    return False


def _term(record: dict[str, Any], term: str) -> bool:
    name, op, value = term.partition(" eq ")
    if not op or name.strip() not in record:
        raise ExactError(f"The $filter term '{term}' is not supported by this fake")
    return record[name.strip()] == _literal(value)


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(
        status,
        headers={"content-type": "application/json;charset=utf-8"},
        content=jsonutil.dumps(body).encode(),
    )


def _error(status: int, message: str) -> httpx.Response:
    """Exact's OData error shape."""
    return _json(status, {"error": {"code": "", "message": {"lang": "", "value": message}}})
