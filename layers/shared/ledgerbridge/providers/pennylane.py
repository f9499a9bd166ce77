"""Pennylane (France): customer invoices and customers through the Company API v2.

One request creates one invoice: ``POST {api}/api/external/v2/customer_invoices``. A v2 OAuth
token is granted for one company, so the URL names no company and the module needs no
``company_id`` setting. The token endpoint (``https://app.pennylane.com/oauth/token``) takes
the client id and secret in the form body, and rotates refresh tokens: each refresh returns a
new refresh token and retires the old one together with its access token (the shared
TokenSource stores the new pair with a conditional write).

Idempotency: Pennylane has no idempotency key, but every invoice carries an
``external_reference`` that Pennylane keeps unique per company. Its OpenAPI document describes
it as a reference "to track this customer invoice" (Pennylane generates one when none is
given); it is not one of the fields the document says are printed (the ``pdf_*`` fields,
``special_mention``, the e-invoice order references), so the customer does not see it. We write
the Ledgerbridge invoice id there, and no caller field is displaced, so:

- ``find_invoice`` looks an earlier attempt up with the list endpoint's ``external_reference``
  filter (and checks the reference itself, in case a filter were ever ignored);
- a create answered 409/422 (a POST retried after a lost response collides with the invoice
  the first attempt made) is looked up the same way, and the invoice found is the answer.

Contacts (``map_contact``/``send_contact``/``find_contact``): one company customer,
``POST {api}/api/external/v2/company_customers``, the body Pennylane's OpenAPI document
describes (``postCompanyCustomer``). Decisions:

- Customers only. Pennylane keeps customers and suppliers apart (``/suppliers`` is its own
  endpoint), and this module neither creates supplier invoices (Pennylane imports those from
  PDFs only) nor syncs suppliers: a supplier made here could never be named by an invoice,
  and the next reference sync would not know it. So ``is_supplier`` true is refused on
  ``is_supplier``, ``is_customer`` false on ``is_customer``.
- A company customer, not an individual one: the unified contact has one ``name`` (an
  individual customer needs a first and a last name we would have to guess at) and a tax
  number (only company customers have ``vat_number``). ``name`` -> ``name`` (required),
  ``email_address`` -> ``emails`` (one), ``tax_number`` -> ``vat_number``.
- ``status``: Pennylane customers have none; ACTIVE (or none) is what a new customer is,
  ARCHIVED is refused. ``currency``: Pennylane customers have none (each invoice names its
  own), so a currency is refused rather than stored as if Pennylane kept it.
- Addresses: Pennylane requires a ``billing_address`` and has one ``delivery_address``, each
  with all of ``address``, ``postal_code``, ``city`` and ``country_alpha2`` ("any ISO 3166
  alpha-2 code"). ``address_type`` BILLING, POSTAL or none is the billing address, SHIPPING
  or DELIVERY the delivery one; any other type, a second address for a taken slot, a missing
  part, a country that is no two-letter code (given in either case, sent upper-case) and a
  ``state`` (Pennylane has no region) are refused by path (``addresses.1.city``). No billing
  address at all is refused on ``addresses``. ``street_1`` and ``street_2`` share Pennylane's
  one ``address`` text, one per line; read back, its first line is ``street_1``, the rest
  ``street_2``. Read back as BILLING / SHIPPING.
- Phones: Pennylane has one ``phone``, the customer's own; a WORK (or untyped) number is it.
  A second number, another type (MOBILE, FAX... Pennylane could not say so) and an entry
  without a number are refused by path. Read back as WORK.
- ``field_mappings``: Pennylane customers have no custom fields; each slug is refused
  (``field_mappings.<slug>``). Lengths: Pennylane's document gives none for these fields,
  so only Ledgerbridge's own limits apply; anything else Pennylane will not hold is its
  refusal (ProviderRejected).
- Exactly once: the Ledgerbridge contact id is the customer's ``external_reference``, which
  Pennylane's document calls "your own unique value" ("value must be unique"; Pennylane picks
  one itself when none is given), searchable with the customer list's ``external_reference``
  ``eq`` filter, and an integration key rather than something the customer is shown: it is
  not among the customer fields meant for invoices (``recipient``, addresses, ``vat_number``,
  ``reg_no``), and the customer's own ``reference`` stays free. The POST is sent with
  ``idempotent=False``: a timeout or 5xx is never resent at once, since two requests in
  flight together could both pass a uniqueness check; the contact stays pending and the
  retry's ``find_contact`` looks the reference up first. A create refused as a duplicate
  (409/422) is looked up the same way and the customer found is the answer. The trade-off:
  a lost answer costs a pending contact until the retry, rather than an instant resend.
- ``send_contact``, ``find_contact`` and ``list_references`` describe a customer with the one
  ``customer_reference`` (name, flags, email, tax number, addresses, phone, ``updated_at``),
  so the next reference sync says of a created customer what its create said.

Decisions where the unified invoice and Pennylane do not line up (each refusal is an
InvalidInvoice naming the field, before anything is stored or sent):

- ``type``: receivables only. Pennylane creates supplier invoices only by importing a PDF
  (``POST /supplier_invoices/import`` needs a ``file_attachment_id``), never from data alone,
  so ACCOUNTS_PAYABLE is refused.
- ``status``: DRAFT is sent as ``draft: true``; OPEN or no status as ``draft: false`` (a
  finalised invoice, numbered by Pennylane). SUBMITTED, PAID, PARTIALLY_PAID and VOID have no
  counterpart when creating (payments are matched transactions; cancelling is a credit note).
- ``number``: refused. French invoices are numbered by Pennylane, in sequence, when they are
  finalised; the create endpoint takes no number. The number comes back in the response.
- ``issue_date``/``due_date`` are Pennylane's required ``date``/``deadline`` (the calendar
  day as the caller wrote it); a missing one is refused rather than guessed.
- ``memo`` (Panora's internal memo) is the invoice's ``label``: "used on accounting (ledger)
  entries" in Pennylane's OpenAPI document, seen by the company and its accountant, not on the
  customer's PDF (Pennylane generates a label when none is given). At most 2,000 characters
  (the document's maxLength). The connection setting ``memo_target`` may instead choose a
  printed field: ``pdf_invoice_subject`` (the PDF's title) or ``pdf_invoice_free_text``;
  ``label`` is the default.
- ``contact_id`` is ``customer_id``; ``total_discount`` is an absolute invoice ``discount``
  (before tax).
- ``currency``: Pennylane defaults to EUR and takes the codes its create body enumerates:
  every active ISO 4217 code but the fund, metal and test codes and a few new ones (SSP, STN,
  VED, XCG, ZWG...; ``UNLISTED_CURRENCIES``), which are refused naming ``currency`` rather
  than sent to a 400. ``exchange_rate``: Pennylane books
  in euros and converts at its own rate; the create body has no rate field, so a rate is
  refused unless it is 1 on a euro invoice (which is exactly what Pennylane records). Read
  back, Pennylane's ``exchange_rate`` ("used to convert the invoice to euros": ``amount`` =
  ``currency_amount`` x rate) is euros per one unit of the invoice's currency, which is the
  unified meaning (home currency per unit of the invoice's) for a company that books in
  euros. It is kept digit for digit as Pennylane writes it (a decimal string); Pennylane does
  not document how many places it keeps, and nothing is rounded here.
- Lines: with ``item_id`` a line is ``product_id`` + ``quantity`` and Pennylane fills label,
  unit, VAT rate and price from the product; a given ``unit_price`` overrides the price and
  ``description`` is sent as the line's description. Without an item the line needs
  ``label`` (the unified ``description``), ``unit`` (setting ``default_unit``, default
  ``piece``) and ``vat_rate`` (setting ``default_vat_rate``, e.g. ``FR_200``: without it such
  a line is refused, since guessing a tax rate is not ours to do), plus the connection's
  ``default_ledger_account_id`` when set. Unit prices are ``raw_currency_unit_price``
  decimal strings with at most 6 decimals; a line with only ``total_amount`` is sent as
  quantity x (total / quantity) when that division is exact within 6 decimals.
- Totals are computed by Pennylane from VAT rates; ``sub_total``/``total_tax_amount``/
  ``total_amount``/``balance`` are not sent, Pennylane's own figures come back.
- Tracking: Pennylane's analytical categories cannot be given when creating an invoice;
  they are set by a second call (``PUT /customer_invoices/{id}/categories``). Two calls are
  not atomic: a failure between them would leave an uncategorised invoice that a resend
  (which finds the invoice by its reference) could not repair. ``tracking_categories`` are
  therefore refused, at both levels.
- ``field_mappings``: refused. Pennylane's invoice "custom header fields" come from invoice
  templates and are read-only in the API.
- ``paid_on_date`` and ``accounting_period_id`` are refused (no counterpart when creating).

Amounts are decimal strings in Pennylane ("1200.0"): they become Decimals on the way back,
and are written from Decimals without exponent notation on the way out.

Connect (the hosted consent flow; Pennylane's OAuth guide, "Implement OAuth 2.0"):

- Authorisation URL: ``https://app.pennylane.com/oauth/authorize`` (overridable by
  ``LEDGERBRIDGE_PENNYLANE_AUTHORIZE_URL``) with ``client_id``, ``redirect_uri``,
  ``response_type=code``, ``state`` and ``scope``, the guide's parameters. Pennylane has one
  host for every company, so the page asks nothing first (``connect_choices`` is empty) and
  the token and API hosts never depend on a connection's settings.
- Scopes (``CONNECT_SCOPES``): the scopes Pennylane's OpenAPI document names for each call this
  module makes, and no more: ``customer_invoices:all`` (create invoices, and read them and
  their lines back when a resend looks an earlier attempt up), ``customers:all`` (create company
  customers, list and search customers), ``products:readonly`` (items) and
  ``ledger_accounts:readonly`` (accounts). No supplier or category scope: this module creates
  no bills and sets no analytical categories (both are refused above), and asking for more
  than is used would only make the consent screen ask for more. Refresh tokens need no scope:
  Pennylane's code exchange always answers a refresh token (no ``offline_access``). Scopes are
  space-separated, which the URL encodes as ``+``, the delimiter the guide asks for.
- PKCE: sent (S256). Pennylane's authorisation server metadata
  (``/.well-known/oauth-authorization-server``) lists ``code_challenge_methods_supported``
  ``S256``; its OAuth server (Doorkeeper) then checks the verifier of a code issued with a
  challenge and asks none of a code issued without one, so the challenge only ever adds
  protection, even though the partner guide does not mention it.
- Tenant: a Pennylane OAuth token is granted for one company, which the user picks on the
  consent screen. ``GET /api/external/v2/me`` (any valid token, whatever its scopes) answers
  ``{"user": {...}, "company": {"id", "name", "reg_no"}}``: one Tenant, the company's id and
  name. Its settings are empty: the module needs no company id (the token names the company),
  and every Pennylane setting (``default_vat_rate``, ``default_unit``,
  ``default_ledger_account_id``, ``memo_target``) is the operator's choice, not something the
  consent can tell. 401/403 is ReauthorizationRequired; a network failure or any other status
  is ProviderUnavailable; an answer without a company is no tenant at all.
- Revocation: ``POST https://app.pennylane.com/oauth/revoke`` (RFC 7009; overridable by
  ``LEDGERBRIDGE_PENNYLANE_REVOKE_URL``) with ``token`` and the client id and secret in the
  form body, as at the token endpoint. The refresh token is the one revoked: RFC 7009 has the
  server revoke the access tokens of the same grant with it, and Pennylane keeps the pair in
  one grant. Any answer but 200 is ProviderUnavailable (RFC 7009 answers 200 even for a token
  already dead, so anything else is the server or Ledgerbridge's OAuth app, never the
  connection).
- Redirect URI the operator registers with Pennylane's partnerships team for the OAuth app:
  ``<API base URL>/connect/callback``. Pennylane adds nothing to the callback but ``code`` and
  ``state``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

import httpx

from ledgerbridge import jsonutil
from ledgerbridge.models import (
    AddressInput,
    ContactInput,
    ContactStatus,
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
from ledgerbridge.providers.mapping import RefusingMapper, type_word
from ledgerbridge.providers.mapping import money as _money
from ledgerbridge.providers.mapping import text as _text
from ledgerbridge.providers.oauth import (
    OAuthApp,
    OAuthTokens,
    code_flow_url,
    pkce_parameters,
    post_token_request,
)

Answer = TypeVar("Answer")  # what a create answers: a RemoteInvoice or a contact RemoteReference

ENV_NAME = "PENNYLANE"
API_URL = "https://app.pennylane.com"
TOKEN_URL = "https://app.pennylane.com/oauth/token"
AUTHORIZE_URL = "https://app.pennylane.com/oauth/authorize"
REVOKE_URL = "https://app.pennylane.com/oauth/revoke"
# What the consent asks for: the scope each call of this module needs (see the module docstring).
CONNECT_SCOPES = (
    "customer_invoices:all",  # create invoices; read them and their lines back
    "customers:all",  # create company customers; list and search customers
    "products:readonly",  # list products (items)
    "ledger_accounts:readonly",  # list ledger accounts (accounts)
)
API_PATH = "/api/external/v2"
PAGE_LIMIT = 100  # the most a v2 list returns at once
LOOKUP_LIMIT = 10
UNIT_PRICE_PLACES = 6  # raw_currency_unit_price keeps up to 6 decimals
BASE_CURRENCY = "EUR"  # Pennylane books in euros: exchange_rate converts to EUR
DEFAULT_UNIT = "piece"
CENT = Decimal("0.01")
# Where memo_target may put the memo: the internal label (default) or a field printed on the PDF.
MEMO_TARGETS = ("label", "pdf_invoice_subject", "pdf_invoice_free_text")
LABEL_MAX = 2000  # the create body's maxLength for label
# Active ISO 4217 codes missing from the ``currency`` enum of Pennylane's create body.
UNLISTED_CURRENCIES = frozenset(
    """
    BOV CHW COU MXV SSP STN USN UYI UYW VED XAG XAU XBA XBB XBC XBD XCG XPD XPT XSU XTS XUA XXX ZWG
    """.split()  # noqa: SIM905 - a block of codes reads better than quoted strings
)

_DRAFT = {None: False, InvoiceStatus.OPEN: False, InvoiceStatus.DRAFT: True}
_UNIFIED_STATUS = {
    "draft": InvoiceStatus.DRAFT,
    "incomplete": InvoiceStatus.DRAFT,
    "upcoming": InvoiceStatus.OPEN,
    "late": InvoiceStatus.OPEN,
    "partially_cancelled": InvoiceStatus.OPEN,
    "paid": InvoiceStatus.PAID,
    "cancelled": InvoiceStatus.VOID,
    "archived": InvoiceStatus.VOID,
}
# How a second create with the same external_reference is refused.
_DUPLICATE_STATUSES = (409, 422)
_NO_TRACKING = "not supported: Pennylane categorises an invoice only after creating it, in another call"


# --- small conversions --------------------------------------------------------------------


def decimal_text(value: Decimal) -> str:
    """A Decimal as Pennylane's decimal strings: plain digits, never exponent notation."""
    return format(value, "f")


def _places(value: Decimal) -> int:
    """Decimal places that carry information (1.50 has 1)."""
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _pennylane_id(value: str | None) -> int | None:
    """Pennylane ids are integers; a synced remote id that is not one is unusable."""
    text = (value or "").strip()
    return int(text) if text.isdigit() else None


def _date(value: datetime | None) -> str | None:
    """YYYY-MM-DD, the calendar date as the caller wrote it (in its own offset)."""
    return value.date().isoformat() if value else None


def _timestamp(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


# --- mapping: unified -> Pennylane ----------------------------------------------------------


@dataclass
class _Mapper(RefusingMapper):
    """Builds one ``customer_invoices`` body, collecting every field Pennylane cannot take."""

    settings: dict[str, str]
    outbound: OutboundInvoice
    problems: list[tuple[str, str]] = field(default_factory=list)

    def setting(self, name: str) -> str | None:
        return (self.settings.get(name) or "").strip() or None

    def body(self) -> dict[str, Any]:
        if self.invoice.type == InvoiceType.ACCOUNTS_PAYABLE:
            self.refuse(
                "type",
                "ACCOUNTS_PAYABLE is not supported by Pennylane: its API imports supplier invoices "
                "only from a PDF file, it cannot create them from data",
            )
            return {}
        self._unsupported()
        body: dict[str, Any] = {
            "customer_id": self._customer(),
            "date": self._required_date("issue_date", "date"),
            "deadline": self._required_date("due_date", "deadline"),
            "draft": _DRAFT.get(self.invoice.status, False),
            "external_reference": self.outbound.invoice_id,
        }
        optional = {
            "currency": self.invoice.currency,
            "discount": self._discount(),
            **self._memo(),
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        body["invoice_lines"] = [self._line(i, line) for i, line in enumerate(self.invoice.line_items or [])]
        return body

    def _memo(self) -> dict[str, str]:
        """The memo where ``memo_target`` says: the internal label unless a printed field is chosen."""
        target = self.setting("memo_target") or MEMO_TARGETS[0]
        if target not in MEMO_TARGETS:
            self.refuse("connection", f"memo_target must be one of {', '.join(MEMO_TARGETS)} (default label)")
            return {}
        memo = self.invoice.memo
        if not memo:
            return {}
        if target == "label" and len(memo) > LABEL_MAX:
            self.refuse("memo", f"Pennylane keeps at most {LABEL_MAX} characters in the invoice's label")
            return {}
        return {target: memo}

    def _unsupported(self) -> None:
        invoice = self.invoice
        if invoice.currency in UNLISTED_CURRENCIES:
            self.refuse("currency", f"{invoice.currency} is not a currency Pennylane invoices take")
        if invoice.status not in _DRAFT:
            self.refuse(
                "status",
                f"{invoice.status} is not supported when creating a Pennylane invoice "
                "(send DRAFT, OPEN or no status)",
            )
        if invoice.number is not None:
            self.refuse(
                "number",
                "not supported: Pennylane numbers invoices itself, in sequence, when they are finalised",
            )
        if invoice.paid_on_date is not None:
            self.refuse("paid_on_date", "not supported: Pennylane records payments as matched transactions")
        if invoice.accounting_period_id is not None:
            self.refuse("accounting_period_id", "not supported: Pennylane invoices have no accounting period")
        if invoice.field_mappings:
            self.refuse(
                "field_mappings",
                "not supported: Pennylane's invoice custom fields come from invoice templates "
                "and cannot be set through the API",
            )
        if invoice.tracking_categories:
            self.refuse("tracking_categories", _NO_TRACKING)
        if invoice.exchange_rate is not None and not self._is_euro_at_par(invoice.exchange_rate):
            self.refuse("exchange_rate", "not supported: Pennylane converts to euros at its own rate")
        if not invoice.line_items:
            self.refuse("line_items", "a Pennylane invoice needs at least one line item")

    def _is_euro_at_par(self, rate: Decimal | None) -> bool:
        """A rate of 1 on a euro invoice says what Pennylane records anyway."""
        return rate == 1 and (self.invoice.currency or BASE_CURRENCY) == BASE_CURRENCY

    def _customer(self) -> int | None:
        reference = self.outbound.references.get("contact_id")
        if self.invoice.contact_id is None or reference is None:
            self.refuse("contact_id", "a Pennylane invoice needs a customer: give contact_id")
            return None
        if reference.fields.get("is_customer") is False:
            self.refuse("contact_id", "this contact is not a Pennylane customer")
        customer = _pennylane_id(reference.remote_id)
        if customer is None:
            self.refuse("contact_id", "not a Pennylane customer id (sync references again)")
        return customer

    def _required_date(self, path: str, name: str) -> str | None:
        value = _date(getattr(self.invoice, path))
        if value is None:
            self.refuse(path, f"Pennylane requires it (its '{name}')")
        return value

    def _discount(self) -> dict[str, str] | None:
        discount = self.invoice.total_discount
        if discount is None or discount == 0:
            return None
        if discount < 0:
            self.refuse("total_discount", "must not be negative")
            return None
        return {"type": "absolute", "value": decimal_text(discount)}

    # -- lines

    def _line(self, index: int, line: LineItemInput) -> dict[str, Any]:
        path = f"line_items.{index}"
        self._line_unsupported(path, line)
        quantity = line.quantity if line.quantity is not None else Decimal(1)
        unit_price = self._unit_price(path, line, quantity)
        if line.item_id is not None:
            return self._product_line(path, line, quantity, unit_price)
        return self._free_line(path, line, quantity, unit_price)

    def _line_unsupported(self, path: str, line: LineItemInput) -> None:
        currency = self.invoice.currency or BASE_CURRENCY
        if line.currency and line.currency != currency:
            self.refuse(f"{path}.currency", f"Pennylane lines are in the invoice's currency ({currency})")
        if line.exchange_rate is not None and not self._is_euro_at_par(line.exchange_rate):
            self.refuse(f"{path}.exchange_rate", "not supported: Pennylane converts to euros at its own rate")
        if line.tracking_categories:
            self.refuse(f"{path}.tracking_categories", _NO_TRACKING)

    def _unit_price(self, path: str, line: LineItemInput, quantity: Decimal) -> Decimal | None:
        """The unit price to send: given, or derived exactly from total_amount; None if neither."""
        if line.unit_price is not None:
            if _places(line.unit_price) > UNIT_PRICE_PLACES:
                self.refuse(
                    f"{path}.unit_price",
                    f"Pennylane keeps {UNIT_PRICE_PLACES} decimal places; {line.unit_price} would be rounded",
                )
            product = quantity * line.unit_price
            rounded = product.quantize(CENT, rounding=ROUND_HALF_UP)
            if line.total_amount is not None and line.total_amount not in (product, rounded):
                self.refuse(f"{path}.total_amount", f"is not quantity x unit_price ({product})")
            return line.unit_price
        if line.total_amount is None:
            return None
        unit = line.total_amount / quantity if quantity else None
        if unit is None or unit * quantity != line.total_amount or _places(unit) > UNIT_PRICE_PLACES:
            self.refuse(
                f"{path}.total_amount",
                "Pennylane lines are quantity x unit price: give a unit_price "
                f"(total_amount / quantity is not exact within {UNIT_PRICE_PLACES} decimals)",
            )
            return None
        return unit

    def _product_line(
        self, path: str, line: LineItemInput, quantity: Decimal, unit_price: Decimal | None
    ) -> dict[str, Any]:
        """Pennylane fills label, unit, VAT rate and price from the product; ours override."""
        product = _pennylane_id(self.outbound.remote_id(f"{path}.item_id"))
        if product is None:
            self.refuse(
                f"{path}.item_id", "unknown Pennylane product for this connection (sync references again)"
            )
        body: dict[str, Any] = {"product_id": product, "quantity": quantity}
        if unit_price is not None:
            body["raw_currency_unit_price"] = decimal_text(unit_price)
        if line.description is not None:
            body["description"] = line.description
        return body

    def _free_line(
        self, path: str, line: LineItemInput, quantity: Decimal, unit_price: Decimal | None
    ) -> dict[str, Any]:
        """A line without a product: Pennylane requires label, unit price, unit and VAT rate."""
        if not line.description:
            self.refuse(
                f"{path}.description",
                "a Pennylane line without an item needs a description (it becomes the line's label)",
            )
        if unit_price is None and line.total_amount is None:
            self.refuse(
                f"{path}.unit_price", "a Pennylane line without an item needs unit_price or total_amount"
            )
        vat_rate = self.setting("default_vat_rate")
        if vat_rate is None:
            self.refuse(
                f"{path}.item_id",
                "a Pennylane line needs a VAT rate: give item_id (the product's rate applies) or set "
                "the connection's default_vat_rate (e.g. FR_200)",
            )
        body: dict[str, Any] = {
            "label": line.description,
            "quantity": quantity,
            "raw_currency_unit_price": decimal_text(unit_price) if unit_price is not None else None,
            "unit": self.setting("default_unit") or DEFAULT_UNIT,
            "vat_rate": vat_rate,
        }
        account = self._default_ledger_account()
        if account is not None:
            body["ledger_account_id"] = account
        return body

    def _default_ledger_account(self) -> int | None:
        text = self.setting("default_ledger_account_id")
        if text is None:
            return None
        account = _pennylane_id(text)
        if account is None:
            self.refuse(
                "connection", "default_ledger_account_id must be a Pennylane ledger account id (a number)"
            )
        return account


def map_invoice(connection: ConnectionContext, outbound: OutboundInvoice) -> dict[str, Any]:
    """The ``customer_invoices`` body for ``outbound``; raises InvalidInvoice listing every problem."""
    mapper = _Mapper(connection.settings, outbound)
    body = mapper.body()
    if mapper.problems:
        raise InvalidInvoice(list(dict.fromkeys(mapper.problems)))
    return body


# --- mapping: unified contact -> Pennylane company customer ----------------------------------

# address_type -> the customer's address slot it fills
BILLING_TYPES = frozenset({"", "BILLING", "POSTAL"})
DELIVERY_TYPES = frozenset({"SHIPPING", "DELIVERY"})
# (slot, the unified address_type it is read back as)
ADDRESS_SLOTS = (("billing_address", "BILLING"), ("delivery_address", "SHIPPING"))
# (unified address field, Pennylane address field); each is required in a Pennylane address
ADDRESS_PARTS = (("postal_code", "postal_code"), ("city", "city"), ("country", "country_alpha2"))
PHONE_TYPES = frozenset({"", "WORK"})  # Pennylane's one phone is the customer's own number
PHONE_TYPE = "WORK"
_NOT_A_SUPPLIER = (
    "Pennylane suppliers are not created here: Ledgerbridge creates no supplier invoices in "
    "Pennylane and syncs no suppliers; create a customer"
)


@dataclass
class _ContactMapper:
    """Builds one ``company_customers`` body, collecting every field Pennylane cannot take."""

    contact: ContactInput
    problems: list[tuple[str, str]] = field(default_factory=list)

    def refuse(self, path: str, reason: str) -> None:
        self.problems.append((path, reason))

    def body(self) -> dict[str, Any]:
        contact = self.contact
        self._refusals()
        body: dict[str, Any] = {"name": contact.name}
        if contact.email_address:
            body["emails"] = [contact.email_address]
        if contact.tax_number:
            body["vat_number"] = contact.tax_number
        return {**body, **self._addresses(), **self._phone()}

    def _refusals(self) -> None:
        contact = self.contact
        if contact.is_supplier:
            self.refuse("is_supplier", _NOT_A_SUPPLIER)
        elif contact.is_customer is False:
            self.refuse("is_customer", "a Pennylane contact created here is a customer")
        if not contact.name:
            self.refuse("name", "Pennylane needs the customer's name")
        if contact.status == ContactStatus.ARCHIVED:
            self.refuse("status", "Pennylane customers have no status: a new customer is active")
        if contact.currency is not None:
            self.refuse("currency", "Pennylane customers have no currency: each invoice names its own")
        for slug in contact.field_mappings or {}:
            self.refuse(f"field_mappings.{slug}", "Pennylane customers have no custom fields")

    def _addresses(self) -> dict[str, Any]:
        slots: dict[str, dict[str, str]] = {}
        for index, address in enumerate(self.contact.addresses or []):
            path, kind = f"addresses.{index}", type_word(address.address_type)
            slot = "delivery_address" if kind in DELIVERY_TYPES else "billing_address"
            if kind not in BILLING_TYPES | DELIVERY_TYPES:
                self.refuse(f"{path}.address_type", "Pennylane has a billing and a delivery address only")
            elif slot in slots:
                self.refuse(path, f"Pennylane holds one {slot.replace('_', ' ')}: this is a second one")
            else:
                slots[slot] = self._address(path, address)
        if "billing_address" not in slots and not self._refused_under("addresses"):
            self.refuse("addresses", "Pennylane needs a billing address (street, postal code, city, country)")
        return slots

    def _refused_under(self, prefix: str) -> bool:
        return any(path.startswith(prefix) for path, _ in self.problems)

    def _address(self, path: str, address: AddressInput) -> dict[str, str]:
        """One Pennylane address: every part required, the country a two-letter code."""
        if address.state:
            self.refuse(f"{path}.state", "Pennylane addresses have no state or region")
        lines = [line for line in (address.street_1, address.street_2) if line]
        if not (address.street_1 or "").strip():
            self.refuse(f"{path}.street_1", "Pennylane needs the street of every address")
        body = {"address": "\n".join(lines)}
        for unified, pennylane in ADDRESS_PARTS:
            value = (getattr(address, unified) or "").strip()
            if not value:
                self.refuse(
                    f"{path}.{unified}", f"Pennylane needs the {unified.replace('_', ' ')} of every address"
                )
            body[pennylane] = value
        country = body["country_alpha2"].upper()
        if country and not (len(country) == 2 and country.isascii() and country.isalpha()):
            self.refuse(f"{path}.country", "Pennylane takes an ISO 3166 alpha-2 country code, such as FR")
        body["country_alpha2"] = country
        return body

    def _phone(self) -> dict[str, str]:
        phone: dict[str, str] = {}
        for index, entry in enumerate(self.contact.phone_numbers or []):
            path = f"phone_numbers.{index}"
            if not entry.phone_number:
                self.refuse(f"{path}.phone_number", "Pennylane keeps numbers: give one")
            elif type_word(entry.phone_type) not in PHONE_TYPES:
                self.refuse(f"{path}.phone_type", "Pennylane has one phone, the customer's own (WORK)")
            elif phone:
                self.refuse(path, "Pennylane holds one phone number per customer: this is a second one")
            else:
                phone["phone"] = entry.phone_number
        return phone


def map_contact(connection: ConnectionContext, outbound: OutboundContact) -> dict[str, Any]:
    """The ``company_customers`` body for ``outbound``; raises InvalidInvoice listing every problem."""
    mapper = _ContactMapper(outbound.contact)
    body = mapper.body()
    if mapper.problems:
        raise InvalidInvoice(mapper.problems)
    return {**body, "external_reference": outbound.contact_id}


# --- mapping: Pennylane -> unified ----------------------------------------------------------


def unified_status(record: dict[str, Any]) -> InvoiceStatus | None:
    """Pennylane's status in unified words; a finalised invoice partly paid is PARTIALLY_PAID."""
    status = _UNIFIED_STATUS.get(str(record.get("status")))
    if status == InvoiceStatus.OPEN:
        remaining, amount = _money(record.get("remaining_amount_with_tax")), _money(record.get("amount"))
        if remaining is not None and amount is not None and 0 < remaining < amount:
            return InvoiceStatus.PARTIALLY_PAID
    return status


def _balance(record: dict[str, Any]) -> Decimal | None:
    """What is left to pay, in the invoice's currency.

    ``remaining_amount_with_tax`` is in euros whatever the invoice's currency (and null on
    drafts), so it is the balance only of a euro invoice, or of a fully paid one.
    """
    remaining = _money(record.get("remaining_amount_with_tax"))
    if remaining is None:
        return None
    if remaining == 0 or (record.get("currency") or BASE_CURRENCY) == BASE_CURRENCY:
        return remaining
    return None


def _total_discount(record: dict[str, Any]) -> Decimal | None:
    discount = record.get("discount") or {}
    value = _money(discount.get("value")) if discount.get("type") == "absolute" else None
    return value if value else None


def remote_invoice(
    record: dict[str, Any], lines: list[dict[str, Any]] | None, line_count: int
) -> RemoteInvoice:
    """The unified view of an invoice Pennylane recorded; ``lines`` in creation order, if read."""
    line_ids: list[str | None] = [str(line["id"]) for line in lines or [] if line.get("id") is not None]
    line_ids = (line_ids + [None] * line_count)[:line_count]
    status = unified_status(record)
    fields = {
        "number": _text(record.get("invoice_number")),
        "status": status.value if status else None,
        "sub_total": _money(record.get("currency_amount_before_tax")),
        "total_tax_amount": _money(record.get("currency_tax")),
        "total_amount": _money(record.get("currency_amount")),
        "total_discount": _total_discount(record),
        "balance": _balance(record),
        "currency": _text(record.get("currency")),
        "exchange_rate": _money(record.get("exchange_rate")),
    }
    return RemoteInvoice(
        remote_id=str(record["id"]),
        remote_data=record,
        remote_updated_at=_timestamp(record.get("updated_at")),
        fields={key: value for key, value in fields.items() if value is not None},
        line_remote_ids=line_ids,
    )


def _detail_texts(details: Any) -> list[str]:
    """Pennylane's ``details``: one ``{"field", "issue"}`` object, a list of them, or text."""
    entries = details if isinstance(details, list) else [details]
    texts = []
    for entry in entries:
        if isinstance(entry, dict) and (entry.get("field") or entry.get("issue")):
            texts.append(" ".join(str(entry[key]) for key in ("field", "issue") if entry.get(key)))
        elif isinstance(entry, str) and entry:
            texts.append(entry)
    return texts


def error_messages(response: httpx.Response) -> list[str]:
    """Pennylane's messages: ``{"error", "status"}`` (reference), ``{"error", "message", "details"}``
    (error guide), or plain text; the message wins over an error code such as
    ``unprocessable_entity``."""
    body = json_body(response)
    messages: list[str] = []
    if isinstance(body, dict):
        main = body.get("message") or body.get("error")
        if isinstance(main, str) and main:
            messages.append(main)
        messages.extend(text for text in _detail_texts(body.get("details")) if text not in messages)
    elif body is None and response.content and response.headers.get("content-type", "").startswith("text/"):
        messages.append(response.text.strip())
    return messages or [f"Pennylane answered HTTP {response.status_code}"]


def _failure(response: httpx.Response) -> Exception:
    """The exception for a refused request (429 and 5xx never get here: ProviderHttp retries them)."""
    messages = error_messages(response)
    if response.status_code in (401, 403):
        # 401 survives ProviderHttp's refresh only when the grant is gone; 403: a scope is missing.
        return ReauthorizationRequired(
            f"Pennylane refused the connection (HTTP {response.status_code}): {'; '.join(messages)}"
        )
    return ProviderRejected(messages)


# --- the provider ---------------------------------------------------------------------------


def _http(connection: ConnectionContext) -> ProviderHttp:
    if connection.http is None:
        raise ProviderUnavailable("the Pennylane connection has no HTTP client (credentials not loaded)")
    return connection.http


def _api() -> str:
    return endpoint(ENV_NAME, "API", API_URL) + API_PATH


class _Lister:
    """GETs of one company's cursor-paged lists (``has_more`` / ``next_cursor``)."""

    def __init__(self, http: ProviderHttp):
        self._http = http

    def page(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        response = self._http.request("GET", f"{_api()}/{path}", params=params)
        if response.status_code != 200:
            if response.status_code < 500:
                raise _failure(response)
            raise ProviderUnavailable(f"Pennylane answered HTTP {response.status_code} listing {path}")
        body = json_body(response)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise ProviderUnavailable(f"Pennylane answered {path} without items")
        return body

    def all(self, path: str, params: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every record, page by page, until Pennylane says there is no more."""
        query = {**(params or {}), "limit": str(PAGE_LIMIT)}
        seen: set[str] = set()
        while True:
            body = self.page(path, query)
            yield from (record for record in body["items"] if isinstance(record, dict))
            cursor = body.get("next_cursor")
            if not body.get("has_more") or not cursor or cursor in seen:
                return
            seen.add(cursor)
            query = {**query, "cursor": str(cursor)}


def _created(
    response: httpx.Response,
    what: str,
    made: Callable[[dict[str, Any]], Answer],
    earlier: Callable[[], Answer | None],
) -> Answer:
    """The answer to a create: the record made, or the one an earlier attempt made.

    A success without the record is ProviderUnavailable, safe to resend later (the
    external_reference finds the record if it was made). A create refused as a duplicate
    (409/422: a resend colliding with the record a lost answer hid) is answered with what
    ``earlier`` finds by that reference; any other refusal is ``_failure``'s.
    """
    if response.status_code in (200, 201):
        record = json_body(response)
        if not isinstance(record, dict) or record.get("id") is None:
            raise ProviderUnavailable(f"Pennylane answered HTTP {response.status_code} without the {what}")
        return made(record)
    if response.status_code in _DUPLICATE_STATUSES:
        found = earlier()
        if found is not None:
            return found
    raise _failure(response)


def _find_by_reference(http: ProviderHttp, path: str, reference: str) -> dict[str, Any] | None:
    """The record of list ``path`` whose ``external_reference`` is ``reference``, if any.

    The reference is checked on the record too, in case a filter were ever ignored. A list
    that cannot be searched is ProviderUnavailable: without the lookup a resend could make a
    second record, so the caller waits and tries again later.
    """
    wanted = [{"field": "external_reference", "operator": "eq", "value": reference}]
    params = {"filter": jsonutil.dumps(wanted), "limit": str(LOOKUP_LIMIT)}
    try:
        body = _Lister(http).page(path, params)
    except ProviderRejected as exc:
        raise ProviderUnavailable(f"Pennylane could not be searched by external_reference: {exc}") from exc
    return next(
        (
            item
            for item in body["items"]
            if isinstance(item, dict)
            and item.get("external_reference") == reference
            and item.get("id") is not None
        ),
        None,
    )


def _line_records(http: ProviderHttp, invoice_id: Any) -> list[dict[str, Any]] | None:
    """The invoice's lines in creation order, for their ids; None if they cannot be read now.

    The invoice exists by then: failing its creation because its line ids could not be read
    would only queue a resend, so the lines are best effort.
    """
    try:
        return list(_Lister(http).all(f"customer_invoices/{invoice_id}/invoice_lines", {"sort": "id"}))
    except (ProviderUnavailable, ProviderRejected, ReauthorizationRequired):
        return None


# --- hosted connect -----------------------------------------------------------------------


def authorization_url(request: AuthorizationRequest) -> str:
    """Pennylane's consent screen for ``request``: the guide's parameters, CONNECT_SCOPES and PKCE."""
    authorize_url = endpoint(ENV_NAME, "AUTHORIZE", AUTHORIZE_URL)
    # "+" between scopes, as Pennylane's guide asks
    return code_flow_url(authorize_url, request, " ".join(CONNECT_SCOPES), pkce_parameters(request))


def _profile(client: httpx.Client, access_token: str) -> httpx.Response:
    """``GET /me`` with a bare access token (a connection, and so ProviderHttp, does not exist yet)."""
    headers = {"authorization": f"Bearer {access_token}", "accept": "application/json"}
    try:
        return client.get(f"{_api()}/me", headers=headers)
    except httpx.TransportError as exc:
        raise ProviderUnavailable(f"{type(exc).__name__} reading Pennylane's user profile") from exc


def discover_tenants(client: httpx.Client, access_token: str) -> list[Tenant]:
    """The one company the token was granted for, from ``GET /me``; none if Pennylane names none."""
    response = _profile(client, access_token)
    if response.status_code in (401, 403):
        raise _failure(response)
    body = json_body(response) if response.status_code == 200 else None
    if not isinstance(body, dict):
        raise ProviderUnavailable(f"Pennylane answered HTTP {response.status_code} reading the user profile")
    company = body.get("company")
    company_id = _text(company.get("id")) if isinstance(company, dict) else None
    if company_id is None:
        return []
    return [Tenant(remote_id=company_id, name=_text(company.get("name")) or company_id, settings={})]


def revoke_tokens(client: httpx.Client, app: OAuthApp, tokens: OAuthTokens) -> None:
    """RFC 7009 revocation of the connection's refresh token (and with it its access token).

    The client authenticates as at the token endpoint (RFC 7009 2.1), so the request is the
    token endpoint's, sent to the revocation endpoint.
    """
    revocation = replace(app, token_url=endpoint(ENV_NAME, "REVOKE", REVOKE_URL))
    grant = {"token": tokens.refresh_token, "token_type_hint": "refresh_token"}
    response = post_token_request(client, revocation, grant)
    if response.status_code != 200:
        raise ProviderUnavailable(f"Pennylane answered HTTP {response.status_code} revoking the tokens")


class PennylaneProvider:
    """Creates customer invoices in one Pennylane company; see the module docstring."""

    name = "pennylane"
    oauth_client_auth = "form"
    connect_choices: tuple[ConnectChoice, ...] = ()  # one host for every company: nothing to ask
    connect_pkce = True

    def oauth_token_url(self, settings: dict[str, str] | None = None) -> str | None:
        return endpoint(ENV_NAME, "TOKEN", TOKEN_URL)

    def authorization_url(self, request: AuthorizationRequest) -> str:
        return authorization_url(request)

    def discover_tenants(
        self, client: httpx.Client, access_token: str, settings: dict[str, str], callback: dict[str, str]
    ) -> list[Tenant]:
        """The company of the token (``settings``: no choices; ``callback``: nothing but code and state)."""
        return discover_tenants(client, access_token)

    def revoke_tokens(self, client: httpx.Client, app: OAuthApp, tokens: OAuthTokens) -> None:
        revoke_tokens(client, app, tokens)

    def map_invoice(self, connection: ConnectionContext, outbound: OutboundInvoice) -> dict[str, Any]:
        return map_invoice(connection, outbound)

    def send_invoice(
        self, connection: ConnectionContext, outbound: OutboundInvoice, request: dict[str, Any]
    ) -> RemoteInvoice:
        http = _http(connection)
        response = http.request("POST", f"{_api()}/customer_invoices", body=request)
        return _created(
            response,
            "invoice",
            made=lambda record: self._remote(http, record, outbound),
            earlier=lambda: self.find_invoice(connection, outbound),
        )

    def find_invoice(self, connection: ConnectionContext, outbound: OutboundInvoice) -> RemoteInvoice | None:
        """The invoice whose ``external_reference`` is ``outbound.invoice_id``, if Pennylane has it."""
        http = _http(connection)
        record = _find_by_reference(http, "customer_invoices", outbound.invoice_id)
        return self._remote(http, record, outbound) if record else None

    def _remote(self, http: ProviderHttp, record: dict[str, Any], outbound: OutboundInvoice) -> RemoteInvoice:
        lines = _line_records(http, record["id"])
        return remote_invoice(record, lines, len(outbound.invoice.line_items or []))

    def map_contact(self, connection: ConnectionContext, outbound: OutboundContact) -> dict[str, Any]:
        return map_contact(connection, outbound)

    def send_contact(
        self, connection: ConnectionContext, outbound: OutboundContact, request: dict[str, Any]
    ) -> RemoteReference:
        """One POST, never resent blindly: a lost answer is for find_contact to settle."""
        http = _http(connection)
        response = http.request("POST", f"{_api()}/company_customers", body=request, idempotent=False)
        return _created(
            response,
            "customer",
            made=customer_reference,
            earlier=lambda: self.find_contact(connection, outbound),
        )

    def find_contact(
        self, connection: ConnectionContext, outbound: OutboundContact
    ) -> RemoteReference | None:
        """The customer whose ``external_reference`` is ``outbound.contact_id``, if Pennylane has it."""
        record = _find_by_reference(_http(connection), "customers", outbound.contact_id)
        return customer_reference(record) if record else None

    def list_references(self, connection: ConnectionContext) -> list[RemoteReference]:
        """Customers, products and ledger accounts (suppliers are not synced: no payables)."""
        lister = _Lister(_http(connection))
        return [
            *(customer_reference(record) for record in lister.all("customers")),
            *(product_reference(record) for record in lister.all("products")),
            *(ledger_account_reference(record) for record in lister.all("ledger_accounts")),
        ]


# --- references -----------------------------------------------------------------------------


def _customer_address(record: dict[str, Any], slot: str, address_type: str) -> dict[str, Any] | None:
    """One of the customer's addresses in unified words; None when Pennylane has it empty."""
    address = record.get(slot)
    if not isinstance(address, dict) or not any(_text(value) for value in address.values()):
        return None
    street_1, _, street_2 = str(address.get("address") or "").partition("\n")
    return {
        "street_1": _text(street_1),
        "street_2": _text(street_2),
        "city": _text(address.get("city")),
        "state": None,  # Pennylane addresses have no region
        "postal_code": _text(address.get("postal_code")),
        "country": _text(address.get("country_alpha2")),
        "address_type": address_type,
    }


def customer_reference(record: dict[str, Any]) -> RemoteReference:
    """A Pennylane customer (company or individual), listed or just created."""
    emails = [email for email in record.get("emails") or [] if email]
    addresses = [
        address
        for slot, address_type in ADDRESS_SLOTS
        if (address := _customer_address(record, slot, address_type)) is not None
    ]
    phone = _text(record.get("phone"))
    updated = _timestamp(record.get("updated_at"))
    return RemoteReference(
        kind="contact",
        remote_id=str(record["id"]),
        name=str(record.get("name") or record["id"]),
        fields={
            "is_customer": True,
            "is_supplier": False,
            "email_address": str(emails[0]) if emails else None,
            "tax_number": _text(record.get("vat_number")),
            "status": None,  # Pennylane customers have no status
            "currency": None,  # nor a currency
            "customer_type": _text(record.get("customer_type")),
            "addresses": addresses or None,
            "phone_numbers": [{"phone_number": phone, "phone_type": PHONE_TYPE}] if phone else None,
            "remote_updated_at": updated.isoformat() if updated else None,
        },
        remote_data=record,
    )


def product_reference(record: dict[str, Any]) -> RemoteReference:
    ledger_account = record.get("ledger_account") or {}
    return RemoteReference(
        kind="item",
        remote_id=str(record["id"]),
        name=str(record.get("label") or record.get("reference") or record["id"]),
        fields={
            "code": _text(record.get("reference")),
            "status": "ARCHIVED" if record.get("archived_at") else "ACTIVE",
            "unit_price": _money(record.get("price_before_tax")),
            "purchase_price": None,  # Pennylane products are sold, not bought
            "sales_account": str(ledger_account["id"]) if ledger_account.get("id") is not None else None,
            "vat_rate": _text(record.get("vat_rate")),
            "unit": _text(record.get("unit")),
            "currency": _text(record.get("currency")),
        },
        remote_data=record,
    )


def ledger_account_reference(record: dict[str, Any]) -> RemoteReference:
    return RemoteReference(
        kind="account",
        remote_id=str(record["id"]),
        name=str(record.get("label") or record.get("number") or record["id"]),
        fields={
            "account_number": _text(record.get("number")),
            "type": _text(record.get("type")),
            "status": "ACTIVE" if record.get("enabled", True) else "INACTIVE",
            "vat_rate": _text(record.get("vat_rate")),
        },
        remote_data=record,
    )
