"""Zoho Books: sales invoices and bills (payables) through the Books API v3.

A receivable is ``POST {api}/books/v3/invoices``, a payable ``POST {api}/books/v3/bills``,
both with the organisation in the ``organization_id`` query parameter (connection setting
``organization_id``). The ``data_center`` setting (``com`` by default, ``eu``, ``in``,
``com.au``, ``jp``, ``ca``, ``com.cn``, ``sa``) picks the API host and the accounts server
that refreshes tokens; LEDGERBRIDGE_ZOHO_BOOKS_API_URL / _TOKEN_URL replace both. Zoho answers
``{"code": 0, ...}`` on success; any other ``code`` is a refusal carrying Zoho's ``message``.
Zoho publishes no OpenAPI document to copy: the fields sent are the ones Zoho's own SDK (the
books-java-wrappers) and its API reference document, listed with their source in
tests/fixtures/specs/zoho-books, which every test body and query is checked against.

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
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx

from ledgerbridge.models import InvoiceInput, InvoiceStatus, InvoiceType, LineItemInput
from ledgerbridge.providers.base import (
    ConnectionContext,
    InvalidInvoice,
    OutboundInvoice,
    ProviderRejected,
    ProviderUnavailable,
    ReauthorizationRequired,
    RemoteInvoice,
    RemoteReference,
)
from ledgerbridge.providers.http import ProviderHttp, endpoint, json_body
from ledgerbridge.providers.mapping import RefusingMapper, fits_double
from ledgerbridge.providers.mapping import money as _money
from ledgerbridge.providers.mapping import text as _text

ENV_NAME = "ZOHO_BOOKS"
API_PATH = "/books/v3"
TOKEN_PATH = "/oauth/v2/token"
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


def _data_center(settings: dict[str, str] | None) -> tuple[str, str]:
    name = (_setting(settings or {}, "data_center") or DEFAULT_DATA_CENTER).lower().removeprefix(".")
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
            if isinstance(value, bool):
                fields.append({"customfield_id": definition, "value": value})
            elif isinstance(value, str | int | Decimal):
                fields.append({"customfield_id": definition, "value": str(value)})
            else:
                self.refuse(path, "Zoho Books custom fields take text, a number or true/false")
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
        record = answer.get(kind.entity)
        if not isinstance(record, dict) or not record.get(kind.id_key):
            # Safe to try again: find_invoice looks for what this attempt may have created first.
            raise ProviderUnavailable(f"Zoho Books answered without the {kind.entity} {doing}")
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


def _created_order(record: dict[str, Any], kind: _Kind) -> tuple[datetime, int]:
    """Creation time first (Zoho ids are not in creation order), the id only to break a tie."""
    remote_id = str(record.get(kind.id_key) or "")
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
        return sorted(found, key=lambda record: _created_order(record, kind))

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


# --- the provider ---------------------------------------------------------------------------


class ZohoBooksProvider:
    """Creates invoices and bills in one Zoho Books organisation; see the module docstring."""

    name = "zoho_books"
    oauth_client_auth = "form"

    def __init__(self, page_size: int = PAGE_SIZE):
        self._page_size = page_size

    def oauth_token_url(self, settings: dict[str, str] | None = None) -> str | None:
        """The connection's accounts server when given its settings; ``com`` otherwise (see token_url)."""
        return token_url(settings)

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
        ordered = sorted(copies.values(), key=lambda record: _created_order(record, kind))
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

    def list_references(self, connection: ConnectionContext) -> list[RemoteReference]:
        api = _Api(connection)
        return [
            *(contact_reference(record) for record in api.pages("contacts", "contacts", self._page_size)),
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


def contact_reference(record: dict[str, Any]) -> RemoteReference:
    """A customer or a vendor: a Zoho contact is one or the other (``contact_type``)."""
    contact_type = str(record.get("contact_type") or "")
    return RemoteReference(
        kind="contact",
        remote_id=str(record["contact_id"]),
        name=str(record.get("contact_name") or record["contact_id"]),
        fields={
            "is_customer": contact_type == "customer",
            "is_supplier": contact_type == "vendor",
            "email_address": _text(record.get("email")),
            "currency": _text(record.get("currency_code")),
            "currency_id": _text(record.get("currency_id")),
            "status": _status(record.get("status")),
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
