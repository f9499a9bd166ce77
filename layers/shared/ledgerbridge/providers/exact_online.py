"""Exact Online: sales invoices or entries (receivables) and purchase entries (payables), REST API v1.

Receivables are ``POST {api}/api/v1/{division}/salesinvoice/SalesInvoices`` with their
``SalesInvoiceLines`` nested, or, on a connection with ``sales_document=entry``,
``POST .../salesentry/SalesEntries`` with ``SalesEntryLines``; payables are ``POST
.../purchaseentry/PurchaseEntries`` with their ``PurchaseEntryLines`` (the endpoint of the recorded
purchase invoice; ``purchase/PurchaseInvoices`` needs a wholesale licence and is not used).
What each document can hold is Exact's own .NET client models (exactonline-api-dotnet-client,
copied with their licence to tests/fixtures/specs/exact-online, which every test body is checked
against): a property the models mark read-only is never sent, since Exact ignores it silently.
Answers are OData 2 verbose JSON: one entity is ``{"d": {...}}``, a list is ``{"d": {"results":
[...], "__next": url}}`` (or a bare ``d`` array when ``$top`` is given); dates are ``/Date(ms)/``;
errors are ``{"error": {"code", "message": {"lang", "value"}}}``. The division and the country
host come from the connection settings.

Contacts (``map_contact``/``send_contact``/``find_contact``): ``POST .../crm/Accounts``. Exact
keeps customers and suppliers as one kind of record, the account, so one endpoint serves both:
the account is a customer when its ``Status`` is ``C`` and a supplier when ``IsSupplier`` is
true, and one account can be both (``is_customer`` and ``is_supplier`` both true is allowed).
With neither flag given it is created a customer (what an API caller creating a contact
usually means); with only ``is_supplier`` true, a supplier that is no customer; a contact that
is neither (``is_customer`` false, ``is_supplier`` not true) is refused on ``is_customer``: the
reference sync lists only customers and suppliers, so it could never be used. ``name`` →
``Name`` (the one property Exact's Accounts reference page marks mandatory), ``email_address`` →
``Email``, ``tax_number`` → ``VATNumber``, ``currency`` → ``SalesCurrency`` for a customer and
``PurchaseCurrency`` for a supplier (both for both; the reference reads them back in that order),
``status`` → ``Blocked`` (ARCHIVED true, ACTIVE false: the reference sync reads Blocked as
ARCHIVED). An account holds one address, its visit address (``AddressLine1``/``2``, ``City``,
``State``, ``Postcode``, ``Country`` as the two-letter code Exact's model names): a second
address, or one typed as anything but its visit address (BILLING, POSTAL, SHIPPING ... are
separate crm/Addresses records this API does not create), is refused by path. Phones: a FAX is
``Fax``, any other number ``Phone``, one of each; MOBILE is refused (Exact keeps mobiles on
contact persons, not on the account). ``field_mappings`` are refused (no custom fields through
this API). Exact's .NET models give no lengths, so no length is refused here: Exact's own
refusal of a value too long arrives as ProviderRejected. Exactly once: Exact has no idempotency
key and its account ``Code`` (unique) is a number the division's bookkeeper owns and Exact prints
on documents, so the Ledgerbridge contact id goes (as :func:`exact_reference`, 29 characters) in
``Remarks``, the account's internal remarks, which are printed on nothing the customer receives.
``find_contact`` filters accounts by ``Name`` (the mandatory field, always filterable) and picks
the oldest whose Remarks contain that reference, so the lookup does not rely on Exact filtering
a free-text column. The trade-off: Remarks is not unique in Exact and a user may edit it; an
account whose Remarks were cleared (or renamed) before a resend is not found, and the resend
creates a second account. The create is sent with ``idempotent=False``, and a lost answer is
looked up at once, as for invoices. The answer (Exact answers a POST with the whole account) is
described by ``contact_reference``, the same function the reference sync uses, so a sync after
the create says what the create said.

Why it looks the way it does:

- Idempotency: Exact has no idempotency key. Every document carries a unique reference in
  ``YourRef``, derived from the Ledgerbridge invoice id (:func:`exact_reference`: ``LB-`` + the
  id's 16 bytes in base32, 29 characters: Exact's reference fields are short, and a truncated
  reference would never be found again). ``find_invoice`` looks it up with ``$filter=YourRef eq
  '...'`` before a resend, and ``send_invoice`` does the same when the create's answer was lost.
  On a sales invoice YourRef is "the invoice number of the customer", printed as "Your ref.":
  the customer sees ``LB-...``. It stays there because Exact's sales invoice has no field a
  customer never sees that could carry it: the models' other free-text header fields are the
  printed Description, the PaymentReference the customer pays with, and Remarks, which holds
  the memo; the rest are codes, numbers and links. On purchase and sales entries (bookings, printed
  for nobody) YourRef is internal. No caller value competes for YourRef: ``number`` is refused
  (Exact numbers documents from the journal) and Exact invoices take no ``field_mappings``.
- Exact's own fields that need no decision: ``contact_id`` is ``OrderedBy`` (InvoiceTo is left to
  Exact: the account's own invoice-to account), the sales entry's ``Customer`` or the purchase
  entry's ``Supplier``; ``due_date`` is ``DueDate``; ``currency`` is ``Currency``. Journals are
  settings (``sales_journal`` 70, ``purchase_journal`` 60: Exact's standard codes, and the
  recorded ones). Dates are sent as ``YYYY-MM-DD``.
- ``issue_date``: ``InvoiceDate`` is read-only in Exact's model ("When the invoice is entered
  it's equal to the field 'EntryDate'. During the printing process the invoice date can be
  entered"), so a sales invoice sends it as ``OrderDate``, the date the invoice is entered with:
  the recorded create came back with ``InvoiceDate`` equal to it. Printing (processing) may set a
  later invoice date; this API never prints. Entries take it as ``EntryDate``.
- ``memo`` (an internal memo in Panora) never goes on the customer's document by surprise. On a
  sales invoice ``Description`` is printed (it heads the invoice), so the memo goes to
  ``Remarks`` ("Extra remarks" in the models, the invoice's free remarks, apart from the
  printed Description and references) unless the connection sets ``memo_target=description``
  to print it (60 characters at most). Entries are printed for nobody: their ``Description``
  (60 characters at most) takes the memo whatever ``memo_target`` says. Other memo_target
  values are a misconfigured connection (422 on ``connection``).
- Exact computes VAT and totals; ``sub_total``/``total_tax_amount``/``total_amount``/``balance``
  are not sent and Exact's ``AmountFCExclVat``/``VATAmountFC``/``AmountFC`` come back.
- Sales invoice lines must name an item (Exact requires ``Item``): ``item_id`` or the
  connection's ``default_item_id``, else 422. A unit price is ``NetPrice`` (with ``Quantity``, 1
  if absent), a line with only ``total_amount`` is ``AmountFC``. Entry lines have no items: they
  book an amount (``AmountFC`` = total_amount or quantity x unit_price, at most 2 decimals) on a
  G/L account: the item's own account for that side when the line has an item (``GLCosts`` on
  purchase entries, ``GLRevenue`` on sales entries), else ``default_purchase_gl_account`` /
  ``default_sales_gl_account``; 422 when there is none. ``VATCode`` is the connection's
  ``default_vat_code`` on sales invoice lines whose item has no sales VAT code of its own (Exact
  applies the item's), the item's sales VAT code else ``default_vat_code`` on sales entry lines,
  and ``default_purchase_vat_code`` (falling back to ``default_vat_code``) on purchase lines.
- Status: Exact creates every sales invoice as 20 "Open" (editable, not yet processed into the
  ledger: processing is a separate print/send step this API does not take) and every sales or
  purchase entry as 20 "Open"; ``Status`` is read-only. So DRAFT, SUBMITTED, OPEN or none create
  that; PAID, PARTIALLY_PAID, VOID and ``paid_on_date`` are refused (payments are separate).
  Read back: 10 -> DRAFT, 20 and 50 (processed) -> OPEN, 5 (rejected purchase entry) -> VOID.
- Exchange rates: ``exchange_rate`` is Ledgerbridge's units of the division's currency per one
  unit of the invoice's. Purchase and sales entries record it as ``Rate`` unchanged: the models
  document amounts as ``AmountDC = AmountFC * RateFC`` (the division's currency = the
  transaction's x the rate), the same convention, so a EUR entry at 1.08 in a USD division is
  sent ``Rate: 1.08`` and read back 1.08 (the fake books AmountDC = AmountFC x Rate). The models
  type Rate as a Double: a rate of more than 15 significant digits (what a double holds exactly)
  is refused rather than rounded by Exact, and read back the number is taken as Exact writes
  it. The models give a sales invoice no rate property (Exact converts it to the division's
  currency with its own rates), so ``exchange_rate`` on one is a 422 naming the way out: a
  connection with ``sales_document=entry`` books receivables as sales entries, which record it.
- ``sales_document``: ``invoice`` (default) creates sales invoices: printable documents whose
  lines name items, priced and taxed by Exact. ``entry`` creates sales entries instead: the
  booking of an invoice issued elsewhere (by the caller's own system), with a rate, lines on
  G/L revenue accounts (the item's own ``GLRevenue``, else ``default_sales_gl_account``) and
  amounts as given, like purchase entries. ``find_invoice`` looks in the kind the setting names
  now: change it only with no invoice of the connection pending.
- Tracking: Exact's cost centres and cost units (hrm/Costcenters, hrm/Costunits) are the
  tracking categories, remote ids ``costcenter:<ID>`` / ``costunit:<ID>``; a line takes one of
  each, by code (``CostCenter``/``CostUnit``). Invoice-level ones are copied to every line; a
  line's own replaces the invoice's of the same kind.
- Not expressible, so refused before anything is stored: ``field_mappings`` (Exact invoices
  have no custom fields through the API: ``CustomField`` is a read-only, premium-only link),
  ``accounting_period_id``, ``total_discount`` (Exact's header discount is in the division's
  currency, not the invoice's), descriptions longer than 60 characters (Exact's description
  width; refused rather than cut), lines in another currency than the invoice.
- Dates: ``/Date(ms)/`` values are Exact's server wall-clock time written as if it were UTC
  (the recording shows ``Modified`` 16:31 when the server said 16:30:59 at UTC+2), so
  ``remote_updated_at`` is read as Central European time; calendar dates are read as dates.
- Paging: Exact answers 60 records a page with an absolute ``__next`` link; only its path and
  query are followed, on the configured base URL, so the bearer token never leaves that host.
- Lost answers: the create is not idempotent at Exact, so it is sent with ``idempotent=False``
  (ProviderHttp resends it only after a refused connection or a 429). A create whose answer
  never came (a read timeout, a reset, a 5xx) is looked up by reference at once: found, it is
  the answer; not found, ProviderUnavailable (and the next delivery starts with
  ``find_invoice``). A failed read-back of a created (or found) invoice settles it with what is
  known rather than inviting a second create.
- Hosts: ``country`` picks ``https://start.exactonline.<country>`` for both the API and the
  token endpoint (``oauth_token_url(settings)``); LEDGERBRIDGE_EXACT_ONLINE_API_URL / _TOKEN_URL
  replace them. An unknown country is refused by ``map_invoice`` as a misconfigured connection;
  ``oauth_token_url`` (asked before mapping) names the nl host for it rather than raising.
- Token timing (``oauth_refresh``): Exact access tokens last 10 minutes, and Exact refuses a
  new one while the current one has more than 30 seconds left (at most one per 9.5 minutes;
  the refusal is HTTP 400 ``access_denied`` "Rate limit exceeded: access_token not expired").
  So tokens are refreshed 25 seconds before they expire: inside Exact's window with 5 seconds
  to spare, and safe from latency, since the expiry is counted from when the answer arrived,
  after Exact issued the token. Should Exact still say "too early", the current token is kept
  until it expires (oauth.py); that refusal never marks the connection for reauthorisation.
  Refreshes carry no ``redirect_uri`` (Exact's refresh request has grant type, refresh token
  and client credentials only).

Connect (the hosted consent flow; sources: Exact's knowledge base "OAuth: set up authorization
requests" and "get and use access tokens", and the Scope column of Exact's REST API reference,
start.exactonline.nl/docs/HlpRestAPIResources.aspx):

- The page asks the country first (``connect_choices``: the ``country`` setting, one of HOSTS, nl
  by default): each Exact country is its own host, so the consent screen is
  ``https://start.exactonline.<country>/api/oauth2/auth`` (LEDGERBRIDGE_EXACT_ONLINE_AUTHORIZE_URL
  replaces it), and the code is exchanged at, and the API called on, that same host.
- The authorisation request carries what Exact documents and nothing more: ``client_id``,
  ``redirect_uri``, ``response_type=code`` and ``state``. ``force_login`` is left out (Exact then
  keeps a browser's Exact session; the consent screen still shows who consents to what).
- Scopes are no parameter at Exact: an app's data scopes belong to its registration in Exact's
  App Store (its data and security review) and the consent screen shows them; there the user
  also picks the divisions the app may use. ``APP_SCOPES`` is what the operator registers, each
  named as Exact's reference names the scope of the endpoints used: Crm accounts (Manage:
  contacts are created, customers and suppliers listed), Sales invoices (Manage: sales
  invoices), Financial accounting (Manage: sales and purchase entries), Logistics items,
  Financial generalledgers and Financial costcenters (Read: the items, G/L accounts, cost centres
  and cost units the reference sync lists). current/Me and hrm/Divisions need none. A call
  outside the registered scopes is Exact's 403 "Application Scope Violated" (ProviderRejected;
  the optional cost lists are then simply absent). No scope is needed for a refresh token:
  Exact answers every code grant with one (30 days, replaced at every refresh).
- No PKCE (``connect_pkce`` False): Exact documents no ``code_challenge``; the code is bound to
  the app by its client secret, sent in the form body as for a refresh.
- Tenants: ``GET /api/v1/current/Me`` names the user's ``CurrentDivision``; ``GET
  /api/v1/{CurrentDivision}/hrm/Divisions`` lists the divisions the user gave the app (Exact
  documents that it returns only those), and needs no scope, where system/Divisions would need
  Organization administration for nothing else. Each division is a tenant: its ``Code`` as
  remote id and ``division`` setting, its ``Description`` (else its owner's name) as name, the
  chosen ``country``; archived (Status 1) and deleted (BlockingStatus 100 and up) divisions are
  left out, the current one comes first. A 401/403 (the token, or the user's current division
  was not granted) is ReauthorizationRequired: only a new consent helps; 5xx and network
  failures are ProviderUnavailable after the usual retries; no division is an empty list.
- Revocation: Exact documents no token revocation endpoint (a user withdraws an app in Exact,
  under My Exact Online, security centre), so ``revoke_tokens`` is not declared; a deleted
  connection's refresh token dies unused after 30 days.
- The redirect URI the operator registers with the Exact app is ``<API base URL>/connect/callback``
  (Exact wants a public HTTPS URL). An Exact app is registered in one country's App Store, so
  the deployment's one Exact client connects divisions of that country.

Connection settings: ``division`` (required), ``country`` (nl), ``sales_journal`` (70),
``purchase_journal`` (60), ``sales_document`` (invoice | entry), ``memo_target`` (remarks |
description), ``default_item_id``, ``default_vat_code``, ``default_purchase_vat_code``,
``default_purchase_gl_account`` and ``default_sales_gl_account`` (G/L account IDs).
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx

from ledgerbridge.models import (
    AddressInput,
    ContactInput,
    ContactStatus,
    InvoiceInput,
    InvoiceStatus,
    InvoiceType,
    LineItemInput,
    PhoneNumberInput,
)
from ledgerbridge.providers.base import (
    AuthorizationRequest,
    ConnectChoice,
    ConnectionContext,
    InvalidInvoice,
    OutboundContact,
    OutboundInvoice,
    ProviderRejected,
    ProviderUnavailable,
    ReauthorizationRequired,
    RefreshRules,
    RemoteInvoice,
    RemoteReference,
    Tenant,
)
from ledgerbridge.providers.http import ProviderHttp, endpoint, json_body
from ledgerbridge.providers.mapping import RefusingMapper, fits_double, type_word
from ledgerbridge.providers.mapping import money as _money
from ledgerbridge.providers.mapping import text as _text
from ledgerbridge.providers.oauth import code_flow_url

ENV_NAME = "EXACT_ONLINE"
HOSTS = {
    "nl": "https://start.exactonline.nl",
    "be": "https://start.exactonline.be",
    "de": "https://start.exactonline.de",
    "fr": "https://start.exactonline.fr",
    "es": "https://start.exactonline.es",
    "co.uk": "https://start.exactonline.co.uk",
    "com": "https://start.exactonline.com",
}
DEFAULT_COUNTRY = "nl"
TOKEN_PATH = "/api/oauth2/token"
API_PREFIX = "/api/v1/"
DEFAULT_SALES_JOURNAL = "70"
DEFAULT_PURCHASE_JOURNAL = "60"
MAX_DESCRIPTION = 60  # Exact's description width; longer text is refused, not cut
REFERENCE_PREFIX = "LB-"
CENT = Decimal("0.01")
SALES_DOCUMENTS = ("invoice", "entry")  # the sales_document setting: SalesInvoices or SalesEntries
MEMO_TARGETS = ("remarks", "description")  # the memo_target setting, for sales invoices

CREATABLE_STATUSES = (None, InvoiceStatus.DRAFT, InvoiceStatus.SUBMITTED, InvoiceStatus.OPEN)
_UNIFIED_STATUS = {
    10: InvoiceStatus.DRAFT,
    20: InvoiceStatus.OPEN,
    50: InvoiceStatus.OPEN,
    5: InvoiceStatus.VOID,
}
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class _Document:
    """One kind of Exact document: where it is created, how its parts are named, what it holds."""

    resource: str
    key: str
    lines: str
    contact: str
    issue_date: str
    booking: bool  # an entry: lines book amounts on G/L accounts, a Rate is recorded, nothing printed
    label: str


SALES_INVOICE = _Document(
    resource="salesinvoice/SalesInvoices",
    key="InvoiceID",
    lines="SalesInvoiceLines",
    contact="OrderedBy",
    issue_date="OrderDate",
    booking=False,
    label="sales invoice",
)
SALES_ENTRY = _Document(
    resource="salesentry/SalesEntries",
    key="EntryID",
    lines="SalesEntryLines",
    contact="Customer",
    issue_date="EntryDate",
    booking=True,
    label="sales entry",
)
PURCHASE_ENTRY = _Document(
    resource="purchaseentry/PurchaseEntries",
    key="EntryID",
    lines="PurchaseEntryLines",
    contact="Supplier",
    issue_date="EntryDate",
    booking=True,
    label="purchase entry",
)


def document_for(settings: dict[str, str], invoice: InvoiceInput) -> _Document:
    """The document a unified invoice becomes on this connection (see ``sales_document``)."""
    if invoice.type == InvoiceType.ACCOUNTS_PAYABLE:
        return PURCHASE_ENTRY
    return SALES_ENTRY if _choice(settings, "sales_document") == "entry" else SALES_INVOICE


@dataclass(frozen=True)
class ExactRequest:
    """One create call: which document, in which division, with which body and reference."""

    document: _Document
    division: str
    body: dict[str, Any]
    reference: str


# --- settings -------------------------------------------------------------------------------


def _setting(settings: dict[str, str], name: str) -> str | None:
    return (settings.get(name) or "").strip() or None


def _choice(settings: dict[str, str], name: str) -> str | None:
    """A setting that picks one of a few words, in any case."""
    value = _setting(settings, name)
    return value.lower() if value else None


def _division(settings: dict[str, str]) -> str:
    """The Exact division (administration) number every URL is under."""
    division = _setting(settings, "division")
    if not division or not division.isdigit():
        raise InvalidInvoice([("connection", "Exact Online connection needs a numeric division setting")])
    return division


def _country(settings: dict[str, str]) -> str:
    return (_setting(settings, "country") or DEFAULT_COUNTRY).lower().removeprefix(".")


def _host(settings: dict[str, str]) -> str:
    country = _country(settings)
    if country not in HOSTS:
        raise InvalidInvoice(
            [("connection", f"Exact Online country must be one of {', '.join(HOSTS)}, not '{country}'")]
        )
    return HOSTS[country]


def api_base_url(settings: dict[str, str]) -> str:
    """start.exactonline.<country> by the ``country`` setting; the API_URL environment override wins."""
    return endpoint(ENV_NAME, "API", _host(settings))


def token_url(settings: dict[str, str] | None = None) -> str:
    """The token endpoint of the connection's country (nl without settings or for an unknown one)."""
    host = HOSTS.get(_country(settings or {}), HOSTS[DEFAULT_COUNTRY])
    return endpoint(ENV_NAME, "TOKEN", host + TOKEN_PATH)


# --- hosted connect ---------------------------------------------------------------------------

AUTHORIZE_PATH = "/api/oauth2/auth"
ME = "current/Me"
DIVISIONS = "hrm/Divisions"
DIVISION_SELECT = "Code,Description,CustomerName,Country,Currency,Status,BlockingStatus"
ARCHIVED_DIVISION = 1  # Division.Status: 0 regular, 1 archived (kept only for legal obligations)
DELETED_DIVISION = 100  # Division.BlockingStatus from 100 on: waiting for deletion, deleted, deletion failed
COUNTRY_NAMES = {
    "nl": "Netherlands",
    "be": "Belgium",
    "de": "Germany",
    "fr": "France",
    "es": "Spain",
    "co.uk": "United Kingdom",
    "com": "United States and elsewhere",
}


@dataclass(frozen=True)
class AppScope:
    """One data scope the deployment's Exact app registers (Exact's App Store, not the consent URL)."""

    name: str  # as Exact's REST API reference names the scope of an endpoint
    access: str  # "Read", or "Manage" (read and write)
    used_for: str


APP_SCOPES = (
    AppScope("Crm accounts", "Manage", "crm/Accounts: create contacts; list customers and suppliers"),
    AppScope("Sales invoices", "Manage", "salesinvoice/SalesInvoices: create and read back sales invoices"),
    AppScope(
        "Financial accounting",
        "Manage",
        "salesentry/SalesEntries and purchaseentry/PurchaseEntries: book and read back entries",
    ),
    AppScope("Logistics items", "Read", "logistics/Items: the items lines name"),
    AppScope("Financial generalledgers", "Read", "financial/GLAccounts: the accounts entry lines book on"),
    AppScope("Financial costcenters", "Read", "hrm/Costcenters and hrm/Costunits: tracking categories"),
)

COUNTRY_CHOICE = ConnectChoice(
    setting="country",
    label="Which Exact Online do you sign in to?",
    options=tuple((country, f"{COUNTRY_NAMES[country]} ({host.removeprefix('https://')})")
                  for country, host in HOSTS.items()),
    default=DEFAULT_COUNTRY,
)  # fmt: skip


def connect_country(settings: dict[str, str]) -> str:
    """The country the connect page chose; one Exact does not have is a programming error here."""
    country = _country(settings)
    if country not in HOSTS:
        raise ValueError(f"Exact Online country must be one of {', '.join(HOSTS)}, not '{country}'")
    return country


def authorization_url(request: AuthorizationRequest) -> str:
    """Exact's consent screen on the chosen country's host (LEDGERBRIDGE_EXACT_ONLINE_AUTHORIZE_URL wins).

    Only what Exact documents: no scope (the app's registration holds its scopes), no PKCE.
    """
    default = HOSTS[connect_country(request.settings)] + AUTHORIZE_PATH
    return code_flow_url(endpoint(ENV_NAME, "AUTHORIZE", default), request)


class ConsentToken:
    """The access token a consent just gave: used as is, never refreshed (a 401 means no access)."""

    def __init__(self, token: str):
        self._token = token

    def access_token(self) -> str:
        return self._token

    def refresh_after_rejection(self, rejected_access_token: str) -> str:
        raise ReauthorizationRequired("Exact Online refused the access token its consent just gave")


def _discovery_failure(response: httpx.Response, doing: str) -> Exception:
    """401/403: the consent gave no access to read the companies; anything else: try again later."""
    message = error_message(json_body(response)) or f"HTTP {response.status_code}"
    if response.status_code in (401, 403):
        return ReauthorizationRequired(f"Exact Online refused {doing} after consent ({message})")
    return ProviderUnavailable(f"Exact Online answered {doing} with {message}")


def current_division(http: ProviderHttp, base: str) -> int | None:
    """``CurrentDivision`` of ``current/Me``: the division the user works in (and the way in)."""
    response = http.request("GET", f"{base}{API_PREFIX}{ME}", params={"$select": "CurrentDivision"})
    if response.status_code != 200:
        raise _discovery_failure(response, "reading the current user")
    users, _ = _results(json_body(response))
    division = users[0].get("CurrentDivision") if users else None
    return division if isinstance(division, int) and not isinstance(division, bool) else None


def _usable(division: dict[str, Any]) -> bool:
    return (
        isinstance(division.get("Code"), int)
        and division.get("Status") != ARCHIVED_DIVISION
        and (division.get("BlockingStatus") or 0) < DELETED_DIVISION
    )


def division_tenant(division: dict[str, Any], country: str) -> Tenant:
    """One division as a tenant: its name, and the settings a connection to it needs."""
    code = str(division["Code"])
    name = _text(division.get("Description")) or _text(division.get("CustomerName")) or f"Division {code}"
    return Tenant(remote_id=code, name=name, settings={"division": code, "country": country})


def discover_tenants(client: httpx.Client, access_token: str, settings: dict[str, str]) -> list[Tenant]:
    """The divisions the consent gave access to: the current one first, then by number."""
    country = connect_country(settings)
    http = ProviderHttp(client, tokens=ConsentToken(access_token))
    host = {"country": country}
    current = current_division(http, api_base_url(host))
    if current is None:
        return []
    exact = _Exact(http, host, str(current))
    pages = exact.pages(DIVISIONS, {"$select": DIVISION_SELECT}, "listing the divisions", _discovery_failure)
    divisions = [division for page in pages for division in page if _usable(division)]
    divisions.sort(key=lambda division: (division["Code"] != current, division["Code"]))
    return [division_tenant(division, country) for division in divisions]


# --- references and dates -------------------------------------------------------------------


def exact_reference(invoice_id: str) -> str:
    """``YourRef`` for an invoice: ``LB-`` + the id's 16 bytes in base32 (29 characters, stable)."""
    try:
        raw = uuid.UUID(invoice_id).bytes
    except ValueError:
        raw = hashlib.sha256(invoice_id.encode()).digest()[:16]
    return REFERENCE_PREFIX + base64.b32encode(raw).decode().rstrip("=")


_MS_DATE = re.compile(r"^/Date\((-?\d+)\)/$")
_EPOCH = datetime(1970, 1, 1)


def parse_exact_date(value: Any) -> datetime | None:
    """The wall-clock time of an Exact ``/Date(ms)/`` (naive: Exact writes local time as if UTC)."""
    if value is None:
        return None
    match = _MS_DATE.match(str(value).strip())
    if not match:
        raise ValueError(f"not an Exact date: {value!r}")
    return _EPOCH + timedelta(milliseconds=int(match.group(1)))


def _last_sunday(year: int, month: int) -> datetime:
    day = datetime(year, month + 1, 1) - timedelta(days=1)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def central_european(wall: datetime) -> datetime:
    """``wall`` as an aware time in CET/CEST (EU rule: summer time from the last Sunday of March
    02:00 to the last Sunday of October 03:00), the clock of Exact's servers."""
    summer = _last_sunday(wall.year, 3).replace(hour=2) <= wall < _last_sunday(wall.year, 10).replace(hour=3)
    return wall.replace(tzinfo=timezone(timedelta(hours=2 if summer else 1)))


def _exact_date(value: datetime | None) -> str | None:
    """YYYY-MM-DD, the calendar date as the caller wrote it (in its own offset, not UTC)."""
    return value.date().isoformat() if value else None


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


# --- mapping: unified -> Exact --------------------------------------------------------------


@dataclass(frozen=True)
class _Tracking:
    """The cost centre and cost unit codes for one line."""

    cost_center: str | None = None
    cost_unit: str | None = None


@dataclass(frozen=True)
class _Side:
    """Where an entry line of one side books its amount: the item's account, else a default."""

    label: str
    item_account: str  # the item reference's field holding the account ID
    exact_field: str  # that account's name on Exact's item
    account_kind: str
    default_setting: str


PURCHASES = _Side("purchase", "purchase_account", "GLCosts", "cost", "default_purchase_gl_account")
SALES = _Side("sales", "sales_account", "GLRevenue", "revenue", "default_sales_gl_account")


@dataclass
class _Mapper(RefusingMapper):
    """Builds one request body, collecting every field Exact cannot take."""

    settings: dict[str, str]
    outbound: OutboundInvoice
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def document(self) -> _Document:
        return document_for(self.settings, self.invoice)

    def body(self, reference: str) -> dict[str, Any]:
        self._check_settings()
        self._unsupported()
        header_tracking = self._tracking("tracking_categories", len(self.invoice.tracking_categories or []))
        body: dict[str, Any] = {"Journal": self._journal(), **self._contact(), **self._header()}
        body["YourRef"] = reference
        body[self.document.lines] = [
            self._line(i, line, header_tracking) for i, line in enumerate(self.invoice.line_items or [])
        ]
        return body

    def _journal(self) -> str:
        if self.payable:
            return _setting(self.settings, "purchase_journal") or DEFAULT_PURCHASE_JOURNAL
        return _setting(self.settings, "sales_journal") or DEFAULT_SALES_JOURNAL

    def _unsupported(self) -> None:
        invoice = self.invoice
        if invoice.status not in CREATABLE_STATUSES:
            self.refuse(
                "status",
                f"{invoice.status} is not supported: Exact creates invoices Open and records payments "
                "and cancellations separately (send DRAFT, SUBMITTED or OPEN)",
            )
        refusals = {
            "number": (invoice.number, "Exact assigns invoice and entry numbers from the journal"),
            "paid_on_date": (invoice.paid_on_date, "Exact records payments separately; not supported"),
            "accounting_period_id": (invoice.accounting_period_id, "not supported for Exact Online"),
            "total_discount": (
                invoice.total_discount,
                "Exact has no invoice-level discount in the invoice's currency",
            ),
            "field_mappings": (invoice.field_mappings, "Exact Online invoices have no custom fields"),
        }
        for path, (value, reason) in refusals.items():
            if value:
                self.refuse(path, reason)
        self._check_rate("exchange_rate", invoice.exchange_rate)
        if not invoice.line_items:
            self.refuse("line_items", "Exact needs at least one line")

    def _check_settings(self) -> None:
        """Settings that choose the document or the memo's field: a typo must not print the memo."""
        if _choice(self.settings, "sales_document") not in (None, *SALES_DOCUMENTS):
            self.refuse("connection", f"Exact sales_document must be one of {', '.join(SALES_DOCUMENTS)}")
        if _choice(self.settings, "memo_target") not in (None, *MEMO_TARGETS):
            self.refuse("connection", f"Exact memo_target must be one of {', '.join(MEMO_TARGETS)}")

    def _check_rate(self, path: str, rate: Decimal | None) -> None:
        """A rate only entries record, as a double (see the module docstring)."""
        if rate is None:
            return
        if not self.document.booking:
            self.refuse(
                path,
                "Exact sales invoices have no rate (Exact applies its own currency rates): set the "
                "connection's sales_document=entry to book receivables as sales entries, which record it",
            )
        elif not fits_double(rate):
            self.refuse(path, "Exact keeps rates as doubles: give at most 15 significant digits")

    def _contact(self) -> dict[str, Any]:
        wanted, label = ("is_supplier", "supplier") if self.payable else ("is_customer", "customer")
        reference = self.outbound.references.get("contact_id")
        if reference is None:
            self.refuse("contact_id", f"an Exact {self.document.label} needs a {label}")
            return {}
        if reference.fields.get(wanted) is False:
            self.refuse("contact_id", f"this Exact account is not a {label}")
        return {self.document.contact: reference.remote_id}

    def _header(self) -> dict[str, Any]:
        invoice = self.invoice
        values: dict[str, Any] = {
            self.document.issue_date: _exact_date(invoice.issue_date),
            "DueDate": _exact_date(invoice.due_date),
            "Currency": invoice.currency,
            "Rate": invoice.exchange_rate if self.document.booking else None,
            **self._memo(),
        }
        return {key: value for key, value in values.items() if value is not None}

    def _memo(self) -> dict[str, str]:
        """The internal memo: Remarks on a sales invoice unless memo_target prints it (see the docstring)."""
        memo = self.invoice.memo
        if memo is None:
            return {}
        if not self.document.booking and _choice(self.settings, "memo_target") in (None, "remarks"):
            return {"Remarks": memo}
        if len(memo) > MAX_DESCRIPTION:
            self.refuse("memo", f"Exact descriptions hold at most {MAX_DESCRIPTION} characters")
        return {"Description": memo}

    # -- lines

    def _line(self, index: int, line: LineItemInput, header: _Tracking) -> dict[str, Any]:
        path = f"line_items.{index}"
        self._line_agrees(path, line)
        body: dict[str, Any] = {}
        if self.document.booking:
            body.update(self._entry_line(path, line))
        else:
            body.update(self._sales_line(path, line))
        if line.description is not None:
            if len(line.description) > MAX_DESCRIPTION:
                self.refuse(
                    f"{path}.description", f"Exact descriptions hold at most {MAX_DESCRIPTION} characters"
                )
            body["Description"] = line.description
        tracking = self._line_tracking(path, line, header)
        if tracking.cost_center:
            body["CostCenter"] = tracking.cost_center
        if tracking.cost_unit:
            body["CostUnit"] = tracking.cost_unit
        return body

    def _line_agrees(self, path: str, line: LineItemInput) -> None:
        if line.currency and self.invoice.currency and line.currency != self.invoice.currency:
            self.refuse(f"{path}.currency", "Exact lines are in the invoice's currency")
        if line.exchange_rate is None:
            return
        if not self.document.booking:
            self._check_rate(f"{path}.exchange_rate", line.exchange_rate)
        elif line.exchange_rate != self.invoice.exchange_rate:
            self.refuse(f"{path}.exchange_rate", "Exact lines use the invoice's exchange rate")

    def _sales_line(self, path: str, line: LineItemInput) -> dict[str, Any]:
        reference = self.outbound.references.get(f"{path}.item_id")
        item = reference.remote_id if reference else _setting(self.settings, "default_item_id")
        if not item:
            self.refuse(
                f"{path}.item_id",
                "an Exact sales invoice line needs an item: give item_id or set the connection's "
                "default_item_id",
            )
        elif reference is not None and reference.fields.get("is_sales_item") is False:
            self.refuse(f"{path}.item_id", "this Exact item is not a sales item")
        body: dict[str, Any] = {"Item": item or ""}
        body.update(self._sales_amounts(path, line))
        vat = _setting(self.settings, "default_vat_code")
        if vat and not (reference and reference.fields.get("sales_vat_code")):
            body["VATCode"] = vat
        return body

    def _sales_amounts(self, path: str, line: LineItemInput) -> dict[str, Any]:
        """Quantity x NetPrice when there is a unit price, else AmountFC (Exact derives the rest)."""
        quantity = line.quantity if line.quantity is not None else Decimal(1)
        if line.unit_price is not None:
            self._check_total(path, line, quantity * line.unit_price)
            return {"Quantity": quantity, "NetPrice": line.unit_price}
        if line.total_amount is not None:
            self._check_cents(f"{path}.total_amount", line.total_amount)
            return {"Quantity": quantity, "AmountFC": line.total_amount}
        return {"Quantity": quantity}  # Exact prices it from the item

    @property
    def side(self) -> _Side:
        return PURCHASES if self.payable else SALES

    def _entry_line(self, path: str, line: LineItemInput) -> dict[str, Any]:
        """A booking line of a purchase or sales entry: an amount on a G/L account, with its VAT code."""
        side = self.side
        body: dict[str, Any] = {"GLAccount": self._entry_account(path)}
        if line.quantity is not None:
            body["Quantity"] = line.quantity
        amount = line.total_amount
        if line.unit_price is not None:
            product = (line.quantity if line.quantity is not None else Decimal(1)) * line.unit_price
            self._check_total(path, line, product)
            amount = amount if amount is not None else product
        if amount is None:
            self.refuse(f"{path}.unit_price", f"an Exact {side.label} line needs unit_price or total_amount")
        else:
            self._check_cents(
                f"{path}.total_amount" if line.unit_price is None else f"{path}.unit_price", amount
            )
            body["AmountFC"] = amount
        vat = self._entry_vat_code(path)
        if vat:
            body["VATCode"] = vat
        return body

    def _entry_vat_code(self, path: str) -> str | None:
        if self.payable:
            return _setting(self.settings, "default_purchase_vat_code") or _setting(
                self.settings, "default_vat_code"
            )
        reference = self.outbound.references.get(f"{path}.item_id")
        own = reference.fields.get("sales_vat_code") if reference is not None else None
        return str(own) if own else _setting(self.settings, "default_vat_code")

    def _entry_account(self, path: str) -> str:
        """The item's own account for this side, or the connection's default for lines without an item."""
        side = self.side
        reference = self.outbound.references.get(f"{path}.item_id")
        if reference is not None:
            account = reference.fields.get(side.item_account)
            if not account:
                self.refuse(
                    f"{path}.item_id",
                    f"Exact {side.label} entries book lines on a G/L account and this item has no "
                    f"{side.account_kind} account of its own ({side.exact_field}): send the line without "
                    f"item_id to use {side.default_setting}",
                )
            return str(account or "")
        account = _setting(self.settings, side.default_setting)
        if not account:
            self.refuse(
                f"{path}.item_id",
                f"an Exact {side.label} line needs a G/L account: set the connection's "
                f"{side.default_setting}",
            )
        elif not _GUID.match(account):
            self.refuse("connection", f"{side.default_setting} must be the G/L account's ID (a GUID)")
        return account or ""

    def _check_total(self, path: str, line: LineItemInput, product: Decimal) -> None:
        rounded = product.quantize(CENT)
        if line.total_amount is not None and line.total_amount not in (product, rounded):
            self.refuse(f"{path}.total_amount", f"is not quantity x unit_price ({product})")

    def _check_cents(self, path: str, amount: Decimal) -> None:
        if _places(amount) > 2:
            self.refuse(path, f"Exact line amounts keep 2 decimal places; {amount} would be rounded")

    # -- tracking

    def _tracking(self, path: str, count: int) -> _Tracking:
        chosen: dict[str, str] = {}
        for j in range(count):
            reference = self.outbound.references.get(f"{path}.{j}")
            kind, _, _ = (reference.remote_id if reference else "").partition(":")
            code = reference.fields.get("code") if reference else None
            if kind not in ("costcenter", "costunit") or not code:
                self.refuse(f"{path}.{j}", "not an Exact cost centre or cost unit (sync references again)")
                continue
            if kind in chosen and chosen[kind] != code:
                self.refuse(
                    f"{path}.{j}",
                    f"an Exact line takes one {'cost centre' if kind == 'costcenter' else 'cost unit'}",
                )
                continue
            chosen[kind] = str(code)
        return _Tracking(chosen.get("costcenter"), chosen.get("costunit"))

    def _line_tracking(self, path: str, line: LineItemInput, header: _Tracking) -> _Tracking:
        own = self._tracking(f"{path}.tracking_categories", len(line.tracking_categories or []))
        return _Tracking(own.cost_center or header.cost_center, own.cost_unit or header.cost_unit)


def map_invoice(connection: ConnectionContext, outbound: OutboundInvoice) -> ExactRequest:
    """The create request for ``outbound``; raises InvalidInvoice listing every problem."""
    settings = connection.settings
    division = _division(settings)
    _host(settings)  # an unknown country is a misconfiguration: refuse before anything is stored
    mapper = _Mapper(settings, outbound)
    reference = exact_reference(outbound.invoice_id)
    body = mapper.body(reference)
    if mapper.problems:
        raise InvalidInvoice(list(dict.fromkeys(mapper.problems)))
    return ExactRequest(mapper.document, division, body, reference)


# --- mapping: unified contact -> Exact account -----------------------------------------------

ACCOUNTS = "crm/Accounts"
CUSTOMER_STATUS = "C"  # Exact's Status: A none, S suspect, P prospect, C customer
VISIT_ADDRESS_TYPES = frozenset({"VISIT", "STREET", "PHYSICAL", "MAIN"})
# (unified address field, the account's visit address property)
ACCOUNT_ADDRESS = (
    ("street_1", "AddressLine1"),
    ("street_2", "AddressLine2"),
    ("city", "City"),
    ("state", "State"),
    ("postal_code", "Postcode"),
    ("country", "Country"),
)
ACCOUNT_PHONES = (("Phone", "PHONE"), ("Fax", "FAX"))  # the account's numbers and their unified type
_COUNTRY_CODE = re.compile(r"^[A-Za-z]{2}$")


@dataclass(frozen=True)
class AccountRequest:
    """One account create: the body and the reference written in its Remarks."""

    body: dict[str, Any]
    reference: str


def contact_roles(contact: ContactInput) -> tuple[bool, bool]:
    """(customer, supplier): a customer unless only is_supplier is asked (see the module docstring)."""
    supplier = contact.is_supplier is True
    customer = contact.is_customer is True or (contact.is_customer is None and not supplier)
    return customer, supplier


def _account_roles(contact: ContactInput, problems: list[tuple[str, str]]) -> dict[str, Any]:
    customer, supplier = contact_roles(contact)
    if not (customer or supplier):
        problems.append(
            ("is_customer", "an Exact account created here is a customer, a supplier or both: set one true")
        )
    body: dict[str, Any] = {"IsSupplier": supplier}
    if customer:
        body["Status"] = CUSTOMER_STATUS
    if contact.currency:
        body.update({"SalesCurrency": contact.currency} if customer else {})
        body.update({"PurchaseCurrency": contact.currency} if supplier else {})
    return body


def _account_details(contact: ContactInput, problems: list[tuple[str, str]]) -> dict[str, Any]:
    if not contact.name:
        problems.append(("name", "Exact needs an account name"))
    if contact.field_mappings:
        problems.append(("field_mappings", "Exact accounts take no custom fields through Ledgerbridge"))
    values = {
        "Name": contact.name,
        "Email": contact.email_address,
        "VATNumber": contact.tax_number,
        "Blocked": contact.status == ContactStatus.ARCHIVED if contact.status else None,
    }
    return {key: value for key, value in values.items() if value is not None}


def _account_address(addresses: list[AddressInput], problems: list[tuple[str, str]]) -> dict[str, Any]:
    """The one address an account holds: its visit address (see the module docstring)."""
    for index in range(1, len(addresses)):
        problems.append((f"addresses.{index}", "an Exact account holds one address: this is a second one"))
    if not addresses:
        return {}
    address = addresses[0]
    if address.address_type and type_word(address.address_type) not in VISIT_ADDRESS_TYPES:
        problems.append(
            (
                "addresses.0.address_type",
                "an Exact account holds its visit address only (VISIT, STREET, PHYSICAL or MAIN); "
                "postal, invoice and delivery addresses are separate Exact records",
            )
        )
    if address.country and not _COUNTRY_CODE.match(address.country):
        problems.append(("addresses.0.country", "Exact takes the ISO 3166 two-letter country code (NL, BE)"))
    values = {exact: getattr(address, unified) for unified, exact in ACCOUNT_ADDRESS}
    if values["Country"]:
        values["Country"] = values["Country"].upper()
    return {key: value for key, value in values.items() if value is not None}


def _account_phones(phones: list[PhoneNumberInput], problems: list[tuple[str, str]]) -> dict[str, Any]:
    """Fax to ``Fax``, any other number to ``Phone``; mobiles belong to Exact's contact persons."""
    body: dict[str, Any] = {}
    for index, phone in enumerate(phones):
        path, kind = f"phone_numbers.{index}", type_word(phone.phone_type)
        exact = "Fax" if kind == "FAX" else "Phone"
        if kind == "MOBILE":
            problems.append((f"{path}.phone_type", "Exact keeps mobiles on contact persons, not accounts"))
        elif exact in body:
            problems.append((path, f"an Exact account holds one {exact.lower()} number: a second one"))
        elif not phone.phone_number:
            problems.append((f"{path}.phone_number", "no number given"))
        else:
            body[exact] = phone.phone_number
    return body


def map_contact(connection: ConnectionContext, outbound: OutboundContact) -> AccountRequest:
    """The ``crm/Accounts`` create for ``outbound``; raises InvalidInvoice listing every problem."""
    _division(connection.settings)
    _host(connection.settings)
    contact = outbound.contact
    problems: list[tuple[str, str]] = []
    reference = exact_reference(outbound.contact_id)
    body = {
        **_account_details(contact, problems),
        **_account_roles(contact, problems),
        **_account_address(contact.addresses or [], problems),
        **_account_phones(contact.phone_numbers or [], problems),
        "Remarks": reference,
    }
    if problems:
        raise InvalidInvoice(list(dict.fromkeys(problems)))
    return AccountRequest(body, reference)


def odata_text(value: str) -> str:
    """``value`` as an OData string literal: quoted, its quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


# --- mapping: Exact -> unified --------------------------------------------------------------


def unified_status(record: dict[str, Any]) -> str | None:
    """Exact's numeric status in unified words (see the module docstring); None when unknown."""
    code = record.get("Status")
    status = _UNIFIED_STATUS.get(code) if isinstance(code, int) else None
    return status.value if status else None


def _lines(record: dict[str, Any], document: _Document) -> list[dict[str, Any]]:
    """The expanded lines in their order, or [] when Exact only linked them (``__deferred``)."""
    nested = record.get(document.lines)
    lines = nested.get("results") if isinstance(nested, dict) else nested
    if not isinstance(lines, list):
        return []
    return sorted(
        (line for line in lines if isinstance(line, dict)), key=lambda line: line.get("LineNumber") or 0
    )


def remote_invoice(record: dict[str, Any], document: _Document, line_count: int) -> RemoteInvoice:
    """The unified view of a sales invoice or purchase entry Exact recorded."""
    total, tax = _money(record.get("AmountFC")), _money(record.get("VATAmountFC"))
    sub_total = _money(record.get("AmountFCExclVat"))
    if sub_total is None and total is not None and tax is not None:
        sub_total = total - tax
    number = record.get("InvoiceNumber")
    fields = {
        "number": str(number) if number is not None else None,
        "status": unified_status(record),
        "sub_total": sub_total,
        "total_tax_amount": tax,
        "total_amount": total,
        "currency": record.get("Currency"),
        "exchange_rate": _money(record.get("Rate")),
    }
    line_ids: list[str | None] = [str(line["ID"]) for line in _lines(record, document) if line.get("ID")]
    modified = parse_exact_date(record.get("Modified"))
    return RemoteInvoice(
        remote_id=str(record[document.key]),
        remote_data=record,
        remote_updated_at=central_european(modified) if modified else None,
        fields={key: value for key, value in fields.items() if value is not None},
        line_remote_ids=(line_ids + [None] * line_count)[:line_count],
    )


def error_message(body: Any) -> str | None:
    """``error.message.value`` of Exact's OData error (or a plain ``error`` string)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = error.get("message")
        value = message.get("value") if isinstance(message, dict) else message
        return str(value) if value else None
    return str(error) if error else None


def _failure(response: httpx.Response, doing: str) -> Exception:
    """The exception for an answer that is neither success nor a retryable failure."""
    message = error_message(json_body(response))
    if response.status_code == 401:
        return ReauthorizationRequired(
            f"Exact Online refused the connection's token ({message or 'HTTP 401'})"
        )
    detail = message or f"Exact Online answered HTTP {response.status_code} {doing}"
    if response.status_code == 403:
        detail = f"Exact Online refused access (HTTP 403): {detail}"
    return ProviderRejected([detail])


# --- HTTP -------------------------------------------------------------------------------------


class _Exact:
    """Calls to one division, on the connection's base URL."""

    def __init__(self, http: ProviderHttp, settings: dict[str, str], division: str):
        self.http = http
        self.base = api_base_url(settings)
        self.division = division

    @classmethod
    def of(cls, connection: ConnectionContext) -> _Exact:
        if connection.http is None:
            raise ProviderUnavailable(
                "the Exact Online connection has no HTTP client (credentials not loaded)"
            )
        return cls(connection.http, connection.settings, _division(connection.settings))

    def url(self, resource: str) -> str:
        return f"{self.base}{API_PREFIX}{self.division}/{resource}"

    def entity_url(self, document: _Document, key: str) -> str:
        return self.url(f"{document.resource}(guid'{key}')")

    def get(self, url: str, params: dict[str, str] | None = None) -> httpx.Response:
        return self.http.request("GET", url, params=params)

    def follow(self, next_link: str) -> str:
        """``__next`` on our own base URL: only its path from /api/v1/ and its query are kept."""
        raw = httpx.URL(next_link).raw_path.decode("ascii")
        start = raw.find(API_PREFIX)
        if start < 0:
            raise ProviderUnavailable(f"Exact Online answered a __next link outside its API: {next_link}")
        return self.base + raw[start:]

    def pages(
        self,
        resource: str,
        params: dict[str, str],
        doing: str,
        failure: Callable[[httpx.Response, str], Exception] | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Every page of a list, following ``__next`` until Exact sends none; ``failure`` reads a refusal."""
        url: str | None = self.url(resource)
        query: dict[str, str] | None = params
        while url:
            response = self.get(url, query)
            if response.status_code != 200:
                raise (failure or _failure)(response, doing)
            records, next_link = _results(json_body(response))
            yield records
            url, query = (self.follow(next_link), None) if next_link else (None, None)


def _results(body: Any) -> tuple[list[dict[str, Any]], str | None]:
    """The records and the ``__next`` link of a list answer (``d.results`` or a bare ``d`` array)."""
    data = body.get("d") if isinstance(body, dict) else None
    if isinstance(data, list):
        return [r for r in data if isinstance(r, dict)], None
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        return [r for r in data["results"] if isinstance(r, dict)], data.get("__next") or None
    raise ProviderUnavailable("Exact Online answered a list without d.results")


def _entity(body: Any, key: str) -> dict[str, Any] | None:
    data = body.get("d") if isinstance(body, dict) else None
    return data if isinstance(data, dict) and data.get(key) else None


# --- the provider ---------------------------------------------------------------------------


class ExactOnlineProvider:
    """Creates sales invoices and purchase entries in one Exact Online division; see the module docstring."""

    name = "exact_online"
    oauth_client_auth = "form"
    oauth_refresh = RefreshRules(margin_seconds=25.0, too_early=("access_token not expired",))

    connect_choices = (COUNTRY_CHOICE,)
    connect_pkce = False  # Exact documents no code_challenge; the code grant is held by the client secret

    def oauth_token_url(self, settings: dict[str, str] | None = None) -> str | None:
        """The token endpoint of the connection's Exact country (see token_url)."""
        return token_url(settings)

    def authorization_url(self, request: AuthorizationRequest) -> str:
        return authorization_url(request)

    def discover_tenants(
        self, client: httpx.Client, access_token: str, settings: dict[str, str], callback: dict[str, str]
    ) -> list[Tenant]:
        """Exact's redirect carries only code and state, so ``callback`` has nothing to add."""
        return discover_tenants(client, access_token, settings)

    def map_invoice(self, connection: ConnectionContext, outbound: OutboundInvoice) -> ExactRequest:
        return map_invoice(connection, outbound)

    def send_invoice(
        self, connection: ConnectionContext, outbound: OutboundInvoice, request: ExactRequest
    ) -> RemoteInvoice:
        exact = _Exact.of(connection)
        document = request.document
        try:
            # Not idempotent at Exact: resent only when it certainly never arrived (refused, 429).
            response = exact.http.request(
                "POST", exact.url(document.resource), body=request.body, idempotent=False
            )
        except ProviderUnavailable:
            found = self.find_invoice(connection, outbound)  # the create may have happened unanswered
            if found is None:
                raise
            return found
        if response.status_code not in (200, 201):
            raise _failure(response, "creating the invoice")
        record = _entity(json_body(response), document.key)
        if record is None:
            raise ProviderUnavailable("Exact Online answered the create without the document")
        return self._read_back(exact, document, record, len(outbound.invoice.line_items or []))

    def find_invoice(self, connection: ConnectionContext, outbound: OutboundInvoice) -> RemoteInvoice | None:
        """The document an earlier attempt created, found by its ``YourRef`` (oldest if several)."""
        exact = _Exact.of(connection)
        document = document_for(connection.settings, outbound.invoice)
        params = {
            "$filter": f"YourRef eq '{exact_reference(outbound.invoice_id)}'",
            "$select": f"{document.key},Created",
        }
        found = [
            record
            for page in exact.pages(document.resource, params, "finding the invoice")
            for record in page
        ]
        if not found:
            return None
        first = min(found, key=lambda record: parse_exact_date(record.get("Created")) or datetime.max)
        return self._read_back(exact, document, first, len(outbound.invoice.line_items or []))

    def _read_back(
        self, exact: _Exact, document: _Document, known: dict[str, Any], line_count: int
    ) -> RemoteInvoice:
        """The document with its lines expanded (a create answer or a lookup only links them).

        The invoice exists by now: if the read fails, what we already hold is used (without line
        ids) rather than reporting a failure that a resend would turn into a second invoice.
        """
        try:
            response = exact.get(exact.entity_url(document, known[document.key]), {"$expand": document.lines})
        except ProviderUnavailable:
            return remote_invoice(known, document, line_count)
        record = _entity(json_body(response), document.key) if response.status_code == 200 else None
        return remote_invoice(record or known, document, line_count)

    def map_contact(self, connection: ConnectionContext, outbound: OutboundContact) -> AccountRequest:
        return map_contact(connection, outbound)

    def send_contact(
        self, connection: ConnectionContext, outbound: OutboundContact, request: AccountRequest
    ) -> RemoteReference:
        """Create the account; an answer lost on the way is looked up by its Remarks reference."""
        exact = _Exact.of(connection)
        try:
            # Not idempotent at Exact: resent only when it certainly never arrived (refused, 429).
            response = exact.http.request("POST", exact.url(ACCOUNTS), body=request.body, idempotent=False)
        except ProviderUnavailable:
            found = self.find_contact(connection, outbound)
            if found is None:
                raise
            return found
        if response.status_code not in (200, 201):
            raise _failure(response, "creating the contact")
        record = _entity(json_body(response), "ID")
        if record is None:
            raise ProviderUnavailable("Exact Online answered the create without the account")
        return contact_reference(record)

    def find_contact(
        self, connection: ConnectionContext, outbound: OutboundContact
    ) -> RemoteReference | None:
        """The account an earlier attempt created: same name, the reference in its Remarks (oldest)."""
        name = outbound.contact.name
        if not name:
            return None  # never created: map_contact refuses a contact without a name
        exact = _Exact.of(connection)
        reference = exact_reference(outbound.contact_id)
        params = {"$filter": f"Name eq {odata_text(name)}", "$select": f"{ACCOUNT_SELECT},Remarks,Created"}
        found = [
            record
            for page in exact.pages(ACCOUNTS, params, "finding the contact")
            for record in page
            if reference in (record.get("Remarks") or "")
        ]
        if not found:
            return None
        return contact_reference(
            min(found, key=lambda record: parse_exact_date(record.get("Created")) or datetime.max)
        )

    def list_references(self, connection: ConnectionContext) -> list[RemoteReference]:
        exact = _Exact.of(connection)
        references: list[RemoteReference] = []
        for source in REFERENCE_SOURCES:
            try:
                records = [
                    r for page in exact.pages(source.resource, source.params(), source.doing) for r in page
                ]
            except ProviderRejected:
                if not source.optional:
                    raise
                continue  # no cost analysis in this licence (or no rights to it): no such references
            references.extend(source.build(record) for record in records)
        return references


# --- references -----------------------------------------------------------------------------


def _ended(record: dict[str, Any]) -> bool:
    end = parse_exact_date(record.get("EndDate"))
    return record.get("Active") is False or (end is not None and end.date() <= datetime.now(UTC).date())


def contact_reference(record: dict[str, Any]) -> RemoteReference:
    """A crm/Accounts record: a customer (Status C) and/or a supplier (IsSupplier).

    The same shape whether listed by the reference sync, answered by a create or found again.
    """
    modified = parse_exact_date(record.get("Modified"))
    return RemoteReference(
        kind="contact",
        remote_id=str(record["ID"]),
        name=str(record.get("Name") or _text(record.get("Code")) or record["ID"]),
        fields={
            "code": _text(record.get("Code")),
            "is_customer": record.get("Status") == CUSTOMER_STATUS,
            "is_supplier": bool(record.get("IsSupplier")),
            "email_address": _text(record.get("Email")),
            "tax_number": _text(record.get("VATNumber")),
            "currency": _text(record.get("SalesCurrency")) or _text(record.get("PurchaseCurrency")),
            "status": "ARCHIVED" if record.get("Blocked") else "ACTIVE",
            "addresses": _visit_address(record),
            "phone_numbers": _account_numbers(record),
            "remote_updated_at": central_european(modified).isoformat() if modified else None,
        },
        remote_data=record,
    )


def _visit_address(record: dict[str, Any]) -> list[dict[str, Any]] | None:
    address = {unified: _text(record.get(exact)) for unified, exact in ACCOUNT_ADDRESS}
    return [{**address, "address_type": "VISIT"}] if any(address.values()) else None


def _account_numbers(record: dict[str, Any]) -> list[dict[str, Any]] | None:
    numbers = [
        {"phone_number": _text(record.get(exact)), "phone_type": kind}
        for exact, kind in ACCOUNT_PHONES
        if _text(record.get(exact))
    ]
    return numbers or None


def item_reference(record: dict[str, Any]) -> RemoteReference:
    """A logistics/Items record with the G/L accounts and VAT code the mapper needs."""
    return RemoteReference(
        kind="item",
        remote_id=str(record["ID"]),
        name=str(record.get("Description") or record.get("Code") or record["ID"]),
        fields={
            "code": _text(record.get("Code")),
            "status": None,
            "is_sales_item": record.get("IsSalesItem"),
            "is_purchase_item": record.get("IsPurchaseItem"),
            "unit_price": _money(record.get("StandardSalesPrice")),
            "sales_account": _text(record.get("GLRevenue")),
            "purchase_account": _text(record.get("GLCosts")),
            "sales_vat_code": _text(record.get("SalesVatCode")),
        },
        remote_data=record,
    )


def account_reference(record: dict[str, Any]) -> RemoteReference:
    return RemoteReference(
        kind="account",
        remote_id=str(record["ID"]),
        name=str(record.get("Description") or record.get("Code") or record["ID"]),
        fields={"code": _text(record.get("Code")), "status": None},
        remote_data=record,
    )


def tracking_reference(record: dict[str, Any], kind: str) -> RemoteReference:
    """A cost centre or cost unit; lines name it by code, the id keeps its Ledgerbridge id stable."""
    label = "Cost centre" if kind == "costcenter" else "Cost unit"
    description = _text(record.get("Description")) or _text(record.get("Code")) or ""
    return RemoteReference(
        kind="tracking_category",
        remote_id=f"{kind}:{record['ID']}",
        name=f"{label}: {description}",
        fields={
            "code": _text(record.get("Code")),
            "category_type": "COST_CENTER" if kind == "costcenter" else "COST_UNIT",
            "category_name": label,
            "option_name": description,
            "parent_category": label,
            "status": "ARCHIVED" if _ended(record) else "ACTIVE",
        },
        remote_data=record,
    )


# What a contact reference reads of an account (list, lookup); a lookup adds Remarks and Created.
ACCOUNT_SELECT = (
    "ID,Code,Name,Email,Status,IsSupplier,Blocked,SalesCurrency,PurchaseCurrency,VATNumber,"
    "AddressLine1,AddressLine2,City,State,Postcode,Country,Phone,Fax,Modified"
)


@dataclass(frozen=True)
class _Source:
    """A list the reference sync reads; optional lists (cost analysis) may be absent from a licence."""

    resource: str
    select: str
    kind: str
    filter: str | None = None
    optional: bool = False

    @property
    def doing(self) -> str:
        return f"listing {self.resource}"

    def params(self) -> dict[str, str]:
        params = {"$select": self.select}
        if self.filter:
            params["$filter"] = self.filter
        return params

    def build(self, record: dict[str, Any]) -> RemoteReference:
        if self.kind == "contact":
            return contact_reference(record)
        if self.kind == "item":
            return item_reference(record)
        if self.kind == "account":
            return account_reference(record)
        return tracking_reference(record, self.kind)


REFERENCE_SOURCES = (
    _Source(
        ACCOUNTS,
        ACCOUNT_SELECT,
        "contact",
        filter="Status eq 'C' or IsSupplier eq true",
    ),
    _Source(
        "logistics/Items",
        "ID,Code,Description,ItemGroup,IsSalesItem,IsPurchaseItem,GLRevenue,GLCosts,SalesVatCode,"
        "StandardSalesPrice,Modified",
        "item",
    ),
    _Source("financial/GLAccounts", "ID,Code,Description,Modified", "account"),
    _Source("hrm/Costcenters", "ID,Code,Description,Active,EndDate", "costcenter", optional=True),
    _Source("hrm/Costunits", "ID,Code,Description,EndDate", "costunit", optional=True),
)
