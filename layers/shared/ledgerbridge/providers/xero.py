"""Xero: sales invoices (ACCREC) and bills (ACCPAY) through the Accounting API.

One request creates one invoice: ``PUT {api}/api.xro/2.0/Invoices`` with ``{"Invoices": [...]}``,
the organisation in the ``xero-tenant-id`` header (connection setting ``tenant_id``) and the
Ledgerbridge invoice id as Xero's ``Idempotency-Key``, so a resend after a timeout returns the
invoice Xero already made instead of a second one. The key travels only as an HTTP header: it
is written nowhere on the invoice, so the customer never sees it (and Xero cannot be searched
by it, which is why ``find_invoice`` relies on the key alone).

Contacts (``map_contact``/``send_contact``): ``PUT {api}/api.xro/2.0/Contacts`` with
``{"Contacts": [...]}`` and the Ledgerbridge contact id as ``Idempotency-Key``. ``name`` →
``Name`` (required, at most 255 characters, unique among active contacts: a duplicate is
Xero's refusal), ``email_address`` → ``EmailAddress`` (255), ``tax_number`` → ``TaxNumber``
(50), ``currency`` → ``DefaultCurrency``, ``status`` → ``ContactStatus`` (ACTIVE only: a new
archived contact is refused). Xero's OpenAPI says ``IsCustomer``/``IsSupplier`` "cannot be
set via PUT or POST" (Xero sets them once the contact has an AR or AP invoice), so they are
not sent: the caller's values are kept in Ledgerbridge's record until the next sync
reports Xero's. Addresses: one ``POBOX`` (postal, the default: BILLING, POSTAL or none) and
one ``STREET`` (STREET, SHIPPING, DELIVERY, PHYSICAL), street_1/2 → AddressLine1/2, state →
``Region``. Phones: ``PhoneType`` MOBILE, FAX, DDI or DEFAULT (anything else), one per type.
A second address or phone of a type Xero holds once, a value longer than the OpenAPI
allows, and ``field_mappings`` (Xero contacts have no custom fields) are refused by path.

Decisions where the unified invoice and Xero do not line up (each refusal is an InvalidInvoice
naming the field, raised before anything is stored or sent, because Xero would either reject
the invoice or silently record something other than what was asked):

- ``status``: DRAFT and SUBMITTED are sent as they are; OPEN, or no status, becomes AUTHORISED
  (an approved invoice awaiting payment: what an API caller creating an invoice means by
  default). PAID, PARTIALLY_PAID and VOID are refused: Xero records payments and voids as
  separate operations on an existing invoice.
- ``memo`` is an internal memo (Panora's meaning), and Xero invoices have no private field:
  ``Reference`` is printed on the sales invoice the customer receives. So by default
  (connection setting ``memo_target=history``) the memo becomes a note in the invoice's
  History & Notes (``PUT /Invoices/{InvoiceID}/History``), which Xero shows to its users and
  never prints on PDFs or sends; this works on bills (ACCPAY) too. Why a note is cheap and
  safe: one more call, only when there is a memo, made after the invoice exists and with its
  own ``Idempotency-Key`` (the invoice id plus ``-memo``; notes cannot be edited or deleted,
  so a duplicate would stay forever). A note that cannot be written yet (429 or 5xx past the
  retries, a timeout, a 404 for the invoice just made, a 409 while Xero still runs the same
  key, a refused authorisation) raises ProviderUnavailable, never ReauthorizationRequired
  ("nothing was created" would be false): the invoice stays pending and the retry resends
  both requests, which Xero answers from their keys (one invoice, one note). Xero documents
  at most 250 characters for a note, so a longer memo is refused before anything is stored.
  Should Xero refuse the note for good anyway (a 400 these checks cannot foresee), the
  invoice it made is still reported as created, because a failed record for an invoice that
  exists invites a duplicate; the refusal is logged (status code only: provider text reaches
  logs only through redaction) and the memo stays in Ledgerbridge's record.
  ``memo_target=reference`` opts into the printed ``Reference`` instead, on sales invoices
  only: on a bill the field Xero shows as "Reference" is ``InvoiceNumber`` (the supplier's
  invoice number), where a bill's ``number`` goes, so a bill memo with that setting is
  refused rather than dropped.
- Lines are ``LineAmountTypes`` "Exclusive" of tax (Xero's own default) unless the connection
  sets ``line_amount_types``. Tax is computed by Xero from each line's ``TaxType``; the
  caller's ``sub_total``/``total_tax_amount``/``total_amount``/``balance`` are not sent (Xero's
  own totals come back and fill what the caller left blank). An invoice-level
  ``total_discount`` cannot be expressed (Xero discounts are per line, sales only).
- A line with ``unit_price`` is sent as Quantity (1 when absent) x UnitAmount; a line with
  only ``total_amount`` as LineAmount. Both given must agree (to the cent). Unit prices and
  quantities keep 4 decimals (``unitdp=4`` is sent so Xero does not round to 2), line
  amounts 2: anything finer is refused instead of being rounded by Xero.
- ``AccountCode`` / ``TaxType``: a line with an item takes the item's own account and tax
  type for that side (sales or purchases) from Xero; lines without an item, or whose item has
  none for that side, get the connection's defaults (``default_account_code`` /
  ``default_tax_type``, or ``default_bill_account_code`` / ``default_bill_tax_type`` on bills,
  which fall back to the former). With no default the field is left out and Xero applies its
  own rules (an AUTHORISED invoice needs an account on every priced line).
- Tracking: Xero has tracking on lines only, at most two categories per line, one option per
  category. Invoice-level ``tracking_categories`` are copied onto every line; a line's own
  option for a category replaces the invoice-level one for that category.
- Xero invoices have no custom fields and no accounting periods: ``field_mappings`` and
  ``accounting_period_id`` are refused. Payment dates (``paid_on_date``) are refused too.
- ``exchange_rate`` (home-currency units per one unit of the invoice's currency: 1.08 for a EUR
  invoice in a USD organisation) is the inverse of Xero's ``CurrencyRate``, units of the
  invoice's currency per one unit of the organisation's base currency. Xero's OpenAPI does not
  say it in words, but its examples only fit this reading: an NZD quote dated 2020-02-01 at
  1.547150 (NZD per US dollar that day; the inverse would be 0.646) and an AUD quote dated
  2019-10-24 at 0.937053 (AUD per New Zealand dollar that day). Xero keeps CurrencyRate to 6
  decimal places ([18].[6] in the OpenAPI; "up to 6 decimal points" in Xero's help), so we
  send 1/rate rounded to 6 places, ROUND_HALF_EVEN: Xero then has nothing left to round,
  and an exact tie (1/128 = 0.0078125) goes to the even neighbour (0.007812), the decimal
  module's default and unbiased; reading back tests candidates with this same function, so
  the round trip holds whichever mode is chosen.
  Read back, a CurrencyRate x stands for every rate whose inverse rounds to x: an interval
  about 1e-6 * rate^2 wide (the inverse keeps x's relative error, at most 0.5e-6 / x, and x is
  about 1/rate). The unified rate is the shortest decimal in that interval, the one nearest
  1/x when several are as short: 0.925926 reads back as 1.08 (1/x = 1.07999991), 2.000000 as
  0.5, 0.333333 as 3, and a rate Xero chose itself (XE.com's, when none is sent) as the
  simplest rate that means exactly what Xero recorded. A rate given more finely than its
  interval cannot survive: 150.25 (yen per dollar) becomes 0.006656, which is also 1/150.24
  and 1/150.23, so Xero would book 1 USD at 150.2404 JPY; 1.234567 becomes 0.810001, also
  1/1.234566. Such a rate is refused before anything is stored, naming the rate it would read
  back as (150.24, 1.234566), as finer amounts are. Rates up to about 1 keep 6 or more
  significant digits; the limit bites only for large rates given to many places. Line
  rates must equal the invoice's (a Xero invoice has one rate).

Connect (hosted consent): the page sends the customer to Xero's authorisation endpoint,
``https://login.xero.com/identity/connect/authorize`` (the ``authorizationUrl`` of Xero's
OpenAPI; ``LEDGERBRIDGE_XERO_AUTHORIZE_URL`` overrides it), with ``response_type=code``, the
app's ``client_id``, the ``redirect_uri`` the operator registered with the Xero app
(``<API base URL>/connect/callback``, exactly), the session's ``state`` and ``CONNECT_SCOPES``.
Xero asks nothing before consent (one global host, the organisation is chosen on Xero's own
screen), so ``connect_choices`` is empty. The scopes are Xero's granular ones: apps created on
or after 2 March 2026 cannot ask for the broad ``accounting.transactions`` any more, and older
apps may ask for granular scopes since April 2026 and must have moved by September 2027
(developer.xero.com/faq/granular-scopes; the list is the one Xero publishes in its own
XeroAPI/xero-mcp-server README). Each one, and why:

- ``offline_access``: the only way Xero issues a refresh token; without it the connection
  would die with its first 30-minute access token.
- ``accounting.invoices``: ``PUT Invoices`` (sales invoices and bills alike) and the memo's
  ``PUT Invoices/{id}/History`` note, the granular successor of ``accounting.transactions``
  for invoices; read-write, since Ledgerbridge creates them.
- ``accounting.contacts``: ``PUT Contacts`` (contact creation) and ``GET Contacts`` (sync).
- ``accounting.settings.read``: ``GET Accounts``, ``Items`` and ``TrackingCategories``, what
  the reference sync reads. Read-only: Ledgerbridge never changes an organisation's settings.

No ``openid``/``profile``/``email``: Ledgerbridge does not need to know who the user is, and a
consent screen asks for nothing it does not need. No PKCE (``connect_pkce = False``): Xero
documents PKCE for its "Auth Code with PKCE" app type, which has no client secret; Ledgerbridge
uses a Web app ("Auth Code") whose documented flow takes no ``code_challenge`` and whose code
exchange is authenticated by the client secret (HTTP Basic), and it does not lean on a
parameter Xero does not document for that app type. The single-use ``state`` bound to the
connect session guards the redirect. Xero's redirect carries ``code`` and ``state``, nothing
Ledgerbridge needs besides.

Tenant discovery (``discover_tenants``): ``GET https://api.xero.com/connections`` with the new
access token (the API host, so ``LEDGERBRIDGE_XERO_API_URL`` moves it too) lists every
organisation the user has connected to the app; one consent can connect several, and the
page lets the user pick. Each ``ORGANISATION`` connection becomes a Tenant: ``tenantId`` is the
``tenant_id`` setting (the ``xero-tenant-id`` header), ``tenantName`` the name shown. Other
tenant types (a XeroHQ practice, WorkflowMax) have no Accounting API and are left out; none
at all is an empty list. A 401/403 is ReauthorizationRequired (the token is not good for
this), a 429, 5xx or network failure ProviderUnavailable after ``ProviderHttp``'s retries.

Revocation (``revoke_tokens``): ``POST https://identity.xero.com/connect/revocation`` with
``token=<refresh token>`` and the client credentials as the token endpoint takes them (HTTP
Basic), as Xero's own SDKs do (``LEDGERBRIDGE_XERO_REVOKE_URL`` overrides it). Xero answers 200
and retires the refresh token and its access tokens and, in the words of its Python SDK,
removes "all a user's connections": every organisation that user connected to the app, not
only the one this connection uses (``DELETE /connections/{id}`` would disconnect one
organisation, but needs the connection's id, which revocation is not given). Anything but 200
is ProviderUnavailable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
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
from ledgerbridge.observability import logger
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
from ledgerbridge.providers.mapping import money as _money
from ledgerbridge.providers.mapping import text as _text
from ledgerbridge.providers.mapping import type_word
from ledgerbridge.providers.oauth import (
    OAuthApp,
    OAuthTokens,
    code_flow_url,
    post_token_request,
)

API_URL = "https://api.xero.com"
TOKEN_URL = "https://identity.xero.com/connect/token"
AUTHORIZE_URL = "https://login.xero.com/identity/connect/authorize"
REVOKE_URL = "https://identity.xero.com/connect/revocation"
CONNECTIONS_PATH = "/connections"  # on the API host, outside api.xro/2.0
# What the consent asks for; each scope is explained in the module docstring.
CONNECT_SCOPES = ("offline_access", "accounting.invoices", "accounting.contacts", "accounting.settings.read")
ORGANISATION_TENANT = "ORGANISATION"  # the only tenant type with an Accounting API
API_PATH = "/api.xro/2.0"
CONTACTS_PAGE_SIZE = 100  # what Xero returns per ?page=N
MAX_TRACKING_PER_LINE = 2
LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")

# Decimal places Xero keeps (UnitAmount/Quantity with unitdp=4; money; CurrencyRate [18].[6]).
UNIT_PLACES, MONEY_PLACES, RATE_PLACES = 4, 2, 6
RATE_STEP = Decimal(1).scaleb(-RATE_PLACES)
MAX_UNIFIED_RATE_PLACES = 12  # what the unified model accepts for exchange_rate
MAX_NOTE_LENGTH = 250  # Xero's documented limit for a History & Notes note
MEMO_TARGETS = ("history", "reference")  # connection setting memo_target; the first is the default

_CREATE_STATUS = {
    None: "AUTHORISED",
    InvoiceStatus.OPEN: "AUTHORISED",
    InvoiceStatus.DRAFT: "DRAFT",
    InvoiceStatus.SUBMITTED: "SUBMITTED",
}
_UNIFIED_STATUS = {
    "DRAFT": InvoiceStatus.DRAFT,
    "SUBMITTED": InvoiceStatus.SUBMITTED,
    "AUTHORISED": InvoiceStatus.OPEN,
    "PAID": InvoiceStatus.PAID,
    "VOIDED": InvoiceStatus.VOID,
    "DELETED": InvoiceStatus.VOID,
}

# --- Xero's dates ---------------------------------------------------------------------------

_MS_DATE = re.compile(r"^/Date\((-?\d+)(?:([+-])(\d{2})(\d{2}))?\)/$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_xero_date(value: str | None) -> datetime | None:
    """An aware datetime from Xero's Microsoft JSON date, ``/Date(1777031976527+0000)/``.

    The number is milliseconds since the Unix epoch in UTC whatever the suffix; the optional
    ``+hhmm`` offset (e.g. ``+1300`` in New Zealand summer) only says in which zone to show
    that instant, so it changes the result's tzinfo, never the instant. Without an offset the
    result is in UTC. Anything else raises ValueError.
    """
    if value is None:
        return None
    match = _MS_DATE.match(value.strip())
    if not match:
        raise ValueError(f"not a Xero date: {value!r}")
    millis, sign, hours, minutes = match.groups()
    instant = _EPOCH + timedelta(milliseconds=int(millis))
    if sign is None:
        return instant
    offset = timedelta(hours=int(hours), minutes=int(minutes))
    return instant.astimezone(timezone(-offset if sign == "-" else offset))


def _xero_date(value: datetime | None) -> str | None:
    """YYYY-MM-DD, the calendar date as the caller wrote it (in its own offset, not UTC)."""
    return value.date().isoformat() if value else None


# --- settings -------------------------------------------------------------------------------


def _tenant_id(connection: ConnectionContext) -> str:
    tenant = connection.settings.get("tenant_id", "").strip()
    if not tenant:
        raise InvalidInvoice([("connection", "Xero connection has no tenant_id setting")])
    return tenant


def _memo_target(settings: dict[str, str]) -> str:
    """Where memo goes: ``history`` (an internal note, the default) or ``reference`` (printed)."""
    return (settings.get("memo_target") or "").strip().lower() or MEMO_TARGETS[0]


def _memo(invoice: InvoiceInput) -> str | None:
    """The memo worth writing: a blank one says nothing (and Xero refuses an empty note)."""
    return invoice.memo if invoice.memo and invoice.memo.strip() else None


@dataclass(frozen=True)
class _Defaults:
    """The connection's line defaults for one side (sales or purchases)."""

    account_code: str | None
    tax_type: str | None
    line_amount_types: str

    @classmethod
    def for_invoice(cls, settings: dict[str, str], payable: bool) -> _Defaults:
        def setting(name: str) -> str | None:
            return settings.get(name, "").strip() or None

        account = setting("default_account_code")
        tax = setting("default_tax_type")
        if payable:
            account = setting("default_bill_account_code") or account
            tax = setting("default_bill_tax_type") or tax
        return cls(account, tax, setting("line_amount_types") or "Exclusive")


# --- exchange rates: unified (home per foreign) <-> Xero (foreign per base) -----------------


def xero_currency_rate(exchange_rate: Decimal) -> Decimal:
    """Xero's CurrencyRate for a unified exchange_rate: 1/rate to Xero's 6 places, half to even."""
    return (Decimal(1) / exchange_rate).quantize(RATE_STEP, rounding=ROUND_HALF_EVEN)


def unified_exchange_rate(currency_rate: Any) -> Decimal | None:
    """The unified exchange_rate Xero's CurrencyRate means: the shortest rate Xero would record as it.

    Of the shortest candidates, the one nearest 1/CurrencyRate (see the module docstring).
    """
    recorded = _money(currency_rate)
    if recorded is None or recorded <= 0:
        return None
    inverse = Decimal(1) / recorded
    for places in range(MAX_UNIFIED_RATE_PLACES + 1):
        step = Decimal(1).scaleb(-places)
        below = inverse.quantize(step, rounding=ROUND_FLOOR)
        fitting = [
            rate for rate in (below, below + step) if rate > 0 and xero_currency_rate(rate) == recorded
        ]
        if fitting:
            return min(fitting, key=lambda rate: abs(rate - inverse))
    return inverse.quantize(Decimal(1).scaleb(-MAX_UNIFIED_RATE_PLACES), rounding=ROUND_HALF_EVEN)


def _rate_refusal(exchange_rate: Decimal | None) -> str | None:
    """Why Xero cannot hold this rate (its CurrencyRate would read back as another), or None."""
    if exchange_rate is None:
        return None
    sent = xero_currency_rate(exchange_rate)
    if sent == 0:
        return f"Xero keeps 1/exchange_rate to {RATE_PLACES} decimal places: {exchange_rate} would be 0"
    back = unified_exchange_rate(sent)
    if back == exchange_rate:
        return None
    return (
        f"Xero keeps 1/exchange_rate to {RATE_PLACES} decimal places: {exchange_rate} would be "
        f"CurrencyRate {sent}, which reads back as {back}; send {back} or a rate Xero can hold"
    )


# --- mapping: unified -> Xero ---------------------------------------------------------------


def _places(value: Decimal) -> int:
    """Decimal places that carry information (1.50 has 1)."""
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _check_places(value: Decimal | None, places: int, path: str, errors: list[tuple[str, str]]) -> None:
    if value is not None and _places(value) > places:
        errors.append((path, f"Xero keeps {places} decimal places; {value} would be rounded"))


def _refusals(invoice: InvoiceInput, payable: bool) -> list[tuple[str, str]]:
    """What the unified invoice can say and a new Xero invoice cannot."""
    errors: list[tuple[str, str]] = []
    if invoice.field_mappings:
        errors.append(("field_mappings", "Xero invoices have no custom fields"))
    if invoice.accounting_period_id is not None:
        errors.append(("accounting_period_id", "not supported: Xero invoices have no accounting period"))
    if invoice.status not in _CREATE_STATUS:
        errors.append(
            (
                "status",
                f"{invoice.status} is not supported when creating a Xero invoice "
                "(send DRAFT, SUBMITTED or OPEN)",
            )
        )
    if invoice.paid_on_date is not None:
        errors.append(("paid_on_date", "not supported when creating: Xero records payments separately"))
    if invoice.total_discount:
        errors.append(("total_discount", "Xero has no invoice-level discount"))
    if invoice.contact_id is None:
        errors.append(("contact_id", "Xero requires a contact on every invoice and bill"))
    if not invoice.line_items and invoice.total_amount is not None:
        errors.append(("line_items", "Xero computes totals from line items: send the amount as a line"))
    return errors


def _memo_refusals(invoice: InvoiceInput, payable: bool, target: str) -> list[tuple[str, str]]:
    """What the connection's memo_target cannot take (see the module docstring)."""
    if target not in MEMO_TARGETS:
        return [("connection", "memo_target must be history (an internal note, the default) or reference")]
    memo = _memo(invoice)
    if memo is None:
        return []
    if target == "reference" and payable:
        return [
            (
                "memo",
                "Xero bills have no Reference (memo_target=reference is for sales invoices); "
                "the supplier reference goes in number",
            )
        ]
    if target == "history" and len(memo) > MAX_NOTE_LENGTH:
        return [("memo", f"a Xero history note holds at most {MAX_NOTE_LENGTH} characters")]
    return []


def _tracking(outbound: OutboundInvoice, index: int, errors: list[tuple[str, str]]) -> list[dict[str, str]]:
    """The line's Tracking: invoice-level options first, the line's own replacing them per category."""
    invoice = outbound.invoice
    line = (invoice.line_items or [])[index]
    levels = [
        [f"tracking_categories.{k}" for k in range(len(invoice.tracking_categories or []))],
        [f"line_items.{index}.tracking_categories.{k}" for k in range(len(line.tracking_categories or []))],
    ]
    chosen: dict[str, tuple[str, RemoteReference]] = {}
    for paths in levels:
        level: dict[str, tuple[str, RemoteReference]] = {}
        for path in paths:
            reference = outbound.references.get(path)
            if reference is None or reference.kind != "tracking_category":
                errors.append((path, "unknown tracking category for this connection"))
                continue
            category = str(reference.fields.get("category_id") or "")
            if not (
                category and reference.fields.get("category_name") and reference.fields.get("option_name")
            ):
                errors.append((path, "this tracking option has no category details (sync references again)"))
                continue
            earlier = level.get(category)
            if earlier and earlier[1].remote_id != reference.remote_id:
                errors.append(
                    (path, f"a Xero line takes one option per category; {earlier[0]} already sets one")
                )
                continue
            level[category] = (path, reference)
        chosen.update(level)
    if len(chosen) > MAX_TRACKING_PER_LINE:
        errors.append(
            (f"line_items.{index}.tracking_categories", "a Xero line takes at most 2 tracking categories")
        )
    return [
        {
            "TrackingCategoryID": str(reference.fields.get("category_id")),
            "Name": str(reference.fields.get("category_name")),
            "TrackingOptionID": reference.remote_id,
            "Option": str(reference.fields.get("option_name")),
        }
        for _, reference in chosen.values()
    ]


def _amounts(line: LineItemInput, path: str, errors: list[tuple[str, str]]) -> dict[str, Decimal]:
    """Quantity x UnitAmount when there is a unit price, else LineAmount (Xero derives the rest)."""
    _check_places(line.quantity, UNIT_PLACES, f"{path}.quantity", errors)
    _check_places(line.unit_price, UNIT_PLACES, f"{path}.unit_price", errors)
    _check_places(line.total_amount, MONEY_PLACES, f"{path}.total_amount", errors)
    if line.unit_price is None:
        if line.total_amount is None:
            return {"Quantity": line.quantity} if line.quantity is not None else {}
        quantity = line.quantity if line.quantity is not None else Decimal(1)
        return {"Quantity": quantity, "LineAmount": line.total_amount}
    quantity = line.quantity if line.quantity is not None else Decimal(1)
    product = quantity * line.unit_price
    rounded = product.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if line.total_amount is not None and line.total_amount not in (product, rounded):
        errors.append((f"{path}.total_amount", f"is not quantity x unit_price ({product})"))
    return {"Quantity": quantity, "UnitAmount": line.unit_price}


def _ledger_fields(
    outbound: OutboundInvoice,
    line: LineItemInput,
    path: str,
    defaults: _Defaults,
    payable: bool,
    errors: list[tuple[str, str]],
) -> dict[str, Any]:
    """ItemCode, and AccountCode/TaxType where the item does not bring its own for this side."""
    item = outbound.references.get(f"{path}.item_id") if line.item_id else None
    fields: dict[str, Any] = {}
    if line.item_id is not None and item is None:
        errors.append((f"{path}.item_id", "unknown item for this connection"))
    elif item is not None:
        if not item.fields.get("code"):
            errors.append((f"{path}.item_id", "this Xero item has no Code (sync references again)"))
        fields["ItemCode"] = item.fields.get("code")
    own = item.fields if item else {}
    side = "purchase" if payable else "sales"
    # Xero books a tracked inventory item to its inventory account on bills, whatever is sent.
    if defaults.account_code and not (own.get(f"{side}_account_code") or own.get("tracked_as_inventory")):
        fields["AccountCode"] = defaults.account_code
    if defaults.tax_type and not own.get(f"{side}_tax_type"):
        fields["TaxType"] = defaults.tax_type
    return fields


def _line(
    outbound: OutboundInvoice, index: int, defaults: _Defaults, payable: bool, errors: list[tuple[str, str]]
) -> dict[str, Any]:
    invoice = outbound.invoice
    line = (invoice.line_items or [])[index]
    path = f"line_items.{index}"
    if line.currency and invoice.currency and line.currency != invoice.currency:
        errors.append((f"{path}.currency", "Xero lines are in the invoice's currency"))
    if line.exchange_rate is not None and line.exchange_rate != invoice.exchange_rate:
        errors.append((f"{path}.exchange_rate", "Xero lines use the invoice's exchange rate"))
    body: dict[str, Any] = {"Description": line.description} if line.description else {}
    body.update(_amounts(line, path, errors))
    body.update(_ledger_fields(outbound, line, path, defaults, payable, errors))
    tracking = _tracking(outbound, index, errors)
    if tracking:
        body["Tracking"] = tracking
    return body


def _header(
    invoice: InvoiceInput, outbound: OutboundInvoice, defaults: _Defaults, payable: bool, memo_target: str
) -> dict[str, Any]:
    body: dict[str, Any] = {"Type": "ACCPAY" if payable else "ACCREC"}
    contact = outbound.remote_id("contact_id")
    if contact:
        body["Contact"] = {"ContactID": contact}
    optional = {
        "Date": _xero_date(invoice.issue_date),
        "DueDate": _xero_date(invoice.due_date),
        "Status": _CREATE_STATUS.get(invoice.status),
        "InvoiceNumber": invoice.number,
        "Reference": _memo(invoice) if memo_target == "reference" and not payable else None,
        "CurrencyCode": invoice.currency,
        "CurrencyRate": xero_currency_rate(invoice.exchange_rate) if invoice.exchange_rate else None,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    body["LineAmountTypes"] = defaults.line_amount_types
    return body


def map_invoice(connection: ConnectionContext, outbound: OutboundInvoice) -> dict[str, Any]:
    """The ``{"Invoices": [...]}`` body for ``outbound``; raises InvalidInvoice listing every problem."""
    _tenant_id(connection)
    invoice = outbound.invoice
    payable = invoice.type == InvoiceType.ACCOUNTS_PAYABLE
    defaults = _Defaults.for_invoice(connection.settings, payable)
    memo_target = _memo_target(connection.settings)
    errors = _refusals(invoice, payable) + _memo_refusals(invoice, payable, memo_target)
    if defaults.line_amount_types not in LINE_AMOUNT_TYPES:
        errors.append(("connection", f"line_amount_types must be one of {', '.join(LINE_AMOUNT_TYPES)}"))
    rate_refusal = _rate_refusal(invoice.exchange_rate)
    if rate_refusal:
        errors.append(("exchange_rate", rate_refusal))
    body = _header(invoice, outbound, defaults, payable, memo_target)
    body["LineItems"] = [
        _line(outbound, i, defaults, payable, errors) for i in range(len(invoice.line_items or []))
    ]
    if errors:
        raise InvalidInvoice(list(dict.fromkeys(errors)))  # invoice-level tracking is checked per line
    return {"Invoices": [body]}


# --- mapping: unified contact -> Xero --------------------------------------------------------

# (unified field, Xero field, the OpenAPI's maxLength)
_CONTACT_TEXT = (
    ("name", "Name", 255),
    ("email_address", "EmailAddress", 255),
    ("tax_number", "TaxNumber", 50),
)
_STREET_TYPES = {"STREET", "SHIPPING", "DELIVERY", "PHYSICAL"}
_PHONE_TYPES = {"MOBILE": "MOBILE", "FAX": "FAX", "DDI": "DDI"}
_ADDRESS_FIELDS = (
    ("street_1", "AddressLine1", 500),
    ("street_2", "AddressLine2", 500),
    ("city", "City", 255),
    ("state", "Region", 255),
    ("postal_code", "PostalCode", 50),
    ("country", "Country", 50),
)


def _too_long(value: str | None, limit: int, path: str, errors: list[tuple[str, str]]) -> None:
    if value is not None and len(value) > limit:
        errors.append((path, f"Xero holds at most {limit} characters here"))


def _contact_addresses(contact: ContactInput, errors: list[tuple[str, str]]) -> list[dict[str, Any]]:
    addresses: dict[str, dict[str, Any]] = {}
    for index, address in enumerate(contact.addresses or []):
        kind = "STREET" if type_word(address.address_type) in _STREET_TYPES else "POBOX"
        if kind in addresses:
            errors.append((f"addresses.{index}", f"Xero holds one {kind} address: this is a second one"))
            continue
        body: dict[str, Any] = {"AddressType": kind}
        for unified, xero, limit in _ADDRESS_FIELDS:
            value = getattr(address, unified)
            _too_long(value, limit, f"addresses.{index}.{unified}", errors)
            if value is not None:
                body[xero] = value
        addresses[kind] = body
    return list(addresses.values())


def _contact_phones(contact: ContactInput, errors: list[tuple[str, str]]) -> list[dict[str, Any]]:
    phones: dict[str, dict[str, Any]] = {}
    for index, phone in enumerate(contact.phone_numbers or []):
        kind = _PHONE_TYPES.get(type_word(phone.phone_type), "DEFAULT")
        if kind in phones:
            errors.append((f"phone_numbers.{index}", f"Xero holds one {kind} phone: this is a second one"))
            continue
        _too_long(phone.phone_number, 50, f"phone_numbers.{index}.phone_number", errors)
        phones[kind] = {
            "PhoneType": kind,
            **({"PhoneNumber": phone.phone_number} if phone.phone_number else {}),
        }
    return list(phones.values())


def map_contact(connection: ConnectionContext, outbound: OutboundContact) -> dict[str, Any]:
    """The ``{"Contacts": [...]}`` body; raises InvalidInvoice listing every problem."""
    _tenant_id(connection)
    contact = outbound.contact
    errors: list[tuple[str, str]] = []
    if not contact.name:
        errors.append(("name", "Xero needs a contact name"))
    if contact.status == ContactStatus.ARCHIVED:
        errors.append(("status", "Xero cannot create an archived contact: create it ACTIVE"))
    if contact.field_mappings:
        errors.append(("field_mappings", "Xero contacts have no custom fields"))
    body: dict[str, Any] = {}
    for unified, xero, limit in _CONTACT_TEXT:
        value = getattr(contact, unified)
        _too_long(value, limit, unified, errors)
        if value:
            body[xero] = value
    if contact.currency:
        body["DefaultCurrency"] = contact.currency
    if contact.status:
        body["ContactStatus"] = contact.status.value
    addresses, phones = _contact_addresses(contact, errors), _contact_phones(contact, errors)
    if addresses:
        body["Addresses"] = addresses
    if phones:
        body["Phones"] = phones
    if errors:
        raise InvalidInvoice(errors)
    return {"Contacts": [body]}


def created_contact_reference(record: dict[str, Any]) -> RemoteReference:
    """A contact Xero just made: the synced shape plus the fields a create sets."""
    reference = contact_reference(record)
    addresses = [
        {
            **{unified: _text(address.get(xero)) for unified, xero, _ in _ADDRESS_FIELDS},
            "address_type": address.get("AddressType"),
        }
        for address in record.get("Addresses") or []
        if isinstance(address, dict) and any(address.get(xero) for _, xero, _ in _ADDRESS_FIELDS)
    ]
    phones = [
        {"phone_number": _text(phone.get("PhoneNumber")), "phone_type": phone.get("PhoneType")}
        for phone in record.get("Phones") or []
        if isinstance(phone, dict) and phone.get("PhoneNumber")
    ]
    updated = parse_xero_date(record.get("UpdatedDateUTC"))
    fields = {
        **reference.fields,
        "tax_number": _text(record.get("TaxNumber")),
        "addresses": addresses or None,
        "phone_numbers": phones or None,
        "remote_updated_at": updated.isoformat() if updated else None,
    }
    return RemoteReference("contact", reference.remote_id, reference.name, fields, record)


# --- mapping: Xero -> unified ---------------------------------------------------------------


def unified_status(record: dict[str, Any]) -> InvoiceStatus | None:
    """Xero's status in unified words; an AUTHORISED invoice with some payment is PARTIALLY_PAID."""
    status = _UNIFIED_STATUS.get(str(record.get("Status")))
    paid, due = record.get("AmountPaid") or 0, record.get("AmountDue") or 0
    if status == InvoiceStatus.OPEN and paid > 0 and due > 0:
        return InvoiceStatus.PARTIALLY_PAID
    return status


def remote_invoice(record: dict[str, Any], line_count: int) -> RemoteInvoice:
    """The unified view of the invoice Xero recorded (Xero keeps lines in the order sent)."""
    line_ids = [line.get("LineItemID") for line in record.get("LineItems") or []]
    line_ids = (line_ids + [None] * line_count)[:line_count]
    status = unified_status(record)
    fields = {
        "number": record.get("InvoiceNumber") or None,
        "status": status.value if status else None,
        "sub_total": record.get("SubTotal"),
        "total_tax_amount": record.get("TotalTax"),
        "total_amount": record.get("Total"),
        "balance": record.get("AmountDue"),
        "currency": record.get("CurrencyCode"),
        "exchange_rate": unified_exchange_rate(record.get("CurrencyRate")),
    }
    return RemoteInvoice(
        remote_id=str(record["InvoiceID"]),
        remote_data=record,
        remote_updated_at=parse_xero_date(record.get("UpdatedDateUTC")),
        fields={key: value for key, value in fields.items() if value is not None},
        line_remote_ids=line_ids,
    )


def _validation_messages(elements: list[Any]) -> list[str]:
    """Every ValidationErrors message of the invoices (and their lines), in order, once each."""
    messages: list[str] = []
    for element in elements:
        if not isinstance(element, dict):
            continue
        nested = [element, *[line for line in element.get("LineItems") or [] if isinstance(line, dict)]]
        for holder in nested:
            for error in holder.get("ValidationErrors") or []:
                message = error.get("Message") if isinstance(error, dict) else None
                if message and message not in messages:
                    messages.append(str(message))
    return messages


def _failure(response: httpx.Response) -> Exception:
    """The exception for a non-200 answer to a create request."""
    body = json_body(response)
    detail = body if isinstance(body, dict) else {}
    if response.status_code in (401, 403):
        # 401 survives ProviderHttp's refresh only when the grant is gone; 403: the tenant was disconnected.
        return ReauthorizationRequired(f"Xero refused the connection (HTTP {response.status_code})")
    if response.status_code == 409:
        return ProviderUnavailable("Xero is still processing a request with this Idempotency-Key")
    messages = _validation_messages(detail.get("Elements") or [])
    message = detail.get("Message") or detail.get("Detail") or detail.get("Title")
    if not messages:
        messages = [str(message) if message else f"Xero answered HTTP {response.status_code}"]
    return ProviderRejected(messages)


# --- the provider ---------------------------------------------------------------------------


def _http(connection: ConnectionContext) -> ProviderHttp:
    if connection.http is None:
        raise RuntimeError("the Xero provider needs ConnectionContext.http")
    return connection.http


def _api() -> str:
    return endpoint("XERO", "API", API_URL) + API_PATH


def _put_one(
    connection: ConnectionContext,
    collection: str,
    id_field: str,
    key: str,
    request: dict[str, Any],
    noun: str,
) -> dict[str, Any]:
    """PUT one record with ``key`` as Xero's Idempotency-Key; the record Xero answers with.

    An answer without the record is ProviderUnavailable: safe to resend, since the key makes
    Xero answer with what it made instead of making it twice.
    """
    response = _http(connection).request(
        "PUT",
        f"{_api()}/{collection}",
        params={"unitdp": str(UNIT_PLACES)} if collection == "Invoices" else None,
        headers={"xero-tenant-id": _tenant_id(connection), "Idempotency-Key": key},
        body=request,
    )
    if response.status_code != 200:
        raise _failure(response)
    body = json_body(response)
    records = body.get(collection) if isinstance(body, dict) else None
    if not records or not isinstance(records[0], dict) or id_field not in records[0]:
        raise ProviderUnavailable(f"Xero answered 200 without {noun}")
    return records[0]


# --- hosted connect (module docstring, Connect) -----------------------------------------------


def authorization_url(request: AuthorizationRequest) -> str:
    """Xero's consent screen for ``request``: code flow, CONNECT_SCOPES, no PKCE. No I/O."""
    authorize_url = endpoint("XERO", "AUTHORIZE", AUTHORIZE_URL)
    return code_flow_url(authorize_url, request, " ".join(CONNECT_SCOPES), spaces_as="%20")


def discover_tenants(client: httpx.Client, access_token: str) -> list[Tenant]:
    """The organisations the new access token may use, from ``GET /connections``."""
    response = ProviderHttp(client).request(
        "GET",
        endpoint("XERO", "API", API_URL) + CONNECTIONS_PATH,
        headers={"authorization": f"Bearer {access_token}"},
    )
    if response.status_code in (401, 403):
        raise ReauthorizationRequired(f"Xero refused the new access token (HTTP {response.status_code})")
    connections = json_body(response)
    if response.status_code != 200 or not isinstance(connections, list):
        raise ProviderUnavailable(f"Xero answered HTTP {response.status_code} listing its connections")
    return [tenant for tenant in map(_organisation, connections) if tenant is not None]


def _organisation(connection: Any) -> Tenant | None:
    """The Tenant for one ``/connections`` entry; None unless it is an organisation with an id."""
    if not isinstance(connection, dict) or connection.get("tenantType") != ORGANISATION_TENANT:
        return None
    tenant_id = _text(connection.get("tenantId"))
    if tenant_id is None:
        return None
    return Tenant(tenant_id, _text(connection.get("tenantName")) or tenant_id, {"tenant_id": tenant_id})


def revoke_tokens(client: httpx.Client, app: OAuthApp, tokens: OAuthTokens) -> None:
    """Revoke the grant behind ``tokens`` at Xero (its refresh token, as Xero's SDKs send it)."""
    revocation = replace(app, token_url=endpoint("XERO", "REVOKE", REVOKE_URL))  # same client auth
    response = post_token_request(client, revocation, {"token": tokens.refresh_token})
    if response.status_code != 200:
        body = json_body(response)
        error = body.get("error") if isinstance(body, dict) else None
        raise ProviderUnavailable(
            f"Xero's revocation endpoint answered HTTP {response.status_code} ({error or 'no error code'})"
        )


class XeroProvider:
    """Creates invoices and bills in one Xero organisation; see the module docstring."""

    name = "xero"
    oauth_client_auth = "basic"
    connect_choices: tuple[ConnectChoice, ...] = ()  # one global host; the organisation is picked at Xero
    connect_pkce = False  # Xero documents PKCE only for apps without a client secret (module docstring)

    def oauth_token_url(self, settings: dict[str, str] | None = None) -> str | None:
        return endpoint("XERO", "TOKEN", TOKEN_URL)

    def authorization_url(self, request: AuthorizationRequest) -> str:
        return authorization_url(request)

    def discover_tenants(
        self, client: httpx.Client, access_token: str, settings: dict[str, str], callback: dict[str, str]
    ) -> list[Tenant]:
        """Xero needs neither: no connect choices, and its redirect names no organisation."""
        return discover_tenants(client, access_token)

    def revoke_tokens(self, client: httpx.Client, app: OAuthApp, tokens: OAuthTokens) -> None:
        revoke_tokens(client, app, tokens)

    def map_invoice(self, connection: ConnectionContext, outbound: OutboundInvoice) -> dict[str, Any]:
        return map_invoice(connection, outbound)

    def send_invoice(
        self, connection: ConnectionContext, outbound: OutboundInvoice, request: dict[str, Any]
    ) -> RemoteInvoice:
        record = _put_one(connection, "Invoices", "InvoiceID", outbound.invoice_id, request, "an invoice")
        if record.get("HasErrors") or record.get("ValidationErrors"):
            raise ProviderRejected(_validation_messages([record]) or ["Xero reported errors on the invoice"])
        memo = _memo(outbound.invoice)
        if memo is not None and _memo_target(connection.settings) == "history":
            _add_note(connection, str(record["InvoiceID"]), memo, outbound.invoice_id)
        return remote_invoice(record, len(outbound.invoice.line_items or []))

    def find_invoice(self, connection: ConnectionContext, outbound: OutboundInvoice) -> RemoteInvoice | None:
        """Xero honours the invoice id as ``Idempotency-Key``: a resend replays, never duplicates."""
        return None

    def map_contact(self, connection: ConnectionContext, outbound: OutboundContact) -> dict[str, Any]:
        return map_contact(connection, outbound)

    def send_contact(
        self, connection: ConnectionContext, outbound: OutboundContact, request: dict[str, Any]
    ) -> RemoteReference:
        record = _put_one(connection, "Contacts", "ContactID", outbound.contact_id, request, "a contact")
        if record.get("HasValidationErrors") or record.get("ValidationErrors"):
            raise ProviderRejected(_validation_messages([record]) or ["Xero reported errors on the contact"])
        return created_contact_reference(record)

    def list_references(self, connection: ConnectionContext) -> list[RemoteReference]:
        lister = _Lister(_http(connection), _tenant_id(connection))
        return [
            *(contact_reference(record) for record in lister.contacts()),
            *(item_reference(record) for record in lister.all("Items")),
            *(account_reference(record) for record in lister.all("Accounts")),
            *(ref for record in lister.all("TrackingCategories") for ref in tracking_references(record)),
        ]


def note_idempotency_key(invoice_id: str) -> str:
    """The note's own key: the invoice's would make Xero answer with the invoice instead."""
    return f"{invoice_id}-memo"


def _add_note(connection: ConnectionContext, remote_id: str, note: str, invoice_id: str) -> None:
    """Write the memo as a History & Notes note on the invoice Xero just made (module docstring)."""
    try:
        response = _http(connection).request(
            "PUT",
            f"{_api()}/Invoices/{remote_id}/History",
            headers={
                "xero-tenant-id": _tenant_id(connection),
                "Idempotency-Key": note_idempotency_key(invoice_id),
            },
            body={"HistoryRecords": [{"Details": note}]},
        )
    except ReauthorizationRequired as exc:  # the invoice exists: keep it pending, never "nothing created"
        raise ProviderUnavailable(
            f"Xero made invoice {remote_id} but refused the connection for its note"
        ) from exc
    except ProviderUnavailable as exc:
        raise ProviderUnavailable(
            f"Xero made invoice {remote_id}; its memo note is not written yet: {exc}"
        ) from exc
    status = response.status_code
    body = json_body(response)
    records = body.get("HistoryRecords") if isinstance(body, dict) else None
    if status == 200 and not _validation_messages(records if isinstance(records, list) else []):
        return
    if status in (401, 403, 404, 409):
        raise ProviderUnavailable(
            f"Xero made invoice {remote_id}; its memo note is not written yet (HTTP {status})"
        )
    logger.warning("Xero refused the memo note", extra={"remote_id": remote_id, "status": status})


# --- references -----------------------------------------------------------------------------


class _Lister:
    """GETs of one organisation's lists."""

    def __init__(self, http: ProviderHttp, tenant: str):
        self._http, self._tenant = http, tenant

    def all(self, collection: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        response = self._http.request(
            "GET", f"{_api()}/{collection}", params=params, headers={"xero-tenant-id": self._tenant}
        )
        if response.status_code in (401, 403):
            raise ReauthorizationRequired(f"Xero refused the connection (HTTP {response.status_code})")
        body = json_body(response)
        if response.status_code != 200 or not isinstance(body, dict):
            raise ProviderUnavailable(f"Xero answered HTTP {response.status_code} listing {collection}")
        return [record for record in body.get(collection) or [] if isinstance(record, dict)]

    def contacts(self) -> list[dict[str, Any]]:
        """Every contact, page by page (Xero pages contacts 100 at a time)."""
        contacts: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = self.all("Contacts", {"page": str(page)})
            contacts.extend(batch)
            if len(batch) < CONTACTS_PAGE_SIZE:
                return contacts
            page += 1


def contact_reference(record: dict[str, Any]) -> RemoteReference:
    return RemoteReference(
        kind="contact",
        remote_id=str(record["ContactID"]),
        name=str(record.get("Name") or record["ContactID"]),
        fields={
            "is_customer": bool(record.get("IsCustomer")),
            "is_supplier": bool(record.get("IsSupplier")),
            "email_address": _text(record.get("EmailAddress")),
            "currency": _text(record.get("DefaultCurrency")),
            "status": _text(record.get("ContactStatus")),
        },
        remote_data=record,
    )


def item_reference(record: dict[str, Any]) -> RemoteReference:
    sales = record.get("SalesDetails") or {}
    purchase = record.get("PurchaseDetails") or {}
    return RemoteReference(
        kind="item",
        remote_id=str(record["ItemID"]),
        name=str(record.get("Name") or record.get("Code") or record["ItemID"]),
        fields={
            "code": _text(record.get("Code")),
            "status": None,  # Xero items have no status: deleted items are gone
            "unit_price": sales.get("UnitPrice"),
            "purchase_price": purchase.get("UnitPrice"),
            "sales_account_code": _text(sales.get("AccountCode")),
            "sales_tax_type": _text(sales.get("TaxType")),
            "purchase_account_code": _text(purchase.get("AccountCode")),
            "purchase_tax_type": _text(purchase.get("TaxType")),
            "tracked_as_inventory": bool(record.get("IsTrackedAsInventory")),
        },
        remote_data=record,
    )


def account_reference(record: dict[str, Any]) -> RemoteReference:
    return RemoteReference(
        kind="account",
        remote_id=str(record["AccountID"]),
        name=str(record.get("Name") or record.get("Code") or record["AccountID"]),
        fields={
            "code": _text(record.get("Code")),
            "status": _text(record.get("Status")),
            "type": _text(record.get("Type")),
            "classification": _text(record.get("Class")),
            "tax_type": _text(record.get("TaxType")),
            "currency": _text(record.get("CurrencyCode")),
        },
        remote_data=record,
    )


def tracking_references(category: dict[str, Any]) -> list[RemoteReference]:
    """One reference per option: a Xero line points at an option, the category comes with it."""
    name = str(category.get("Name") or "")
    category_status = category.get("Status")
    references = []
    for option in category.get("Options") or []:
        status = option.get("Status") if category_status in (None, "ACTIVE") else category_status
        references.append(
            RemoteReference(
                kind="tracking_category",
                remote_id=str(option["TrackingOptionID"]),
                name=f"{name}: {option.get('Name')}",
                fields={
                    "category_id": str(category["TrackingCategoryID"]),
                    "category_name": name,
                    "option_name": str(option.get("Name") or ""),
                    "status": _text(status),
                    "category_type": None,  # Xero tracking categories have no type
                    "parent_category": name,
                },
                remote_data={**{k: v for k, v in category.items() if k != "Options"}, "Option": option},
            )
        )
    return references
