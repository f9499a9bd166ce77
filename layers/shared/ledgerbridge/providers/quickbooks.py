"""QuickBooks Online: receivables become Invoices, payables become Bills (Accounting API v3).

Why it looks the way it does:

- Idempotency: every create carries ``requestid=<invoice id>``. QuickBooks answers a repeated
  requestid with the response of the first request instead of creating again, so the HTTP
  retries and the retry queue can resend freely. The id is a query parameter only: nothing
  of it is written on the Invoice or Bill, so the customer never sees it (and QuickBooks
  cannot be searched by it; ``find_invoice`` relies on the requestid alone). Every call pins
  ``minorversion=75`` (the oldest version QuickBooks still honours), so field behaviour does
  not move under us.
- ``memo`` (an internal memo, as in Panora) is ``PrivateNote``, which Intuit's Finance.xsd
  describes as a "user entered, organization-private note about the transaction" that "will
  not appear on the transaction records by default"; ``CustomerMemo`` is the message that
  "does appear in the printed invoice", and is never written. QuickBooks has a private
  field, so the ``memo_target`` setting (for ledgers without one) does not apply here.
- ``exchange_rate`` means what QuickBooks' ``ExchangeRate`` means: Finance.xsd says rates "are
  always recorded as the number of home currency units it takes to equal one foreign
  currency unit", the unified convention (1.08 for a EUR invoice in a USD company). So it is
  sent unchanged and read back unchanged. The schema types it ``xs:decimal`` with no digits
  facet and Intuit documents no rounding of it, so the caller's digits go as they are (up to
  the 12 places the unified model allows); the rate QuickBooks returns, its own when none
  was sent, is reported as it is. One rate per transaction: line rates must equal it.
- QuickBooks has no draft invoices and records payments and voids as separate transactions,
  so DRAFT, VOID, PAID, PARTIALLY_PAID and a ``paid_on_date`` are refused before anything is
  stored (OPEN, SUBMITTED or no status create a normal open invoice). Its own answer
  decides the status we report: PAID when nothing is left to pay, PARTIALLY_PAID when some is.
- QuickBooks computes tax from its tax codes and the total from the lines: ``sub_total`` given
  in the request must match the lines; ``total_tax_amount``, ``total_amount`` and
  ``balance`` are not sent, and QuickBooks' own figures come back in the response.
- Classes and departments (QuickBooks calls departments "locations" in its UI) are the
  tracking categories. Their Ids come from different lists, so their remote ids are prefixed:
  ``class:5``, ``department:2``. QuickBooks takes one department per transaction and one class
  per line; a class given for the whole invoice is sent as the invoice's ``ClassRef`` and also
  on every line without a class of its own, so it lands whichever class-tracking mode the
  company uses (bills have no header ``ClassRef``: it goes on their lines only).
- Customers and vendors are contacts. QuickBooks draws their Ids from one sequence, so the
  plain Id is unique among contacts. A receivable must point at a customer and a payable at
  a vendor: the other kind is refused by name rather than sent as a dangling reference.
- Everything QuickBooks cannot express is collected and raised as one InvalidInvoice, so the
  caller sees every field at once.
- Contacts (``map_contact``/``send_contact``): a supplier (``is_supplier`` true and
  ``is_customer`` not) is a Vendor (``POST …/vendor``), anything else a Customer (``POST
  …/customer``), with ``requestid=<contact id>`` as for invoices. QuickBooks keeps customers
  and vendors in separate lists, so a contact that is both is refused on ``is_supplier``.
  ``name`` is the ``DisplayName`` (required here: QuickBooks would otherwise build one from
  name parts we do not have; at most 500 characters and unique across customers, vendors
  and employees, per Intuit's API reference: a duplicate is QuickBooks' 6240 refusal).
  ``email_address`` → ``PrimaryEmailAddr.Address``; ``tax_number`` → ``PrimaryTaxIdentifier``
  on a Customer ("primary Tax ID", Finance.xsd) and ``TaxIdentifier`` on a Vendor
  (``ResaleNum`` is a resale number, not a tax id); ``currency`` → ``CurrencyRef``.
  Addresses: one ``BillAddr`` and one ``ShipAddr`` (``address_type`` SHIPPING/DELIVERY →
  ShipAddr, anything else BillAddr), street_1/2 → Line1/Line2, state →
  ``CountrySubDivisionCode``; a second address of the same slot is refused by its path.
  Phones: MOBILE → ``Mobile``, FAX → ``Fax``, anything else fills ``PrimaryPhone`` then
  ``AlternatePhone`` (``FreeFormNumber``); one more than the slots hold is refused.
  ``status`` ARCHIVED is refused (create it, then make it inactive in QuickBooks);
  ``field_mappings`` is refused (customer custom fields are not in the v3 API).
- Every body the tests build or send is validated against Intuit's own XSDs (Finance.xsd and
  the files it includes, under tests/fixtures/specs/quickbooks): element names, how often each
  may occur, leaf types, enumerations and the lengths Intuit documents there.

Connect (the hosted consent flow; Intuit's "Set up OAuth 2.0" guide, its OpenID discovery
documents ``developer.intuit.com/.well-known/openid_configuration`` and
``openid_sandbox_configuration``, and its OAuth SDKs, intuit/oauth-pythonclient and
intuit/oauth-jsclient):

- Authorisation URL: ``https://appcenter.intuit.com/connect/oauth2`` (overridable by
  ``LEDGERBRIDGE_QUICKBOOKS_AUTHORIZE_URL``) with ``client_id``, ``response_type=code``,
  ``scope``, ``redirect_uri`` and ``state``, the parameters Intuit's SDKs send. Both discovery
  documents name the same authorisation and token endpoints: sandbox or production is decided
  by the app's keys (Development keys reach sandbox companies only) and by the API host. So
  the page asks one question first, ``environment`` (production, the default, or sandbox: the
  module's existing setting), and the answer chooses only the API host (``api_base_url``),
  never the authorisation or token URL.
- Scopes (``CONNECT_SCOPES``): ``com.intuit.quickbooks.accounting`` alone. It is Intuit's one
  scope for the Accounting API, and covers every call this module makes: creating invoices,
  bills, customers and vendors, and reading customers, vendors, items, accounts, classes,
  departments and the company's info. No refresh scope exists or is needed (Intuit's code
  exchange always answers a refresh token, valid 100 days and renewed on use), and none of
  the OpenID scopes (``openid``, ``email``, ``profile``...): the company comes from the
  callback's ``realmId``, and asking for the user's identity would only add consent questions.
  ``com.intuit.quickbooks.payment`` is Intuit's Payments API, which nothing here calls.
- PKCE: not sent (``connect_pkce`` is False). Neither discovery document lists
  ``code_challenge_methods_supported`` and none of Intuit's SDKs sends a challenge; the
  client secret (HTTP Basic at the token endpoint) authenticates the code exchange.
- Tenant: a consent is granted for one company, which the user picks on Intuit's screen;
  Intuit adds it to the callback as ``realmId`` (beside ``code`` and ``state``).
  ``GET /v3/company/{realmId}/companyinfo/{realmId}`` on the environment's API host names it
  (``CompanyName``, else ``LegalName``). One Tenant, settings ``realm_id`` and
  ``environment``: the keys ``create-connection --setting`` takes. A callback without
  ``realmId`` is no tenant at all; 401/403 is ReauthorizationRequired; a network failure or
  any other answer is ProviderUnavailable.
- Revocation: ``POST https://developer.api.intuit.com/v2/oauth2/tokens/revoke`` (both
  discovery documents' ``revocation_endpoint``; overridable by
  ``LEDGERBRIDGE_QUICKBOOKS_REVOKE_URL``), the client id and secret as HTTP Basic and a JSON
  body ``{"token": <refresh token>}``, as Intuit's SDKs send it; revoking the refresh token
  disconnects the app from the company, and its access token with it. Any answer but 200 is
  ProviderUnavailable (the server or Ledgerbridge's OAuth app, never the connection).
- Redirect URI the operator registers on the app's Keys & OAuth page (Development and
  Production separately): ``<API base URL>/connect/callback``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

from ledgerbridge.models import ContactInput, ContactStatus, InvoiceStatus, InvoiceType, LineItemInput
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
from ledgerbridge.providers.oauth import OAuthApp, OAuthTokens, code_flow_url

ENV_NAME = "QUICKBOOKS"
PRODUCTION_API_URL = "https://quickbooks.api.intuit.com"
SANDBOX_API_URL = "https://sandbox-quickbooks.api.intuit.com"
TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
AUTHORIZE_URL = "https://appcenter.intuit.com/connect/oauth2"
REVOKE_URL = "https://developer.api.intuit.com/v2/oauth2/tokens/revoke"
# What the consent asks for: Intuit's Accounting API scope, which every call here needs.
CONNECT_SCOPES = ("com.intuit.quickbooks.accounting",)
# The connect page's one question; its answer is the ``environment`` setting (api_base_url).
ENVIRONMENT_CHOICE = ConnectChoice(
    setting="environment",
    label="QuickBooks environment",
    options=(("production", "QuickBooks Online company"), ("sandbox", "Sandbox company (Intuit developers)")),
    default="production",
)
MINOR_VERSION = "75"
PAGE_SIZE = 1000  # the most a QuickBooks query returns at once

# Lengths QuickBooks documents for these fields; longer values are refused, not truncated.
MAX_DOC_NUMBER = 21
MAX_PRIVATE_NOTE = 4000
MAX_LINE_DESCRIPTION = 4000
MAX_CUSTOM_FIELD_VALUE = 31
MAX_DISPLAY_NAME = 500
SHIPPING_TYPES = {"SHIPPING", "SHIP", "DELIVERY"}
PHONE_SLOTS = {"MOBILE": ("Mobile",), "FAX": ("Fax",)}
DEFAULT_PHONE_SLOTS = ("PrimaryPhone", "AlternatePhone")

ZERO = Decimal(0)
UNSUPPORTED_STATUSES = {
    InvoiceStatus.DRAFT: "QuickBooks has no draft invoices: send OPEN or leave status empty",
    InvoiceStatus.VOID: "QuickBooks cannot create a voided invoice",
    InvoiceStatus.PAID: "QuickBooks records payments as separate transactions: create the invoice OPEN",
    InvoiceStatus.PARTIALLY_PAID: "QuickBooks records payments as separate transactions: create it OPEN",
}
# Line detail types that stand for one of our line items (not subtotal or discount lines).
ITEM_LINE_DETAILS = ("SalesItemLineDetail", "ItemBasedExpenseLineDetail", "AccountBasedExpenseLineDetail")
# Query faults meaning "this company's plan has no such list" (classes and locations are
# Plus/Advanced features): the list is empty, not broken.
FEATURE_FAULT_CODES = {"5020", "5030"}


@dataclass(frozen=True)
class QuickBooksRequest:
    """One create call: the entity (``Invoice``/``Bill``), its URL segment and JSON body."""

    entity: str
    resource: str
    realm_id: str
    body: dict[str, Any]


@dataclass(frozen=True)
class _Entity:
    """A QuickBooks list that the reference sync reads, and how its records become references."""

    name: str
    kind: str
    optional: bool = False


REFERENCE_ENTITIES = (
    _Entity("Customer", "contact"),
    _Entity("Vendor", "contact"),
    _Entity("Item", "item"),
    _Entity("Account", "account"),
    _Entity("Class", "tracking_category", optional=True),
    _Entity("Department", "tracking_category", optional=True),
)


# --- connection settings ------------------------------------------------------------------


def _realm_id(settings: dict[str, str]) -> str:
    """The company the connection points at; without it no URL can be built."""
    realm = (settings.get("realm_id") or "").strip()
    if not realm:
        raise InvalidInvoice([("connection", "QuickBooks connection has no realm_id setting")])
    return realm


def _environment(settings: dict[str, str]) -> str:
    """``production`` (the default) or ``sandbox``; anything else is a misconfigured connection."""
    environment = (settings.get("environment") or "production").strip().lower()
    if environment not in ("production", "sandbox"):
        raise InvalidInvoice(
            [("connection", f"QuickBooks environment must be sandbox or production, not '{environment}'")]
        )
    return environment


def api_base_url(settings: dict[str, str]) -> str:
    """Production or sandbox host by the ``environment`` setting; the env var overrides both."""
    default = SANDBOX_API_URL if _environment(settings) == "sandbox" else PRODUCTION_API_URL
    return endpoint(ENV_NAME, "API", default)


# --- mapping: unified invoice -> QuickBooks ------------------------------------------------


def _ref(value: str) -> dict[str, str]:
    return {"value": value}


def _date(value: datetime | None) -> str | None:
    """The calendar date in the invoice's own offset (what the sender meant by that day)."""
    return value.date().isoformat() if value else None


@dataclass
class _Tracking:
    """Classes and departments picked from tracking category references."""

    classes: list[str] = field(default_factory=list)
    departments: list[str] = field(default_factory=list)


@dataclass
class _Mapper(RefusingMapper):
    """Builds one request body, collecting every field QuickBooks cannot take."""

    settings: dict[str, str]
    outbound: OutboundInvoice
    custom_fields: dict[str, str]
    problems: list[tuple[str, str]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        self._unsupported()
        header_tracking = self._header_tracking()
        lines = self._lines(header_tracking)
        body: dict[str, Any] = {**self._contact(), **self._header(), "Line": lines}
        if header_tracking.departments:
            body["DepartmentRef"] = _ref(header_tracking.departments[0])
        if header_tracking.classes and not self.payable:
            body["ClassRef"] = _ref(header_tracking.classes[0])
        custom = self._custom_fields()
        if custom:
            body["CustomField"] = custom
        return body

    def _unsupported(self) -> None:
        invoice = self.invoice
        if invoice.status in UNSUPPORTED_STATUSES:
            self.refuse(
                "status", f"{invoice.status.value} is not supported: {UNSUPPORTED_STATUSES[invoice.status]}"
            )
        if invoice.paid_on_date is not None:
            self.refuse("paid_on_date", "QuickBooks records payments as separate transactions; not supported")
        if invoice.accounting_period_id is not None:
            self.refuse("accounting_period_id", "QuickBooks has no accounting periods; not supported")
        if invoice.number is not None and len(invoice.number) > MAX_DOC_NUMBER:
            self.refuse("number", f"QuickBooks document numbers hold at most {MAX_DOC_NUMBER} characters")
        if invoice.memo is not None and len(invoice.memo) > MAX_PRIVATE_NOTE:
            self.refuse("memo", f"QuickBooks private notes hold at most {MAX_PRIVATE_NOTE} characters")
        if not invoice.line_items:
            self.refuse("line_items", "QuickBooks needs at least one line item")

    def _contact(self) -> dict[str, Any]:
        key, wanted, label = (
            ("VendorRef", "is_supplier", "vendor")
            if self.payable
            else ("CustomerRef", "is_customer", "customer")
        )
        reference = self.outbound.references.get("contact_id")
        if reference is None:
            kind = "bill" if self.payable else "invoice"
            self.refuse("contact_id", f"a QuickBooks {kind} needs a {label}: give contact_id")
            return {}
        if reference.fields.get(wanted) is False:
            kind = "payable" if self.payable else "receivable"
            self.refuse("contact_id", f"this contact is not a QuickBooks {label}; a {kind} needs one")
        return {key: _ref(reference.remote_id)}

    def _header(self) -> dict[str, Any]:
        invoice = self.invoice
        currency, rate = self._currency()
        values = {
            "DocNumber": invoice.number,
            "TxnDate": _date(invoice.issue_date),
            "DueDate": _date(invoice.due_date),
            "CurrencyRef": _ref(currency) if currency else None,
            "ExchangeRate": rate,
            "PrivateNote": invoice.memo,
        }
        return {key: value for key, value in values.items() if value is not None}

    def _currency(self) -> tuple[str | None, Decimal | None]:
        """QuickBooks has one currency and rate per transaction: lines must agree with it."""
        lines = self.invoice.line_items or []
        currency = self.invoice.currency or next((ln.currency for ln in lines if ln.currency), None)
        rate = self.invoice.exchange_rate or next(
            (ln.exchange_rate for ln in lines if ln.exchange_rate), None
        )
        for index, line in enumerate(lines):
            if line.currency and line.currency != currency:
                self.refuse(
                    f"line_items.{index}.currency",
                    f"QuickBooks lines take the invoice's currency ({currency})",
                )
            if line.exchange_rate and line.exchange_rate != rate:
                self.refuse(
                    f"line_items.{index}.exchange_rate",
                    f"QuickBooks lines take the invoice's exchange rate ({rate})",
                )
        return currency, rate

    # -- tracking categories

    def _tracking(self, path: str, count: int) -> _Tracking:
        picked = _Tracking()
        for j in range(count):
            reference = self.outbound.references.get(f"{path}.{j}")
            kind, _, remote_id = (reference.remote_id if reference else "").partition(":")
            if kind == "class" and remote_id:
                picked.classes.append(remote_id)
            elif kind == "department" and remote_id:
                picked.departments.append(remote_id)
            else:
                self.refuse(f"{path}.{j}", "not a QuickBooks class or department")
        return picked

    def _header_tracking(self) -> _Tracking:
        picked = self._tracking("tracking_categories", len(self.invoice.tracking_categories or []))
        if len(picked.classes) > 1:
            self.refuse("tracking_categories", "QuickBooks takes one class per transaction")
        if len(picked.departments) > 1:
            self.refuse("tracking_categories", "QuickBooks takes one department (location) per transaction")
        return picked

    def _line_class(self, index: int, line: LineItemInput, header: _Tracking) -> str | None:
        path = f"line_items.{index}.tracking_categories"
        picked = self._tracking(path, len(line.tracking_categories or []))
        if picked.departments:
            self.refuse(
                path,
                "QuickBooks departments (locations) apply to the whole transaction: set it on the invoice",
            )
        if len(picked.classes) > 1:
            self.refuse(path, "QuickBooks takes one class per line")
        classes = picked.classes or header.classes
        return classes[0] if classes else None

    # -- lines

    def _lines(self, header: _Tracking) -> list[dict[str, Any]]:
        lines = [self._line(i, line, header) for i, line in enumerate(self.invoice.line_items or [])]
        self._check_sub_total([line["Amount"] for line in lines if line["Amount"] is not None])
        discount = self.invoice.total_discount
        if discount:
            if self.payable:
                self.refuse("total_discount", "QuickBooks bills have no discount; put it on a line")
            elif discount < 0:
                self.refuse("total_discount", "must not be negative")
            else:
                lines.append(
                    {
                        "DetailType": "DiscountLineDetail",
                        "Amount": discount,
                        "DiscountLineDetail": {"PercentBased": False},
                    }
                )
        return lines

    def _check_sub_total(self, amounts: list[Decimal]) -> None:
        expected = self.invoice.sub_total
        lines = self.invoice.line_items or []
        if expected is None or len(amounts) != len(lines):
            return
        actual = sum(amounts, ZERO)
        if actual != expected:
            self.refuse("sub_total", f"does not match the lines ({actual})")

    def _amount(self, index: int, line: LineItemInput) -> Decimal | None:
        """QuickBooks refuses an Amount that is not Qty x UnitPrice, so we check it here, exactly."""
        computed = None
        if line.unit_price is not None:
            computed = (line.quantity if line.quantity is not None else Decimal(1)) * line.unit_price
        if computed is None and line.total_amount is None:
            self.refuse(
                f"line_items.{index}.unit_price", "a QuickBooks line needs unit_price or total_amount"
            )
        if computed is not None and line.total_amount is not None and computed != line.total_amount:
            self.refuse(
                f"line_items.{index}.total_amount",
                f"is not quantity x unit_price ({computed}); QuickBooks refuses such a line",
            )
        return line.total_amount if line.total_amount is not None else computed

    def _line(self, index: int, line: LineItemInput, header: _Tracking) -> dict[str, Any]:
        if line.description is not None and len(line.description) > MAX_LINE_DESCRIPTION:
            self.refuse(
                f"line_items.{index}.description",
                f"QuickBooks line descriptions hold at most {MAX_LINE_DESCRIPTION}",
            )
        detail_type, detail = self._line_detail(index, line)
        class_id = self._line_class(index, line, header)
        if class_id:
            detail["ClassRef"] = _ref(class_id)
        tax_code = self.settings.get("default_tax_code_id")
        if tax_code:
            detail["TaxCodeRef"] = _ref(tax_code)
        mapped: dict[str, Any] = {"DetailType": detail_type, "Amount": self._amount(index, line)}
        if line.description is not None:
            mapped["Description"] = line.description
        mapped[detail_type] = detail
        return mapped

    def _line_detail(self, index: int, line: LineItemInput) -> tuple[str, dict[str, Any]]:
        item = self.outbound.remote_id(f"line_items.{index}.item_id")
        if self.payable and item is None:
            account = self.settings.get("default_expense_account_id")
            if not account:
                self.refuse(
                    f"line_items.{index}.item_id",
                    "a QuickBooks bill line needs an item or an expense account: give item_id or set the "
                    "connection's default_expense_account_id",
                )
            return "AccountBasedExpenseLineDetail", {"AccountRef": _ref(account or "")}
        item = item or self.settings.get("default_item_id")
        if not item:
            self.refuse(
                f"line_items.{index}.item_id",
                "a QuickBooks invoice line needs an item: give item_id or set the connection's "
                "default_item_id",
            )
        detail: dict[str, Any] = {"ItemRef": _ref(item or "")}
        if line.quantity is not None or line.unit_price is not None:
            detail["Qty"] = line.quantity if line.quantity is not None else Decimal(1)
        if line.unit_price is not None:
            detail["UnitPrice"] = line.unit_price
        return ("ItemBasedExpenseLineDetail" if self.payable else "SalesItemLineDetail"), detail

    # -- custom fields

    def _custom_fields(self) -> list[dict[str, Any]]:
        fields = []
        for slug, value in (self.invoice.field_mappings or {}).items():
            path = f"field_mappings.{slug}"
            if self.payable:
                self.refuse(path, "QuickBooks bills have no custom fields")
                continue
            definition = self.custom_fields.get(slug)
            if definition is None:
                self.refuse(
                    path, f"no QuickBooks custom field is defined for '{slug}' (setting custom_field.{slug})"
                )
                continue
            text = self._custom_value(path, value)
            if text is not None:
                fields.append(
                    {"DefinitionId": definition, "Name": slug, "Type": "StringType", "StringValue": text}
                )
        return fields

    def _custom_value(self, path: str, value: Any) -> str | None:
        """QuickBooks custom fields are short strings; numbers are written exactly, as text."""
        if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
            self.refuse(path, "QuickBooks custom fields take text or a number")
            return None
        text = str(value)
        if len(text) > MAX_CUSTOM_FIELD_VALUE:
            self.refuse(path, f"QuickBooks custom fields hold at most {MAX_CUSTOM_FIELD_VALUE} characters")
            return None
        return text


# --- mapping: unified contact -> QuickBooks Customer / Vendor -------------------------------


def _address(address: Any) -> dict[str, Any]:
    values = {
        "Line1": address.street_1,
        "Line2": address.street_2,
        "City": address.city,
        "CountrySubDivisionCode": address.state,
        "PostalCode": address.postal_code,
        "Country": address.country,
    }
    return {key: value for key, value in values.items() if value is not None}


@dataclass
class _ContactMapper:
    """Builds one Customer or Vendor body, collecting every field QuickBooks cannot take."""

    contact: ContactInput
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def vendor(self) -> bool:
        return bool(self.contact.is_supplier) and not self.contact.is_customer

    def body(self) -> dict[str, Any]:
        contact = self.contact
        self._refusals()
        body: dict[str, Any] = {"DisplayName": contact.name}
        if contact.email_address:
            body["PrimaryEmailAddr"] = {"Address": contact.email_address}
        if contact.tax_number:
            body["TaxIdentifier" if self.vendor else "PrimaryTaxIdentifier"] = contact.tax_number
        if contact.currency:
            body["CurrencyRef"] = _ref(contact.currency)
        return {**body, **self._addresses(), **self._phones()}

    def _refusals(self) -> None:
        contact = self.contact
        if contact.is_supplier and contact.is_customer:
            self.problems.append(
                ("is_supplier", "QuickBooks keeps customers and vendors apart: create one of each")
            )
        if not contact.name:
            self.problems.append(("name", "QuickBooks needs a display name for a customer or vendor"))
        elif len(contact.name) > MAX_DISPLAY_NAME:
            self.problems.append(
                ("name", f"QuickBooks display names hold at most {MAX_DISPLAY_NAME} characters")
            )
        if contact.status == ContactStatus.ARCHIVED:
            self.problems.append(("status", "QuickBooks cannot create an inactive contact: create it ACTIVE"))
        if contact.field_mappings:
            self.problems.append(("field_mappings", "QuickBooks customers and vendors have no custom fields"))

    def _addresses(self) -> dict[str, Any]:
        slots: dict[str, Any] = {}
        for index, address in enumerate(self.contact.addresses or []):
            slot = "ShipAddr" if type_word(address.address_type) in SHIPPING_TYPES else "BillAddr"
            if slot in slots:
                self.problems.append(
                    (f"addresses.{index}", f"QuickBooks holds one {slot}: this is a second one")
                )
                continue
            slots[slot] = _address(address)
        return slots

    def _phones(self) -> dict[str, Any]:
        slots: dict[str, Any] = {}
        for index, phone in enumerate(self.contact.phone_numbers or []):
            wanted = PHONE_SLOTS.get(type_word(phone.phone_type), DEFAULT_PHONE_SLOTS)
            free = next((slot for slot in wanted if slot not in slots), None)
            if free is None:
                self.problems.append(
                    (
                        f"phone_numbers.{index}",
                        f"QuickBooks has no room left for it ({', '.join(wanted)} taken)",
                    )
                )
                continue
            slots[free] = {"FreeFormNumber": phone.phone_number}
        return slots


def _address_out(record: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    record = record or {}
    return {
        "street_1": record.get("Line1"),
        "street_2": record.get("Line2"),
        "city": record.get("City"),
        "state": record.get("CountrySubDivisionCode"),
        "postal_code": record.get("PostalCode"),
        "country": record.get("Country"),
        "address_type": kind,
    }


def contact_reference(record: dict[str, Any], is_customer: bool) -> RemoteReference:
    """A created Customer or Vendor: the synced shape plus the fields a create sets."""
    reference = _contact(record, is_customer)
    address_slots = (("BillAddr", "BILLING"), ("ShipAddr", "SHIPPING"))
    addresses = [_address_out(record[key], kind) for key, kind in address_slots if record.get(key)]
    phone_slots = (
        ("PrimaryPhone", "PRIMARY"),
        ("AlternatePhone", "ALTERNATE"),
        ("Mobile", "MOBILE"),
        ("Fax", "FAX"),
    )
    phones = [
        {"phone_number": record[key].get("FreeFormNumber"), "phone_type": kind}
        for key, kind in phone_slots
        if isinstance(record.get(key), dict)
    ]
    updated = _updated_at(record)
    fields = {
        **reference.fields,
        "tax_number": record.get("PrimaryTaxIdentifier") or record.get("TaxIdentifier"),
        "addresses": addresses or None,
        "phone_numbers": phones or None,
        "remote_updated_at": updated.isoformat() if updated else None,
    }
    return RemoteReference("contact", reference.remote_id, reference.name, fields, record)


# --- mapping: QuickBooks -> unified --------------------------------------------------------


def _status(total: Decimal | None, balance: Decimal | None) -> str:
    if total is None or balance is None or total <= 0:
        return InvoiceStatus.OPEN.value
    if balance == 0:
        return InvoiceStatus.PAID.value
    if balance < total:
        return InvoiceStatus.PARTIALLY_PAID.value
    return InvoiceStatus.OPEN.value


def _updated_at(record: dict[str, Any]) -> datetime | None:
    """MetaData.LastUpdatedTime with the company's own offset kept."""
    text = (record.get("MetaData") or {}).get("LastUpdatedTime")
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def remote_invoice(record: dict[str, Any]) -> RemoteInvoice:
    """A QuickBooks Invoice or Bill as the unified fields it decided."""
    lines = [line for line in record.get("Line") or [] if isinstance(line, dict)]
    item_lines = [line for line in lines if line.get("DetailType") in ITEM_LINE_DETAILS]
    subtotal_line = next((ln for ln in lines if ln.get("DetailType") == "SubTotalLineDetail"), None)
    if subtotal_line is not None:
        sub_total = _money(subtotal_line.get("Amount"))
    else:
        sub_total = sum((_money(line.get("Amount")) or ZERO for line in item_lines), ZERO)
    total, balance = _money(record.get("TotalAmt")), _money(record.get("Balance"))
    fields: dict[str, Any] = {
        "number": record.get("DocNumber"),
        "sub_total": sub_total,
        "total_tax_amount": _money((record.get("TxnTaxDetail") or {}).get("TotalTax")) or ZERO,
        "total_amount": total,
        "balance": balance,
        "status": _status(total, balance),
    }
    currency = (record.get("CurrencyRef") or {}).get("value")
    if currency:
        fields["currency"] = str(currency)
    rate = _money(record.get("ExchangeRate"))
    if rate is not None and rate > 0:
        fields["exchange_rate"] = rate  # QuickBooks' convention is the unified one: unchanged
    discounts = [
        _money(ln.get("Amount")) or ZERO for ln in lines if ln.get("DetailType") == "DiscountLineDetail"
    ]
    if discounts:
        fields["total_discount"] = sum(discounts, ZERO)
    return RemoteInvoice(
        remote_id=str(record["Id"]),
        remote_data=record,
        remote_updated_at=_updated_at(record),
        fields=fields,
        line_remote_ids=[str(line["Id"]) if line.get("Id") is not None else None for line in item_lines],
    )


def fault_messages(body: Any) -> list[str] | None:
    """``Message: Detail`` for each error of a QuickBooks Fault (either casing); None if no fault."""
    if not isinstance(body, dict):
        return None
    fault = body.get("Fault") or body.get("fault")
    if not isinstance(fault, dict):
        return None
    errors = fault.get("Error") or fault.get("error") or []
    messages = []
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        message = error.get("Message") or error.get("message") or "QuickBooks error"
        detail = error.get("Detail") or error.get("detail")
        messages.append(f"{message}: {detail}" if detail else str(message))
    return messages or [f"QuickBooks answered a {fault.get('type', 'fault')} without details"]


def _fault_codes(body: Any) -> set[str]:
    fault = (body.get("Fault") or body.get("fault") or {}) if isinstance(body, dict) else {}
    errors = fault.get("Error") or fault.get("error") or []
    return {str(error.get("code")) for error in errors if isinstance(error, dict)}


# --- references ----------------------------------------------------------------------------


def _status_text(record: dict[str, Any]) -> str:
    return "ACTIVE" if record.get("Active", True) else "ARCHIVED"


def _display_name(record: dict[str, Any]) -> str:
    return str(
        record.get("FullyQualifiedName") or record.get("DisplayName") or record.get("Name") or record["Id"]
    )


def _contact(record: dict[str, Any], is_customer: bool) -> RemoteReference:
    return RemoteReference(
        kind="contact",
        remote_id=str(record["Id"]),
        name=str(record.get("DisplayName") or _display_name(record)),
        fields={
            "is_customer": is_customer,
            "is_supplier": not is_customer,
            "email_address": (record.get("PrimaryEmailAddr") or {}).get("Address"),
            "currency": (record.get("CurrencyRef") or {}).get("value"),
            "status": _status_text(record),
        },
        remote_data=record,
    )


def _item(record: dict[str, Any]) -> RemoteReference:
    return RemoteReference(
        kind="item",
        remote_id=str(record["Id"]),
        name=_display_name(record),
        fields={
            "code": record.get("Sku"),
            "type": record.get("Type"),
            "status": _status_text(record),
            "unit_price": _money(record.get("UnitPrice")),
            "purchase_price": _money(record.get("PurchaseCost")),
        },
        remote_data=record,
    )


def _account(record: dict[str, Any]) -> RemoteReference:
    return RemoteReference(
        kind="account",
        remote_id=str(record["Id"]),
        name=_display_name(record),
        fields={
            "account_number": record.get("AcctNum"),
            "type": record.get("AccountType"),
            "classification": record.get("Classification"),
            "currency": (record.get("CurrencyRef") or {}).get("value"),
            "status": _status_text(record),
        },
        remote_data=record,
    )


def _tracking_categories(entity: str, records: list[dict[str, Any]]) -> list[RemoteReference]:
    """Classes or departments; parents are named from the same list (ParentRef carries only an id)."""
    names = {str(record["Id"]): str(record.get("Name") or "") for record in records}
    prefix = entity.lower()
    return [
        RemoteReference(
            kind="tracking_category",
            remote_id=f"{prefix}:{record['Id']}",
            name=f"{entity}: {_display_name(record)}",
            fields={
                "category_type": entity.upper(),
                "category_name": entity,
                "option_name": record.get("Name"),
                "parent_category": names.get(str((record.get("ParentRef") or {}).get("value"))),
                "status": _status_text(record),
            },
            remote_data=record,
        )
        for record in records
    ]


def _references(entity: str, records: list[dict[str, Any]]) -> list[RemoteReference]:
    if entity in ("Customer", "Vendor"):
        return [_contact(record, is_customer=entity == "Customer") for record in records]
    if entity == "Item":
        return [_item(record) for record in records]
    if entity == "Account":
        return [_account(record) for record in records]
    return _tracking_categories(entity, records)


# --- hosted connect -----------------------------------------------------------------------


def authorization_url(request: AuthorizationRequest) -> str:
    """Intuit's consent screen for ``request``: its SDKs' parameters and CONNECT_SCOPES, no PKCE."""
    authorize_url = endpoint(ENV_NAME, "AUTHORIZE", AUTHORIZE_URL)
    return code_flow_url(authorize_url, request, " ".join(CONNECT_SCOPES))


def _company_info(client: httpx.Client, url: str, access_token: str) -> httpx.Response:
    """One GET with a bare access token (no connection, and so no ProviderHttp, exists yet)."""
    headers = {"authorization": f"Bearer {access_token}", "accept": "application/json"}
    try:
        return client.get(url, params={"minorversion": MINOR_VERSION}, headers=headers)
    except httpx.TransportError as exc:
        raise ProviderUnavailable(f"{type(exc).__name__} reading the QuickBooks company") from exc


def discover_tenants(
    client: httpx.Client, access_token: str, settings: dict[str, str], realm_id: str
) -> list[Tenant]:
    """The company of the callback's ``realmId``, named by its CompanyInfo; none without a realm."""
    realm = _text(realm_id)
    if realm is None:
        return []
    environment = _environment(settings)
    url = f"{api_base_url(settings)}/v3/company/{realm}/companyinfo/{realm}"
    response = _company_info(client, url, access_token)
    if response.status_code in (401, 403):
        raise ReauthorizationRequired(
            f"QuickBooks refused the new access token (HTTP {response.status_code})"
        )
    body = json_body(response) if response.status_code == 200 else None
    company = body.get("CompanyInfo") if isinstance(body, dict) else None
    if not isinstance(company, dict):
        raise ProviderUnavailable(f"QuickBooks answered HTTP {response.status_code} without the CompanyInfo")
    name = _text(company.get("CompanyName")) or _text(company.get("LegalName")) or realm
    return [Tenant(remote_id=realm, name=name, settings={"realm_id": realm, "environment": environment})]


def revoke_tokens(client: httpx.Client, app: OAuthApp, tokens: OAuthTokens) -> None:
    """Revoke the connection's refresh token (and so its access token) the way Intuit's SDKs do.

    HTTP Basic client credentials with a JSON body: not one of the token endpoint's styles
    (``post_token_request`` would put the credentials in the JSON), so it is sent here.
    """
    url = endpoint(ENV_NAME, "REVOKE", REVOKE_URL)
    try:
        response = client.post(
            url,
            json={"token": tokens.refresh_token},
            auth=(app.client_id, app.client_secret),
            headers={"accept": "application/json"},
        )
    except httpx.TransportError as exc:
        raise ProviderUnavailable(f"{type(exc).__name__} revoking the QuickBooks tokens") from exc
    if response.status_code != 200:
        raise ProviderUnavailable(f"QuickBooks answered HTTP {response.status_code} revoking the tokens")


# --- the provider --------------------------------------------------------------------------


class QuickBooksProvider:
    """Creates Invoices and Bills in a QuickBooks Online company; see the module docstring."""

    name = "quickbooks"
    oauth_client_auth = "basic"
    connect_choices = (ENVIRONMENT_CHOICE,)
    connect_pkce = False  # Intuit's authorisation server takes no code_challenge

    def __init__(self, page_size: int = PAGE_SIZE):
        self._page_size = page_size

    def oauth_token_url(self, settings: dict[str, str] | None = None) -> str | None:
        """One token endpoint for sandbox and production companies alike."""
        return endpoint(ENV_NAME, "TOKEN", TOKEN_URL)

    def authorization_url(self, request: AuthorizationRequest) -> str:
        return authorization_url(request)

    def discover_tenants(
        self, client: httpx.Client, access_token: str, settings: dict[str, str], callback: dict[str, str]
    ) -> list[Tenant]:
        """The company Intuit names in the callback's ``realmId``, on the chosen environment's host."""
        return discover_tenants(client, access_token, settings, callback.get("realmId") or "")

    def revoke_tokens(self, client: httpx.Client, app: OAuthApp, tokens: OAuthTokens) -> None:
        revoke_tokens(client, app, tokens)

    def map_invoice(self, connection: ConnectionContext, outbound: OutboundInvoice) -> QuickBooksRequest:
        realm = _realm_id(connection.settings)
        api_base_url(connection.settings)  # a bad environment is a misconfiguration: refuse before storing
        mapper = _Mapper(connection.settings, outbound, connection.custom_field_definitions())
        body = mapper.body()
        if mapper.problems:
            raise InvalidInvoice(mapper.problems)
        if outbound.invoice.type == InvoiceType.ACCOUNTS_PAYABLE:
            return QuickBooksRequest("Bill", "bill", realm, body)
        return QuickBooksRequest("Invoice", "invoice", realm, body)

    def send_invoice(
        self, connection: ConnectionContext, outbound: OutboundInvoice, request: QuickBooksRequest
    ) -> RemoteInvoice:
        return remote_invoice(self._create(connection, request, outbound.invoice_id))

    def find_invoice(self, connection: ConnectionContext, outbound: OutboundInvoice) -> RemoteInvoice | None:
        """QuickBooks honours the invoice id as ``requestid``: a resend replays, never duplicates."""
        return None

    def map_contact(self, connection: ConnectionContext, outbound: OutboundContact) -> QuickBooksRequest:
        realm = _realm_id(connection.settings)
        api_base_url(connection.settings)
        mapper = _ContactMapper(outbound.contact)
        body = mapper.body()
        if mapper.problems:
            raise InvalidInvoice(mapper.problems)
        if mapper.vendor:
            return QuickBooksRequest("Vendor", "vendor", realm, body)
        return QuickBooksRequest("Customer", "customer", realm, body)

    def send_contact(
        self, connection: ConnectionContext, outbound: OutboundContact, request: QuickBooksRequest
    ) -> RemoteReference:
        record = self._create(connection, request, outbound.contact_id)
        return contact_reference(record, is_customer=request.entity == "Customer")

    def _create(self, connection: ConnectionContext, request: QuickBooksRequest, request_id: str) -> dict:
        """POST one entity with ``requestid``; the created record, or the refusal/unavailability."""
        url = f"{api_base_url(connection.settings)}/v3/company/{request.realm_id}/{request.resource}"
        params = {"minorversion": MINOR_VERSION, "requestid": request_id}
        response = _http(connection).request("POST", url, params=params, body=request.body)
        body = json_body(response)
        messages = fault_messages(body)
        if messages is not None or response.status_code >= 400:
            raise ProviderRejected(messages or [f"QuickBooks answered HTTP {response.status_code}"])
        record = body.get(request.entity) if isinstance(body, dict) else None
        if not isinstance(record, dict) or "Id" not in record:
            raise ProviderUnavailable(
                f"QuickBooks answered HTTP {response.status_code} without the {request.entity}"
            )
        return record

    def list_references(self, connection: ConnectionContext) -> list[RemoteReference]:
        references: list[RemoteReference] = []
        for entity in REFERENCE_ENTITIES:
            records = list(self._query_all(connection, entity))
            references.extend(_references(entity.name, records))
        return references

    def _query_all(self, connection: ConnectionContext, entity: _Entity) -> Iterator[dict[str, Any]]:
        """Every record of one list, a page at a time, until a page comes back short."""
        start = 1
        while True:
            query = f"select * from {entity.name} STARTPOSITION {start} MAXRESULTS {self._page_size}"
            page = self._query(connection, entity, query)
            yield from page
            if len(page) < self._page_size:
                return
            start += self._page_size

    def _query(self, connection: ConnectionContext, entity: _Entity, query: str) -> list[dict[str, Any]]:
        url = f"{api_base_url(connection.settings)}/v3/company/{_realm_id(connection.settings)}/query"
        response = _http(connection).request(
            "GET", url, params={"query": query, "minorversion": MINOR_VERSION}
        )
        body = json_body(response)
        messages = fault_messages(body)
        if messages is not None or response.status_code >= 400:
            if entity.optional and _fault_codes(body) & FEATURE_FAULT_CODES:
                return []
            raise ProviderRejected(
                messages or [f"QuickBooks answered HTTP {response.status_code} to {query}"]
            )
        result = body.get("QueryResponse") if isinstance(body, dict) else None
        if not isinstance(result, dict):
            raise ProviderUnavailable(
                f"QuickBooks answered HTTP {response.status_code} without a QueryResponse"
            )
        return [record for record in result.get(entity.name) or [] if isinstance(record, dict)]


def _http(connection: ConnectionContext) -> ProviderHttp:
    if connection.http is None:
        raise ProviderUnavailable("the QuickBooks connection has no HTTP client (credentials not loaded)")
    return connection.http
