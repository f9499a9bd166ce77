"""A fake Xero (Accounting API and identity server) that behaves like the recorded one.

One stateful object, used as ``httpx.MockTransport(fake.handle)`` in unit tests or behind a
real HTTP server end to end. It serves:

- ``GET /identity/connect/authorize`` (``AUTHORIZE_PATH``): Xero's consent screen, the shared
  ``ConsentScreen``: ``response_type=code``, this app's ``client_id`` and registered
  ``redirect_uri``, a ``state`` and every scope in ``REQUIRED_SCOPES``; no PKCE (Xero documents
  it only for apps without a client secret). Approving redirects with ``code`` and ``state``
  only, as Xero does.
- ``POST /connect/token`` (HTTP Basic client auth): ``grant_type=refresh_token`` answers a new
  access token and a *new* refresh token each time; the refresh token used is retired, so
  presenting it again answers 400 ``{"error": "invalid_grant"}`` (Xero rotates refresh tokens).
  ``grant_type=authorization_code`` exchanges a code from the consent screen (single use, same
  client and redirect URI; else 400 ``invalid_grant``) for a new grant's tokens, in Xero's
  token response shape, with the consented ``scope``.
- ``POST /connect/revocation`` (HTTP Basic client auth, ``token=<refresh token>``): retires the
  refresh token and every access token of its grant, and removes the user's connections, as
  Xero does; 200 with no body, also for a token it does not know (RFC 7009).
- ``GET /connections``: a known bearer token (401 otherwise) lists the organisations connected
  to the app (``list-tenants.json``, recorded; ``authEventId`` filters them). An organisation
  no longer connected answers 403 on the Accounting API.
- ``/api.xro/2.0/...``: a known bearer token (401 otherwise) and this organisation's
  ``xero-tenant-id`` (403 otherwise).
- ``PUT /Invoices``: checks the body against the official OpenAPI ``Invoices`` schema (400
  PostDataInvalidException), then Xero's rules (contact, status, unique ACCREC number, item
  codes, account codes, tax types, tracking options); computes line amounts, tax and totals;
  answers 400 ValidationException with the messages per invoice (or, with
  ``summarizeErrors=false``, 200 with ``HasErrors``/``ValidationErrors`` on the invoice).
  ``unitdp=4`` keeps 4-decimal unit amounts, otherwise they are rounded to 2 as Xero does.
  ``CurrencyRate`` is kept in Xero's convention (units of the invoice's currency per one
  unit of the base currency, USD here) to Xero's 6 decimal places (half up: Xero does not
  document its own rounding); without one, a foreign-currency invoice takes the day rate in
  ``DAY_RATES`` (Xero uses XE.com's), and a base-currency invoice is always 1.
- ``PUT /Invoices/{id}/History`` (or POST, the same in Xero): checks the body against the
  OpenAPI ``HistoryRecords`` schema, needs an existing invoice (404) and a ``Details`` of
  1 to 250 characters (400 ValidationException), stores the note ("Note" change by "System
  Generated", as Xero records API notes) and answers ``HistoryRecords``. Notes cannot be
  edited or deleted. ``GET /Invoices/{id}/History`` lists them.
- ``PUT /Contacts``: checks the body against the OpenAPI ``Contacts`` schema, then a
  ``Name`` is required and unique among active contacts (400 ValidationException with
  Xero's message); ``IsCustomer``/``IsSupplier`` start false (Xero sets them from
  transactions). The contact joins ``contacts``, so invoices and ``GET /Contacts`` see it.
- ``Idempotency-Key`` on any PUT/POST: a repeated key answers the first successful response
  again and does nothing, whatever the endpoint (so a key reused for a different request is
  a visible mistake); refusals are not kept, so a fixed request may reuse its key.
- ``GET /Contacts`` (``page=N``: 100 a page, with ``pagination``), ``/Items``, ``/Accounts``,
  ``/TrackingCategories``, ``/Invoices/{id}``.

Records come from tests/fixtures/providers/xero (recorded exchanges, trimmed; the tracking
categories are written in the documented shape). Error shapes are Xero's; the wording of
messages is Xero's where known and a close paraphrase otherwise. Tax rates are the demo
organisation's (8.25% on OUTPUT and INPUT, as in the recorded invoices).

Fault injection: ``fail_next(status, headers, times)`` answers the next requests with that
status (e.g. 429 with Retry-After, 503); ``timeout_next(times, after_processing)`` raises
httpx.ReadTimeout instead of answering, before or after doing the work (a lost response).
Every request received is kept in ``requests``.
"""

from __future__ import annotations

import base64
import copy
import math
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

from ledgerbridge import jsonutil
from tests.fakes.consent import ConsentScreen, invalid_grant
from tests.fakes.faults import Faults
from tests.support.openapi import schema_errors

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "xero"
API = "/api.xro/2.0"
TOKEN_PATH = "/connect/token"
AUTHORIZE_PATH = "/identity/connect/authorize"
REVOCATION_PATH = "/connect/revocation"
CONNECTIONS_PATH = "/connections"
REDIRECT_URI = "https://ledgerbridge.test/connect/callback"  # the fake app's registered redirect URI
# What Ledgerbridge's consent must ask for (Xero's granular scopes; see providers/xero.py).
REQUIRED_SCOPES = ("offline_access", "accounting.invoices", "accounting.contacts", "accounting.settings.read")
# The scope of the tokens the fake starts with (a connection made before hosted connect).
SEEDED_SCOPE = "accounting.transactions accounting.contacts accounting.settings offline_access"
TENANT_ID = "59712f8f-45a3-4d45-a705-5d0c9748317e"  # the recorded organisation
CLIENT_ID = "fake-xero-client-id"
CLIENT_SECRET = "fake-xero-client-secret"
PAGE_SIZE = 100
BASE_CURRENCY = "USD"
CURRENCIES = frozenset({"USD", "EUR", "GBP", "NZD", "AUD", "CAD"})
# The fake day's rates in Xero's convention: units of the currency per one US dollar.
DAY_RATES = {
    "USD": Decimal(1),
    "EUR": Decimal("0.925926"),
    "GBP": Decimal("0.787402"),
    "NZD": Decimal("1.680672"),
    "AUD": Decimal("1.538462"),
    "CAD": Decimal("1.369863"),
}
RATE_STEP = Decimal("0.000001")  # CurrencyRate [18].[6]
MAX_NOTE = 250
TAX_RATES = {
    "OUTPUT": Decimal("0.0825"),
    "INPUT": Decimal("0.0825"),
    "TAX001": Decimal("0.0825"),
    "NONE": Decimal(0),
}
CREATABLE_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED")
NIL_ID = "00000000-0000-0000-0000-000000000000"
CENT = Decimal("0.01")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def fixture(name: str) -> dict[str, Any]:
    """A recorded exchange file, numbers as Decimals."""
    return jsonutil.loads((FIXTURES / f"{name}.json").read_bytes())


def recorded_body(name: str) -> Any:
    """The response body of the first exchange of a fixture."""
    return fixture(name)["exchanges"][0]["response"]["body"]


@dataclass
class Grant:
    """One consent's tokens: what it allows, and every access token issued under it."""

    scope: str
    access_tokens: set[str] = field(default_factory=set)


def ms_date(moment: datetime | date, offset: bool = True) -> str:
    """Xero's ``/Date(ms+0000)/`` (dates are midnight UTC)."""
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    millis = (moment - _EPOCH) // timedelta(milliseconds=1)
    return f"/Date({millis}+0000)/" if offset else f"/Date({millis})/"


class FakeXero:
    """See the module docstring."""

    def __init__(
        self,
        *,
        tenant_id: str = TENANT_ID,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        access_token: str = "xero-access-0",
        refresh_token: str = "xero-refresh-0",
        redirect_uri: str = REDIRECT_URI,
        validate_schema: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.tenant_id, self.client_id, self.client_secret = tenant_id, client_id, client_secret
        self.access_tokens = {access_token}
        self.grants = {refresh_token: Grant(SEEDED_SCOPE, {access_token})}  # by live refresh token
        self.retired_refresh_tokens: list[str] = []
        self.consent = ConsentScreen(AUTHORIZE_PATH, client_id, redirect_uri, REQUIRED_SCOPES, pkce=False)
        self.connections: list[dict[str, Any]] = _connections(recorded_body("list-tenants"), tenant_id)
        self.validate_schema, self.clock = validate_schema, clock
        self.requests: list[httpx.Request] = []
        self.contacts: list[dict[str, Any]] = recorded_body("list-contacts")["Contacts"]
        self.items: list[dict[str, Any]] = recorded_body("list-items")["Items"]
        self.accounts: list[dict[str, Any]] = recorded_body("list-accounts")["Accounts"]
        self.tracking_categories: list[dict[str, Any]] = recorded_body("list-tracking-categories")[
            "TrackingCategories"
        ]
        self.invoices: dict[str, dict[str, Any]] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}  # notes by InvoiceID
        self._by_key: dict[str, tuple[int, dict[str, Any]]] = {}
        self._faults = Faults("Xero")
        self._issued = 0
        self._next_number = 45  # the recorded organisation's last sales invoice is INV-0044
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

    def expire_access_tokens(self) -> None:
        """Every access token issued so far now answers 401."""
        self.access_tokens.clear()

    def add_contact(
        self, name: str, *, is_customer: bool = True, is_supplier: bool = False
    ) -> dict[str, Any]:
        """A new contact in the recorded shape (for paging tests)."""
        record = {
            "ContactID": str(uuid.uuid4()),
            "ContactStatus": "ACTIVE",
            "Name": name,
            "Addresses": [],
            "Phones": [],
            "UpdatedDateUTC": ms_date(self.clock()),
            "ContactGroups": [],
            "IsSupplier": is_supplier,
            "IsCustomer": is_customer,
            "ContactPersons": [],
            "HasAttachments": False,
            "HasValidationErrors": False,
        }
        self.contacts.append(record)
        return record

    def invoice_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "PUT" and r.url.path == f"{API}/Invoices"]

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
        if path == TOKEN_PATH:
            return self._token(request)
        if path == REVOCATION_PATH:
            return self._revoke(request)
        if self.consent.handles(request):
            return self.consent.handle(request)
        if path.lower() == CONNECTIONS_PATH:
            return self._list_connections(request)
        if not path.startswith(f"{API}/"):
            return _problem(404, "Not Found", "The resource you're looking for cannot be found")
        refused = self._refuse_access(request)
        if refused:
            return refused
        resource = path[len(API) + 1 :]
        if request.method == "PUT" and resource == "Invoices":
            return self._create_invoices(request)
        if request.method in ("PUT", "POST") and resource == "Contacts":
            return self._replayed(request, lambda: self._create_contacts(request))
        if request.method == "GET" and resource in ("Contacts", "Items", "Accounts", "TrackingCategories"):
            return self._list(request, resource)
        parts = resource.split("/")
        if len(parts) == 3 and parts[0] == "Invoices" and parts[2].lower() == "history":
            return self._history(request, parts[1])
        if request.method == "GET" and len(parts) == 2 and parts[0] == "Invoices":
            return self._get_invoice(parts[1])
        return _problem(404, "Not Found", "The resource you're looking for cannot be found")

    def _refuse_access(self, request: httpx.Request) -> httpx.Response | None:
        unknown = self._unknown_bearer(request)
        if unknown:
            return unknown
        tenant = request.headers.get("xero-tenant-id")
        if tenant != self.tenant_id or not any(c["tenantId"] == tenant for c in self.connections):
            return _problem(403, "Forbidden", "AuthenticationUnsuccessful")
        return None

    def _unknown_bearer(self, request: httpx.Request) -> httpx.Response | None:
        """Xero's 401 for a request without a live access token, else None."""
        authorization = request.headers.get("authorization", "")
        if authorization.startswith("Bearer ") and authorization[7:] in self.access_tokens:
            return None
        response = _problem(401, "Unauthorized", "AuthenticationUnsuccessful")
        response.headers["www-authenticate"] = 'Bearer error="invalid_token"'
        return response

    def _list_connections(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            return _problem(405, "Method Not Allowed", "Connections supports GET here")
        unknown = self._unknown_bearer(request)
        if unknown:
            return unknown
        event = request.url.params.get("authEventId")
        listed = [c for c in self.connections if event is None or c.get("authEventId") == event]
        return _json(200, copy.deepcopy(listed))

    # --- identity ---------------------------------------------------------------------------

    def _token(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST":
            return _json(405, {"error": "invalid_request"})
        if not self._client_authenticated(request):
            return _json(400, {"error": "invalid_client"})
        form = {name: values[0] for name, values in parse_qs(request.content.decode()).items()}
        if form.get("grant_type") == "authorization_code":
            return self._exchange_code(form)
        if form.get("grant_type") != "refresh_token":
            return _json(400, {"error": "unsupported_grant_type"})
        presented = form.get("refresh_token", "")
        grant = self.grants.pop(presented, None)
        if grant is None:
            return _json(400, {"error": "invalid_grant"})
        self.retired_refresh_tokens.append(presented)
        return self._issue(grant)

    def _exchange_code(self, form: dict[str, str]) -> httpx.Response:
        refusal = self.consent.exchange(form, self.client_id)  # the client authenticated as client_id
        if refusal:
            return invalid_grant(refusal)
        return self._issue(Grant(self.consent.codes[form["code"]].scope))

    def _issue(self, grant: Grant) -> httpx.Response:
        """New tokens for ``grant``, in Xero's token response shape; the refresh token is its live one."""
        self._issued += 1
        access, refresh = f"xero-access-{self._issued}", f"xero-refresh-{self._issued}"
        grant.access_tokens.add(access)
        self.grants[refresh] = grant
        self.access_tokens.add(access)
        return _json(
            200,
            {
                "access_token": access,
                "expires_in": 1800,
                "token_type": "Bearer",
                "refresh_token": refresh,
                "scope": grant.scope,
            },
        )

    def _revoke(self, request: httpx.Request) -> httpx.Response:
        """Xero's revocation: the grant's tokens die and the user's connections go with them."""
        if request.method != "POST":
            return _json(405, {"error": "invalid_request"})
        if not self._client_authenticated(request):
            return _json(400, {"error": "invalid_client"})
        token = parse_qs(request.content.decode()).get("token", [""])[0]
        if not token:
            return _json(400, {"error": "invalid_request"})
        grant = self.grants.pop(token, None)
        if grant is not None:
            self.retired_refresh_tokens.append(token)
            self.access_tokens -= grant.access_tokens
            self.connections = []
        return httpx.Response(200)

    def _client_authenticated(self, request: httpx.Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded).decode()
        except ValueError:
            return False
        return decoded == f"{self.client_id}:{self.client_secret}"

    # --- reads ------------------------------------------------------------------------------

    def _envelope(self, key: str, records: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "Id": str(uuid.uuid4()),
            "Status": "OK",
            "ProviderName": "acmeAPI",
            "DateTimeUTC": ms_date(self.clock(), offset=False),
            **extra,
            key: records,
        }

    def _list(self, request: httpx.Request, resource: str) -> httpx.Response:
        records = {
            "Contacts": self.contacts,
            "Items": self.items,
            "Accounts": self.accounts,
            "TrackingCategories": self.tracking_categories,
        }[resource]
        params = request.url.params
        if resource != "Contacts" or "page" not in params:
            return _json(200, self._envelope(resource, copy.deepcopy(records)))
        try:
            page, size = int(params["page"]), min(int(params.get("pageSize", PAGE_SIZE)), 1000)
        except ValueError:
            return _json(
                400, {"ErrorNumber": 16, "Type": "QueryParseException", "Message": "page must be a number"}
            )
        chunk = copy.deepcopy(records[(page - 1) * size : page * size]) if page >= 1 else []
        pagination = {
            "page": page,
            "pageSize": size,
            "pageCount": math.ceil(len(records) / size),
            "itemCount": len(records),
        }
        return _json(200, self._envelope(resource, chunk, pagination=pagination))

    def _get_invoice(self, invoice_id: str) -> httpx.Response:
        record = self.invoices.get(invoice_id)
        if record is None:
            return _problem(404, "Not Found", "The resource you're looking for cannot be found")
        return _json(200, self._envelope("Invoices", [copy.deepcopy(record)]))

    def notes(self, invoice_id: str) -> list[str]:
        """The Details of every note on an invoice, oldest first."""
        return [record["Details"] for record in self.history.get(invoice_id, [])]

    def history_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method in ("PUT", "POST") and r.url.path.endswith("/History")]

    # --- history and notes --------------------------------------------------------------------

    def _history(self, request: httpx.Request, invoice_id: str) -> httpx.Response:
        if invoice_id not in self.invoices:
            return _problem(404, "Not Found", "The resource you're looking for cannot be found")
        if request.method == "GET":
            return _json(
                200, self._envelope("HistoryRecords", copy.deepcopy(self.history.get(invoice_id, [])))
            )
        if request.method not in ("PUT", "POST"):
            return _problem(405, "Method Not Allowed", "History supports GET, PUT and POST")
        return self._replayed(request, lambda: self._add_notes(request, invoice_id))

    def _add_notes(self, request: httpx.Request, invoice_id: str) -> tuple[int, dict[str, Any]]:
        invalid = self._post_data_invalid(request, "HistoryRecords")
        if invalid:
            return invalid
        records = jsonutil.loads(request.content)["HistoryRecords"]
        errors = [_note_errors(record) for record in records]
        if any(errors):
            elements = [
                {**record, "ValidationErrors": [{"Message": message} for message in problems]}
                for record, problems in zip(records, errors, strict=True)
            ]
            return 400, {
                "ErrorNumber": 10,
                "Type": "ValidationException",
                "Message": "A validation exception occurred",
                "Elements": elements,
            }
        now = self.clock()
        stored = [
            {
                "Changes": "Note",
                "DateUTCString": now.strftime("%Y-%m-%dT%H:%M:%S"),
                "DateUTC": ms_date(now, offset=False),
                "User": "System Generated",
                "Details": record["Details"],
            }
            for record in records
        ]
        self.history.setdefault(invoice_id, []).extend(stored)
        answered = [
            {**{k: r[k] for k in ("DateUTCString", "DateUTC", "Details")}, "ValidationErrors": []}
            for r in stored
        ]
        return 200, self._envelope("HistoryRecords", answered)

    def _post_data_invalid(self, request: httpx.Request, schema: str) -> tuple[int, dict[str, Any]] | None:
        """Xero's 400 PostDataInvalidException for a body that is not JSON or breaks the OpenAPI schema."""
        try:
            body = jsonutil.loads(request.content)
        except ValueError:
            body = None
        problems = schema_errors(request.content, schema) if self.validate_schema and body else []
        if isinstance(body, dict) and body.get(schema) and not problems:
            return None
        detail = "; ".join(problems) or f"no {schema} in the body"
        return 400, {
            "ErrorNumber": 14,
            "Type": "PostDataInvalidException",
            "Message": f"JSON for post data was invalid: {detail}",
        }

    def _replayed(
        self, request: httpx.Request, work: Callable[[], tuple[int, dict[str, Any]]]
    ) -> httpx.Response:
        """The first answer again for a repeated Idempotency-Key (kept for 200s only), else ``work()``."""
        key = request.headers.get("idempotency-key")
        if key and key in self._by_key:
            status, body = self._by_key[key]
            return _json(status, copy.deepcopy(body))
        status, body = work()
        if key and status == 200:
            self._by_key[key] = (status, body)
        return _json(status, body)

    # --- create -----------------------------------------------------------------------------

    def contact_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method in ("PUT", "POST") and r.url.path == f"{API}/Contacts"]

    def _create_contacts(self, request: httpx.Request) -> tuple[int, dict[str, Any]]:
        invalid = self._post_data_invalid(request, "Contacts")
        if invalid:
            return invalid
        given = jsonutil.loads(request.content)["Contacts"]
        results = [(contact, self._contact_errors(contact)) for contact in given]
        if any(errors for _, errors in results):
            elements = [
                {**contact, "ValidationErrors": [{"Message": message} for message in errors]}
                for contact, errors in results
            ]
            return 400, {
                "ErrorNumber": 10,
                "Type": "ValidationException",
                "Message": "A validation exception occurred",
                "Elements": elements,
            }
        created = []
        for contact in given:
            record = {
                **self.add_contact(contact["Name"], is_customer=False),
                **{k: v for k, v in contact.items() if k not in ("IsCustomer", "IsSupplier")},
            }
            self.contacts[-1] = record
            created.append(copy.deepcopy(record))
        return 200, self._envelope("Contacts", created)

    def _contact_errors(self, contact: dict[str, Any]) -> list[str]:
        name = (contact.get("Name") or "").strip()
        if not name:
            return ["The contact name must be supplied."]
        active = (c for c in self.contacts if c.get("ContactStatus", "ACTIVE") == "ACTIVE")
        if any(c["Name"].casefold() == name.casefold() for c in active):
            return [
                f"The contact name {name} is already assigned to another contact. "
                "The contact name must be unique across all active contacts."
            ]
        return []

    def _create_invoices(self, request: httpx.Request) -> httpx.Response:
        return self._replayed(request, lambda: self._process_invoices(request))

    def _process_invoices(self, request: httpx.Request) -> tuple[int, dict[str, Any]]:
        invalid = self._post_data_invalid(request, "Invoices")
        if invalid:
            return invalid
        body = jsonutil.loads(request.content)
        unit_places = 4 if request.url.params.get("unitdp") == "4" else 2
        results = [self._build(invoice, unit_places) for invoice in body["Invoices"]]
        summarize = request.url.params.get("summarizeErrors", "true").lower() != "false"
        if summarize and any(errors for _, errors in results):
            return 400, _validation_exception(results)
        answered = []
        for record, errors in results:
            if errors:
                answered.append(_with_errors(record, errors))
            else:
                self._store(record)
                answered.append(copy.deepcopy(record))
        return 200, self._envelope("Invoices", answered)

    def _store(self, record: dict[str, Any]) -> None:
        record["InvoiceID"] = str(uuid.uuid4())
        for line in record["LineItems"]:
            line["LineItemID"] = str(uuid.uuid4())
        if record["Type"] == "ACCREC" and not record.get("InvoiceNumber"):
            record["InvoiceNumber"] = f"INV-{self._next_number:04d}"
            self._next_number += 1
        self.invoices[record["InvoiceID"]] = record

    def _build(self, invoice: dict[str, Any], unit_places: int) -> tuple[dict[str, Any], list[str]]:
        """The invoice Xero would record, and the validation messages it would answer."""
        errors: list[str] = []
        kind = invoice.get("Type")
        if kind not in ("ACCREC", "ACCPAY"):
            errors.append("This fake creates ACCREC and ACCPAY invoices only")
        status = invoice.get("Status") or "DRAFT"
        if status not in CREATABLE_STATUSES:
            errors.append("Invoice not of valid status for creation")
        contact = self._contact(invoice.get("Contact"), errors)
        number = invoice.get("InvoiceNumber")
        if (
            kind == "ACCREC"
            and number
            and any(
                r["Type"] == "ACCREC" and r.get("InvoiceNumber") == number for r in self.invoices.values()
            )
        ):
            errors.append("Invoice # must be unique.")
        currency = invoice.get("CurrencyCode") or BASE_CURRENCY
        if currency not in CURRENCIES:
            errors.append(f"The currency code {currency} is not valid for this organisation.")
        issued = _date(invoice.get("Date"), "Date", errors) or self.clock().date()
        due = _date(invoice.get("DueDate"), "Due Date", errors)
        amounts_type = invoice.get("LineAmountTypes") or "Exclusive"
        lines = [
            self._line(line, kind, status, amounts_type, unit_places, errors)
            for line in invoice.get("LineItems") or []
        ]
        if status != "DRAFT" and not lines:
            errors.append("At least one line item is required to approve an invoice.")
        record = self._record(invoice, kind, status, contact, issued, due, currency, amounts_type, lines)
        return record, errors

    def _record(
        self,
        invoice: dict[str, Any],
        kind: Any,
        status: str,
        contact: dict[str, Any],
        issued: date,
        due: date | None,
        currency: str,
        amounts_type: str,
        lines: list[dict[str, Any]],
    ) -> dict[str, Any]:
        line_total = sum((line["LineAmount"] for line in lines), Decimal(0))
        tax = sum((line["TaxAmount"] for line in lines), Decimal(0))
        sub_total = line_total - tax if amounts_type == "Inclusive" else line_total
        total = sub_total + tax
        record: dict[str, Any] = {
            "Type": kind,
            "InvoiceID": NIL_ID,
            "InvoiceNumber": invoice.get("InvoiceNumber") or "",
            "Reference": (invoice.get("Reference") or "") if kind == "ACCREC" else "",
            "Prepayments": [],
            "Overpayments": [],
            "AmountDue": total,
            "AmountPaid": 0,
            "SentToContact": False,
            "CurrencyRate": _currency_rate(invoice.get("CurrencyRate"), currency),
            "IsDiscounted": False,
            "HasErrors": False,
            "InvoicePaymentServices": [],
            "Contact": contact,
            "DateString": f"{issued.isoformat()}T00:00:00",
            "Date": ms_date(issued),
        }
        if due:
            record.update({"DueDateString": f"{due.isoformat()}T00:00:00", "DueDate": ms_date(due)})
        if kind == "ACCREC":
            record["BrandingThemeID"] = "d613f7f9-8fcb-477f-97f0-31eb85b7e5cf"
        record.update(
            {
                "Status": status,
                "LineAmountTypes": amounts_type,
                "LineItems": lines,
                "SubTotal": sub_total,
                "TotalTax": tax,
                "Total": total,
                "UpdatedDateUTC": ms_date(self.clock()),
                "CurrencyCode": currency,
            }
        )
        return record

    def _contact(self, contact: Any, errors: list[str]) -> dict[str, Any]:
        if not isinstance(contact, dict) or not (contact.get("ContactID") or contact.get("Name")):
            errors.append("A Contact must be specified for this type of transaction")
            return {}
        found = next(
            (
                c
                for c in self.contacts
                if c["ContactID"] == contact.get("ContactID")
                or (not contact.get("ContactID") and c["Name"] == contact.get("Name"))
            ),
            None,
        )
        if found is None:
            errors.append("The contact specified could not be found")
            return dict(contact)
        summary = {
            k: v
            for k, v in copy.deepcopy(found).items()
            if k not in ("Balances", "HasAttachments", "BatchPayments")
        }
        summary.setdefault("SalesTrackingCategories", [])
        summary.setdefault("PurchasesTrackingCategories", [])
        return summary

    def _line(
        self,
        line: dict[str, Any],
        kind: Any,
        status: str,
        amounts_type: str,
        unit_places: int,
        errors: list[str],
    ) -> dict[str, Any]:
        item = self._item(line.get("ItemCode"), errors)
        side = (item or {}).get("SalesDetails" if kind == "ACCREC" else "PurchaseDetails") or {}
        quantity, unit, amount = _line_amounts(line, side, unit_places)
        code, account = self._account(line, item, side, kind, errors)
        if not code and status != "DRAFT" and amount:
            errors.append("Account code must be specified on each line of an approved invoice.")
        tax_type = line.get("TaxType") or side.get("TaxType") or (account or {}).get("TaxType") or "NONE"
        if tax_type not in TAX_RATES:
            errors.append(
                f"The TaxType code '{tax_type}' does not exist "
                "or cannot be used for this type of transaction."
            )
        rate = Decimal(0) if amounts_type == "NoTax" else TAX_RATES.get(tax_type, Decimal(0))
        taxable = amount * rate / (1 + rate) if amounts_type == "Inclusive" else amount * rate
        description = line.get("Description")
        if description is None and item:
            description = item.get("Description" if kind == "ACCREC" else "PurchaseDescription")
        result: dict[str, Any] = {
            "Description": description or "",
            "UnitAmount": unit,
            "TaxType": tax_type,
            "TaxAmount": taxable.quantize(CENT, rounding=ROUND_HALF_UP),
            "LineAmount": amount,
            "AccountCode": (account or {}).get("Code", ""),
            "Tracking": self._tracking(line.get("Tracking") or [], errors),
            "Quantity": quantity,
            "LineItemID": NIL_ID,
            "ValidationErrors": [],
        }
        if account:
            result["AccountID"] = account["AccountID"]
        if item:
            result["ItemCode"] = item["Code"]
            result["Item"] = {"ItemID": item["ItemID"], "Name": item.get("Name"), "Code": item["Code"]}
        return result

    def _item(self, code: Any, errors: list[str]) -> dict[str, Any] | None:
        if not code:
            return None
        item = next((i for i in self.items if i["Code"] == code), None)
        if item is None:
            errors.append(f"Item code '{code}' is not valid.")
        return item

    def _account(
        self,
        line: dict[str, Any],
        item: dict[str, Any] | None,
        side: dict[str, Any],
        kind: Any,
        errors: list[str],
    ) -> tuple[str | None, dict[str, Any] | None]:
        """The line's account code (given, or the item's for this side) and its record if it exists."""
        code = line.get("AccountCode") or side.get("AccountCode")
        if not code and item and item.get("IsTrackedAsInventory") and kind == "ACCPAY":
            code = item.get("InventoryAssetAccountCode")
        if not code:
            return None, None
        account = next((a for a in self.accounts if a.get("Code") == code), None)
        if account is None:
            errors.append(f"Account code '{code}' is not a valid code for this document.")
        return code, account

    def _tracking(self, tracking: list[dict[str, Any]], errors: list[str]) -> list[dict[str, Any]]:
        if len(tracking) > 2:
            errors.append("A line item can have a maximum of 2 tracking categories.")
        chosen = []
        for entry in tracking:
            category = next(
                (
                    c
                    for c in self.tracking_categories
                    if c["TrackingCategoryID"] == entry.get("TrackingCategoryID")
                    or c["Name"] == entry.get("Name")
                ),
                None,
            )
            options = (category or {}).get("Options") or []
            option = next(
                (
                    o
                    for o in options
                    if o["TrackingOptionID"] == entry.get("TrackingOptionID")
                    or o["Name"] == entry.get("Option")
                ),
                None,
            )
            if category is None or option is None or option.get("Status") != "ACTIVE":
                errors.append(
                    f"The tracking option '{entry.get('Option')}' "
                    f"is not valid for category '{entry.get('Name')}'."
                )
                continue
            chosen.append(
                {
                    "Name": category["Name"],
                    "Option": option["Name"],
                    "TrackingCategoryID": category["TrackingCategoryID"],
                    "TrackingOptionID": option["TrackingOptionID"],
                }
            )
        return chosen


def _line_amounts(
    line: dict[str, Any], side: dict[str, Any], unit_places: int
) -> tuple[Decimal, Decimal, Decimal]:
    """Quantity, UnitAmount, LineAmount as Xero fills them in (item price when none is given)."""
    unit, amount, quantity = line.get("UnitAmount"), line.get("LineAmount"), line.get("Quantity")
    if unit is None and amount is None:
        unit = side.get("UnitPrice")
    if unit is None and amount is None:
        return Decimal(quantity or 0), Decimal(0), Decimal(0)
    quantity = Decimal(1) if quantity is None else Decimal(quantity)
    step = Decimal(1).scaleb(-unit_places)
    if unit is None:
        unit = (Decimal(amount) / quantity).quantize(step, rounding=ROUND_HALF_UP) if quantity else Decimal(0)
    else:
        unit = Decimal(unit).quantize(step, rounding=ROUND_HALF_UP)
    if amount is None:
        amount = (quantity * unit).quantize(CENT, rounding=ROUND_HALF_UP)
    return quantity, unit, Decimal(amount)


def _currency_rate(given: Any, currency: str) -> Decimal:
    """The rate Xero records: always 1 in the base currency, else the one given (to 6 places) or the day's."""
    if currency == BASE_CURRENCY:
        return Decimal(1)
    if given is None:
        return DAY_RATES.get(currency, Decimal(1))
    return Decimal(given).quantize(RATE_STEP, rounding=ROUND_HALF_UP)


def _note_errors(record: Any) -> list[str]:
    details = record.get("Details") if isinstance(record, dict) else None
    if not isinstance(details, str) or not details.strip():
        return ["Details must be supplied"]
    if len(details) > MAX_NOTE:
        return [f"Details must not be more than {MAX_NOTE} characters long"]
    return []


def _date(value: Any, label: str, errors: list[str]) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        errors.append(f"{label} is not a valid date.")
        return None


def _with_errors(record: dict[str, Any], errors: list[str]) -> dict[str, Any]:
    return {
        **copy.deepcopy(record),
        "HasErrors": True,
        "StatusAttributeString": "ERROR",
        "ValidationErrors": [{"Message": message} for message in errors],
    }


def _validation_exception(results: list[tuple[dict[str, Any], list[str]]]) -> dict[str, Any]:
    """Xero's 400 answer: the invoices as parsed, each with its ValidationErrors."""
    return {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": "A validation exception occurred",
        "Elements": [_with_errors(record, errors) for record, errors in results],
    }


def _connections(recorded: list[dict[str, Any]], tenant_id: str) -> list[dict[str, Any]]:
    """The recorded connections, plus one for the fake's organisation if the recording lacks it."""
    if any(connection["tenantId"] == tenant_id for connection in recorded):
        return recorded
    own = {**recorded[0], "id": str(uuid.uuid4()), "tenantId": tenant_id, "tenantName": "Fake organisation"}
    return [own, *recorded]


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(
        status,
        headers={"content-type": "application/json; charset=utf-8"},
        content=jsonutil.dumps(body).encode(),
    )


def _problem(status: int, title: str, detail: str) -> httpx.Response:
    """Xero's gateway errors (401, 403, 404) are RFC 7807-like problem documents."""
    return _json(
        status,
        {
            "Type": None,
            "Title": title,
            "Status": status,
            "Detail": detail,
            "Instance": str(uuid.uuid4()),
            "Extensions": {},
        },
    )
