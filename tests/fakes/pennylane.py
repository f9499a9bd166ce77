"""A fake Pennylane (Company API v2 and OAuth server) that behaves like the recorded one.

One stateful object, used as ``httpx.MockTransport(fake.handle)`` in unit tests or behind a
real HTTP server end to end. It serves:

- ``POST /oauth/token`` (``grant_type=refresh_token``, client id and secret in the *form
  body*, as Pennylane documents; HTTP Basic is not accepted): a new access token (24 h) and a
  *new* refresh token. Pennylane rotates refresh tokens: the one used is retired and so is
  the access token issued with it, so presenting either again fails (400 ``invalid_grant``,
  401 on the API). A wrong client answers 401 ``invalid_client``. Bodies are Doorkeeper's
  (the Rails OAuth server Pennylane's ``/oauth/*`` routes are served by).
- ``GET /oauth/authorize``: the consent screen (tests/fakes/consent.py), with the client id,
  the registered redirect URI and every scope of ``SCOPES`` required. PKCE as Pennylane's
  OAuth server (Doorkeeper) does it: optional, and a code issued with an S256 challenge is
  exchanged only with its verifier. Approving redirects with ``code`` and ``state``, nothing
  more (Pennylane adds nothing); the user's choice of company is the fake's one company.
- ``POST /oauth/token`` with ``grant_type=authorization_code`` (client id and secret in the form
  body, as for refreshes): the code is single use and bound to the client, the redirect URI
  and the challenge (400 ``invalid_grant`` otherwise); the answer is the refresh's Doorkeeper
  body, and its pair becomes the connection's (the fake holds one grant's refresh token).
- ``POST /oauth/revoke`` (RFC 7009, client id and secret in the form body; 401
  ``invalid_client`` otherwise): revoking either token of a pair ends both, and the answer is
  200 ``{}`` whatever the token (RFC 7009 2.2). Revoked tokens are kept in ``revoked``.
- ``/api/external/v2/...`` with a known bearer token (401 ``{"error", "status"}`` otherwise).
- ``GET /me``: the user and company of the token (any token, whatever its scopes), in the
  documented shape (tests/fixtures/providers/pennylane/get-me.json), its query checked
  against ``getMe`` (tests/fixtures/specs/pennylane/me.json).
- Every ``POST /customer_invoices`` body is first checked against Pennylane's own OpenAPI
  schema for it (``postCustomerInvoices``, tests/fixtures/specs/pennylane, via
  tests/support/specs.py), and every GET's query parameters against the operation's documented
  ones: anything off the document answers 400 naming each problem, so every body and query any
  test sends is checked.
- ``POST /customer_invoices``: after the schema, Pennylane's rules (existing customer,
  products and ledger accounts, VAT rate codes, unique ``external_reference``, a finalised
  invoice not dated before the latest finalised one: 422 ``{"error", "status"}``); fills
  product lines from the product, computes VAT and totals, numbers finalised invoices;
  answers 201 with the invoice in the recorded shape.
- ``POST /company_customers``: the body checked against ``postCompanyCustomer`` (400 as
  above), then Pennylane's rules (a name, every part of each address, an ISO 3166 alpha-2
  country, a unique ``external_reference``: 422 ``{"error", "status"}``; a duplicate *name* is
  not refused, Pennylane does not check names); answers 201 with the customer in the recorded
  list shape (``customer_type`` ``company``), which joins the customer list, so invoices can
  name it and ``GET /customers`` shows it.
- ``GET /customer_invoices`` (``filter`` on ``external_reference``/``id``/``customer_id``/
  ``draft``, cursor paging), ``GET /customers`` (``filter`` on ``id``/``customer_type``/
  ``name``/``external_reference``/``reg_no``), ``/customer_invoices/{id}``,
  ``/customer_invoices/{id}/invoice_lines``, ``/products``, ``/ledger_accounts``: cursor-paged
  lists (``limit`` 1-100, default 20; ``has_more``/``next_cursor``; ``sort`` ``id`` or
  ``-id``, default ``-id``).

Records come from tests/fixtures/providers/pennylane (recorded exchanges, trimmed). Written
from the documentation rather than a recording: the company-customer create (its body from
the OpenAPI document, its answer in the recorded list shape), the token endpoint's bodies, the error
bodies (documented as ``{"error": string, "status": integer}``; the wording of messages is
a close paraphrase, except "Date cannot be before latest finalized invoice.", quoted from a
user's report), the 429 answer (documented text and ``retry-after``), the invoice lines'
shape (from the reference page) and the VAT rates (a subset of the documented codes).

Fault injection: ``fail_next(status, headers, times, body)`` answers the next requests with
that status (e.g. 429 with Retry-After, 503); ``timeout_next(times, after_processing)`` raises
httpx.ReadTimeout instead of answering, before or after doing the work (a lost response).
Every request received is kept in ``requests``.
"""

from __future__ import annotations

import base64
import copy
import random
import string
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import httpx

from ledgerbridge import jsonutil
from tests.fakes.consent import ConsentScreen, invalid_grant
from tests.fakes.faults import Fault, Faults
from tests.support.specs import query_errors, schema_errors

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "pennylane"
HOST = "https://app.pennylane.com"
API = "/api/external/v2"
TOKEN_PATH = "/oauth/token"
AUTHORIZE_PATH = "/oauth/authorize"
REVOKE_PATH = "/oauth/revoke"
REDIRECT_URI = "https://ledgerbridge.example/connect/callback"  # the fake app's registered one
CLIENT_ID = "fake-pennylane-client-id"
CLIENT_SECRET = "fake-pennylane-client-secret"
ACCESS_TOKEN_SECONDS = 86400
SCOPES = "customer_invoices:all customers:all products:readonly ledger_accounts:readonly"
DEFAULT_LIMIT, MAX_LIMIT = 20, 100
CENT = Decimal("0.01")
# Documented codes with their rates (a subset: the French rates and the zero-rated regimes).
VAT_RATES = {
    "FR_09": Decimal("0.009"),
    "FR_21": Decimal("0.021"),
    "FR_55": Decimal("0.055"),
    "FR_85": Decimal("0.085"),
    "FR_100": Decimal("0.10"),
    "FR_200": Decimal("0.20"),
    "exempt": Decimal(0),
    "extracom": Decimal(0),
    "intracom_200": Decimal(0),
    "crossborder": Decimal(0),
}
# Invoice currency -> euros (Pennylane converts at its own rate; these are the fake's).
EXCHANGE_RATES = {
    "EUR": Decimal("1.0"),
    "USD": Decimal("0.9"),
    "GBP": Decimal("1.15"),
    "CHF": Decimal("1.05"),
}
SPEC = "pennylane/customer_invoices"  # excerpt of Pennylane's OpenAPI document
CUSTOMERS_SPEC = "pennylane/customers"  # the company-customer create body, from the same document
ME_SPEC = "pennylane/me"  # the user-profile endpoint, from the same document
# The list operations the fake serves, by their path under /api/external/v2.
LIST_OPERATIONS = {
    "customers": "getCustomers",
    "products": "getProducts",
    "ledger_accounts": "getLedgerAccounts",
    "customer_invoices": "getCustomerInvoices",
    "invoice_lines": "getCustomerInvoiceInvoiceLines",
}
# Filterable fields the fake implements, by list (a subset of those each operation documents).
FILTER_FIELDS = {
    "customer_invoices": ("external_reference", "id", "customer_id", "draft"),
    "customers": ("external_reference", "id", "customer_type", "name", "reg_no"),
}
INVALID_GRANT = (
    "The provided authorization grant is invalid, expired, revoked, does not match the redirection "
    "URI used in the authorization request, or was issued to another client."
)
INVALID_CLIENT = (
    "Client authentication failed due to unknown client, no client authentication included, "
    "or unsupported authentication method."
)


def fixture(name: str) -> dict[str, Any]:
    """A recorded exchange file (numbers as Decimals; Pennylane's amounts are strings anyway)."""
    return jsonutil.loads((FIXTURES / f"{name}.json").read_bytes())


def recorded_body(name: str) -> Any:
    """The response body of the first exchange of a fixture."""
    return fixture(name)["exchanges"][0]["response"]["body"]


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(jsonutil.dumps({"offset": offset}).encode()).decode()


def _offset(cursor: str) -> int | None:
    try:
        offset = jsonutil.loads(base64.urlsafe_b64decode(cursor.encode()))["offset"]
    except (ValueError, KeyError, TypeError):
        return None
    return offset if isinstance(offset, int) and offset >= 0 else None


def _text(amount: Decimal) -> str:
    """Pennylane writes amounts like "1200.0": at least one decimal."""
    text = format(amount.normalize(), "f")
    return text if "." in text else f"{text}.0"


class _Refused(Exception):
    """A request the fake answers with an error (status and message)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class FakePennylane:
    """See the module docstring."""

    def __init__(
        self,
        *,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        access_token: str = "pl-access-0",
        refresh_token: str = "pl-refresh-0",
        redirect_uri: str = REDIRECT_URI,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.client_id, self.client_secret, self.clock = client_id, client_secret, clock
        self.access_tokens = {access_token}
        self.refresh_token: str | None = refresh_token
        self.retired_refresh_tokens: list[str] = []
        self.revoked: list[str] = []
        self._access_of = {refresh_token: access_token}  # each refresh token's access token
        self.consent = ConsentScreen(
            path=AUTHORIZE_PATH,
            client_id=client_id,
            redirect_uri=redirect_uri,
            required_scopes=tuple(SCOPES.split()),
            pkce=False,  # optional, as in Doorkeeper; a challenge sent is still checked
        )
        self.profile: dict[str, Any] = recorded_body("get-me")
        self.requests: list[httpx.Request] = []
        self.customers: list[dict[str, Any]] = recorded_body("list-customers")["items"]
        self.products: list[dict[str, Any]] = recorded_body("list-products")["items"]
        self.ledger_accounts: list[dict[str, Any]] = recorded_body("list-ledger-accounts")["items"]
        self.invoices: dict[int, dict[str, Any]] = {
            record["id"]: record for record in recorded_body("list-customer-invoices")["items"]
        }
        self.invoice_lines: dict[int, list[dict[str, Any]]] = {invoice_id: [] for invoice_id in self.invoices}
        self._faults = Faults("Pennylane")
        self._issued = 0
        self._next_id = max(self.invoices) + 4096
        self._next_number = 1
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

    def revoke_refresh_tokens(self) -> None:
        """The connection's grant is gone: refreshing answers invalid_grant."""
        self.refresh_token = None

    def add_customer(self, name: str) -> dict[str, Any]:
        """A new company customer in the recorded shape (for paging tests)."""
        template = copy.deepcopy(self.customers[0])
        customer_id = max(c["id"] for c in self.customers) + 4096
        template.update(
            {"id": customer_id, "name": name, "customer_type": "company", "external_reference": None}
        )
        self.customers.insert(0, template)
        return template

    def invoice_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST" and r.url.path == f"{API}/customer_invoices"]

    def customer_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST" and r.url.path == f"{API}/company_customers"]

    def created_customers(self) -> list[dict[str, Any]]:
        """Customers made through the API (not the recorded ones), oldest first."""
        return sorted((c for c in self.customers if c.get("_created")), key=lambda c: c["id"])

    def created(self) -> list[dict[str, Any]]:
        """Invoices made through the API (not the recorded ones), oldest first."""
        return [record for record in self.invoices.values() if record.get("_created")]

    @staticmethod
    def body_of(request: httpx.Request) -> Any:
        return jsonutil.loads(request.content)

    # --- dispatch ---------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            request.read()
            self.requests.append(request)
            fault = self._faults.take(request, lambda: self._answer(request))
            if fault:
                return _fault_response(fault)
            return self._answer(request)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        try:
            return self._route(request)
        except _Refused as refused:
            return _error(refused.status, refused.message)

    def _route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if self.consent.handles(request):
            return self.consent.handle(request)
        if path in (TOKEN_PATH, REVOKE_PATH):
            return self._oauth(request)
        if not path.startswith(f"{API}/"):
            raise _Refused(404, "Not Found")
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("Bearer ") or authorization[7:] not in self.access_tokens:
            raise _Refused(401, "Access token is missing or invalid")
        parts = path[len(API) + 1 :].split("/")
        if request.method == "POST" and parts == ["customer_invoices"]:
            return self._create_invoice(request)
        if request.method == "POST" and parts == ["company_customers"]:
            return self._create_customer(request)
        if request.method == "GET":
            return self._read(request, parts)
        raise _Refused(404, "Not Found")

    def _read(self, request: httpx.Request, parts: list[str]) -> httpx.Response:
        lists = {
            "customers": self.customers,
            "products": self.products,
            "ledger_accounts": self.ledger_accounts,
            "customer_invoices": list(self.invoices.values()),
        }
        _check_query(request, parts)
        if parts == ["me"]:
            return _json(200, copy.deepcopy(self.profile))
        if len(parts) == 1 and parts[0] in lists:
            return self._page(request, self._filtered(request, parts[0], lists[parts[0]]))
        if len(parts) >= 2 and parts[0] == "customer_invoices":
            invoice = self.invoices.get(int(parts[1])) if parts[1].isdigit() else None
            if invoice is None:
                raise _Refused(404, "Customer invoice not found")
            if len(parts) == 2:
                return _json(200, _public(invoice))
            if parts[2:] == ["invoice_lines"]:
                return self._page(request, self.invoice_lines[invoice["id"]])
        raise _Refused(404, "Not Found")

    # --- OAuth ------------------------------------------------------------------------------

    def _oauth(self, request: httpx.Request) -> httpx.Response:
        """The token and revocation endpoints: a POSTed form naming this app with its secret."""
        if request.method != "POST":
            return _json(405, {"error": "invalid_request"})
        form = {key: values[0] for key, values in parse_qs(request.content.decode()).items()}
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.client_secret):
            return _json(401, {"error": "invalid_client", "error_description": INVALID_CLIENT})
        return self._token(form) if request.url.path == TOKEN_PATH else self._revoke(form)

    def _token(self, form: dict[str, str]) -> httpx.Response:
        if form.get("grant_type") == "authorization_code":
            refusal = self.consent.exchange(form, form["client_id"])
            return invalid_grant(refusal) if refusal else self._issue()
        if form.get("grant_type") != "refresh_token":
            return _json(400, {"error": "unsupported_grant_type"})
        if self.refresh_token is None or form.get("refresh_token") != self.refresh_token:
            return _json(400, {"error": "invalid_grant", "error_description": INVALID_GRANT})
        self.retired_refresh_tokens.append(self.refresh_token)
        self._access_of.pop(self.refresh_token, None)
        self.access_tokens.clear()  # the previous pair stops working at once
        return self._issue()

    def _revoke(self, form: dict[str, str]) -> httpx.Response:
        """RFC 7009: either token of a pair ends both; 200 ``{}`` even for a token already dead."""
        token = form.get("token", "")
        self.revoked.append(token)
        refresh = next((r for r, access in self._access_of.items() if token in (r, access)), None)
        if refresh is not None:
            self.access_tokens.discard(self._access_of.pop(refresh))
            if self.refresh_token == refresh:
                self.refresh_token = None
        return _json(200, {})

    def _issue(self) -> httpx.Response:
        """A new token pair, the connection's from now on, in Doorkeeper's token answer."""
        self._issued += 1
        access, refresh = f"pl-access-{self._issued}", f"pl-refresh-{self._issued}"
        self.refresh_token = refresh
        self.access_tokens.add(access)
        self._access_of[refresh] = access
        return _json(
            200,
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": ACCESS_TOKEN_SECONDS,
                "refresh_token": refresh,
                "scope": SCOPES,
                "created_at": int(self.clock().timestamp()),
            },
        )

    # --- lists ------------------------------------------------------------------------------

    def _page(self, request: httpx.Request, records: list[dict[str, Any]]) -> httpx.Response:
        params = request.url.params
        try:
            limit = int(params.get("limit", DEFAULT_LIMIT))
        except ValueError:
            raise _Refused(400, "limit must be an integer") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise _Refused(400, f"limit must be between 1 and {MAX_LIMIT}")
        sort = params.get("sort", "-id")
        if sort not in ("id", "-id"):
            raise _Refused(400, f"Invalid sort field: {sort}")
        ordered = sorted(records, key=lambda record: record["id"], reverse=sort == "-id")
        offset = _offset(params["cursor"]) if "cursor" in params else 0
        if offset is None:
            raise _Refused(400, "Invalid cursor")
        chunk = ordered[offset : offset + limit]
        has_more = offset + limit < len(ordered)
        return _json(
            200,
            {
                "items": [_public(record) for record in chunk],
                "has_more": has_more,
                "next_cursor": _cursor(offset + limit) if has_more else None,
            },
        )

    def _filtered(
        self, request: httpx.Request, name: str, records: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        text = request.url.params.get("filter")
        if text is None:
            return records
        if name not in FILTER_FIELDS:
            raise _Refused(400, f"{name} cannot be filtered by the fake")
        try:
            conditions = jsonutil.loads(text)
        except ValueError:
            raise _Refused(400, "filter must be a JSON array") from None
        if not isinstance(conditions, list):
            raise _Refused(400, "filter must be a JSON array")
        for condition in conditions:
            records = [record for record in records if _matches(record, condition, FILTER_FIELDS[name])]
        return records

    # --- create -----------------------------------------------------------------------------

    def _create_invoice(self, request: httpx.Request) -> httpx.Response:
        try:
            body = jsonutil.loads(request.content)
        except ValueError:
            raise _Refused(400, "Invalid JSON") from None
        _check_shape(body)
        customer = self._customer(body["customer_id"])
        issued, due = _iso_date(body["date"], "date"), _iso_date(body["deadline"], "deadline")
        if due < issued:
            raise _Refused(422, "Deadline must be after the invoice date")
        reference = body.get("external_reference")
        if reference is not None and any(
            r["external_reference"] == reference for r in self.invoices.values()
        ):
            raise _Refused(422, f"External reference {reference} has already been taken")
        currency = body.get("currency") or "EUR"
        if currency not in EXCHANGE_RATES:
            raise _Refused(422, f"Currency {currency} is not supported")
        draft = body.get("draft", False)
        if not draft and any(_finalised_after(record, issued) for record in self.invoices.values()):
            raise _Refused(422, "Date cannot be before latest finalized invoice.")
        lines = [self._line(line, currency) for line in body["invoice_lines"]]
        record = self._record(body, customer, issued, due, currency, draft, lines)
        self.invoices[record["id"]] = record
        self.invoice_lines[record["id"]] = lines
        return _json(201, _public(record))

    def _create_customer(self, request: httpx.Request) -> httpx.Response:
        try:
            body = jsonutil.loads(request.content)
        except ValueError:
            raise _Refused(400, "Invalid JSON") from None
        problems = schema_errors(body, CUSTOMERS_SPEC, "postCompanyCustomer")
        if problems:
            raise _Refused(400, "Invalid body: " + "; ".join(problems))
        if not str(body["name"]).strip():
            raise _Refused(422, "Name can't be blank")
        for slot in ("billing_address", "delivery_address"):
            if slot in body:
                _check_address(slot, body[slot])
        reference = body.get("external_reference")
        if reference is not None and any(c.get("external_reference") == reference for c in self.customers):
            raise _Refused(422, f"External reference {reference} has already been taken")
        record = self._customer_record(body)
        self.customers.insert(0, record)
        return _json(201, _public(record))

    def _customer_record(self, body: dict[str, Any]) -> dict[str, Any]:
        """A company customer as Pennylane lists it: given values, Pennylane's defaults for the rest."""
        self._next_id += 4096
        customer_id = self._next_id
        now = self.clock().isoformat().replace("+00:00", "Z")
        empty_address = {"address": "", "postal_code": "", "city": "", "country_alpha2": ""}
        url = f"{HOST}{API}"
        return {
            "billing_iban": body.get("billing_iban"),
            "created_at": now,
            "customer_type": "company",
            "id": customer_id,
            "name": body["name"],
            "payment_conditions": body.get("payment_conditions", "30_days"),
            "phone": body.get("phone", ""),
            "recipient": body.get("recipient", ""),
            "reference": body.get("reference") or "",
            "updated_at": now,
            "billing_language": body.get("billing_language", "fr_FR"),
            "vat_number": body.get("vat_number", ""),
            "reg_no": body.get("reg_no", ""),
            "ledger_account": {"id": customer_id + 1},
            "notes": body.get("notes"),
            "emails": list(body.get("emails", [])),
            "billing_address": dict(body["billing_address"]),
            "delivery_address": dict(body.get("delivery_address") or empty_address),
            "external_reference": body.get("external_reference") or str(uuid.uuid4()),
            "mandates": {"url": f"{url}/gocardless_mandates?filter={_customer_filter(customer_id)}"},
            "pro_account_mandates": {
                "url": f"{url}/pro_account/mandates?filter={_customer_filter(customer_id)}"
            },
            "contacts": {"url": f"{url}/customers/{customer_id}/contacts"},
            "_created": True,
        }

    def _customer(self, customer_id: Any) -> dict[str, Any]:
        customer = next((c for c in self.customers if c["id"] == customer_id), None)
        if customer is None:
            raise _Refused(422, f"Customer {customer_id} not found")
        return customer

    def _line(self, line: dict[str, Any], currency: str) -> dict[str, Any]:
        product: dict[str, Any] = {}
        if "product_id" in line:
            product = next((p for p in self.products if p["id"] == line["product_id"]), {})
            if not product:
                raise _Refused(422, f"Product {line['product_id']} not found")
        if "ledger_account_id" in line and not any(
            a["id"] == line["ledger_account_id"] for a in self.ledger_accounts
        ):
            raise _Refused(422, f"Ledger account {line['ledger_account_id']} not found")
        vat_rate = line.get("vat_rate") or product.get("vat_rate")
        if vat_rate not in VAT_RATES:
            raise _Refused(422, f"Vat rate {vat_rate} is not included in the list")
        unit = Decimal(line.get("raw_currency_unit_price") or product.get("price_before_tax") or "0")
        quantity = Decimal(line["quantity"])
        before_tax = (quantity * unit).quantize(CENT, rounding=ROUND_HALF_UP)
        tax = (before_tax * VAT_RATES[vat_rate]).quantize(CENT, rounding=ROUND_HALF_UP)
        rate = EXCHANGE_RATES[currency]
        now = self.clock().isoformat().replace("+00:00", "Z")
        self._next_id += 1
        return {
            "id": self._next_id,
            "label": line.get("label") or product.get("label") or "",
            "unit": line.get("unit") or product.get("unit"),
            "quantity": _text(quantity),
            "amount": _text(((before_tax + tax) * rate).quantize(CENT)),
            "currency_amount": _text(before_tax + tax),
            "description": line.get("description") or product.get("description") or "",
            "product": {"id": product["id"], "url": f"{HOST}{API}/products/{product['id']}"}
            if product
            else None,
            "vat_rate": vat_rate,
            "currency_amount_before_tax": _text(before_tax),
            "currency_tax": _text(tax),
            "tax": _text((tax * rate).quantize(CENT)),
            "raw_currency_unit_price": _text(unit),
            "discount": {"type": "relative", "value": "0.0"},
            "section_rank": None,
            "imputation_dates": None,
            "created_at": now,
            "updated_at": now,
        }

    def _record(
        self,
        body: dict[str, Any],
        customer: dict[str, Any],
        issued: date,
        due: date,
        currency: str,
        draft: bool,
        lines: list[dict[str, Any]],
    ) -> dict[str, Any]:
        before_tax = sum((Decimal(line["currency_amount_before_tax"]) for line in lines), Decimal(0))
        tax = sum((Decimal(line["currency_tax"]) for line in lines), Decimal(0))
        discount = Decimal(body["discount"]["value"]) if body.get("discount") else Decimal(0)
        if discount and before_tax:
            tax = (tax * (before_tax - discount) / before_tax).quantize(CENT, rounding=ROUND_HALF_UP)
            before_tax -= discount
        total, rate = before_tax + tax, EXCHANGE_RATES[currency]
        amount = (total * rate).quantize(CENT)
        self._next_id += 4096
        invoice_id = self._next_id
        number = "" if draft else f"F-{issued.year}-{self._take_number():04d}"
        now = self.clock().isoformat().replace("+00:00", "Z")
        url = f"{HOST}{API}/customer_invoices/{invoice_id}"
        return {
            "id": invoice_id,
            "label": body.get("label") or f"Facture {customer['name']} (label généré)",
            "invoice_number": number,
            "currency": currency,
            "amount": _text(amount),
            "currency_amount": _text(total),
            "currency_amount_before_tax": _text(before_tax),
            "tax": _text((tax * rate).quantize(CENT)),
            "currency_tax": _text(tax),
            "remaining_amount_with_tax": None if draft else _text(amount),
            "remaining_amount_without_tax": None if draft else _text((before_tax * rate).quantize(CENT)),
            "draft": draft,
            "language": body.get("language") or "fr_FR",
            "paid": False,
            "status": "draft" if draft else "upcoming",
            "filename": None,
            "date": issued.isoformat(),
            "deadline": due.isoformat(),
            "pdf_invoice_free_text": body.get("pdf_invoice_free_text") or "",
            "pdf_invoice_subject": body.get("pdf_invoice_subject") or "",
            "pdf_description": body.get("pdf_description"),
            "special_mention": body.get("special_mention"),
            "created_at": now,
            "updated_at": now,
            "archived_at": None,
            "public_file_url": f"{HOST}/public/invoice/pdf?encrypted_id=fake-{invoice_id}",
            "exchange_rate": _text(rate),
            "discount": _discount(discount),
            "ledger_entry": {"id": invoice_id},
            "customer_invoice_template": None,
            "transaction_reference": None,
            "customer": {"id": customer["id"], "url": f"{HOST}{API}/customers/{customer['id']}"},
            "billing_subscription": None,
            "credited_invoice": None,
            "quote": None,
            **{name: {"url": f"{url}/{name}"} for name in _LINKS},
            "external_reference": body.get("external_reference") or _generated_reference(),
            "e_invoicing": None,
            "factur_x": False,
            "_created": True,
        }

    def _take_number(self) -> int:
        self._next_number += 1
        return self._next_number - 1


_LINKS = (
    "invoice_line_sections",
    "invoice_lines",
    "custom_header_fields",
    "categories",
    "payments",
    "matched_transactions",
    "appendices",
)


def _check_shape(body: Any) -> None:
    """Pennylane's 400s: a body its OpenAPI schema refuses, no lines, a price that is no decimal."""
    problems = schema_errors(body, SPEC, "postCustomerInvoices")
    if problems:
        raise _Refused(400, "Invalid body: " + "; ".join(problems))
    if not body["invoice_lines"]:
        raise _Refused(400, "invoice_lines must contain at least one line")
    for index, line in enumerate(body["invoice_lines"]):
        price = line.get("raw_currency_unit_price")
        try:
            Decimal(price if price is not None else "0")
        except InvalidOperation:
            raise _Refused(400, f"invoice_lines[{index}].raw_currency_unit_price is not a decimal") from None


def _check_query(request: httpx.Request, parts: list[str]) -> None:
    """A 400 for a query parameter the operation does not document."""
    if parts == ["me"]:
        spec, operation = ME_SPEC, "getMe"
    else:
        spec, operation = SPEC, LIST_OPERATIONS.get(parts[-1]) if len(parts) in (1, 3) else None
    if operation is None:
        return
    problems = query_errors(dict(request.url.params), spec, operation)
    if problems:
        raise _Refused(400, "; ".join(problems))


def _check_address(slot: str, address: dict[str, str]) -> None:
    """Pennylane's 422s for an address: every part filled in, a known two-letter country code."""
    label = slot.replace("_", " ").capitalize()
    for part in ("address", "postal_code", "city", "country_alpha2"):
        if not str(address[part]).strip():
            raise _Refused(422, f"{label} {part.replace('_', ' ')} can't be blank")
    country = address["country_alpha2"]
    if not (len(country) == 2 and country.isascii() and country.isalpha() and country.isupper()):
        raise _Refused(422, f"{label} country alpha2 {country} is not a valid ISO 3166 country code")


def _customer_filter(customer_id: int) -> str:
    """The URL-encoded ``customer_id`` filter Pennylane writes into a customer's mandate links."""
    return quote(jsonutil.dumps([{"field": "customer_id", "operator": "eq", "value": str(customer_id)}]))


def _iso_date(value: Any, name: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise _Refused(400, f"{name} must be an ISO 8601 date") from None


def _finalised_after(record: dict[str, Any], issued: date) -> bool:
    return (
        not record.get("draft")
        and record.get("status") != "credit_note"
        and date.fromisoformat(record["date"]) > issued
    )


def _matches(record: dict[str, Any], condition: Any, fields: tuple[str, ...]) -> bool:
    if not isinstance(condition, dict):
        raise _Refused(400, "Each filter must be an object with field, operator and value")
    name, operator, value = condition.get("field"), condition.get("operator"), condition.get("value")
    if name not in fields:
        raise _Refused(400, f"Invalid filter field: {name}")
    if operator not in ("eq", "in"):
        raise _Refused(400, f"Invalid filter operator: {operator}")
    actual = (record.get("customer") or {}).get("id") if name == "customer_id" else record.get(name)
    actual_text = str(actual).lower() if isinstance(actual, bool) else str(actual)
    wanted = value if operator == "in" and isinstance(value, list) else [value]
    return actual_text in [str(w).lower() if isinstance(w, bool) else str(w) for w in wanted]


def _discount(absolute: Decimal) -> dict[str, str]:
    """As Pennylane answers it: the absolute discount given, or a relative 0."""
    return (
        {"type": "absolute", "value": _text(absolute)} if absolute else {"type": "relative", "value": "0.0"}
    )


def _generated_reference() -> str:
    return "".join(random.choices(string.ascii_uppercase + string.digits, k=10))


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in copy.deepcopy(record).items() if not key.startswith("_")}


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(
        status,
        headers={"content-type": "application/json; charset=utf-8"},
        content=jsonutil.dumps(body).encode(),
    )


def _error(status: int, message: str) -> httpx.Response:
    """Pennylane v2's documented error body."""
    return _json(status, {"error": message, "status": status})


def _fault_response(fault: Fault) -> httpx.Response:
    if fault.body is not None:
        return httpx.Response(
            fault.status, headers=fault.headers, content=jsonutil.dumps(fault.body).encode()
        )
    if fault.status == 429:  # Pennylane's documented 429: plain text and retry-after
        wait = fault.headers.get("Retry-After") or fault.headers.get("retry-after") or "1"
        headers = {"content-type": "text/plain", **fault.headers}
        return httpx.Response(
            429, headers=headers, content=f"Rate limit exceeded. Please retry in {wait} seconds."
        )
    return httpx.Response(fault.status, headers=fault.headers)
