"""A stateful Zoho Books API (v3) and Zoho accounts token endpoint, for tests.

Built from the recorded exchanges in ``tests/fixtures/providers/zoho-books`` (record shapes, the
organisation's contacts, items, chart of accounts, a recorded invoice and bill) and Zoho's
documentation (paths, ``organization_id``, ``code``/``message`` answers, ``page_context``
paging, ``reference_number`` search, mark-as-sent, delete). Use it with
``httpx.MockTransport(fake.handle)``, or behind tests/fakes/server.py end to end.

What it models:
- ``GET /oauth/v2/auth``: Zoho's consent screen (tests/fakes/consent.py), requiring the scopes
  Zoho's Books reference names for every operation this fake serves
  (tests/fixtures/specs/zoho-books/connect.json), comma-separated, and no PKCE (Zoho documents
  it for client-based apps only). Approving redirects with ``code``, ``state`` and Zoho's
  multi-DC extras ``location`` and ``accounts-server``; refusing with ``error=access_denied``.
  Only a consent asked with ``access_type=offline`` earns a refresh token at the exchange.
- ``POST /oauth/v2/token`` (``grant_type=refresh_token`` or ``authorization_code``): the client
  id and secret as form fields or query parameters, as Zoho documents (HTTP Basic is not read).
  A code is exchanged once, for the redirect URI it was issued to, answering Zoho's token shape
  (``access_token``, ``refresh_token``, ``api_domain``, ``token_type``, ``expires_in``); the
  tokens then work on the API and refresh. A refresh issues a new access token and *no* refresh
  token: Zoho refresh tokens do not rotate and stay valid. Zoho answers refusals with HTTP 200
  and an ``error`` field: ``invalid_code`` for an unknown, used or revoked code or refresh
  token, ``invalid_client`` for wrong client credentials.
- ``POST /oauth/v2/token/revoke?token=``: revokes a refresh token and every access token made
  with it (or one access token), answering ``{"status": "success"}``; an unknown token is a 400
  (its body is not documented: the fake's is ``{"error": "invalid_token"}``).
- ``GET /books/v3/organizations`` (no ``organization_id``): the organisations of the token's
  user, from ``list-organizations.json`` (``organizations``, which tests may change).
- ``/books/v3/...``: ``Authorization: Zoho-oauthtoken <token>`` (what Zoho documents) or
  ``Bearer <token>`` (the OAuth standard, which Zoho's accounts documentation also accepts);
  otherwise 401 ``{"code": 57, ...}``. Another organisation's ``organization_id`` answers 400.
- ``POST /invoices`` and ``POST /bills``: Zoho's rules as far as tests need them (known customer
  or vendor, the contact's currency, at least one line, known items, accounts, taxes and custom
  fields, a line name or item, a bill number, a custom invoice number only with
  ``ignore_auto_number_generation=true`` and only once), then a record shaped like the
  recorded ones: invoices ``draft`` with the next ``INV-`` number, bills ``open``; rates from
  the item when not given; line totals rounded to the cent; an entity-level discount before
  tax; tax from the line's ``tax_id``. Answers 201 ``{"code": 0, "message", "invoice"|"bill"}``.
- ``GET /invoices|bills`` (``reference_number`` exact; ``custom_field``, on invoices, exact on
  any custom field's value; ``page``/``per_page``), ``GET|DELETE /invoices|bills/{id}``,
  ``POST /invoices/{id}/status/sent``, ``GET|POST /invoices|bills/{id}/comments`` (a comment
  list that, as Zoho's, also holds the document's history: a "created" entry of type
  ``system``), ``GET /contacts``, ``/items``, ``/chartofaccounts`` (paged, with ``page_context``).
- ``POST /contacts``: a customer or vendor (``contact_type``, customer by default) as Zoho's
  Contacts reference documents it: ``contact_name`` required and, as Zoho refuses by default
  ("allow duplicate display names" is off), not another contact's (any case); a known
  ``currency_id`` (the base currency when absent) and custom fields; then the full record
  (addresses, contact persons, notes, the edition's tax-number field) answered 201
  ``{"code": 0, "message", "contact"}``. It joins the contact list, so invoices and bills can
  name it. ``GET /contacts/{id}`` answers the full record; ``GET /contacts`` answers list rows
  (no addresses, notes or persons: the primary person's email, phone and mobile flattened, as
  Zoho's rows are) and searches them with ``search_text`` (names or notes, contains, any case)
  and ``contact_name``. ``GET /settings/currencies`` lists the organisation's currencies.
- Every request's query and every body is first held to the documented fields
  (tests/fixtures/specs/zoho-books/books_v3.json, written from Zoho's own SDK and API
  reference): an undocumented query parameter or body field, or a value of the wrong type, is a
  400 ``{"code": 4, ...}`` naming it (``validate_schema=False`` turns this off).
- Currencies as Zoho keeps them: ``exchange_rate`` is read as a double (its SDK's type) and
  converts to the base currency: ``bcy_rate`` = rate x exchange_rate and ``bcy_total`` /
  ``bcy_sub_total`` / ``bcy_tax_total`` = the totals x exchange_rate, to the cent.

Error ``code`` values and message wording are Zoho's where recorded or documented ("Invoice
does not exist.", code 1002) and a close paraphrase otherwise; all errors use Zoho's
``{"code": n, "message": "..."}`` shape. The tax rate and custom field below are hand-written
(the recorded US organisation has none). Not modelled: approvals, payments, taxes on
discounts beyond a proportional share, exchange-rate feeds, updates.

Fault injection on any request, in FIFO order: ``fail_next`` (e.g. 429 + Retry-After, 503),
``timeout_next`` (httpx.ReadTimeout before, or after, the fake did the work: a lost answer);
``refuse_marking_sent`` and ``refuse_commenting`` make the next mark-as-sent or comment fail.
Every request is kept in ``requests``.
"""

from __future__ import annotations

import copy
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from ledgerbridge import jsonutil
from tests.fakes.consent import ConsentScreen
from tests.fakes.faults import Faults
from tests.support.specs import document, query_errors, schema_errors

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "zoho-books"
API = "/books/v3"
TOKEN_PATH = "/oauth/v2/token"
AUTHORIZE_PATH = "/oauth/v2/auth"
REVOKE_PATH = "/oauth/v2/token/revoke"
REDIRECT_URI = "https://ledgerbridge.test/connect/callback"
# What Zoho adds to the callback for a user of the US data centre (its "Multi DC support" page).
CALLBACK_EXTRAS = {"location": "us", "accounts-server": "https://accounts.zoho.com"}
ORGANIZATION_ID = "927270289"  # the recorded organisation
CLIENT_ID = "1000.FAKEZOHOCLIENTID"
CLIENT_SECRET = "fake-zoho-client-secret"
ORG_TZ = timezone(timedelta(hours=-4))  # the recorded organisation answers in US Eastern (summer) time
PAGE_SIZE = 200
# Hand-written: the recorded organisation has no taxes and no custom fields.
TAXES = {"260815000000141001": ("Sales Tax", Decimal("8.25"))}
# The recorded organisation's base currency (its contacts' currency_id) and a hand-written second one.
CURRENCIES = {"USD": "260815000000000097", "EUR": "260815000000000103"}
BASE_CURRENCY = "USD"
CONTACT_FIELD = "260815000000140005"  # a hand-written contact custom field ("Account manager")
PO_NUMBER_FIELD = "260815000000140001"
REFERENCE_FIELD = "260815000000140003"  # a text field for invoices, kept off the PDF: where the id can go
SPEC = "zoho-books/books_v3"
CONNECT_SPEC = "zoho-books/connect"
CENT = Decimal("0.01")
_CONTACT = re.compile(r"^contacts/(?P<id>\d+)$")
# What a list row of GET /contacts carries (Zoho's List Contacts answer), of a full record.
CONTACT_ROW_KEYS = (
    "contact_id", "contact_name", "customer_name", "vendor_name", "company_name", "contact_type", "status",
    "payment_terms", "payment_terms_label", "currency_id", "currency_code", "first_name", "last_name",
    "email", "phone", "mobile", "created_time", "last_modified_time",
)  # fmt: skip
ADDRESS_KEYS = ("attention", "address", "street2", "city", "state", "zip", "country", "fax", "phone")
_DOCUMENT = re.compile(r"^(?P<resource>invoices|bills)(?:/(?P<id>\d+)(?P<sub>/status/sent|/comments)?)?$")


def fixture(name: str) -> dict[str, Any]:
    """A recorded exchange file, numbers as Decimals."""
    return jsonutil.loads((FIXTURES / f"{name}.json").read_bytes())


def recorded_body(name: str) -> Any:
    """The response body of the first exchange of a fixture."""
    return fixture(name)["exchanges"][0]["response"]["body"]


@dataclass(frozen=True)
class _Kind:
    resource: str
    entity: str
    id_key: str
    number_key: str
    contact_key: str
    contact_type: str
    label: str


INVOICE = _Kind("invoices", "invoice", "invoice_id", "invoice_number", "customer_id", "customer", "Invoice")
BILL = _Kind("bills", "bill", "bill_id", "bill_number", "vendor_id", "vendor", "Bill")
KINDS = {"invoices": INVOICE, "bills": BILL}


class ZohoError(Exception):
    """A refusal answered as ``{"code", "message"}`` with an HTTP status."""

    def __init__(self, code: int, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class FakeZohoBooks:
    """See the module docstring."""

    def __init__(
        self,
        *,
        organization_id: str = ORGANIZATION_ID,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        access_token: str = "zoho-access-0",
        refresh_token: str = "zoho-refresh-0",
        custom_fields: dict[str, str] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(ORG_TZ),
        validate_schema: bool = True,
        redirect_uri: str = REDIRECT_URI,
    ):
        self.organization_id, self.client_id, self.client_secret = organization_id, client_id, client_secret
        self.access_tokens = {access_token}
        self.refresh_tokens = {refresh_token}
        self._granted_by: dict[str, str] = {access_token: refresh_token}  # access token -> its refresh token
        self._offline_codes: set[str] = set()  # codes whose consent asked access_type=offline
        self.revoked: list[str] = []
        self.consent = ConsentScreen(
            path=AUTHORIZE_PATH,
            client_id=client_id,
            redirect_uri=redirect_uri,
            required_scopes=required_scopes(),
            pkce=False,
            extras=lambda: dict(CALLBACK_EXTRAS),
            scope_separator=",",
        )
        self.organizations: list[dict[str, Any]] = recorded_body("list-organizations")["organizations"]
        self.custom_fields = (
            {
                PO_NUMBER_FIELD: "PO number",
                REFERENCE_FIELD: "Ledgerbridge id",
                CONTACT_FIELD: "Account manager",
            }
            if custom_fields is None
            else dict(custom_fields)
        )
        self.clock, self.validate_schema = clock, validate_schema
        self.requests: list[httpx.Request] = []
        self.contacts: list[dict[str, Any]] = recorded_body("list-contacts")["contacts"]
        self.items: list[dict[str, Any]] = recorded_body("list-items")["items"]
        self.accounts: list[dict[str, Any]] = recorded_body("list-chart-of-accounts")["chartofaccounts"]
        recorded_invoice = recorded_body("get-invoice")["invoice"]
        recorded_bill = recorded_body("create-bill")["bill"]
        self.documents: dict[str, dict[str, dict[str, Any]]] = {
            "invoices": {recorded_invoice["invoice_id"]: recorded_invoice},
            "bills": {recorded_bill["bill_id"]: recorded_bill},
        }
        self.created_ids: dict[str, list[str]] = {"invoices": [], "bills": [], "contacts": []}
        self.comments: dict[str, list[dict[str, Any]]] = {}  # by document id
        self.deleted_ids: list[str] = []
        self._faults = Faults("Zoho Books")
        self._refuse_sent: deque[str] = deque()
        self._refuse_comment: deque[str] = deque()
        self._issued = 0
        self._next_id = 260815000000150001
        self._next_number = 12  # the recorded organisation's last invoice is INV-000011
        self._lock = threading.RLock()

    # --- test controls ----------------------------------------------------------------------

    def fail_next(
        self, status: int, headers: dict[str, str] | None = None, times: int = 1, body: Any = None
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (e.g. 429 + Retry-After, 503)."""
        self._faults.fail(status, headers, times, body)

    def timeout_next(self, times: int = 1, after_processing: bool = False) -> None:
        """Raise httpx.ReadTimeout for the next requests; ``after_processing``: the work is done first."""
        self._faults.timeout(times, after_processing)

    def refuse_marking_sent(self, message: str) -> None:
        """The next mark-as-sent answers 400 with ``message``."""
        self._refuse_sent.append(message)

    def refuse_commenting(self, message: str) -> None:
        """The next comment answers 400 with ``message``."""
        self._refuse_comment.append(message)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far now answers 401."""
        self.access_tokens.clear()

    def revoke_refresh_tokens(self) -> None:
        """The connection's grant is gone: refreshes answer ``invalid_code``."""
        self.refresh_tokens.clear()

    def add_contact(self, name: str, contact_type: str = "customer", currency: str = "USD") -> dict[str, Any]:
        """A new contact in the recorded shape (for paging tests)."""
        record = {
            **copy.deepcopy(self.contacts[0]),
            "contact_id": self._new_id(),
            "contact_name": name,
            "customer_name": name,
            "vendor_name": name,
            "contact_type": contact_type,
            "currency_code": currency,
            "currency_id": f"currency-{currency}",
        }
        self.contacts.append(record)
        return record

    def created(self, resource: str) -> list[dict[str, Any]]:
        """Documents made through the API (not recorded ones), still present, in creation order."""
        return [
            self.documents[resource][i] for i in self.created_ids[resource] if i in self.documents[resource]
        ]

    def created_contacts(self) -> list[dict[str, Any]]:
        """Contacts made through the API, in creation order."""
        return [c for c in self.contacts if c["contact_id"] in self.created_ids["contacts"]]

    def posts(self, resource: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST" and r.url.path == f"{API}/{resource}"]

    def user_comments(self, remote_id: str) -> list[dict[str, Any]]:
        """The comments people (or Ledgerbridge) added to a document, without its history."""
        return [c for c in self.comments.get(remote_id, []) if c["comment_type"] != "system"]

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
                return fault.response({"content-type": "application/json;charset=UTF-8"})
            return self._route(request)

    def _route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if self.consent.handles(request):
            return self._consent(request)
        if path == TOKEN_PATH:
            return self._token(request)
        if path == REVOKE_PATH:
            return self._revoke(request)
        if not path.startswith(f"{API}/"):
            return _json(404, {"code": 5, "message": "Invalid URL Passed"})
        try:
            self._authorize(request)
            self._check_query(request, path[len(API) + 1 :])
            return self._api(request, path[len(API) + 1 :])
        except ZohoError as error:
            return _json(error.status, {"code": error.code, "message": error.message})

    def _authorize(self, request: httpx.Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme not in ("Zoho-oauthtoken", "Bearer") or token not in self.access_tokens:
            raise ZohoError(57, "You are not authorized to perform this operation", 401)
        if request.url.path == f"{API}/organizations":
            return  # the user's organisations: named by no organization_id
        organization = request.url.params.get("organization_id")
        if organization != self.organization_id:
            raise ZohoError(
                6041, f"This user is not associated with the CompanyID/CompanyName:{organization}."
            )

    def _api(self, request: httpx.Request, resource: str) -> httpx.Response:
        method = request.method
        lists = {"items": self.items, "chartofaccounts": self.accounts}
        if resource == "organizations" and method == "GET":
            organizations = copy.deepcopy(self.organizations)
            return _json(200, {"code": 0, "message": "success", "organizations": organizations})
        if method == "GET" and resource in lists:
            return self._page(request, resource, lists[resource])
        if resource == "contacts" and method == "GET":
            return self._list_contacts(request)
        if resource == "contacts" and method == "POST":
            return self._create_contact(request)
        if (contact := _CONTACT.match(resource)) and method == "GET":
            record = self._known_contact(contact["id"])
            return _json(200, {"code": 0, "message": "success", "contact": copy.deepcopy(record)})
        if resource == "settings/currencies" and method == "GET":
            currencies = [
                {"currency_id": i, "currency_code": code, "is_base_currency": code == BASE_CURRENCY}
                for code, i in CURRENCIES.items()
            ]
            return _json(200, {"code": 0, "message": "success", "currencies": currencies})
        match = _DOCUMENT.match(resource)
        if match is None:
            raise ZohoError(5, "Invalid URL Passed", 404)
        kind, remote_id, sub = KINDS[match["resource"]], match["id"], match["sub"]
        if remote_id is None and method == "POST":
            return self._create(request, kind)
        if remote_id is None and method == "GET":
            return self._list_documents(request, kind)
        if sub == "/status/sent" and method == "POST" and kind is INVOICE:
            return self._mark_sent(remote_id)
        if sub == "/comments":
            return self._comments(request, kind, remote_id)
        if sub is None and method == "GET":
            return _json(
                200,
                {"code": 0, "message": "success", kind.entity: copy.deepcopy(self._find(kind, remote_id))},
            )
        if sub is None and method == "DELETE":
            return self._delete(kind, remote_id)
        raise ZohoError(5, "Invalid URL Passed", 404)

    # --- the documented fields ----------------------------------------------------------------

    def _check_query(self, request: httpx.Request, resource: str) -> None:
        """Query parameters Zoho does not document for the operation are a refusal (see the docstring)."""
        operation = _operation(request.method, resource)
        if not self.validate_schema or operation is None:
            return
        spec = CONNECT_SPEC if operation == "list_organizations" else SPEC
        problems = query_errors(dict(request.url.params), spec, operation)
        if problems:
            raise ZohoError(4, "Undocumented query: " + "; ".join(problems))

    def _check_body(self, body: Any, schema: str) -> None:
        if not self.validate_schema:
            return
        problems = schema_errors(body, SPEC, schema)
        if problems:
            raise ZohoError(4, f"Invalid value passed for JSONString ({schema}): " + "; ".join(problems))

    def _comments(self, request: httpx.Request, kind: _Kind, remote_id: str) -> httpx.Response:
        """A document's comments and history; POST adds a comment (never shown to the client here)."""
        record = self._find(kind, remote_id)
        entries = self.comments.setdefault(remote_id, [])
        if request.method == "GET":
            return _json(200, {"code": 0, "message": "success", "comments": copy.deepcopy(entries)})
        if request.method != "POST":
            raise ZohoError(5, "Invalid URL Passed", 404)
        body = _json_body(request)
        self._check_body(body, "AddInvoiceComment" if kind is INVOICE else "AddBillComment")
        if not str(body.get("description") or "").strip():
            raise ZohoError(4, "Please enter the comment.")
        if self._refuse_comment:
            raise ZohoError(4, self._refuse_comment.popleft())
        comment = self._comment(record, kind, str(body["description"]), "internal")
        comment["show_comment_to_clients"] = bool(body.get("show_comment_to_clients", False))
        entries.append(comment)
        return _json(201, {"code": 0, "message": "Comments added.", "comment": copy.deepcopy(comment)})

    def _comment(
        self, record: dict[str, Any], kind: _Kind, description: str, comment_type: str
    ) -> dict[str, Any]:
        now = self.clock()
        return {
            "comment_id": self._new_id(),
            kind.id_key: record[kind.id_key],
            "description": description,
            "commented_by_id": "260815000000032001",
            "commented_by": "Samuel Bodin",
            "comment_type": comment_type,
            "date": now.date().isoformat(),
            "date_description": "few seconds ago",
            "time": now.strftime("%I:%M %p"),
            "operation_type": "Added",
            "transaction_id": "",
            "transaction_type": kind.entity,
        }

    # --- accounts server --------------------------------------------------------------------

    def _token(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST":
            return _json(405, {"error": "invalid_request"})
        fields = {key: values[0] for key, values in parse_qs(request.content.decode()).items()}
        fields = {**{key: value for key, value in request.url.params.items()}, **fields}
        if (fields.get("client_id"), fields.get("client_secret")) != (self.client_id, self.client_secret):
            return _json(200, {"error": "invalid_client"})
        if fields.get("grant_type") == "authorization_code":
            return self._exchange_code(fields)
        if fields.get("grant_type") != "refresh_token":
            return _json(200, {"error": "unsupported_grant_type"})
        if fields.get("refresh_token") not in self.refresh_tokens:
            return _json(200, {"error": "invalid_code"})
        return _json(200, self._tokens(str(fields["refresh_token"]), with_refresh_token=False))

    def _exchange_code(self, fields: dict[str, str]) -> httpx.Response:
        """A single-use code for its redirect URI; a refresh token only for an offline consent."""
        if self.consent.exchange(fields, fields.get("client_id")) is not None:
            return _json(200, {"error": "invalid_code"})  # Zoho's refusal of a code, as of a refresh token
        self._issued += 1
        refresh = f"zoho-refresh-{self._issued}"
        offline = fields.get("code") in self._offline_codes
        if offline:
            self.refresh_tokens.add(refresh)
        return _json(200, self._tokens(refresh, with_refresh_token=offline))

    def _tokens(self, refresh: str, with_refresh_token: bool) -> dict[str, Any]:
        """Zoho's token answer: a new access token (remembered as made with ``refresh``)."""
        self._issued += 1
        access = f"zoho-access-{self._issued}"
        self.access_tokens.add(access)
        self._granted_by[access] = refresh
        answer: dict[str, Any] = {"access_token": access}
        if with_refresh_token:
            answer["refresh_token"] = refresh
        return {
            **answer,
            "scope": ",".join(self.consent.required_scopes),
            "api_domain": "https://www.zohoapis.com",
            "token_type": "Bearer",
            "expires_in": 3600,
        }

    def _consent(self, request: httpx.Request) -> httpx.Response:
        """The consent screen; a code approved with ``access_type=offline`` is remembered as such."""
        response = self.consent.handle(request)
        codes = parse_qs(urlsplit(response.headers.get("location", "")).query).get("code", [])
        if codes and request.url.params.get("access_type") == "offline":
            self._offline_codes.add(codes[0])
        return response

    def _revoke(self, request: httpx.Request) -> httpx.Response:
        """A refresh token with every access token made with it, or one access token."""
        token = request.url.params.get("token", "")
        if request.method != "POST" or token not in self.refresh_tokens | self.access_tokens:
            return _json(400, {"error": "invalid_token"})
        self.revoked.append(token)
        self.refresh_tokens.discard(token)
        made_with = {access for access, refresh in self._granted_by.items() if refresh == token}
        self.access_tokens -= made_with | {token}
        return _json(200, {"status": "success"})

    # --- reads ------------------------------------------------------------------------------

    def _paging(self, request: httpx.Request) -> tuple[int, int]:
        try:
            page = int(request.url.params.get("page", "1"))
            size = min(int(request.url.params.get("per_page", str(PAGE_SIZE))), PAGE_SIZE)
        except ValueError:
            raise ZohoError(2, "Invalid value passed for page") from None
        if page < 1 or size < 1:
            raise ZohoError(2, "Invalid value passed for page")
        return page, size

    def _page(
        self, request: httpx.Request, key: str, records: list[dict[str, Any]], report: str | None = None
    ) -> httpx.Response:
        page, size = self._paging(request)
        chunk = copy.deepcopy(records[(page - 1) * size : page * size])
        context = {
            "page": page,
            "per_page": size,
            "has_more_page": page * size < len(records),
            "report_name": report or key.capitalize(),
            "applied_filter": "Status.All",
        }
        return _json(200, {"code": 0, "message": "success", key: chunk, "page_context": context})

    def _list_documents(self, request: httpx.Request, kind: _Kind) -> httpx.Response:
        wanted = request.url.params.get("reference_number")
        custom = request.url.params.get("custom_field")
        records = sorted(
            self.documents[kind.resource].values(), key=lambda r: str(r.get("created_time")), reverse=True
        )
        if wanted is not None:
            records = [r for r in records if r.get("reference_number") == wanted]
        if custom is not None:
            records = [
                r for r in records if any(f.get("value") == custom for f in r.get("custom_fields") or [])
            ]
        return self._page(request, kind.resource, [_summary(r, kind) for r in records], kind.label + "s")

    def _find(self, kind: _Kind, remote_id: str) -> dict[str, Any]:
        record = self.documents[kind.resource].get(remote_id)
        if record is None:
            raise ZohoError(1002 if kind is INVOICE else 13011, f"{kind.label} does not exist.", 404)
        return record

    # --- contacts ---------------------------------------------------------------------------

    def _known_contact(self, contact_id: str) -> dict[str, Any]:
        record = next((c for c in self.contacts if c["contact_id"] == contact_id), None)
        if record is None:
            raise ZohoError(1002, "Contact does not exist.", 404)
        return record

    def _list_contacts(self, request: httpx.Request) -> httpx.Response:
        """List rows, searched by ``search_text`` (names or notes) and ``contact_name`` as Zoho documents."""
        text = (request.url.params.get("search_text") or "").lower()
        name = request.url.params.get("contact_name")
        records = [
            c
            for c in self.contacts
            if text in f"{c.get('contact_name', '')}\n{c.get('notes', '')}".lower()
            and (name is None or c.get("contact_name") == name)
        ]
        return self._page(request, "contacts", [_contact_row(c) for c in records])

    def _create_contact(self, request: httpx.Request) -> httpx.Response:
        body = _json_body(request)
        self._check_body(body, "CreateContact")
        name = str(body.get("contact_name") or "").strip()
        if not name:
            raise ZohoError(4, "Please enter the contact name.")
        if any(str(c.get("contact_name", "")).lower() == name.lower() for c in self.contacts):
            raise ZohoError(3062, f'The contact name "{name}" already exists. Please enter a different name.')
        currency_id = str(body.get("currency_id") or CURRENCIES[BASE_CURRENCY])
        code = next((code for code, i in CURRENCIES.items() if i == currency_id), None)
        if code is None:
            raise ZohoError(2, "Invalid value passed for currency_id")
        record = self._contact_record(body, name, code)
        self.contacts.append(record)
        self.created_ids["contacts"].append(record["contact_id"])
        return _json(
            201, {"code": 0, "message": "The contact has been added.", "contact": copy.deepcopy(record)}
        )

    def _contact_record(self, body: dict[str, Any], name: str, currency: str) -> dict[str, Any]:
        now, contact_id = self._now(), self._new_id()
        persons = [
            {"contact_person_id": self._new_id(), "first_name": "", "last_name": "", "email": "", "phone": "",
             "mobile": "", **person, "is_primary_contact": index == 0}
            for index, person in enumerate(body.get("contact_persons") or [])
        ]  # fmt: skip
        primary = persons[0] if persons else {}
        empty_address = dict.fromkeys(ADDRESS_KEYS, "")
        return {
            "contact_id": contact_id,
            "contact_name": name,
            "customer_name": name,
            "vendor_name": name,
            "company_name": str(body.get("company_name") or ""),
            "contact_type": body.get("contact_type", "customer"),
            "status": "active",
            "payment_terms": body.get("payment_terms", 0),
            "payment_terms_label": body.get("payment_terms_label", "Due on Receipt"),
            "currency_id": CURRENCIES[currency],
            "currency_code": currency,
            "primary_contact_id": primary.get("contact_person_id", ""),
            "email": primary.get("email", ""),
            "phone": primary.get("phone", ""),
            "mobile": primary.get("mobile", ""),
            "contact_persons": persons,
            "billing_address": {**empty_address, **(body.get("billing_address") or {})},
            "shipping_address": {**empty_address, **(body.get("shipping_address") or {})},
            "custom_fields": self._custom_fields(body),
            "notes": str(body.get("notes") or ""),
            **{key: body[key] for key in ("vat_reg_no", "tax_reg_no", "gst_no") if key in body},
            "created_time": now,
            "last_modified_time": now,
        }

    # --- writes -----------------------------------------------------------------------------

    def _delete(self, kind: _Kind, remote_id: str) -> httpx.Response:
        record = self._find(kind, remote_id)
        if record.get("payment_made"):
            raise ZohoError(1034, f"{kind.label}s which have payments or credits applied cannot be deleted.")
        del self.documents[kind.resource][remote_id]
        self.deleted_ids.append(remote_id)
        return _json(200, {"code": 0, "message": f"The {kind.entity} has been deleted."})

    def _mark_sent(self, remote_id: str) -> httpx.Response:
        record = self._find(INVOICE, remote_id)
        if self._refuse_sent:
            raise ZohoError(1035, self._refuse_sent.popleft())
        if record["status"] != "draft":
            raise ZohoError(1035, "Only draft invoices can be marked as sent.")
        record.update(status="sent", current_sub_status="sent", last_modified_time=self._now())
        return _json(200, {"code": 0, "message": "Invoice status has been changed to Sent."})

    def _create(self, request: httpx.Request, kind: _Kind) -> httpx.Response:
        body = _json_body(request)
        self._check_body(body, "CreateInvoice" if kind is INVOICE else "CreateBill")
        contact = self._contact(body, kind)
        number = self._number(request, body, kind)
        lines = [self._line(line, kind) for line in body.get("line_items") or []]
        if not lines:
            raise ZohoError(15, "Please add at least one line item.")
        record = self._record(body, kind, contact, number, lines)
        self.documents[kind.resource][record[kind.id_key]] = record
        self.created_ids[kind.resource].append(record[kind.id_key])
        history = f"{kind.label} created for {contact['currency_code']} {record['total']}"
        self.comments[record[kind.id_key]] = [self._comment(record, kind, history, "system")]
        message = f"The {kind.entity} has been created."
        return _json(201, {"code": 0, "message": message, kind.entity: copy.deepcopy(record)})

    def _contact(self, body: dict[str, Any], kind: _Kind) -> dict[str, Any]:
        wanted = body.get(kind.contact_key)
        if not wanted:
            raise ZohoError(4, f"Please select a {kind.contact_type}.")
        contact = next((c for c in self.contacts if c["contact_id"] == str(wanted)), None)
        if contact is None or contact.get("contact_type") != kind.contact_type:
            raise ZohoError(2, f"Invalid value passed for {kind.contact_key}")
        if body.get("currency_id") not in (None, contact["currency_id"]):
            raise ZohoError(2, "Invalid value passed for currency_id")
        return contact

    def _number(self, request: httpx.Request, body: dict[str, Any], kind: _Kind) -> str:
        number = body.get(kind.number_key)
        existing = {str(r.get(kind.number_key)) for r in self.documents[kind.resource].values()}
        if kind is BILL:
            if not number:
                raise ZohoError(4, "Please enter the bill number.")
            return str(number)
        if number is None:
            while (number := f"INV-{self._next_number:06d}") in existing:
                self._next_number += 1
            self._next_number += 1
            return number
        if request.url.params.get("ignore_auto_number_generation") != "true":
            raise ZohoError(
                4097,
                "Invoice numbers are auto-generated in this organisation: "
                "pass ignore_auto_number_generation=true to give your own.",
            )
        if str(number) in existing:
            raise ZohoError(1001, f"Invoice number {number} already exists. Please enter a different number.")
        return str(number)

    def _line(self, line: dict[str, Any], kind: _Kind) -> dict[str, Any]:
        item = None
        if line.get("item_id"):
            item = next((i for i in self.items if i["item_id"] == str(line["item_id"])), None)
            if item is None:
                raise ZohoError(2, "Invalid value passed for item_id")
        elif not line.get("name"):
            raise ZohoError(4, "Please enter the item name for each line item.")
        side = item or {}
        rate = _decimal(line.get("rate"), "rate")
        if rate is None:
            rate = _decimal(side.get("purchase_rate" if kind is BILL else "rate"), "rate") or Decimal(0)
        quantity = _decimal(line.get("quantity"), "quantity")
        quantity = Decimal(1) if quantity is None else quantity
        account = self._line_account(line, side, kind)
        tax_id = str(line.get("tax_id") or side.get("tax_id") or "")
        if tax_id and tax_id not in TAXES:
            raise ZohoError(2, "Invalid value passed for tax_id")
        tax_name, percentage = TAXES.get(tax_id, ("", Decimal(0)))
        description = line.get("description")
        if description is None:
            description = side.get("purchase_description" if kind is BILL else "description") or ""
        return {
            "line_item_id": self._new_id(),
            "item_id": side.get("item_id", ""),
            "name": line.get("name") or side.get("name", ""),
            "description": description,
            "unit": side.get("unit", ""),
            "quantity": quantity,
            "bcy_rate": rate,
            "rate": rate,
            "account_id": account["account_id"],
            "account_name": account["account_name"],
            "tax_id": tax_id,
            "tax_name": tax_name,
            "tax_type": "tax",
            "tax_percentage": percentage,
            "item_total": (rate * quantity).quantize(CENT, rounding=ROUND_HALF_UP),
            "tags": [],
            "discount": 0,
            "line_item_category": "line_item",
        }

    def _line_account(self, line: dict[str, Any], item: dict[str, Any], kind: _Kind) -> dict[str, Any]:
        default = item.get("purchase_account_id") if kind is BILL else item.get("account_id")
        if kind is INVOICE and not default:
            default = next(a["account_id"] for a in self.accounts if a["account_name"] == "Sales")
        wanted = str(line.get("account_id") or default or "")
        if not wanted:
            raise ZohoError(4, "Please select an account for each line item.")
        account = next((a for a in self.accounts if a["account_id"] == wanted), None)
        if account is None:
            raise ZohoError(2, "Invalid value passed for account_id")
        return account

    def _custom_fields(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        fields = []
        for index, entry in enumerate(body.get("custom_fields") or [], start=1):
            field_id = str(entry.get("customfield_id") or "")
            if field_id not in self.custom_fields:
                raise ZohoError(2, "Invalid value passed for customfield_id")
            label = self.custom_fields[field_id]
            fields.append(
                {
                    "customfield_id": field_id,
                    "index": index,
                    "label": label,
                    "api_name": "cf_" + re.sub(r"\W+", "_", label.lower()),
                    "data_type": "string",
                    "value": entry.get("value"),
                }
            )
        return fields

    def _record(
        self,
        body: dict[str, Any],
        kind: _Kind,
        contact: dict[str, Any],
        number: str,
        lines: list[dict[str, Any]],
    ) -> dict[str, Any]:
        issued = _date(body.get("date"), "date") or self.clock().date()
        due = _date(body.get("due_date"), "due_date") or issued
        exchange_rate = _decimal(body.get("exchange_rate"), "exchange_rate")
        if exchange_rate is not None and exchange_rate <= 0:
            raise ZohoError(2, "Invalid value passed for exchange_rate")
        # Zoho reads the rate as a double (its SDK's type): it keeps the nearest one.
        rate = Decimal(1) if exchange_rate is None else Decimal(repr(float(exchange_rate)))
        sub_total = sum((line["item_total"] for line in lines), Decimal(0))
        discount = self._discount(body, sub_total) if kind is INVOICE else Decimal(0)
        share = (sub_total - discount) / sub_total if sub_total else Decimal(0)
        tax = sum((line["item_total"] * line["tax_percentage"] / 100 for line in lines), Decimal(0))
        tax_total = (tax * share).quantize(CENT, rounding=ROUND_HALF_UP)
        total = sub_total - discount + tax_total
        now = self._now()
        status = "draft" if kind is INVOICE else "open"
        for order, line in enumerate(lines, start=1):
            line["item_order"] = order
            line["bcy_rate"] = _base(line["rate"], rate)
        return {
            kind.id_key: self._new_id(),
            kind.number_key: number,
            "date": issued.isoformat(),
            "due_date": due.isoformat(),
            kind.contact_key: contact["contact_id"],
            f"{kind.contact_type}_name": contact["contact_name"],
            "currency_id": contact["currency_id"],
            "currency_code": contact["currency_code"],
            "status": status,
            "custom_fields": self._custom_fields(body),
            "payment_terms": 0,
            "payment_terms_label": "Due on Receipt",
            "payment_made": 0,
            "reference_number": str(body.get("reference_number") or ""),
            "line_items": lines,
            "exchange_rate": rate,
            "price_precision": 2,
            "sub_total": sub_total,
            "tax_total": tax_total,
            "discount_total": discount,
            "discount": body.get("discount", 0),
            "discount_type": body.get("discount_type", "entity_level"),
            "is_discount_before_tax": True,
            "is_inclusive_tax": False,
            "total": total,
            "balance": total,
            "bcy_sub_total": _base(sub_total, rate),
            "bcy_tax_total": _base(tax_total, rate),
            "bcy_total": _base(total, rate),
            "taxes": [
                {"tax_name": name, "tax_amount": tax_total}
                for name in sorted({line["tax_name"] for line in lines if line["tax_name"]})
            ],
            "notes": body.get("notes", "Thanks for your business." if kind is INVOICE else ""),
            "terms": "",
            "current_sub_status": status,
            "created_time": now,
            "last_modified_time": now,
        }

    def _discount(self, body: dict[str, Any], sub_total: Decimal) -> Decimal:
        value = body.get("discount")
        if value in (None, "", 0):
            return Decimal(0)
        if isinstance(value, str) and value.endswith("%"):
            percent = _decimal(value[:-1], "discount") or Decimal(0)
            return (sub_total * percent / 100).quantize(CENT, rounding=ROUND_HALF_UP)
        amount = _decimal(value, "discount") or Decimal(0)
        if amount < 0 or amount > sub_total:
            raise ZohoError(2, "Invalid value passed for discount")
        return amount

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def _now(self) -> str:
        return self.clock().strftime("%Y-%m-%dT%H:%M:%S%z")


_OPERATIONS = (
    ("POST", re.compile(r"^invoices$"), "create_invoice"),
    ("GET", re.compile(r"^invoices$"), "list_invoices"),
    ("GET", re.compile(r"^invoices/\d+$"), "get_invoice"),
    ("DELETE", re.compile(r"^invoices/\d+$"), "delete_invoice"),
    ("POST", re.compile(r"^invoices/\d+/status/sent$"), "mark_invoice_sent"),
    ("GET", re.compile(r"^invoices/\d+/comments$"), "list_invoice_comments"),
    ("POST", re.compile(r"^invoices/\d+/comments$"), "add_invoice_comment"),
    ("POST", re.compile(r"^bills$"), "create_bill"),
    ("GET", re.compile(r"^bills$"), "list_bills"),
    ("GET", re.compile(r"^bills/\d+$"), "get_bill"),
    ("DELETE", re.compile(r"^bills/\d+$"), "delete_bill"),
    ("GET", re.compile(r"^bills/\d+/comments$"), "list_bill_comments"),
    ("POST", re.compile(r"^bills/\d+/comments$"), "add_bill_comment"),
    ("GET", re.compile(r"^contacts$"), "list_contacts"),
    ("POST", re.compile(r"^contacts$"), "create_contact"),
    ("GET", re.compile(r"^contacts/\d+$"), "get_contact"),
    ("GET", re.compile(r"^settings/currencies$"), "list_currencies"),
    ("GET", re.compile(r"^items$"), "list_items"),
    ("GET", re.compile(r"^chartofaccounts$"), "list_chart_of_accounts"),
    ("GET", re.compile(r"^organizations$"), "list_organizations"),
)


def required_scopes() -> tuple[str, ...]:
    """The scopes Zoho's Books reference names for the operations this fake serves, in their order."""
    scopes = document(CONNECT_SPEC)["x-oauth-scopes"]
    return tuple(dict.fromkeys(scopes[operation] for _, _, operation in _OPERATIONS))


def _operation(method: str, resource: str) -> str | None:
    """The documented operation a request is (tests/fixtures/specs/zoho-books), None if none is."""
    return next((op for m, path, op in _OPERATIONS if m == method and path.match(resource)), None)


def _json_body(request: httpx.Request) -> dict[str, Any]:
    try:
        body = jsonutil.loads(request.content) if request.content else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ZohoError(4, "Invalid value passed for JSONString")
    return body


def _contact_row(record: dict[str, Any]) -> dict[str, Any]:
    """A contact as Zoho's list answers it: no addresses, persons or notes."""
    return {key: copy.deepcopy(record[key]) for key in CONTACT_ROW_KEYS if key in record}


def _base(amount: Decimal, rate: Decimal) -> Decimal:
    """An amount in the organisation's base currency: amount x exchange_rate, to the cent."""
    return (amount * rate).quantize(CENT, rounding=ROUND_HALF_UP)


def _summary(record: dict[str, Any], kind: _Kind) -> dict[str, Any]:
    """A list row, as Zoho's list endpoints answer (no line items)."""
    keys = (
        kind.id_key,
        kind.contact_key,
        f"{kind.contact_type}_name",
        "status",
        kind.number_key,
        "reference_number",
        "date",
        "due_date",
        "total",
        "balance",
        "currency_id",
        "currency_code",
        "exchange_rate",
        "created_time",
        "last_modified_time",
        "current_sub_status",
    )
    return {key: copy.deepcopy(record[key]) for key in keys if key in record}


def _decimal(value: Any, name: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ZohoError(2, f"Invalid value passed for {name}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ZohoError(2, f"Invalid value passed for {name}") from None
    if not number.is_finite():
        raise ZohoError(2, f"Invalid value passed for {name}")
    return number


def _date(value: Any, name: str) -> date | None:
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ZohoError(2, f"Invalid value passed for {name}") from None


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(
        status,
        headers={"content-type": "application/json;charset=UTF-8"},
        content=jsonutil.dumps(body).encode(),
    )
