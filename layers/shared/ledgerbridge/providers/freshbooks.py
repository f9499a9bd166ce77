"""FreshBooks: sales invoices through the Accounting API.

One invoice is ``POST {api}/accounting/account/{account_id}/invoices/invoices`` with
``{"invoice": {...}}``; the business is the connection setting ``account_id``. FreshBooks has
no bills (its "bills" are a separate expense API with no shared shape): ACCOUNTS_PAYABLE is
refused. OAuth: ``https://api.freshbooks.com/auth/oauth/token`` takes the client id and
secret in a JSON body, and every refresh returns a new refresh token (single use; the
TokenSource stores it). Every refresh also carries the app's registered ``redirect_uri``:
FreshBooks' own Node SDK (``APIClient.authorizeCall``) sends it with both grants and will not
refresh without one, so the FreshBooks entry of the OAuth client secret must hold it
(``oauth_refresh`` below).

Contacts (``map_contact``/``send_contact``/``find_contact``): one FreshBooks client,
``POST {api}/accounting/account/{account_id}/users/clients`` with ``{"client": {...}}``, the
body FreshBooks' Node SDK writes (``transformClientRequest``, ``models/Client.ts``). Decisions:

- Customers only. A FreshBooks client is "an entity you send invoices to" (FreshBooks' API
  reference); FreshBooks' vendors belong to its bills API, which Ledgerbridge does not use
  (ACCOUNTS_PAYABLE is refused below). So ``is_supplier`` true (alone or with
  ``is_customer``) is refused on ``is_supplier``, ``is_customer`` false on ``is_customer``; and
  ``list_references`` reports every client ``is_customer`` true, ``is_supplier`` false.
- ``name`` -> ``organization`` ("name for client's business"), required here: FreshBooks wants
  a company or a person's name, and Ledgerbridge has one name, not first and last.
  ``email_address`` -> ``email``, ``tax_number`` -> ``vat_number``, ``currency`` ->
  ``currency_code`` (FreshBooks uses the business's currency when absent). ``status``: ACTIVE
  (or none) is what FreshBooks creates; ARCHIVED is refused (create it, then archive it).
- Addresses: FreshBooks has two, billing (``p_street``, ``p_street2``, ``p_city``,
  ``p_province``, ``p_code``, ``p_country``) and shipping (the same with ``s_``).
  ``address_type`` SHIPPING or DELIVERY takes the shipping one, anything else the billing one;
  a second address for a taken slot, or an address with nothing in it, is refused by its path
  (``addresses.1``). Read back as BILLING / SHIPPING.
- Phones: MOBILE -> ``mob_phone``, HOME -> ``home_phone``, FAX -> ``fax``, anything else (WORK,
  none...) -> ``bus_phone``; one number a slot, so a second for a taken slot is refused
  (``phone_numbers.1``), and an entry without a number on ``phone_numbers.N.phone_number``.
  Read back as WORK / MOBILE / HOME / FAX.
- ``field_mappings``: FreshBooks clients have no custom fields; each slug is refused
  (``field_mappings.<slug>``). Lengths: neither FreshBooks' API reference nor its SDK models
  give any, so none is checked beyond Ledgerbridge's own 255 characters; a value FreshBooks
  will not hold is its refusal (ProviderRejected).
- Exactly once: FreshBooks has no idempotency key and no external-id field on a client, and it
  refuses no duplicates (the recorded business has two active clients with one email). The
  client's ``note`` is the one place that is private ("Internal Notes ... only visible to you
  and your team", FreshBooks support; "notes kept by administrator about client", its API
  reference) and searchable (``search[note_like]``, a documented filter); Panora's contact has
  no notes to put there. So the note is ``Ledgerbridge contact <contact id>``, the POST is never
  resent blindly (``idempotent=False``), and ``find_contact`` searches the notes for the id and
  takes the client whose note holds it (the oldest, should there be two). The trade-off: the
  business's team sees the note and may edit it; a note edited before a resend loses the link,
  and the resend would then create a second client.
- ``send_contact`` and ``list_references`` describe a client with the one ``contact_reference``
  (name, flags, email, tax number, currency, status, addresses, phones, ``updated``), so the
  next reference sync says of a created client what its create said.

Decisions where the unified invoice and FreshBooks do not line up (each refusal is an
InvalidInvoice naming the field, raised before anything is stored or sent):

- Idempotency: FreshBooks has no idempotency key, and an invoice has no field its client does
  not see: the SDK's Invoice model (freshbooks-nodejs-sdk, ``models/Invoices.ts``) has only
  printed text (``notes``, ``terms``, ``po_number``, ``description``, addresses). So the
  Ledgerbridge invoice id goes into ``po_number``, which FreshBooks prints as the invoice's
  "Reference"/PO number: the client sees it. ``find_invoice`` lists the client's invoices
  (``search[customerid]``, a documented filter; newest first, 100 a page) and compares
  ``po_number`` exactly, so a resend finds what a lost response already created. FreshBooks
  documents no search on ``po_number``; filtering by client keeps the scan to one client's
  invoices.
- A caller who needs the PO number for the client's own purchase order sends it as
  ``field_mappings.po_number`` (text; the only slug FreshBooks invoices take, any other is
  refused naming ``field_mappings.<slug>``). Theirs is written, ours is not, and a resend
  looks for the invoice differently: among the client's invoices with that PO number, one
  created no earlier than the Ledgerbridge invoice was received (the time in its UUIDv7 id,
  less five minutes of clock skew; FreshBooks writes ``created_at`` in US Eastern time) whose
  ``create_date``, currency, number (when one was given) and lines (name, quantity, unit
  cost) are what the resend would send. The trade-off: an identical invoice for the same
  client and PO number made by someone else in that window would be taken for ours (and ours
  never sent); two such invoices are not guessed between: the resend is refused
  (ProviderRejected, the invoice ``failed``) naming them, for a person to check.
- Status: FreshBooks creates drafts. DRAFT stays a draft. OPEN, or no status, is created and
  then marked as sent (``PUT .../invoices/{id}`` with ``action_mark_as_sent``, FreshBooks' own
  recipe: it records the receivable without emailing the client; Ledgerbridge never emails).
  SUBMITTED (FreshBooks has no approval step), PAID, PARTIALLY_PAID, VOID and ``paid_on_date``
  are refused: payments and deletions are separate operations. Read back from ``v3_status``
  and ``payment_status``: draft -> DRAFT, paid -> PAID, partial -> PARTIALLY_PAID, deleted
  (``vis_state`` 1) -> VOID, anything else (sent, viewed, disputed...) -> OPEN.
- Dates: ``create_date`` is the issue date; FreshBooks' SDK types it as required, so it is
  always sent. Without ``issue_date`` it is the day Ledgerbridge received the invoice, in the
  connection's ``time_zone`` setting (an IANA name such as ``America/Toronto``; default UTC:
  FreshBooks' own business time zone, ``business.timezone`` of ``/auth/api/v1/users/me``, is
  not read while mapping, which makes no calls). That day is read from the invoice id (a
  UUIDv7 carries its creation time), not from the clock, so a retry the next day still sends
  the day the caller asked. FreshBooks has no due date field to write: it derives
  ``due_date`` from ``create_date + due_offset_days``, so ``due_date`` is sent as that offset
  from the issue date (given or defaulted); an earlier calendar day is refused.
- Money: every amount is ``{"amount": "<decimal string>", "code": <currency>}``. The currency
  is the invoice's ``currency``, else the client's own currency from the reference sync; lines
  must be in it. FreshBooks keeps 2 decimal places: a finer unit price is refused, not rounded.
  FreshBooks invoices record no exchange rate (none in the SDK's Invoice model or in the
  invoices it returns), so ``exchange_rate`` is refused on the invoice and its lines, and none
  is read back. ``total_discount`` is refused (FreshBooks discounts are a percentage).
  ``sub_total``, when given, must match the lines; totals and tax are computed by FreshBooks
  and read back.
- Lines are ``{type: 0, name, description, qty, unit_cost}``. A line with an item takes the
  item's name (FreshBooks lines carry no item id: the item's name, description, price and
  taxes are copied, as FreshBooks' own editor does), the line's description (else the item's),
  and the item's price when the line has none. A line without an item is named by its
  description. A line with only ``total_amount`` is one unit of that amount. Taxes are the
  percentages FreshBooks puts on lines (``taxName1``/``taxAmount1``, ``taxName2``/``taxAmount2``):
  an item's own taxes, or the connection's ``default_tax_name``/``default_tax_percent`` on lines
  without an item.
- ``memo`` (Panora's internal memo) has no private place in a FreshBooks invoice: its free
  text (``notes``, ``terms``) is printed on the invoice the client receives. So a memo is
  refused (naming ``memo``) unless the connection's ``memo_target`` setting is ``notes``, an
  explicit choice to print it there.
- ``number`` -> ``invoice_number`` (FreshBooks numbers it when absent).
- Not in FreshBooks invoices: custom fields (``field_mappings`` other than ``po_number``),
  tracking categories, accounting periods: refused.
- Errors: FreshBooks answers ``{"response": {"errors": [{"message", "errno", "field", ...}]}}``;
  each message becomes ProviderRejected. 401 (after one refresh) and 403 need the connection
  authorised again.
- Timestamps: FreshBooks writes accounting ``updated`` times in US Eastern time without an
  offset (a recorded client's ``signup_date`` 16:48:49 UTC is its ``updated`` 12:48:49; its
  Node SDK reads them the same way), converted here with the US daylight-saving rule.

Connect (the hosted consent flow; FreshBooks' "Authentication" and "Scopes" pages and its
official Node and Python SDKs, ``getAuthRequestUrl`` / ``get_auth_request_url``):

- Authorisation URL: ``https://auth.freshbooks.com/oauth/authorize`` (the SDKs' ``AUTH_BASE_URL``
  + ``/oauth/authorize``; ``LEDGERBRIDGE_FRESHBOOKS_AUTHORIZE_URL`` overrides it) with
  ``response_type=code``, ``client_id``, ``redirect_uri``, ``scope`` and ``state``, the SDKs'
  parameters plus the state FreshBooks documents passing through to the redirect. FreshBooks
  has one host for every business, so the page asks nothing first (``connect_choices`` is
  empty) and the token and API hosts never depend on a connection's settings.
- Scopes (``CONNECT_SCOPES``): FreshBooks' ``user:<object>:<read|write>`` scopes for each call
  this module makes, and no more (a consent screen should ask for nothing unused, and FreshBooks
  cannot add a scope to a token later: the user would have to consent again).
  ``user:profile:read`` reads ``/auth/api/v1/users/me``, the businesses (tenant discovery; the
  Scopes page adds it to every app). ``user:clients:read`` lists and searches clients
  (reference sync, ``find_contact``); ``user:clients:write`` creates them (contacts).
  ``user:invoices:read`` lists a client's invoices (``find_invoice`` before a resend);
  ``user:invoices:write`` creates invoices and marks them sent. ``user:billable_items:read``
  lists items (the Items page's scope); ``user:taxes:read`` lists taxes, to name an item's
  taxes. No bills, vendors, expenses or accounts scope: this module creates no bills (refused
  above), reads no chart of accounts and sets no tracking (refused above). Refresh tokens need
  no scope: FreshBooks' code exchange always answers a refresh token (no ``offline_access``).
  Scopes are joined by spaces, sent as ``%20`` as the Node SDK's ``encodeURIComponent`` does.
- PKCE: not sent (``connect_pkce`` False). Neither FreshBooks' authentication pages nor its
  SDKs take a ``code_challenge``, and the code exchange is authenticated by the client secret;
  the single-use ``state`` bound to the connect session guards the redirect. The exchange is
  ``oauth.exchange_code`` with the client id and secret in the JSON body (``oauth_client_auth``
  ``json``), the body the Node SDK's ``authorizeCall`` sends (its fields, and no verifier).
- Tenants: a FreshBooks token names no business. ``GET {api}/auth/api/v1/users/me`` (FreshBooks'
  Identity Model page) lists ``business_memberships``; each business with an ``account_id``
  (what every ``/accounting`` URL takes) becomes one Tenant: its ``account_id`` (the remote id
  and the ``account_id`` setting) and ``name``, first seen first, each account once. The
  business's ``timezone``, when it is an IANA name this runtime knows, becomes the ``time_zone``
  setting, so an invoice without ``issue_date`` is dated by the business's own calendar rather
  than UTC (an unknown name is left out: the default stays UTC rather than every invoice being
  refused). The membership's role is not filtered on: the Identity Model page documents no list
  of roles, so the user picks among every business FreshBooks lists. 401/403 is
  ReauthorizationRequired; a network failure, 429 or 5xx (after ``ProviderHttp``'s retries) or
  an answer that is not the documented JSON is ProviderUnavailable; no business is no tenant.
- Revocation: ``POST https://api.freshbooks.com/auth/oauth/revoke`` (FreshBooks' "Revoke a
  Refresh Token"; ``LEDGERBRIDGE_FRESHBOOKS_REVOKE_URL`` overrides it) with a JSON body of
  ``client_id``, ``client_secret`` and ``token``, the refresh token: the token endpoint's
  request with the token in place of a grant. FreshBooks' OAuth server keeps a refresh token
  and its access token as one grant, so both end. Any answer but 200 is ProviderUnavailable.
- Redirect URI the operator registers with the FreshBooks app and puts in the FreshBooks entry
  of the OAuth client secret (refreshes carry it too, see above): ``<API base URL>/connect/callback``.
  It must be HTTPS and carry no query string (FreshBooks' authentication page); FreshBooks adds
  nothing to the callback but ``code`` and ``state``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from ledgerbridge.models import (
    AddressInput,
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
    RefreshRules,
    RemoteInvoice,
    RemoteReference,
    Tenant,
)
from ledgerbridge.providers.http import ProviderHttp, endpoint, json_body
from ledgerbridge.providers.mapping import RefusingMapper, type_word
from ledgerbridge.providers.mapping import text as _text
from ledgerbridge.providers.oauth import (
    OAuthApp,
    OAuthTokens,
    code_flow_url,
    post_token_request,
)

ENV_NAME = "FRESHBOOKS"
API_URL = "https://api.freshbooks.com"
TOKEN_URL = "https://api.freshbooks.com/auth/oauth/token"
AUTHORIZE_URL = "https://auth.freshbooks.com/oauth/authorize"
REVOKE_URL = "https://api.freshbooks.com/auth/oauth/revoke"
IDENTITY_PATH = "/auth/api/v1/users/me"  # on the API host: the user's businesses
# What the consent asks for: the scope of each call this module makes (see the module docstring).
CONNECT_SCOPES = (
    "user:profile:read",  # GET /auth/api/v1/users/me: the businesses (tenant discovery)
    "user:clients:read",  # list and search clients
    "user:clients:write",  # create clients
    "user:invoices:read",  # list a client's invoices before a resend
    "user:invoices:write",  # create invoices, mark them sent
    "user:billable_items:read",  # list items
    "user:taxes:read",  # list taxes (an item's tax names)
)
PAGE_SIZE = 100  # FreshBooks silently caps per_page at 100
MONEY_PLACES = 2
CENT = Decimal("0.01")
ZERO = Decimal(0)
NORMAL_LINE = 0  # line ``type``: 0 is a normal line, 1 a rebilled expense
INCLUDE_LINES = {"include[]": "lines"}
MEMO_TARGETS = ("notes",)  # where memo_target may send the memo: printed, so only when asked
CALLER_REFERENCE = "po_number"  # the one field_mappings slug a FreshBooks invoice takes
CLOCK_SKEW = timedelta(minutes=5)  # how far FreshBooks' clock may run behind ours

_REFUSED_STATUSES = {
    InvoiceStatus.SUBMITTED: "FreshBooks has no approval step: create it DRAFT or OPEN",
    InvoiceStatus.PAID: "FreshBooks records payments separately: create it OPEN",
    InvoiceStatus.PARTIALLY_PAID: "FreshBooks records payments separately: create it OPEN",
    InvoiceStatus.VOID: "FreshBooks cannot create a deleted invoice",
}
# Unified fields FreshBooks invoices cannot hold, and why.
_REFUSED_FIELDS = {
    "paid_on_date": "FreshBooks records payments separately; not supported",
    "exchange_rate": "FreshBooks invoices have no exchange rate",
    "total_discount": "FreshBooks discounts are a percentage of the invoice; not supported",
    "accounting_period_id": "FreshBooks has no accounting periods",
    "tracking_categories": "FreshBooks invoices have no tracking categories",
}
_NO_PRIVATE_MEMO = (
    "FreshBooks invoices have no private memo: their notes are printed on the invoice the client "
    "receives. Leave memo out, or set the connection's memo_target=notes to print it there"
)
_DRAFT_STATES = {"draft", "created"}


@dataclass(frozen=True)
class FreshBooksRequest:
    """One create call: the business, the ``{"invoice"|"client": ...}`` body, and (invoices) whether
    to mark it sent."""

    account_id: str
    body: dict[str, Any]
    mark_as_sent: bool = False


# --- settings -------------------------------------------------------------------------------


def _account_id(settings: dict[str, str]) -> str:
    """The business the connection points at; every URL needs it."""
    account = (settings.get("account_id") or "").strip()
    if not account:
        raise InvalidInvoice([("connection", "FreshBooks connection has no account_id setting")])
    return account


@dataclass(frozen=True)
class _Tax:
    name: str
    percent: Decimal


def _default_tax(settings: dict[str, str]) -> _Tax | None:
    """The connection's tax for lines without an item: both settings, or neither."""
    name = (settings.get("default_tax_name") or "").strip()
    percent = (settings.get("default_tax_percent") or "").strip()
    if not name and not percent:
        return None
    try:
        value = Decimal(percent)
    except InvalidOperation:
        value = Decimal("NaN")
    if not name or not value.is_finite() or value < 0:
        raise InvalidInvoice(
            [("connection", "default_tax_name and default_tax_percent (a number) go together")]
        )
    return _Tax(name, value)


def _time_zone(settings: dict[str, str]) -> tzinfo:
    """The zone whose calendar dates an invoice sent without issue_date: ``time_zone``, else UTC."""
    name = (settings.get("time_zone") or "").strip()
    if not name or name.upper() == "UTC":
        return UTC
    zone = _iana_zone(name)
    if zone is None:
        raise InvalidInvoice(
            [("connection", f"time_zone {name!r} is not a known IANA time zone (such as America/Toronto)")]
        )
    return zone


def _iana_zone(name: str) -> tzinfo | None:
    """The IANA time zone ``name`` (``America/Toronto``); None when this runtime knows no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _memo_target(settings: dict[str, str]) -> str | None:
    """Where a memo may go: nowhere unless the connection chose a printed field."""
    target = (settings.get("memo_target") or "").strip()
    if target and target not in MEMO_TARGETS:
        raise InvalidInvoice(
            [("connection", "memo_target must be notes (printed on the client's invoice) or unset")]
        )
    return target or None


@dataclass(frozen=True)
class _Settings:
    """The connection settings a mapping reads, each checked once."""

    default_tax: _Tax | None
    zone: tzinfo
    memo_target: str | None

    @classmethod
    def read(cls, settings: dict[str, str]) -> _Settings:
        return cls(_default_tax(settings), _time_zone(settings), _memo_target(settings))


def received_at(invoice_id: str) -> datetime | None:
    """When Ledgerbridge received the invoice: the milliseconds of its UUIDv7 id (None if not one)."""
    try:
        value = uuid.UUID(invoice_id)
    except ValueError:
        return None
    if value.version != 7:
        return None
    return datetime.fromtimestamp((value.int >> 80) / 1000, UTC)


def default_issue_date(invoice_id: str, zone: tzinfo) -> date:
    """The day the invoice was received, in ``zone``; the same on every retry (now, for a non-v7 id)."""
    return (received_at(invoice_id) or datetime.now(UTC)).astimezone(zone).date()


def caller_reference(invoice: InvoiceInput) -> str | None:
    """The caller's own PO number (``field_mappings.po_number``), which then takes ``po_number``."""
    value = (invoice.field_mappings or {}).get(CALLER_REFERENCE)
    return value.strip() or None if isinstance(value, str) else None


def _wants_sent(invoice: InvoiceInput) -> bool:
    """OPEN, or no status, is an invoice awaiting payment: FreshBooks calls that sent."""
    return invoice.status in (None, InvoiceStatus.OPEN)


# --- mapping: unified -> FreshBooks ---------------------------------------------------------


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _money(value: Decimal, currency: str) -> dict[str, str]:
    """FreshBooks' money: a decimal string with 2 places (checked exact before) and a code."""
    return {"amount": f"{value.quantize(CENT):f}", "code": currency}


@dataclass
class _Mapper(RefusingMapper):
    """Builds one ``invoice`` body, collecting every field FreshBooks cannot take."""

    outbound: OutboundInvoice
    settings: _Settings
    problems: list[tuple[str, str]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        self._unsupported()
        self._field_mappings()
        currency = self._currency()
        body: dict[str, Any] = {**self._customer(), "lines": self._lines(currency or "")}
        body.update(self._header(currency))
        self._check_sub_total(body["lines"])
        return body

    def _unsupported(self) -> None:
        invoice = self.invoice
        if invoice.type == InvoiceType.ACCOUNTS_PAYABLE:
            self.refuse("type", "not supported by FreshBooks")
        if invoice.status in _REFUSED_STATUSES:
            reason = _REFUSED_STATUSES[invoice.status]
            self.refuse("status", f"{invoice.status.value} is not supported: {reason}")
        for path, reason in _REFUSED_FIELDS.items():
            if getattr(invoice, path):
                self.refuse(path, reason)
        if not invoice.line_items:
            self.refuse("line_items", "a FreshBooks invoice needs at least one line item")

    def _customer(self) -> dict[str, Any]:
        reference = self.outbound.references.get("contact_id")
        if reference is None:
            self.refuse("contact_id", "a FreshBooks invoice needs a client: give contact_id")
            return {}
        if not reference.remote_id.isdigit():
            self.refuse("contact_id", "not a FreshBooks client (sync references again)")
            return {}
        return {"customerid": int(reference.remote_id)}

    def _currency(self) -> str | None:
        """The invoice's currency, else the client's; every line must be in it."""
        contact = self.outbound.references.get("contact_id")
        currency = self.invoice.currency or (contact.fields.get("currency") if contact else None)
        if not currency:
            self.refuse("currency", "FreshBooks amounts need a currency: give currency")
        for index, line in enumerate(self.invoice.line_items or []):
            path = f"line_items.{index}"
            if line.currency and line.currency != currency:
                self.refuse(
                    f"{path}.currency", f"FreshBooks lines are in the invoice's currency ({currency})"
                )
            if line.exchange_rate is not None:
                self.refuse(f"{path}.exchange_rate", "FreshBooks invoices have no exchange rate")
        return currency

    def _header(self, currency: str | None) -> dict[str, Any]:
        invoice = self.invoice
        issued = self._issue_date()
        values = {
            "create_date": issued.isoformat(),
            "due_offset_days": self._due_offset(issued),
            "currency_code": currency,
            "invoice_number": invoice.number,
            "notes": self._memo(),
            # The unique reference find_invoice looks for, unless the caller's PO number takes the field.
            "po_number": caller_reference(invoice) or self.outbound.invoice_id,
        }
        return {key: value for key, value in values.items() if value is not None}

    def _issue_date(self) -> date:
        issued = self.invoice.issue_date
        if issued is not None:
            return issued.date()
        return default_issue_date(self.outbound.invoice_id, self.settings.zone)

    def _due_offset(self, issued: date) -> int | None:
        due = self.invoice.due_date
        if due is None:
            return None
        offset = (due.date() - issued).days
        if offset < 0:
            given = self.invoice.issue_date is not None
            self.refuse(
                "due_date",
                "is before issue_date as calendar dates"
                if given
                else f"is before the issue date FreshBooks would record ({issued}, the day the invoice "
                "was received in the connection's time_zone): give issue_date",
            )
            return None
        return offset

    def _memo(self) -> str | None:
        memo = self.invoice.memo
        if not memo:
            return None
        if self.settings.memo_target is None:
            self.refuse("memo", _NO_PRIVATE_MEMO)
            return None
        return memo

    def _field_mappings(self) -> None:
        """Only ``po_number`` (text) has a place: FreshBooks invoices have no custom fields."""
        for slug, value in (self.invoice.field_mappings or {}).items():
            path = f"field_mappings.{slug}"
            if slug != CALLER_REFERENCE:
                self.refuse(path, "FreshBooks invoices have no custom fields; only po_number is taken")
            elif value is not None and not isinstance(value, str):
                self.refuse(path, "FreshBooks' PO number is text: send a string")

    def _check_sub_total(self, lines: list[dict[str, Any]]) -> None:
        expected = self.invoice.sub_total
        if expected is None or self.problems:
            return
        actual = sum((line["qty"] * Decimal(line["unit_cost"]["amount"]) for line in lines), ZERO)
        if actual != expected:
            self.refuse("sub_total", f"does not match the lines ({actual})")

    # -- lines

    def _lines(self, currency: str) -> list[dict[str, Any]]:
        return [self._line(i, line, currency) for i, line in enumerate(self.invoice.line_items or [])]

    def _line(self, index: int, line: LineItemInput, currency: str) -> dict[str, Any]:
        path = f"line_items.{index}"
        item = self.outbound.references.get(f"{path}.item_id") if line.item_id else None
        if line.item_id is not None and item is None:
            self.refuse(f"{path}.item_id", "unknown item for this connection")
        if line.tracking_categories:
            self.refuse(f"{path}.tracking_categories", "FreshBooks lines have no tracking categories")
        name = item.name if item else line.description
        if not name:
            self.refuse(f"{path}.description", "a FreshBooks line needs a name: give item_id or description")
        mapped: dict[str, Any] = {"type": NORMAL_LINE, "name": name or ""}
        description = line.description if item else None
        if item and not description:
            description = item.fields.get("description") or None
        if description:
            mapped["description"] = description
        quantity, unit = self._amounts(path, line, item, currency)
        mapped.update({"qty": quantity, "unit_cost": _money(unit, currency)})
        mapped.update(self._taxes(item))
        return mapped

    def _amounts(
        self, path: str, line: LineItemInput, item: RemoteReference | None, currency: str
    ) -> tuple[Decimal, Decimal]:
        """(qty, unit cost): FreshBooks lines are always quantity x unit cost."""
        quantity = line.quantity if line.quantity is not None else Decimal(1)
        unit = line.unit_price
        if unit is None and line.total_amount is not None:
            if quantity != 1:
                self.refuse(f"{path}.unit_price", "FreshBooks lines are quantity x unit cost: give it")
                return quantity, ZERO
            unit = line.total_amount
        if unit is None and item is not None and item.fields.get("unit_price") is not None:
            unit = Decimal(str(item.fields["unit_price"]))
            if item.fields.get("currency") not in (None, currency):
                self.refuse(
                    f"{path}.unit_price", f"the item's price is in {item.fields['currency']}: give one"
                )
        if unit is None:
            self.refuse(f"{path}.unit_price", "a FreshBooks line needs unit_price or total_amount")
            return quantity, ZERO
        if line.total_amount is not None and quantity * unit != line.total_amount:
            self.refuse(f"{path}.total_amount", f"is not quantity x unit_price ({quantity * unit})")
        if _places(unit) > MONEY_PLACES:
            self.refuse(
                f"{path}.unit_price", f"FreshBooks keeps {MONEY_PLACES} decimals; {unit} would be rounded"
            )
        return quantity, unit

    def _taxes(self, item: RemoteReference | None) -> dict[str, Any]:
        """taxName/taxAmount pairs (percentages): the item's own, or the connection's default."""
        if item is None:
            taxes = [self.settings.default_tax] if self.settings.default_tax else []
        else:
            taxes = [
                _Tax(item.fields[f"tax{n}_name"], Decimal(str(item.fields[f"tax{n}_percent"])))
                for n in (1, 2)
                if item.fields.get(f"tax{n}_name") and item.fields.get(f"tax{n}_percent") is not None
            ]
        mapped: dict[str, Any] = {}
        for n, tax in enumerate(taxes, start=1):
            mapped[f"taxName{n}"], mapped[f"taxAmount{n}"] = tax.name, tax.percent
        return mapped


def map_invoice(connection: ConnectionContext, outbound: OutboundInvoice) -> FreshBooksRequest:
    """The create request for ``outbound``; raises InvalidInvoice listing every problem."""
    account = _account_id(connection.settings)
    mapper = _Mapper(outbound, _Settings.read(connection.settings))
    body = mapper.body()
    if mapper.problems:
        raise InvalidInvoice(list(dict.fromkeys(mapper.problems)))
    return FreshBooksRequest(account, {"invoice": body}, _wants_sent(outbound.invoice))


# --- mapping: unified contact -> FreshBooks client ------------------------------------------

CONTACT_NOTE = "Ledgerbridge contact {}"  # the client's private note: what find_contact searches for
SHIPPING_TYPES = {"SHIPPING", "DELIVERY"}
# (client field prefix, the unified address_type it is read back as)
ADDRESS_SLOTS = (("p", "BILLING"), ("s", "SHIPPING"))
# (unified address field, client field after the prefix)
ADDRESS_FIELDS = (
    ("street_1", "street"),
    ("street_2", "street2"),
    ("city", "city"),
    ("state", "province"),
    ("postal_code", "code"),
    ("country", "country"),
)
# (client field, the unified phone_type it is read back as); the first takes any other type
PHONE_SLOTS = (("bus_phone", "WORK"), ("mob_phone", "MOBILE"), ("home_phone", "HOME"), ("fax", "FAX"))
_PHONE_SLOT_FOR = {phone_type: slot for slot, phone_type in PHONE_SLOTS}
_NOT_A_SUPPLIER = (
    "FreshBooks clients are customers; its vendors belong to its bills, which Ledgerbridge does not "
    "create: create a customer"
)


def contact_note(contact_id: str) -> str:
    """What the client's note holds: the Ledgerbridge contact id, for find_contact."""
    return CONTACT_NOTE.format(contact_id)


@dataclass
class _ContactMapper:
    """Builds one ``client`` body, collecting every field FreshBooks cannot take."""

    contact: ContactInput
    problems: list[tuple[str, str]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        contact = self.contact
        self._refusals()
        values = {
            "organization": contact.name,
            "email": contact.email_address,
            "vat_number": contact.tax_number,
            "currency_code": contact.currency,
        }
        body = {key: value for key, value in values.items() if value}
        return {**body, **self._addresses(), **self._phones()}

    def _refusals(self) -> None:
        contact = self.contact
        if contact.is_supplier:
            self.problems.append(("is_supplier", _NOT_A_SUPPLIER))
        elif contact.is_customer is False:
            self.problems.append(("is_customer", "a FreshBooks client is someone you invoice: a customer"))
        if not contact.name:
            self.problems.append(("name", "FreshBooks needs a client name"))
        if contact.status == ContactStatus.ARCHIVED:
            self.problems.append(
                ("status", "FreshBooks creates active clients: create it ACTIVE, then archive it")
            )
        for slug in contact.field_mappings or {}:
            self.problems.append((f"field_mappings.{slug}", "FreshBooks clients have no custom fields"))

    def _addresses(self) -> dict[str, Any]:
        slots: dict[str, Any] = {}
        for index, address in enumerate(self.contact.addresses or []):
            prefix = "s" if type_word(address.address_type) in SHIPPING_TYPES else "p"
            fields = _address_fields(prefix, address)
            if not fields:
                self.problems.append(
                    (
                        f"addresses.{index}",
                        "has nothing to write: give a street, city, state, postal code or country",
                    )
                )
            elif prefix in slots:
                kind = dict(ADDRESS_SLOTS)[prefix].lower()
                self.problems.append(
                    (f"addresses.{index}", f"FreshBooks holds one {kind} address: a second one")
                )
            else:
                slots[prefix] = fields
        return {key: value for fields in slots.values() for key, value in fields.items()}

    def _phones(self) -> dict[str, Any]:
        slots: dict[str, str] = {}
        for index, phone in enumerate(self.contact.phone_numbers or []):
            slot = _PHONE_SLOT_FOR.get(type_word(phone.phone_type), PHONE_SLOTS[0][0])
            if not phone.phone_number:
                self.problems.append(
                    (f"phone_numbers.{index}.phone_number", "FreshBooks keeps numbers: give one")
                )
            elif slot in slots:
                self.problems.append((f"phone_numbers.{index}", f"FreshBooks holds one {slot}: a second one"))
            else:
                slots[slot] = phone.phone_number
        return slots


def _address_fields(prefix: str, address: AddressInput) -> dict[str, str]:
    """``p_street``... (billing) or ``s_street``... (shipping) of the address's non-empty fields."""
    values = {f"{prefix}_{suffix}": getattr(address, unified) for unified, suffix in ADDRESS_FIELDS}
    return {key: value for key, value in values.items() if value}


def map_contact(connection: ConnectionContext, outbound: OutboundContact) -> FreshBooksRequest:
    """The ``{"client": ...}`` create request; raises InvalidInvoice listing every problem."""
    account = _account_id(connection.settings)
    mapper = _ContactMapper(outbound.contact)
    body = mapper.body()
    if mapper.problems:
        raise InvalidInvoice(mapper.problems)
    return FreshBooksRequest(account, {"client": {**body, "note": contact_note(outbound.contact_id)}})


# --- mapping: FreshBooks -> unified ---------------------------------------------------------


def _decimal(value: Any) -> Decimal | None:
    """FreshBooks' decimal strings (``"12.50"``, ``"13"``) exactly; None when absent or not a number."""
    if value in (None, "") or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _amount(money: Any) -> Decimal | None:
    """``{"amount": "12.50", "code": "USD"}`` as an exact Decimal."""
    return _decimal(money.get("amount")) if isinstance(money, dict) else None


def _us_eastern_offset(moment: datetime) -> timedelta:
    """EDT (-4) from the second Sunday of March, 2:00, to the first Sunday of November, 2:00; else EST."""

    def sunday_on_or_after(day: datetime) -> datetime:
        return day + timedelta(days=(6 - day.weekday()) % 7)

    starts = sunday_on_or_after(datetime(moment.year, 3, 8, 2))
    ends = sunday_on_or_after(datetime(moment.year, 11, 1, 2))
    return timedelta(hours=-4 if starts <= moment < ends else -5)


def parse_updated(value: Any) -> datetime | None:
    """FreshBooks' ``updated`` (``2026-06-29 12:52:44``, US Eastern) as an aware datetime."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone(_us_eastern_offset(moment))).astimezone(UTC)


def unified_status(record: dict[str, Any]) -> InvoiceStatus:
    """FreshBooks' invoice state in unified words (see the module docstring)."""
    if record.get("vis_state") == 1:
        return InvoiceStatus.VOID
    if str(record.get("v3_status") or record.get("display_status") or "") in _DRAFT_STATES:
        return InvoiceStatus.DRAFT
    payment = record.get("payment_status")
    if payment == "paid" or record.get("v3_status") in ("paid", "autopaid", "success"):
        return InvoiceStatus.PAID
    if payment == "partial":
        return InvoiceStatus.PARTIALLY_PAID
    return InvoiceStatus.OPEN


def _line_totals(record: dict[str, Any], total: Decimal | None) -> dict[str, Decimal]:
    """sub_total and tax from the lines, when FreshBooks included them (total = lines - discount + tax)."""
    lines = record.get("lines")
    if not isinstance(lines, list) or total is None:
        return {}
    amounts = [_amount(line.get("amount")) for line in lines if isinstance(line, dict)]
    if any(amount is None for amount in amounts):
        return {}
    sub_total = sum((amount for amount in amounts if amount is not None), ZERO)
    discount = _amount(record.get("discount_total")) or ZERO
    return {"sub_total": sub_total, "total_tax_amount": total - sub_total + discount}


def remote_invoice(record: dict[str, Any], line_count: int) -> RemoteInvoice:
    """The unified view of the invoice FreshBooks recorded (lines come back in the order sent)."""
    line_ids = [
        str(line["lineid"]) if line.get("lineid") is not None else None
        for line in record.get("lines") or []
        if isinstance(line, dict)
    ]
    total = _amount(record.get("amount"))
    discount = _amount(record.get("discount_total"))
    fields: dict[str, Any] = {
        "number": record.get("invoice_number") or None,
        "status": unified_status(record).value,
        "total_amount": total,
        "balance": _amount(record.get("outstanding")),
        "currency": record.get("currency_code") or None,
        "total_discount": discount if discount else None,
        **_line_totals(record, total),
    }
    return RemoteInvoice(
        remote_id=str(record.get("invoiceid") or record["id"]),
        remote_data=record,
        remote_updated_at=parse_updated(record.get("updated")),
        fields={key: value for key, value in fields.items() if value is not None},
        line_remote_ids=(line_ids + [None] * line_count)[:line_count],
    )


def error_messages(body: Any) -> list[str]:
    """Every message of FreshBooks' error shapes, in order, once each."""
    if not isinstance(body, dict):
        return []
    response = body.get("response")
    errors = response.get("errors") if isinstance(response, dict) else None
    if isinstance(errors, dict):
        errors = [errors]
    messages = [str(e["message"]) for e in errors or [] if isinstance(e, dict) and e.get("message")]
    if not messages:  # the auth layer's shapes: {"error", "error_description"} or {"message"}
        text = body.get("error_description") or body.get("message") or body.get("error")
        messages = [text] if isinstance(text, str) and text else []
    return list(dict.fromkeys(messages))


def _result(response: httpx.Response) -> dict[str, Any]:
    """``response.result`` of a successful answer; the right exception otherwise."""
    if response.status_code in (401, 403):
        # 401 survives ProviderHttp's one refresh only when the grant is gone; 403: no access to the business.
        raise ReauthorizationRequired(f"FreshBooks refused the connection (HTTP {response.status_code})")
    body = json_body(response)
    messages = error_messages(body)
    if response.status_code >= 400:
        raise ProviderRejected(messages or [f"FreshBooks answered HTTP {response.status_code}"])
    result = body.get("response", {}).get("result") if isinstance(body, dict) else None
    if response.status_code == 200 and isinstance(result, dict):
        return result
    if messages:
        raise ProviderRejected(messages)
    raise ProviderUnavailable(f"FreshBooks answered HTTP {response.status_code} without a result")


def _created_record(response: httpx.Response, key: str, id_field: str) -> dict[str, Any]:
    """The ``invoice`` or ``client`` FreshBooks answered with; ProviderUnavailable when it is missing."""
    record = _result(response).get(key)
    if not isinstance(record, dict) or not (record.get(id_field) or record.get("id")):
        # Safe to resend: find_invoice/find_contact look for our reference before anything is made again.
        raise ProviderUnavailable(f"FreshBooks answered without the {key}")
    return record


def _invoice_record(response: httpx.Response) -> dict[str, Any]:
    return _created_record(response, "invoice", "invoiceid")


# --- references -----------------------------------------------------------------------------


def _status_text(record: dict[str, Any]) -> str:
    """``vis_state``: 0 active, 1 deleted, 2 archived."""
    return {1: "DELETED", 2: "ARCHIVED"}.get(record.get("vis_state") or 0, "ACTIVE")


def _client_addresses(record: dict[str, Any]) -> list[dict[str, str | None]]:
    """The client's billing and shipping addresses that have anything in them."""
    addresses = []
    for prefix, address_type in ADDRESS_SLOTS:
        address = {unified: _text(record.get(f"{prefix}_{suffix}")) for unified, suffix in ADDRESS_FIELDS}
        if any(address.values()):
            addresses.append({**address, "address_type": address_type})
    return addresses


def _client_phones(record: dict[str, Any]) -> list[dict[str, str | None]]:
    return [
        {"phone_number": _text(record.get(slot)), "phone_type": phone_type}
        for slot, phone_type in PHONE_SLOTS
        if _text(record.get(slot))
    ]


def contact_reference(record: dict[str, Any]) -> RemoteReference:
    """A FreshBooks client (FreshBooks' contacts are all customers), listed or just created."""
    person = " ".join(part for part in (record.get("fname"), record.get("lname")) if part)
    updated = parse_updated(record.get("updated"))
    return RemoteReference(
        kind="contact",
        remote_id=str(record.get("id") or record["userid"]),
        name=str(record.get("organization") or person or record.get("email") or record.get("id")),
        fields={
            "is_customer": True,
            "is_supplier": False,
            "email_address": _text(record.get("email")),
            "tax_number": _text(record.get("vat_number")),
            "currency": _text(record.get("currency_code")),
            "status": _status_text(record),
            "addresses": _client_addresses(record) or None,
            "phone_numbers": _client_phones(record) or None,
            "remote_updated_at": updated.isoformat() if updated else None,
        },
        remote_data=record,
    )


def item_reference(record: dict[str, Any], taxes: dict[str, dict[str, Any]]) -> RemoteReference:
    """A FreshBooks item, its tax ids resolved to the names and percentages a line carries."""
    fields: dict[str, Any] = {
        "code": _text(record.get("sku")),
        "description": _text(record.get("description")),
        "unit_price": _amount(record.get("unit_cost")),
        "currency": _text((record.get("unit_cost") or {}).get("code")),
        "status": _status_text(record),
    }
    for n in (1, 2):
        tax = taxes.get(str(record.get(f"tax{n}") or ""))
        if tax is not None:
            fields[f"tax{n}_name"] = _text(tax.get("name"))
            fields[f"tax{n}_percent"] = _decimal(tax.get("amount"))
    return RemoteReference(
        kind="item",
        remote_id=str(record.get("id") or record["itemid"]),
        name=str(record.get("name") or record.get("sku") or record.get("id")),
        fields=fields,
        remote_data=record,
    )


# --- finding an invoice sent under the caller's PO number -----------------------------------


def _line_key(line: dict[str, Any]) -> tuple[str, Decimal | None, Decimal | None]:
    """What identifies a line, sent or recorded: name, quantity, unit cost (exact)."""
    return (
        str(line.get("name") or ""),
        _decimal(line.get("qty")),
        _amount(line.get("unit_cost")),
    )


def _same_content(record: dict[str, Any], sent: dict[str, Any]) -> bool:
    """The record holds what ``sent`` (a mapped ``invoice`` body) asks for."""
    if (record.get("po_number"), record.get("create_date")) != (sent["po_number"], sent["create_date"]):
        return False
    if record.get("currency_code") != sent.get("currency_code"):
        return False
    if "invoice_number" in sent and record.get("invoice_number") != sent["invoice_number"]:
        return False
    recorded = [_line_key(line) for line in record.get("lines") or [] if isinstance(line, dict)]
    return recorded == [_line_key(line) for line in sent["lines"]]


def _made_since(record: dict[str, Any], outbound: OutboundInvoice) -> bool:
    """Created no earlier than the invoice was received (less clock skew); unknown times count."""
    created, received = parse_updated(record.get("created_at")), received_at(outbound.invoice_id)
    return created is None or received is None or created >= received - CLOCK_SKEW


def _only_match(
    records: Iterator[dict[str, Any]], sent: dict[str, Any], outbound: OutboundInvoice
) -> dict[str, Any] | None:
    """The one invoice an earlier attempt can have made; two candidates are refused, not guessed."""
    matches = [r for r in records if _same_content(r, sent) and _made_since(r, outbound)]
    if len(matches) > 1:
        ids = ", ".join(str(r.get("invoiceid") or r.get("id")) for r in matches)
        raise ProviderRejected(
            [
                f"FreshBooks has {len(matches)} invoices ({ids}) for this client with PO number "
                f"{sent['po_number']!r} and this content, made since the invoice was received: "
                "cannot tell which, if any, an earlier attempt created; check them in FreshBooks"
            ]
        )
    return matches[0] if matches else None


# --- the provider ---------------------------------------------------------------------------


def _http(connection: ConnectionContext) -> ProviderHttp:
    if connection.http is None:
        raise ProviderUnavailable("the FreshBooks connection has no HTTP client (credentials not loaded)")
    return connection.http


def _api(account_id: str, path: str) -> str:
    return f"{endpoint(ENV_NAME, 'API', API_URL)}/accounting/account/{account_id}/{path}"


# --- hosted connect (module docstring, Connect) -----------------------------------------------


def authorization_url(request: AuthorizationRequest) -> str:
    """FreshBooks' consent screen for ``request``: code flow, CONNECT_SCOPES, no PKCE. No I/O."""
    authorize_url = endpoint(ENV_NAME, "AUTHORIZE", AUTHORIZE_URL)
    return code_flow_url(authorize_url, request, " ".join(CONNECT_SCOPES), spaces_as="%20")


def discover_tenants(client: httpx.Client, access_token: str) -> list[Tenant]:
    """One Tenant per business of ``GET /auth/api/v1/users/me`` that has an accounting account."""
    response = ProviderHttp(client).request(
        "GET",
        endpoint(ENV_NAME, "API", API_URL) + IDENTITY_PATH,
        headers={"authorization": f"Bearer {access_token}"},
    )
    if response.status_code in (401, 403):
        raise ReauthorizationRequired(
            f"FreshBooks refused the new access token (HTTP {response.status_code})"
        )
    body = json_body(response) if response.status_code == 200 else None
    identity = body.get("response") if isinstance(body, dict) else None
    if not isinstance(identity, dict):
        raise ProviderUnavailable(
            f"FreshBooks answered HTTP {response.status_code} reading the user's businesses"
        )
    tenants: dict[str, Tenant] = {}
    for membership in identity.get("business_memberships") or []:
        tenant = _business_tenant(membership)
        if tenant is not None:
            tenants.setdefault(tenant.remote_id, tenant)
    return list(tenants.values())


def _business_tenant(membership: Any) -> Tenant | None:
    """The Tenant for one business membership; None without an accounting ``account_id``."""
    business = membership.get("business") if isinstance(membership, dict) else None
    account = _text(business.get("account_id")) if isinstance(business, dict) else None
    if account is None:
        return None
    settings = {"account_id": account}
    zone = _text(business.get("timezone"))
    if zone is not None and _iana_zone(zone) is not None:
        settings["time_zone"] = zone
    return Tenant(remote_id=account, name=_text(business.get("name")) or account, settings=settings)


def revoke_tokens(client: httpx.Client, app: OAuthApp, tokens: OAuthTokens) -> None:
    """Revoke the connection's refresh token (and with it its access token) at FreshBooks.

    The body is the token endpoint's (client id and secret in JSON) with ``token`` as its grant.
    """
    revocation = replace(app, token_url=endpoint(ENV_NAME, "REVOKE", REVOKE_URL))
    response = post_token_request(client, revocation, {"token": tokens.refresh_token})
    if response.status_code != 200:
        body = json_body(response)
        error = body.get("error") if isinstance(body, dict) else None
        raise ProviderUnavailable(
            f"FreshBooks answered HTTP {response.status_code} revoking tokens ({error or 'no error code'})"
        )


class FreshBooksProvider:
    """Creates invoices and clients in one FreshBooks business; see the module docstring."""

    name = "freshbooks"
    oauth_client_auth = "json"
    oauth_refresh = RefreshRules(sends_redirect_uri=True)
    connect_choices: tuple[ConnectChoice, ...] = ()  # one host for every business: nothing to ask
    connect_pkce = False  # FreshBooks documents no PKCE (module docstring)

    def __init__(self, page_size: int = PAGE_SIZE):
        self._page_size = page_size

    def oauth_token_url(self, settings: dict[str, str] | None = None) -> str | None:
        return endpoint(ENV_NAME, "TOKEN", TOKEN_URL)

    def authorization_url(self, request: AuthorizationRequest) -> str:
        return authorization_url(request)

    def discover_tenants(
        self, client: httpx.Client, access_token: str, settings: dict[str, str], callback: dict[str, str]
    ) -> list[Tenant]:
        """FreshBooks needs neither: no connect choices, and its redirect names no business."""
        return discover_tenants(client, access_token)

    def revoke_tokens(self, client: httpx.Client, app: OAuthApp, tokens: OAuthTokens) -> None:
        revoke_tokens(client, app, tokens)

    def map_invoice(self, connection: ConnectionContext, outbound: OutboundInvoice) -> FreshBooksRequest:
        return map_invoice(connection, outbound)

    def send_invoice(
        self, connection: ConnectionContext, outbound: OutboundInvoice, request: FreshBooksRequest
    ) -> RemoteInvoice:
        http = _http(connection)
        url = _api(request.account_id, "invoices/invoices")
        post = http.request("POST", url, params=INCLUDE_LINES, body=request.body, idempotent=False)
        record = _invoice_record(post)
        if request.mark_as_sent:
            record = self._mark_as_sent(http, request.account_id, record)
        return remote_invoice(record, len(outbound.invoice.line_items or []))

    def find_invoice(self, connection: ConnectionContext, outbound: OutboundInvoice) -> RemoteInvoice | None:
        """The invoice an earlier attempt made (see the module docstring), finished (marked sent) if asked.

        By our reference in ``po_number`` when it is there; when the caller's PO number took the
        field, by that PO number, the time and the content.
        """
        customer = outbound.remote_id("contact_id")
        if not customer:
            return None  # map_invoice refuses such an invoice: nothing can have been created
        account, http = _account_id(connection.settings), _http(connection)
        params = {"search[customerid]": customer, **INCLUDE_LINES}
        invoices = self._pages(http, account, "invoices/invoices", "invoices", params)
        if caller_reference(outbound.invoice) is None:
            record = next((r for r in invoices if r.get("po_number") == outbound.invoice_id), None)
        else:
            record = _only_match(invoices, map_invoice(connection, outbound).body["invoice"], outbound)
        if record is None:
            return None
        if _wants_sent(outbound.invoice):
            record = self._mark_as_sent(http, account, record)
        return remote_invoice(record, len(outbound.invoice.line_items or []))

    def map_contact(self, connection: ConnectionContext, outbound: OutboundContact) -> FreshBooksRequest:
        return map_contact(connection, outbound)

    def send_contact(
        self, connection: ConnectionContext, outbound: OutboundContact, request: FreshBooksRequest
    ) -> RemoteReference:
        """One POST, never resent blindly: a lost answer is for find_contact to settle."""
        url = _api(request.account_id, "users/clients")
        post = _http(connection).request("POST", url, body=request.body, idempotent=False)
        return contact_reference(_created_record(post, "client", "userid"))

    def find_contact(
        self, connection: ConnectionContext, outbound: OutboundContact
    ) -> RemoteReference | None:
        """The client an earlier attempt made: the one whose private note holds the contact id."""
        account, http = _account_id(connection.settings), _http(connection)
        params = {"search[note_like]": outbound.contact_id}
        clients = self._pages(http, account, "users/clients", "clients", params)
        ours = [c for c in clients if outbound.contact_id in str(c.get("note") or "")]
        if not ours:
            return None
        return contact_reference(min(ours, key=lambda c: int(c.get("id") or c["userid"])))

    def list_references(self, connection: ConnectionContext) -> list[RemoteReference]:
        account, http = _account_id(connection.settings), _http(connection)
        taxes = self._taxes(http, account)
        return [
            *(contact_reference(r) for r in self._pages(http, account, "users/clients", "clients")),
            *(item_reference(r, taxes) for r in self._pages(http, account, "items/items", "items")),
        ]

    def _mark_as_sent(self, http: ProviderHttp, account: str, record: dict[str, Any]) -> dict[str, Any]:
        """FreshBooks' documented way out of draft without emailing the client."""
        if unified_status(record) != InvoiceStatus.DRAFT:
            return record
        invoice_id = record.get("invoiceid") or record["id"]
        url = _api(account, f"invoices/invoices/{invoice_id}")
        body = {"invoice": {"action_mark_as_sent": True}}
        try:
            return _invoice_record(http.request("PUT", url, params=INCLUDE_LINES, body=body))
        except ProviderRejected as exc:
            left = f"draft invoice {invoice_id} was left in FreshBooks"
            raise ProviderRejected([*exc.messages, left]) from None

    def _taxes(self, http: ProviderHttp, account: str) -> dict[str, dict[str, Any]]:
        """The business's taxes by id, to name an item's taxes; none if the app may not read them (403)."""
        taxes = self._pages(http, account, "taxes/taxes", "taxes", forbidden_is_empty=True)
        return {str(tax.get("taxid") or tax.get("id")): tax for tax in taxes}

    def _pages(
        self,
        http: ProviderHttp,
        account: str,
        path: str,
        key: str,
        params: dict[str, str] | None = None,
        forbidden_is_empty: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Every record of one list, a page at a time, until FreshBooks says it was the last page."""
        page = 1
        while True:
            query = {**(params or {}), "page": str(page), "per_page": str(self._page_size)}
            response = http.request("GET", _api(account, path), params=query)
            if forbidden_is_empty and response.status_code == 403:
                return
            result = _result(response)
            batch = [record for record in result.get(key) or [] if isinstance(record, dict)]
            yield from batch
            if not batch or page >= int(result.get("pages") or 0):
                return
            page += 1
