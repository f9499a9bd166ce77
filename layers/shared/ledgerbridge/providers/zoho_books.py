"""Zoho Books: sales invoices, bills (payables) and contacts through the Books API v3.

A receivable is ``POST {api}/books/v3/invoices``, a payable ``POST {api}/books/v3/bills``,
both with the organisation in the ``organization_id`` query parameter (connection setting
``organization_id``). The ``data_center`` setting (``com`` by default, ``eu``, ``in``,
``com.au``, ``jp``, ``ca``, ``com.cn``, ``sa``) picks the API host and the accounts server
that refreshes tokens; LEDGERBRIDGE_ZOHO_BOOKS_API_URL / _TOKEN_URL replace both. Zoho answers
``{"code": 0, ...}`` on success; any other ``code`` is a refusal carrying Zoho's ``message``.
Zoho publishes no OpenAPI document to copy: the fields sent are the ones Zoho's own SDK (the
books-java-wrappers) and its API reference document, listed with their source in
tests/fixtures/specs/zoho-books, which every test body and query is checked against.

Contacts (``map_contact``/``send_contact``/``find_contact``): ``POST {api}/books/v3/contacts``,
the body Zoho's Contacts reference and its SDK's ``Contact.toJSON`` document (the fields in
tests/fixtures/specs/zoho-books). Decisions:

- Customer or vendor: a Zoho contact is one or the other (``contact_type``), so ``is_supplier``
  alone makes a vendor, anything else a customer; both true is refused on ``is_supplier``
  (create one of each), ``is_customer`` false without ``is_supplier`` on ``is_customer``.
- ``name`` -> ``contact_name`` (the display name, required, at most 200 characters; Zoho refuses
  a name another contact holds, and that refusal is answered as Zoho's). ``email_address`` and
  the phones go on the one primary contact person (``email``, ``phone`` for WORK or any other
  type, ``mobile`` for MOBILE), a FAX on the billing address: one number per slot, a second is
  refused by its path (``phone_numbers.1``). Addresses: ``billing_address`` and
  ``shipping_address`` (SHIPPING or DELIVERY), street_1/2 -> ``address``/``street2``,
  postal_code -> ``zip``; a second one for a slot, or an empty one, is refused (``addresses.1``).
- ``tax_number``: Zoho keeps it in its edition's own field (UK ``vat_reg_no``, at most 12; GCC,
  Mexico, Kenya, South Africa ``tax_reg_no``; India ``gst_no``, 15), which only the operator
  knows: the connection's ``tax_number_field`` names it; without it a tax number is refused.
- ``currency``: Zoho takes only the organisation's ``currency_id``, so ``send_contact`` looks the
  code up (``GET /settings/currencies``) before posting; a code the organisation lacks is
  Zoho's refusal, nothing posted. ``status`` ARCHIVED is refused (Zoho creates contacts active).
  ``field_mappings.<slug>`` needs ``contact_custom_field.<slug>`` (contact custom fields have
  their own ids, apart from invoices'); an unknown slug is refused by name.
- Exactly once: Zoho has no idempotency key and no external-id field on a contact. The
  contact's ``notes`` (the UI's "Remarks", internal: never printed nor shown in the portal) is
  searchable (the list's ``search_text`` looks in names and notes) and Panora's contact has no
  notes of its own, so it holds ``Ledgerbridge contact <contact id>``. The POST is never resent
  blindly (``idempotent=False``): a lost answer is ProviderUnavailable, and ``find_contact``
  searches the notes for the id, reads each hit whole and keeps the one whose notes hold it (the
  first created, were there two). A resend Zoho refuses because the lost first create took the
  name returns that first contact. Trade-off: Zoho does not keep notes unique or fixed; someone
  editing the remarks before a resend loses the link, and the resend is then refused as a
  duplicate name (or, where the organisation allows duplicate names, makes a second contact).
- One description: ``contact_reference`` reads a list row and a full record alike. List rows
  carry no addresses, tax number or fax, so ``list_references`` reads the contacts Ledgerbridge
  created (the same notes search) whole, one GET each, and a sync says of them what their
  create said; contacts made in Zoho keep their list row (addresses null).

Why it looks the way it does:

- Idempotency: Zoho Books has no idempotency key. The Ledgerbridge invoice id is written where
  Zoho can search for it, so ``find_invoice`` can look up what an earlier attempt created before
  anything is resent. Where that is (see :func:`reference_of`):
  an invoice on a connection with ``reference_custom_field`` (the ``customfield_id`` of a text
  custom field the organisation created for invoices and keeps off its PDFs) carries it in that
  field, which the customer never sees, found with the ``?custom_field=`` search Zoho documents
  for invoices. Otherwise it goes into ``reference_number``, found with ``?reference_number=``:
  on an invoice that is "Reference#" (the P.O.#), printed, so the customer sees the id; on a bill
  it is internal (bills are never sent; Zoho documents no custom-field search for them). A
  caller's own reference, ``field_mappings.reference_number`` (unless the connection defines a
  custom field of that slug), coexists: it is the reference_number, followed by a space and the
  id when the id has no custom field (at most 50 characters of it, so both stay short enough to
  print and to search exactly); the search is for that exact text.
  ProviderHttp itself resends a POST whose answer was lost (a timeout after Zoho did the
  work), so every create is followed by that same search (one GET): if an earlier attempt of
  this very call left a copy, the first one created is kept and the later, untouched copies
  (draft invoices, unpaid bills) are deleted; a resend that Zoho refuses because the lost
  first create took its invoice number returns that first invoice. ``find_invoice`` does the
  same clean-up, so however often an invoice is sent, Zoho ends up holding one. (Zoho's
  upsert on a unique custom field, ``PUT /invoices`` with ``X-Unique-Identifier-Key`` and
  ``X-Upsert``, would make this a real idempotency key, but needs a custom field configured
  to refuse duplicates in every organisation; not used.)
- Status: Zoho creates invoices as drafts and bills as open. DRAFT creates a draft invoice;
  OPEN, or no status (what an API caller creating an invoice means, as for QuickBooks and
  Xero), creates it and then marks it sent (``POST /invoices/{id}/status/sent``, which sends
  no email). If Zoho refuses that second step the draft is deleted and the refusal returned,
  so a failed invoice leaves nothing behind. A bill cannot be created as a draft through the
  API, and nothing can be created SUBMITTED (approval workflows), PAID, PARTIALLY_PAID or
  VOID (payments and voids are separate operations): all refused.
- Currency: a Zoho invoice is always in its contact's currency; ``currency`` is therefore a
  check against the synced contact (a different one is refused), never sent.
  ``exchange_rate`` is Zoho's ``exchange_rate`` unchanged, both ways: Zoho's convention is
  Ledgerbridge's, units of the organisation's base currency per one unit of the invoice's (Zoho
  converts with it: a line's ``bcy_rate``, "base currency rate", is its ``rate`` x
  ``exchange_rate``), so a EUR invoice at 1.08 in a USD organisation is sent 1.08 and reads back
  1.08. Zoho types it as a JSON number (a double in its own SDK) and documents no precision: a
  rate of more than 15 significant digits, which a double cannot hold exactly, is refused rather
  than recorded as a neighbouring number. Lines take the invoice's currency and rate.
- Lines: ``item_id`` stays the item (Zoho fills name, rate and accounts from it); a line
  without one is a "non-catalog" line named after its description (names hold 100
  characters: a longer description is cut with "..." in the name and kept whole in
  ``description``; a description that fits is the name only, so the PDF does not print it
  twice). ``unit_price`` is Zoho's ``rate``; a line with only ``total_amount`` is
  sent as that rate for one unit (or divided by ``quantity`` when that is exact). Bill lines
  need an expense account: the item's purchase account, else the connection's
  ``default_bill_account_id``; invoice lines without an item may take ``default_account_id``.
  ``default_tax_id`` (``default_bill_tax_id`` on bills) goes on lines whose item has no tax.
- Totals: Zoho computes sub total, tax and total; the caller's are not sent and Zoho's come
  back. An invoice ``total_discount`` is Zoho's entity-level discount (an amount, before
  tax); bills take none.
- ``memo`` is an internal memo (Panora's), and Zoho's ``notes`` is printed on the invoice (the
  "Customer Notes" below the lines). So by default (``memo_target=comment``) the memo becomes a
  comment on the invoice or bill (``POST /{invoices|bills}/{id}/comments``; on an invoice with
  ``show_comment_to_clients: false``, so not even the client portal shows it), added once the
  document exists and before it is marked sent. Comments are not idempotent: a comment whose
  answer was lost is not resent but checked for (``GET .../comments``) by the next attempt's
  ``find_invoice``, which adds it only when missing. A refused comment deletes the untouched
  document, as a refused mark-as-sent does. ``memo_target=notes`` prints the memo as ``notes``
  instead (the caller's choice, per connection); any other value is a misconfigured connection
  (422 on ``connection``).
- Tracking: Zoho's reporting tags are not synced by Ledgerbridge yet, so tracking categories
  are refused rather than dropped; accounting periods and ``paid_on_date`` too.
- Custom fields: ``field_mappings.<slug>`` becomes ``{"customfield_id", "value"}`` from the
  connection's ``custom_field.<slug>`` setting; an unknown slug is refused by name (but for
  ``reference_number``, above).
- Auth: Zoho documents ``Authorization: Zoho-oauthtoken <token>`` and accepts the standard
  ``Bearer <token>`` that ProviderHttp sends. Its token endpoint takes the client id and
  secret as form fields and does not rotate refresh tokens (the refresh answer has none, and
  TokenSource keeps the one it had). ``oauth_token_url(settings)`` names the connection's
  accounts server; called without settings (as the connection machinery does today) it
  names the ``com`` one, so other data centres need LEDGERBRIDGE_ZOHO_BOOKS_TOKEN_URL.

Connect (the hosted consent flow; Zoho Accounts' "Authorization Request", "Multi DC support"
and "Revoke OAuth tokens" pages, and the Books API v3 reference; the parameters and the scope
of each call are in tests/fixtures/specs/zoho-books/connect.json):

- The page asks for the data centre first (``connect_choices``: ``data_center``, ``com`` by
  default). Each data centre has its own accounts server, and a Zoho account lives in one: the
  consent, the code exchange (``oauth_token_url(settings)``), the API and the revocation all
  go to the chosen one. Zoho's alternative (always ``accounts.zoho.com``, then the callback's
  ``accounts-server``) needs multi-DC enabled on the operator's client and a token URL chosen
  after the callback; asking first works with any client registration.
- Authorisation URL: ``{accounts server}/oauth/v2/auth`` (LEDGERBRIDGE_ZOHO_BOOKS_AUTHORIZE_URL
  replaces it) with ``response_type=code``, ``client_id``, ``redirect_uri``, ``state``,
  ``scope``, ``access_type=offline`` (without it Zoho answers no refresh token) and
  ``prompt=consent`` (Zoho answers a refresh token only at a user's first consent, so a
  reconnect would otherwise get none and could not be stored).
- Scopes (``CONNECT_SCOPES``, comma-separated as Zoho's OAuth page asks): the "OAuth Scope" the
  Books reference names for each call this module makes, and no more. ``ZohoBooks.invoices``
  and ``ZohoBooks.bills`` CREATE (create, mark as sent, add the memo's comment), READ (the
  search before a resend, comments) and DELETE (the later copies of a resent create, and a
  draft whose mark-as-sent or comment was refused); ``ZohoBooks.contacts`` CREATE and READ;
  ``ZohoBooks.settings.READ`` (items, currencies and the organisation list);
  ``ZohoBooks.accountants.READ`` (the chart of accounts). Reporting tags are not synced
  (tracking is refused), so no scope for them; nothing is updated, so no UPDATE scope.
- PKCE: not sent (``connect_pkce`` False). Zoho documents ``code_challenge`` only for mobile
  and desktop (client-based) apps; its server-based flow, which Ledgerbridge's confidential
  client follows, authenticates the exchange with the client secret instead.
- Tenants: ``GET {api}/books/v3/organizations`` (no organization_id: it lists the
  organisations of the consenting user) with the fresh token, one Tenant per active
  organisation (``is_org_active`` not false), the user's default one first, its settings
  ``organization_id`` and ``data_center``. 401/403 is ReauthorizationRequired, a network
  failure, 429 or 5xx ProviderUnavailable; no organisation is an empty list.
- Revocation: ``POST {accounts server}/oauth/v2/token/revoke?token=<refresh token>`` (the
  token endpoint of the connection's OAuthApp plus ``/revoke``; LEDGERBRIDGE_ZOHO_BOOKS_REVOKE_URL
  replaces it), which also revokes every access token made with it. Zoho's 400 means the
  token is no longer valid: already revoked, which is what was asked.
- Redirect URI the operator registers on the Zoho client: ``<API base URL>/connect/callback``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx

from ledgerbridge.models import (
    ContactInput,
    ContactStatus,
    InvoiceInput,
    InvoiceStatus,
    InvoiceType,
    LineItemInput,
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
    RemoteInvoice,
    RemoteReference,
    Tenant,
)
from ledgerbridge.providers.http import ProviderHttp, endpoint, json_body
from ledgerbridge.providers.mapping import RefusingMapper, fits_double, type_word
from ledgerbridge.providers.mapping import money as _money
from ledgerbridge.providers.mapping import text as _text
from ledgerbridge.providers.oauth import OAuthApp, OAuthTokens, code_flow_url

ENV_NAME = "ZOHO_BOOKS"
API_PATH = "/books/v3"
TOKEN_PATH = "/oauth/v2/token"
AUTHORIZE_PATH = "/oauth/v2/auth"
REVOKE_SUFFIX = "/revoke"  # Zoho's revocation endpoint is its token endpoint's path + /revoke
DEFAULT_DATA_CENTER = "com"
# Zoho's data centres: (API host, accounts host). Canada's accounts server is zohocloud.ca.
DATA_CENTERS = {
    "com": ("https://www.zohoapis.com", "https://accounts.zoho.com"),
    "eu": ("https://www.zohoapis.eu", "https://accounts.zoho.eu"),
    "in": ("https://www.zohoapis.in", "https://accounts.zoho.in"),
    "com.au": ("https://www.zohoapis.com.au", "https://accounts.zoho.com.au"),
    "jp": ("https://www.zohoapis.jp", "https://accounts.zoho.jp"),
    "ca": ("https://www.zohoapis.ca", "https://accounts.zohocloud.ca"),
    "com.cn": ("https://www.zohoapis.com.cn", "https://accounts.zoho.com.cn"),
    "sa": ("https://www.zohoapis.sa", "https://accounts.zoho.sa"),
}
# What the connect page shows for each data centre (the accounts server's domain in brackets).
DATA_CENTER_NAMES = {
    "com": "United States (zoho.com)",
    "eu": "Europe (zoho.eu)",
    "in": "India (zoho.in)",
    "com.au": "Australia (zoho.com.au)",
    "jp": "Japan (zoho.jp)",
    "ca": "Canada (zohocloud.ca)",
    "com.cn": "China (zoho.com.cn)",
    "sa": "Saudi Arabia (zoho.sa)",
}
CONNECT_CHOICES = (
    ConnectChoice("data_center", "Zoho data centre", tuple(DATA_CENTER_NAMES.items()), DEFAULT_DATA_CENTER),
)
# The scopes Zoho's Books reference names for the calls this module makes (see the docstring).
CONNECT_SCOPES = (
    "ZohoBooks.invoices.CREATE",
    "ZohoBooks.invoices.READ",
    "ZohoBooks.invoices.DELETE",
    "ZohoBooks.bills.CREATE",
    "ZohoBooks.bills.READ",
    "ZohoBooks.bills.DELETE",
    "ZohoBooks.contacts.CREATE",
    "ZohoBooks.contacts.READ",
    "ZohoBooks.settings.READ",
    "ZohoBooks.accountants.READ",
)
PAGE_SIZE = 200  # the most a Zoho Books list returns per page

# Lengths Zoho documents; longer values are refused (or, for a line name, shortened visibly).
MAX_NUMBER = 100
MAX_LINE_NAME = 100
MAX_LINE_DESCRIPTION = 2000
ELLIPSIS = "..."

ZERO, ONE, CENT = Decimal(0), Decimal(1), Decimal("0.01")
MEMO_TARGETS = ("comment", "notes")  # the memo_target setting: a private comment, or the printed notes
REFERENCE_SLUG = "reference_number"  # field_mappings slug of the caller's own Reference# (P.O.#)
MAX_CALLER_REFERENCE = 50  # of it, when Ledgerbridge's id follows it in reference_number

REFUSED_STATUSES = {
    InvoiceStatus.SUBMITTED: "Zoho Books approvals are not supported: send DRAFT or OPEN",
    InvoiceStatus.PAID: "Zoho Books records payments separately: create the invoice OPEN",
    InvoiceStatus.PARTIALLY_PAID: "Zoho Books records payments separately: create the invoice OPEN",
    InvoiceStatus.VOID: "Zoho Books cannot create a voided invoice",
}
_UNIFIED_STATUS = {
    "draft": InvoiceStatus.DRAFT,
    "pending_approval": InvoiceStatus.SUBMITTED,
    "approved": InvoiceStatus.OPEN,
    "sent": InvoiceStatus.OPEN,
    "viewed": InvoiceStatus.OPEN,
    "overdue": InvoiceStatus.OPEN,
    "unpaid": InvoiceStatus.OPEN,
    "open": InvoiceStatus.OPEN,
    "partially_paid": InvoiceStatus.PARTIALLY_PAID,
    "paid": InvoiceStatus.PAID,
    "void": InvoiceStatus.VOID,
}


@dataclass(frozen=True)
class _Kind:
    """What differs between an invoice and a bill in Zoho's API."""

    resource: str  # URL segment: invoices | bills
    entity: str  # key of the record in answers: invoice | bill
    id_key: str
    number_key: str
    contact_key: str


INVOICE = _Kind("invoices", "invoice", "invoice_id", "invoice_number", "customer_id")
BILL = _Kind("bills", "bill", "bill_id", "bill_number", "vendor_id")


def kind_of(invoice: InvoiceInput) -> _Kind:
    return BILL if invoice.type == InvoiceType.ACCOUNTS_PAYABLE else INVOICE


@dataclass(frozen=True)
class Reference:
    """Where a document carries its Ledgerbridge id, and the list search that finds it again."""

    custom_field_id: str | None  # the hidden custom field holding the id, or None: reference_number
    reference_number: str | None  # what reference_number holds (the id, the caller's, or both)
    invoice_id: str

    @property
    def search(self) -> dict[str, str]:
        if self.custom_field_id:
            return {"custom_field": self.invoice_id}
        return {"reference_number": str(self.reference_number)}

    def carried_by(self, row: dict[str, Any]) -> bool:
        """A listed row is ours: Zoho's custom-field search is exact; a reference_number is compared."""
        return bool(self.custom_field_id) or row.get("reference_number") == self.reference_number


@dataclass(frozen=True)
class Completion:
    """What follows a create, and what find_invoice finishes for an earlier attempt."""

    comment: str | None  # the memo, as a private comment on the document
    mark_sent: bool  # an invoice asked OPEN: mark the draft as sent


@dataclass(frozen=True)
class ZohoBooksRequest:
    """One create call: the kind of document, its query parameters and JSON body, and what follows."""

    kind: _Kind
    organization_id: str
    params: dict[str, str]
    body: dict[str, Any]
    reference: Reference
    completion: Completion

    @property
    def mark_sent(self) -> bool:
        return self.completion.mark_sent


# --- connection settings ------------------------------------------------------------------


def _setting(settings: dict[str, str], name: str) -> str | None:
    return (settings.get(name) or "").strip() or None


def organization_id(settings: dict[str, str]) -> str:
    """The organisation every call names; without it no request can be made."""
    organization = _setting(settings, "organization_id")
    if not organization:
        raise InvalidInvoice([("connection", "Zoho Books connection has no organization_id setting")])
    return organization


def data_center(settings: dict[str, str] | None) -> str:
    """The connection's data centre as DATA_CENTERS names it (any case, a leading dot ignored)."""
    return (_setting(settings or {}, "data_center") or DEFAULT_DATA_CENTER).lower().removeprefix(".")


def _data_center(settings: dict[str, str] | None) -> tuple[str, str]:
    name = data_center(settings)
    hosts = DATA_CENTERS.get(name)
    if hosts is None:
        known = ", ".join(DATA_CENTERS)
        raise InvalidInvoice([("connection", f"Zoho Books data_center must be one of {known}, not '{name}'")])
    return hosts


def api_url(settings: dict[str, str]) -> str:
    """``{host}/books/v3`` of the data centre; LEDGERBRIDGE_ZOHO_BOOKS_API_URL replaces the host."""
    return endpoint(ENV_NAME, "API", _data_center(settings)[0]) + API_PATH


def token_url(settings: dict[str, str] | None = None) -> str:
    """The accounts server's token endpoint for a data centre (``com`` without settings)."""
    return endpoint(ENV_NAME, "TOKEN", _data_center(settings)[1] + TOKEN_PATH)


def memo_target(settings: dict[str, str]) -> str:
    """Where the memo goes: ``comment`` (the default) or ``notes`` (printed); any case."""
    return (_setting(settings, "memo_target") or MEMO_TARGETS[0]).lower()


def _caller_reference(settings: dict[str, str], invoice: InvoiceInput) -> str | None:
    """``field_mappings.reference_number``, unless the connection defines a custom field by that slug."""
    if f"custom_field.{REFERENCE_SLUG}" in settings:
        return None
    value = (invoice.field_mappings or {}).get(REFERENCE_SLUG)
    return str(value) if isinstance(value, str | int | Decimal) and not isinstance(value, bool) else None


def reference_of(settings: dict[str, str], outbound: OutboundInvoice) -> Reference:
    """Where this invoice's id goes on this connection (see the module docstring)."""
    invoice, invoice_id = outbound.invoice, outbound.invoice_id
    caller = _caller_reference(settings, invoice)
    field_id = _setting(settings, "reference_custom_field") if kind_of(invoice) is INVOICE else None
    if field_id:
        return Reference(field_id, caller, invoice_id)
    return Reference(None, f"{caller} {invoice_id}" if caller else invoice_id, invoice_id)


def completion_of(settings: dict[str, str], invoice: InvoiceInput) -> Completion:
    """The steps after the create: the memo's comment (unless memo_target prints it), mark-as-sent."""
    printed = memo_target(settings) == "notes"
    return Completion(None if printed else invoice.memo, wants_sent(invoice))


# --- mapping: unified invoice -> Zoho Books -------------------------------------------------

CUSTOM_VALUE_REASON = "Zoho Books custom fields take text, a number or true/false"


def custom_field_entry(definition: str, value: Any) -> dict[str, Any] | None:
    """``{"customfield_id", "value"}`` for a plain value (booleans kept, numbers as text), else None."""
    if isinstance(value, bool):
        return {"customfield_id": definition, "value": value}
    if isinstance(value, str | int | Decimal):
        return {"customfield_id": definition, "value": str(value)}
    return None


def _date(value: datetime | None) -> str | None:
    """The calendar date as the caller wrote it (in its own offset, not UTC)."""
    return value.date().isoformat() if value else None


def _line_name(description: str) -> str:
    if len(description) <= MAX_LINE_NAME:
        return description
    return description[: MAX_LINE_NAME - len(ELLIPSIS)].rstrip() + ELLIPSIS


@dataclass
class _Mapper(RefusingMapper):
    """Builds one request body, collecting every field Zoho Books cannot take."""

    settings: dict[str, str]
    outbound: OutboundInvoice
    custom_fields: dict[str, str]
    reference: Reference
    problems: list[tuple[str, str]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        self._unsupported()
        contact = self._contact()
        body: dict[str, Any] = {**contact, **self._header(), **self._discount()}
        body["line_items"] = [self._line(i, line) for i, line in enumerate(self.invoice.line_items or [])]
        custom = self._custom_fields()
        if self.reference.custom_field_id:
            custom.append(
                {"customfield_id": self.reference.custom_field_id, "value": self.outbound.invoice_id}
            )
        if custom:
            body["custom_fields"] = custom
        return body

    def _unsupported(self) -> None:
        invoice = self.invoice
        if invoice.status in REFUSED_STATUSES:
            self.refuse(
                "status", f"{invoice.status.value} is not supported: {REFUSED_STATUSES[invoice.status]}"
            )
        if self.payable and invoice.status == InvoiceStatus.DRAFT:
            self.refuse("status", "Zoho Books creates bills open; a draft bill cannot be created")
        if invoice.paid_on_date is not None:
            self.refuse("paid_on_date", "Zoho Books records payments separately; not supported")
        if invoice.accounting_period_id is not None:
            self.refuse("accounting_period_id", "Zoho Books has no accounting periods; not supported")
        if invoice.tracking_categories:
            self.refuse("tracking_categories", "Zoho Books reporting tags are not supported")
        if invoice.number is not None and len(invoice.number) > MAX_NUMBER:
            self.refuse("number", f"Zoho Books numbers hold at most {MAX_NUMBER} characters")
        if self.payable and not invoice.number:
            self.refuse("number", "a Zoho Books bill needs the vendor's bill number")
        if not invoice.line_items:
            self.refuse("line_items", "Zoho Books needs at least one line item")

    def _contact(self) -> dict[str, str]:
        key, wanted, label = (
            ("vendor_id", "is_supplier", "vendor")
            if self.payable
            else ("customer_id", "is_customer", "customer")
        )
        reference = self.outbound.references.get("contact_id")
        if reference is None:
            self.refuse("contact_id", f"a Zoho Books {'bill' if self.payable else 'invoice'} needs a {label}")
            return {}
        if not reference.fields.get(wanted):
            kind = "payable" if self.payable else "receivable"
            self.refuse("contact_id", f"this contact is not a Zoho Books {label}; a {kind} needs one")
        return {key: reference.remote_id}

    def _header(self) -> dict[str, Any]:
        invoice = self.invoice
        self._check_currency()
        self._check_memo_target()
        if invoice.exchange_rate is not None and not fits_double(invoice.exchange_rate):
            self.refuse(
                "exchange_rate", "Zoho Books reads rates as doubles: give at most 15 significant digits"
            )
        values = {
            ("bill_number" if self.payable else "invoice_number"): invoice.number,
            "reference_number": self.reference.reference_number,
            "date": _date(invoice.issue_date),
            "due_date": _date(invoice.due_date),
            "exchange_rate": invoice.exchange_rate,
            "notes": invoice.memo if memo_target(self.settings) == "notes" else None,
        }
        return {key: value for key, value in values.items() if value is not None}

    def _check_memo_target(self) -> None:
        """A mistyped setting must not decide where the memo goes (it might print it)."""
        if memo_target(self.settings) not in MEMO_TARGETS:
            self.refuse("connection", f"Zoho Books memo_target must be one of {', '.join(MEMO_TARGETS)}")

    def _check_currency(self) -> None:
        """Zoho takes the contact's currency: anything else is refused, not silently changed."""
        reference = self.outbound.references.get("contact_id")
        contact_currency = reference.fields.get("currency") if reference else None
        currency = self.invoice.currency
        if currency and reference is not None and currency != contact_currency:
            if contact_currency:
                reason = f"Zoho Books invoices are in the contact's currency ({contact_currency})"
            else:
                reason = "the contact was synced without its currency (sync references again)"
            self.refuse("currency", reason)
        expected = currency or contact_currency
        for index, line in enumerate(self.invoice.line_items or []):
            if line.currency and expected and line.currency != expected:
                self.refuse(
                    f"line_items.{index}.currency",
                    f"Zoho Books lines are in the invoice's currency ({expected})",
                )
            if line.exchange_rate is not None and line.exchange_rate != self.invoice.exchange_rate:
                self.refuse(
                    f"line_items.{index}.exchange_rate", "Zoho Books lines use the invoice's exchange rate"
                )

    def _discount(self) -> dict[str, Any]:
        discount = self.invoice.total_discount
        if not discount:
            return {}
        if self.payable:
            self.refuse(
                "total_discount", "Ledgerbridge sends no discount on Zoho Books bills; put it on a line"
            )
            return {}
        if discount < 0:
            self.refuse("total_discount", "must not be negative")
            return {}
        return {"discount": discount, "discount_type": "entity_level", "is_discount_before_tax": True}

    # -- lines

    def _line(self, index: int, line: LineItemInput) -> dict[str, Any]:
        path = f"line_items.{index}"
        item = self.outbound.references.get(f"{path}.item_id") if line.item_id else None
        body: dict[str, Any] = {}
        if line.item_id is not None and item is None:
            self.refuse(f"{path}.item_id", "unknown item for this connection")
        if item is not None:
            body["item_id"] = item.remote_id
        elif line.description:
            body["name"] = _line_name(line.description)
        else:
            self.refuse(
                f"{path}.description", "a Zoho Books line without item_id needs a description (its name)"
            )
        if line.description is not None and len(line.description) > MAX_LINE_DESCRIPTION:
            self.refuse(f"{path}.description", f"Zoho Books line descriptions hold {MAX_LINE_DESCRIPTION}")
        if line.description is not None and body.get("name") != line.description:
            body["description"] = line.description  # not when it is the name: the PDF would print it twice
        body.update(self._amounts(path, line, item is not None))
        body.update(self._ledger(path, item))
        if line.tracking_categories:
            self.refuse(f"{path}.tracking_categories", "Zoho Books reporting tags are not supported")
        return body

    def _amounts(self, path: str, line: LineItemInput, has_item: bool) -> dict[str, Decimal]:
        """Zoho's rate x quantity; a line total that disagrees with them is refused, exactly."""
        quantity, unit, total = line.quantity, line.unit_price, line.total_amount
        if unit is not None:
            quantity = ONE if quantity is None else quantity
            product = quantity * unit
            if total is not None and total not in (product, product.quantize(CENT, rounding=ROUND_HALF_UP)):
                self.refuse(f"{path}.total_amount", f"is not quantity x unit_price ({product})")
            return {"rate": unit, "quantity": quantity}
        if total is not None:
            if quantity is None or quantity == ONE:
                return {"rate": total, "quantity": ONE}
            rate = total / quantity if quantity else None
            if rate is None or rate * quantity != total:
                self.refuse(
                    f"{path}.unit_price", "total_amount does not divide by quantity exactly: give unit_price"
                )
                return {}
            return {"rate": rate, "quantity": quantity}
        if has_item:  # Zoho prices the line from the item
            return {} if quantity is None else {"quantity": quantity}
        self.refuse(
            f"{path}.unit_price", "a Zoho Books line without an item needs unit_price or total_amount"
        )
        return {}

    def _ledger(self, path: str, item: RemoteReference | None) -> dict[str, str]:
        """The line's account and tax, where the item does not bring its own for this side."""
        own = item.fields if item is not None else {}
        fields: dict[str, str] = {}
        if self.payable:
            account = own.get("purchase_account_id") or _setting(self.settings, "default_bill_account_id")
            if not account:
                self.refuse(
                    f"{path}.item_id",
                    "a Zoho Books bill line needs an expense account: give an item with a purchase account "
                    "or set the connection's default_bill_account_id",
                )
            elif not own.get("purchase_account_id"):
                fields["account_id"] = account
        elif item is None and _setting(self.settings, "default_account_id"):
            fields["account_id"] = str(_setting(self.settings, "default_account_id"))
        tax = (_setting(self.settings, "default_bill_tax_id") if self.payable else None) or _setting(
            self.settings, "default_tax_id"
        )
        if tax and not own.get("tax_id"):
            fields["tax_id"] = tax
        return fields

    # -- custom fields

    def _custom_fields(self) -> list[dict[str, Any]]:
        fields = []
        for slug, value in (self.invoice.field_mappings or {}).items():
            path = f"field_mappings.{slug}"
            definition = self.custom_fields.get(slug)
            if definition is None and slug == REFERENCE_SLUG:
                self._check_caller_reference(path, value)
                continue
            if definition is None:
                self.refuse(
                    path, f"no Zoho Books custom field is defined for '{slug}' (setting custom_field.{slug})"
                )
                continue
            entry = custom_field_entry(definition, value)
            if entry is None:
                self.refuse(path, CUSTOM_VALUE_REASON)
            else:
                fields.append(entry)
        return fields

    def _check_caller_reference(self, path: str, value: Any) -> None:
        """The caller's Reference# is text or a number, short enough to share the field with the id."""
        if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
            self.refuse(path, "Zoho Books' reference_number takes text or a number")
        elif not self.reference.custom_field_id and len(str(value)) > MAX_CALLER_REFERENCE:
            self.refuse(
                path,
                f"at most {MAX_CALLER_REFERENCE} characters: Ledgerbridge's id follows it in Zoho's "
                "reference_number (set reference_custom_field to give the caller the whole field)",
            )


def map_invoice(connection: ConnectionContext, outbound: OutboundInvoice) -> ZohoBooksRequest:
    """The create request for ``outbound``; raises InvalidInvoice listing every problem."""
    settings = connection.settings
    organization = organization_id(settings)
    api_url(settings)  # a bad data_center is a misconfiguration: refuse before storing
    reference = reference_of(settings, outbound)
    mapper = _Mapper(settings, outbound, connection.custom_field_definitions(), reference)
    body = mapper.body()
    if mapper.problems:
        raise InvalidInvoice(list(dict.fromkeys(mapper.problems)))
    invoice = outbound.invoice
    kind = kind_of(invoice)
    params = {"ignore_auto_number_generation": "true"} if kind is INVOICE and invoice.number else {}
    return ZohoBooksRequest(kind, organization, params, body, reference, completion_of(settings, invoice))


def wants_sent(invoice: InvoiceInput) -> bool:
    """An invoice asked OPEN (or with no status) is marked sent after Zoho creates the draft."""
    return kind_of(invoice) is INVOICE and invoice.status in (None, InvoiceStatus.OPEN)


# --- mapping: unified contact -> Zoho Books -------------------------------------------------

MAX_CONTACT_NAME = 200  # contact_name ("Display Name"), per Zoho's API reference
CONTACT_NOTE_PREFIX = "Ledgerbridge contact "  # the contact's notes: this, then the Ledgerbridge id
TAX_NUMBER_SETTING = "tax_number_field"
# Each edition's field for a contact's tax registration number, and the most characters it holds.
TAX_NUMBER_FIELDS = {"vat_reg_no": 12, "tax_reg_no": 15, "gst_no": 15}
CONTACT_CUSTOM_FIELD_PREFIX = "contact_custom_field."
SHIPPING_TYPES = {"SHIPPING", "DELIVERY"}
# phone_type -> where Zoho keeps the number (anything else is the primary contact person's phone).
PHONE_SLOTS = {"MOBILE": "mobile", "FAX": "fax"}
# (unified address field, Zoho address field)
ADDRESS_FIELDS = (
    ("street_1", "address"),
    ("street_2", "street2"),
    ("city", "city"),
    ("state", "state"),
    ("postal_code", "zip"),
    ("country", "country"),
)


def contact_note(contact_id: str) -> str:
    """What the contact's notes hold: the Ledgerbridge id that find_contact searches for."""
    return CONTACT_NOTE_PREFIX + contact_id


@dataclass(frozen=True)
class ZohoContactRequest:
    """One ``POST /contacts``: its body, and the currency whose ``currency_id`` the send looks up."""

    organization_id: str
    body: dict[str, Any]
    currency: str | None


@dataclass
class _ContactMapper:
    """Builds one contact body, collecting every field Zoho Books cannot take."""

    settings: dict[str, str]
    outbound: OutboundContact
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def contact(self) -> ContactInput:
        return self.outbound.contact

    def refuse(self, path: str, reason: str) -> None:
        self.problems.append((path, reason))

    def body(self) -> dict[str, Any]:
        contact = self.contact
        self._refusals()
        body: dict[str, Any] = {
            "contact_name": contact.name,
            "contact_type": self._contact_type(),
            "notes": contact_note(self.outbound.contact_id),
            **self._tax_number(),
        }
        phones = self._phones()
        body.update(self._addresses(phones.pop("fax", None)))
        person = {key: value for key, value in (("email", contact.email_address), *phones.items()) if value}
        if person:
            body["contact_persons"] = [{**person, "is_primary_contact": True}]
        custom = self._custom_fields()
        if custom:
            body["custom_fields"] = custom
        return body

    def _refusals(self) -> None:
        contact = self.contact
        if not contact.name:
            self.refuse("name", "Zoho Books needs a contact name (its display name)")
        elif len(contact.name) > MAX_CONTACT_NAME:
            self.refuse("name", f"Zoho Books contact names hold at most {MAX_CONTACT_NAME} characters")
        if contact.status == ContactStatus.ARCHIVED:
            self.refuse(
                "status", "Zoho Books creates contacts active: create it ACTIVE, then mark it inactive"
            )

    def _contact_type(self) -> str:
        """A Zoho contact is a customer or a vendor (``contact_type``), never both."""
        contact = self.contact
        if contact.is_supplier and contact.is_customer:
            self.refuse("is_supplier", "a Zoho Books contact is a customer or a vendor: create one of each")
        if contact.is_supplier:
            return "vendor"
        if contact.is_customer is False:
            self.refuse("is_customer", "a Zoho Books contact is a customer or a vendor: say which")
        return "customer"

    def _tax_number(self) -> dict[str, str]:
        number = self.contact.tax_number
        if number is None:
            return {}
        key = _setting(self.settings, TAX_NUMBER_SETTING)
        known = ", ".join(TAX_NUMBER_FIELDS)
        if key is None:
            self.refuse(
                "tax_number",
                f"Zoho Books keeps tax numbers in its edition's own field: set the connection's "
                f"{TAX_NUMBER_SETTING} ({known})",
            )
            return {}
        if key not in TAX_NUMBER_FIELDS:
            self.refuse("connection", f"Zoho Books {TAX_NUMBER_SETTING} must be one of {known}")
            return {}
        if len(number) > TAX_NUMBER_FIELDS[key]:
            self.refuse("tax_number", f"Zoho Books' {key} holds at most {TAX_NUMBER_FIELDS[key]} characters")
        return {key: number}

    def _phones(self) -> dict[str, str]:
        """One number per slot: the primary person's phone and mobile, the billing address's fax."""
        slots: dict[str, str] = {}
        for index, phone in enumerate(self.contact.phone_numbers or []):
            slot = PHONE_SLOTS.get(type_word(phone.phone_type), "phone")
            if not phone.phone_number:
                self.refuse(f"phone_numbers.{index}.phone_number", "a phone number needs its number")
            elif slot in slots:
                self.refuse(
                    f"phone_numbers.{index}", f"Zoho Books holds one {slot} number: this is a second one"
                )
            else:
                slots[slot] = phone.phone_number
        return slots

    def _addresses(self, fax: str | None) -> dict[str, dict[str, str]]:
        """A billing and a shipping address (SHIPPING/DELIVERY; anything else bills); the fax bills."""
        slots: dict[str, dict[str, str]] = {}
        for index, address in enumerate(self.contact.addresses or []):
            path = f"addresses.{index}"
            slot = (
                "shipping_address" if type_word(address.address_type) in SHIPPING_TYPES else "billing_address"
            )
            values = {zoho: getattr(address, unified) for unified, zoho in ADDRESS_FIELDS}
            values = {key: value for key, value in values.items() if value is not None}
            if slot in slots:
                self.refuse(path, f"Zoho Books holds one {slot}: this is a second one")
            elif not values:
                self.refuse(path, "an address with nothing in it")
            else:
                slots[slot] = values
        if fax:
            slots["billing_address"] = {**slots.get("billing_address", {}), "fax": fax}
        return slots

    def _custom_fields(self) -> list[dict[str, Any]]:
        definitions = {
            key[len(CONTACT_CUSTOM_FIELD_PREFIX) :]: value
            for key, value in self.settings.items()
            if key.startswith(CONTACT_CUSTOM_FIELD_PREFIX)
        }
        fields = []
        for slug, value in (self.contact.field_mappings or {}).items():
            path, definition = f"field_mappings.{slug}", definitions.get(slug)
            entry = custom_field_entry(definition, value) if definition else None
            if definition is None:
                self.refuse(
                    path,
                    f"no Zoho Books contact custom field is defined for '{slug}' "
                    f"(setting {CONTACT_CUSTOM_FIELD_PREFIX}{slug})",
                )
            elif entry is None:
                self.refuse(path, CUSTOM_VALUE_REASON)
            else:
                fields.append(entry)
        return fields


def map_contact(connection: ConnectionContext, outbound: OutboundContact) -> ZohoContactRequest:
    """The ``POST /contacts`` request; raises InvalidInvoice listing every problem. No I/O."""
    settings = connection.settings
    organization = organization_id(settings)
    api_url(settings)  # a bad data_center is a misconfiguration: refuse before storing
    mapper = _ContactMapper(settings, outbound)
    body = mapper.body()
    if mapper.problems:
        raise InvalidInvoice(list(dict.fromkeys(mapper.problems)))
    return ZohoContactRequest(organization, body, outbound.contact.currency)


# --- mapping: Zoho Books -> unified ---------------------------------------------------------


def parse_zoho_time(value: Any) -> datetime | None:
    """Zoho's ``2026-06-09T13:14:55-0400`` (ISO 8601 with a colon-less offset), keeping the offset."""
    if not value:
        return None
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None


def unified_status(record: dict[str, Any]) -> InvoiceStatus | None:
    return _UNIFIED_STATUS.get(str(record.get("status") or "").lower())


def remote_invoice(record: dict[str, Any], kind: _Kind, line_count: int) -> RemoteInvoice:
    """The unified view of an invoice or bill Zoho recorded (Zoho keeps lines in the order sent)."""
    line_ids = [
        str(line["line_item_id"]) for line in record.get("line_items") or [] if line.get("line_item_id")
    ]
    padded: list[str | None] = [*line_ids, *([None] * line_count)]
    status = unified_status(record)
    discount = _money(record.get("discount_total"))
    fields = {
        "number": record.get(kind.number_key) or None,
        "status": status.value if status else None,
        "sub_total": _money(record.get("sub_total")),
        "total_tax_amount": _money(record.get("tax_total")),
        "total_amount": _money(record.get("total")),
        "balance": _money(record.get("balance")),
        "total_discount": discount if discount else None,
        "currency": record.get("currency_code") or None,
        "exchange_rate": _money(record.get("exchange_rate")),
    }
    return RemoteInvoice(
        remote_id=str(record[kind.id_key]),
        remote_data=record,
        remote_updated_at=parse_zoho_time(record.get("last_modified_time")),
        fields={key: value for key, value in fields.items() if value is not None},
        line_remote_ids=padded[:line_count],
    )


def _failure(response: httpx.Response, body: Any, doing: str) -> Exception:
    """The exception for an answer that is not ``code: 0``."""
    code = body.get("code") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else None
    if response.status_code == 401:
        # A 401 survives ProviderHttp's one refresh only when the grant is gone.
        return ReauthorizationRequired(f"Zoho Books refused the connection's token ({message or 401})")
    if code is None:
        return ProviderRejected([f"Zoho Books answered HTTP {response.status_code} {doing}"])
    return ProviderRejected([str(message) if message else f"Zoho Books error code {code} {doing}"])


# --- the API --------------------------------------------------------------------------------


class _Api:
    """Calls to one organisation; every answer is checked for Zoho's ``code: 0``."""

    def __init__(self, connection: ConnectionContext):
        if connection.http is None:
            raise ProviderUnavailable("the Zoho Books connection has no HTTP client (credentials not loaded)")
        self._http: ProviderHttp = connection.http
        self._base = api_url(connection.settings)
        self._organization = organization_id(connection.settings)

    def call(
        self,
        method: str,
        path: str,
        doing: str,
        params: dict[str, str] | None = None,
        body: Any = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        response = self._http.request(
            method,
            f"{self._base}/{path}",
            params={"organization_id": self._organization, **(params or {})},
            body=body,
            idempotent=idempotent,
        )
        answer = json_body(response)
        if not isinstance(answer, dict) or answer.get("code") != 0 or response.status_code >= 400:
            raise _failure(response, answer, doing)
        return answer

    def record(self, answer: dict[str, Any], kind: _Kind, doing: str) -> dict[str, Any]:
        return self.entity(answer, kind.entity, kind.id_key, doing)

    def entity(self, answer: dict[str, Any], entity: str, id_key: str, doing: str) -> dict[str, Any]:
        """The record an answer carries under ``entity``; without it (or its id) Zoho is unavailable."""
        record = answer.get(entity)
        if not isinstance(record, dict) or not record.get(id_key):
            # Safe to try again: find_invoice/find_contact look for what this attempt may have created.
            raise ProviderUnavailable(f"Zoho Books answered without the {entity} {doing}")
        return record

    def get(self, kind: _Kind, remote_id: str) -> dict[str, Any]:
        doing = f"reading {kind.entity} {remote_id}"
        return self.record(self.call("GET", f"{kind.resource}/{remote_id}", doing), kind, doing)

    def pages(
        self, resource: str, key: str, page_size: int, params: dict[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every record of a list, page by page, while ``page_context.has_more_page`` says so."""
        page = 1
        while True:
            query = {**(params or {}), "page": str(page), "per_page": str(page_size)}
            answer = self.call("GET", resource, f"listing {resource}", params=query)
            yield from (record for record in answer.get(key) or [] if isinstance(record, dict))
            if not (answer.get("page_context") or {}).get("has_more_page"):
                return
            page += 1


# --- one invoice at Zoho per Ledgerbridge invoice ------------------------------------------


_DAWN = datetime.min.replace(tzinfo=UTC)


def _created_order(record: dict[str, Any], id_key: str) -> tuple[datetime, int]:
    """Creation time first (Zoho ids are not in creation order), the id only to break a tie."""
    remote_id = str(record.get(id_key) or "")
    created = parse_zoho_time(record.get("created_time")) or _DAWN
    return created, int(remote_id) if remote_id.isdigit() else 0


def _untouched(record: dict[str, Any], kind: _Kind) -> bool:
    """A copy nobody has worked on: a draft invoice, or a bill with nothing paid."""
    if kind is INVOICE:
        return str(record.get("status")) == "draft"
    return _money(record.get("balance")) == _money(record.get("total"))


class _Single:
    """Keeps exactly one document per Ledgerbridge invoice id (written where ``reference`` says)."""

    def __init__(self, api: _Api, kind: _Kind, reference: Reference):
        self._api, self._kind, self._reference = api, kind, reference

    @property
    def kind(self) -> _Kind:
        return self._kind

    def copies(self) -> list[dict[str, Any]]:
        """The documents carrying this invoice id, first created first."""
        kind, reference = self._kind, self._reference
        found = [
            record
            for record in self._api.pages(kind.resource, kind.resource, PAGE_SIZE, reference.search)
            if reference.carried_by(record)
        ]
        return sorted(found, key=lambda record: _created_order(record, kind.id_key))

    def keep_first(self, copies: list[dict[str, Any]]) -> dict[str, Any]:
        """Delete the later untouched copies of the first; returns the first.

        A copy Zoho refuses to delete stays (someone worked on it meanwhile); an unreachable
        Zoho raises ProviderUnavailable, and the next attempt's find_invoice cleans up.
        """
        first, *later = copies
        for copy in later:
            if _untouched(copy, self._kind):
                with suppress(ProviderRejected):
                    self.delete(str(copy[self._kind.id_key]))
        return first

    def delete(self, remote_id: str) -> None:
        kind = self._kind
        self._api.call("DELETE", f"{kind.resource}/{remote_id}", f"deleting {kind.entity} {remote_id}")

    def delete_quietly(self, remote_id: str) -> str:
        """Best effort, while another failure is being reported: says what became of the copy."""
        what = "draft invoice" if self._kind is INVOICE else "bill"
        try:
            self.delete(remote_id)
        except (ProviderRejected, ProviderUnavailable) as exc:
            return f"the {what} {remote_id} Zoho Books created could not be deleted: {exc}"
        return f"the {what} Zoho Books created was deleted"


def _mark_sent(api: _Api, single: _Single, record: dict[str, Any]) -> dict[str, Any]:
    """Marks a draft invoice sent and reads it back; a refusal deletes the draft it leaves."""
    remote_id = str(record[INVOICE.id_key])
    try:
        api.call("POST", f"invoices/{remote_id}/status/sent", f"marking invoice {remote_id} sent")
    except ProviderRejected as exc:
        raise ProviderRejected([*exc.messages, single.delete_quietly(remote_id)]) from None
    return api.get(INVOICE, remote_id)


def _add_comment(api: _Api, single: _Single, record: dict[str, Any], comment: str, fresh: bool) -> None:
    """The memo as a private comment, once: a document not created by this very call is checked first.

    Not resent blindly (a lost answer could leave two); a refusal deletes the untouched document.
    """
    kind = single.kind
    remote_id = str(record[kind.id_key])
    path = f"{kind.resource}/{remote_id}/comments"
    if not fresh:
        answer = api.call("GET", path, f"reading the comments of {kind.entity} {remote_id}")
        if any(isinstance(c, dict) and c.get("description") == comment for c in answer.get("comments") or []):
            return
    body: dict[str, Any] = {"description": comment}
    if kind is INVOICE:
        body["show_comment_to_clients"] = False
    try:
        api.call("POST", path, f"adding the memo to {kind.entity} {remote_id}", body=body, idempotent=False)
    except ProviderRejected as exc:
        if not _untouched(record, kind):
            raise
        raise ProviderRejected([*exc.messages, single.delete_quietly(remote_id)]) from None


def _first(api: _Api, single: _Single, copies: list[dict[str, Any]]) -> dict[str, Any]:
    """The full record of the first copy; the later ones are deleted."""
    first = single.keep_first(copies)
    return api.get(single.kind, str(first[single.kind.id_key]))


def _finish(
    api: _Api, single: _Single, record: dict[str, Any], completion: Completion, lines: int, fresh: bool
) -> RemoteInvoice:
    """Adds the memo's comment, marks the invoice sent if asked OPEN and still a draft; maps it back.

    ``fresh``: this very call created ``record``, so it certainly carries no comment yet.
    """
    if completion.comment is not None:
        _add_comment(api, single, record, completion.comment, fresh)
    if completion.mark_sent and str(record.get("status")) == "draft":
        record = _mark_sent(api, single, record)
    return remote_invoice(record, single.kind, lines)


# --- contacts at Zoho -----------------------------------------------------------------------


def _currency_id(api: _Api, code: str) -> str:
    """The organisation's id for a currency code: Zoho takes ``currency_id`` only."""
    answer = api.call("GET", "settings/currencies", "listing the organisation's currencies")
    for currency in answer.get("currencies") or []:
        if isinstance(currency, dict) and str(currency.get("currency_code") or "").upper() == code.upper():
            return str(currency["currency_id"])
    raise ProviderRejected(
        [f"{code} is not a currency of this Zoho Books organisation (add it in Zoho first)"]
    )


def _contact_record(api: _Api, contact_id: str) -> dict[str, Any]:
    doing = f"reading contact {contact_id}"
    return api.entity(api.call("GET", f"contacts/{contact_id}", doing), "contact", "contact_id", doing)


def _noted_contacts(api: _Api, note: str, page_size: int = PAGE_SIZE) -> list[dict[str, Any]]:
    """Full records of the contacts whose notes hold ``note``, first created first.

    Zoho's ``search_text`` matches names and notes loosely, and list rows carry no notes: each
    hit is read whole and kept only if its notes really hold ``note``.
    """
    rows = api.pages("contacts", "contacts", page_size, {"search_text": note.strip()})
    found = [_contact_record(api, str(row["contact_id"])) for row in rows if row.get("contact_id")]
    ours = [record for record in found if note in str(record.get("notes") or "")]
    return sorted(ours, key=lambda record: _created_order(record, "contact_id"))


def _find_contact(api: _Api, contact_id: str) -> RemoteReference | None:
    """The contact an earlier attempt created for this Ledgerbridge id (the first, were there two)."""
    earlier = _noted_contacts(api, contact_note(contact_id))
    return contact_reference(earlier[0]) if earlier else None


def _send_contact(api: _Api, request: ZohoContactRequest, contact_id: str) -> RemoteReference:
    """One POST, never resent blindly (a lost answer is find_contact's to settle).

    A refusal is first checked against an earlier attempt: Zoho refuses a second contact of the
    same name, so a resend after a lost answer is refused because of the contact it made.
    """
    body = dict(request.body)
    if request.currency:
        body["currency_id"] = _currency_id(api, request.currency)
    doing = "creating the contact"
    try:
        answer = api.call("POST", "contacts", doing, body=body, idempotent=False)
    except ProviderRejected:
        earlier = _find_contact(api, contact_id)
        if earlier is None:
            raise
        return earlier
    return contact_reference(api.entity(answer, "contact", "contact_id", doing))


def _contact_records(api: _Api, page_size: int) -> Iterator[dict[str, Any]]:
    """Every contact's list row, but a contact Ledgerbridge created as its full record.

    List rows carry no addresses or tax numbers; reading the full record of the contacts
    Ledgerbridge created (found by their notes) keeps a sync from contradicting their create.
    """
    created = {str(r["contact_id"]): r for r in _noted_contacts(api, CONTACT_NOTE_PREFIX, page_size)}
    for row in api.pages("contacts", "contacts", page_size):
        yield created.get(str(row.get("contact_id")), row)


# --- hosted connect -----------------------------------------------------------------------


def authorization_url(request: AuthorizationRequest) -> str:
    """The consent screen of the chosen data centre's accounts server (no PKCE: see the docstring)."""
    default = _data_center(request.settings)[1] + AUTHORIZE_PATH
    offline = {"access_type": "offline", "prompt": "consent"}  # else no refresh token, on reconnects too
    return code_flow_url(endpoint(ENV_NAME, "AUTHORIZE", default), request, ",".join(CONNECT_SCOPES), offline)


def _organizations(client: httpx.Client, access_token: str, settings: dict[str, str]) -> httpx.Response:
    """``GET /organizations`` with a bare access token (no connection, so no ProviderHttp, exists yet)."""
    headers = {"authorization": f"Zoho-oauthtoken {access_token}", "accept": "application/json"}
    try:
        return client.get(f"{api_url(settings)}/organizations", headers=headers)
    except httpx.TransportError as exc:
        raise ProviderUnavailable(f"{type(exc).__name__} listing the Zoho Books organisations") from exc


def discover_tenants(client: httpx.Client, access_token: str, settings: dict[str, str]) -> list[Tenant]:
    """The active organisations of the consenting user, the default one first."""
    response = _organizations(client, access_token, settings)
    if response.status_code in (401, 403):
        raise ReauthorizationRequired(
            f"Zoho Books refused the new access token (HTTP {response.status_code})"
        )
    body = json_body(response) if response.status_code == 200 else None
    if not isinstance(body, dict) or body.get("code") != 0:
        raise ProviderUnavailable(
            f"Zoho Books answered HTTP {response.status_code} listing the organisations"
        )
    rows = [row for row in body.get("organizations") or [] if isinstance(row, dict)]
    active = [
        row for row in rows if _text(row.get("organization_id")) and row.get("is_org_active") is not False
    ]
    ordered = sorted(active, key=lambda row: row.get("is_default_org") is not True)
    return [_tenant(row, data_center(settings)) for row in ordered]


def _tenant(row: dict[str, Any], center: str) -> Tenant:
    organization = str(_text(row.get("organization_id")))
    return Tenant(
        remote_id=organization,
        name=_text(row.get("name")) or organization,
        settings={"organization_id": organization, "data_center": center},
    )


def revoke_tokens(client: httpx.Client, app: OAuthApp, tokens: OAuthTokens) -> None:
    """Revokes the refresh token (and so its access tokens) at the connection's accounts server."""
    url = endpoint(ENV_NAME, "REVOKE", app.token_url + REVOKE_SUFFIX)
    try:
        response = client.post(
            url, params={"token": tokens.refresh_token}, headers={"accept": "application/json"}
        )
    except httpx.TransportError as exc:
        raise ProviderUnavailable(f"{type(exc).__name__} revoking the Zoho tokens") from exc
    if response.status_code == 400:
        return  # Zoho: the token is not valid (any more): nothing left to revoke
    body = json_body(response) if response.status_code == 200 else None
    if not isinstance(body, dict) or body.get("status") != "success":
        raise ProviderUnavailable(f"Zoho answered HTTP {response.status_code} revoking the tokens")


# --- the provider ---------------------------------------------------------------------------


class ZohoBooksProvider:
    """Creates invoices and bills in one Zoho Books organisation; see the module docstring."""

    name = "zoho_books"
    oauth_client_auth = "form"
    connect_choices = CONNECT_CHOICES
    connect_pkce = False  # Zoho documents PKCE for client-based apps only (see the docstring)

    def __init__(self, page_size: int = PAGE_SIZE):
        self._page_size = page_size

    def oauth_token_url(self, settings: dict[str, str] | None = None) -> str | None:
        """The connection's accounts server when given its settings; ``com`` otherwise (see token_url)."""
        return token_url(settings)

    def authorization_url(self, request: AuthorizationRequest) -> str:
        return authorization_url(request)

    def discover_tenants(
        self, client: httpx.Client, access_token: str, settings: dict[str, str], callback: dict[str, str]
    ) -> list[Tenant]:
        """The organisations of the chosen data centre (the callback's ``location`` is not needed)."""
        return discover_tenants(client, access_token, settings)

    def revoke_tokens(self, client: httpx.Client, app: OAuthApp, tokens: OAuthTokens) -> None:
        revoke_tokens(client, app, tokens)

    def map_invoice(self, connection: ConnectionContext, outbound: OutboundInvoice) -> ZohoBooksRequest:
        return map_invoice(connection, outbound)

    def send_invoice(
        self, connection: ConnectionContext, outbound: OutboundInvoice, request: ZohoBooksRequest
    ) -> RemoteInvoice:
        kind, api = request.kind, _Api(connection)
        single = _Single(api, kind, request.reference)
        lines, completion = len(outbound.invoice.line_items or []), request.completion
        doing = f"creating the {kind.entity}"
        try:
            answer = api.call("POST", kind.resource, doing, params=request.params, body=request.body)
        except ProviderRejected:
            # A resend of a create whose answer was lost can be refused because of the first
            # one (its invoice number is now taken): if that one exists, it is the invoice.
            earlier = single.copies()
            if not earlier:
                raise
            return _finish(api, single, _first(api, single, earlier), completion, lines, fresh=False)
        created = api.record(answer, kind, doing)
        copies = {str(c[kind.id_key]): c for c in [*single.copies(), created]}
        ordered = sorted(copies.values(), key=lambda record: _created_order(record, kind.id_key))
        mine = ordered[0][kind.id_key] == created[kind.id_key]
        if mine:
            single.keep_first(ordered)
            record = created
        else:
            record = _first(api, single, ordered)
        # The document this very call created carries no comment yet; an earlier copy may.
        return _finish(api, single, record, completion, lines, fresh=mine)

    def find_invoice(self, connection: ConnectionContext, outbound: OutboundInvoice) -> RemoteInvoice | None:
        """The document an earlier attempt created (see ``reference_of``), cleaned up and finished."""
        api, invoice = _Api(connection), outbound.invoice
        single = _Single(api, kind_of(invoice), reference_of(connection.settings, outbound))
        copies = single.copies()
        if not copies:
            return None
        record = _first(api, single, copies)
        completion = completion_of(connection.settings, invoice)
        return _finish(api, single, record, completion, len(invoice.line_items or []), fresh=False)

    def map_contact(self, connection: ConnectionContext, outbound: OutboundContact) -> ZohoContactRequest:
        return map_contact(connection, outbound)

    def send_contact(
        self, connection: ConnectionContext, outbound: OutboundContact, request: ZohoContactRequest
    ) -> RemoteReference:
        return _send_contact(_Api(connection), request, outbound.contact_id)

    def find_contact(
        self, connection: ConnectionContext, outbound: OutboundContact
    ) -> RemoteReference | None:
        """The contact an earlier attempt created: the one whose notes hold the contact id."""
        return _find_contact(_Api(connection), outbound.contact_id)

    def list_references(self, connection: ConnectionContext) -> list[RemoteReference]:
        api = _Api(connection)
        return [
            *(contact_reference(record) for record in _contact_records(api, self._page_size)),
            *(item_reference(record) for record in api.pages("items", "items", self._page_size)),
            *(
                account_reference(record)
                for record in api.pages("chartofaccounts", "chartofaccounts", self._page_size)
            ),
        ]


# --- references -----------------------------------------------------------------------------


def _status(value: Any) -> str | None:
    text = _text(value)
    return text.upper() if text else None


def _primary_person(record: dict[str, Any]) -> dict[str, Any]:
    people = [p for p in record.get("contact_persons") or [] if isinstance(p, dict)]
    return next((p for p in people if p.get("is_primary_contact")), people[0] if people else {})


def _contact_addresses(record: dict[str, Any]) -> list[dict[str, Any]]:
    addresses = []
    for key, kind in (("billing_address", "BILLING"), ("shipping_address", "SHIPPING")):
        address = record.get(key)
        values = (
            {unified: _text(address.get(zoho)) for unified, zoho in ADDRESS_FIELDS}
            if isinstance(address, dict)
            else {}
        )
        if any(values.values()):
            addresses.append({**values, "address_type": kind})
    return addresses


def _contact_phones(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The primary person's phone (Zoho's "Work Phone") and mobile (list rows carry them flat), the fax."""
    person, billing = _primary_person(record), record.get("billing_address")
    numbers = (
        ("WORK", _text(person.get("phone")) or _text(record.get("phone"))),
        ("MOBILE", _text(person.get("mobile")) or _text(record.get("mobile"))),
        ("FAX", _text(billing.get("fax")) if isinstance(billing, dict) else None),
    )
    return [{"phone_number": number, "phone_type": kind} for kind, number in numbers if number]


def contact_reference(record: dict[str, Any]) -> RemoteReference:
    """A customer or a vendor (``contact_type``), from a list row or a full record alike.

    A list row has no addresses, tax number or fax: those are null for it (see _contact_records).
    """
    contact_type = str(record.get("contact_type") or "")
    updated = parse_zoho_time(record.get("last_modified_time"))
    tax_numbers = (_text(record.get(key)) for key in TAX_NUMBER_FIELDS)
    return RemoteReference(
        kind="contact",
        remote_id=str(record["contact_id"]),
        name=str(record.get("contact_name") or record["contact_id"]),
        fields={
            "is_customer": contact_type == "customer",
            "is_supplier": contact_type == "vendor",
            "email_address": _text(record.get("email")) or _text(_primary_person(record).get("email")),
            "tax_number": next((number for number in tax_numbers if number), None),
            "currency": _text(record.get("currency_code")),
            "currency_id": _text(record.get("currency_id")),
            "status": _status(record.get("status")),
            "addresses": _contact_addresses(record) or None,
            "phone_numbers": _contact_phones(record) or None,
            "remote_updated_at": updated.isoformat() if updated else None,
        },
        remote_data=record,
    )


def item_reference(record: dict[str, Any]) -> RemoteReference:
    return RemoteReference(
        kind="item",
        remote_id=str(record["item_id"]),
        name=str(record.get("name") or record["item_id"]),
        fields={
            "code": _text(record.get("sku")),
            "status": _status(record.get("status")),
            "type": _text(record.get("item_type")),
            "unit_price": _money(record.get("rate")),
            "purchase_price": _money(record.get("purchase_rate")),
            "sales_account": _text(record.get("account_name")),
            "purchase_account": _text(record.get("purchase_account_name")),
            "account_id": _text(record.get("account_id")),
            "purchase_account_id": _text(record.get("purchase_account_id")),
            "tax_id": _text(record.get("tax_id")),
        },
        remote_data=record,
    )


def account_reference(record: dict[str, Any]) -> RemoteReference:
    active = record.get("is_active")
    return RemoteReference(
        kind="account",
        remote_id=str(record["account_id"]),
        name=str(record.get("account_name") or record["account_id"]),
        fields={
            "code": _text(record.get("account_code")),
            "type": _text(record.get("account_type")),
            "status": None if active is None else ("ACTIVE" if active else "INACTIVE"),
            "parent_account_id": _text(record.get("parent_account_id")),
        },
        remote_data=record,
    )
