"""The unified invoice, as Panora's public API spells it.

Input models are strict about what a ledger would choke on later (unknown fields, float
drift, impossible dates, unknown currencies) so that errors come back at once, naming the
field, instead of as a provider rejection minutes later. Output models render what is
stored: exact decimals, RFC 3339 date-times, upper-case codes.

Input arrives as plain JSON data from ``ledgerbridge.request_body`` (numbers already
``Decimal``, strings already valid Unicode). Every validator here turns bad input into a
``ValueError`` (a Pydantic validation error naming the field), never into any other
exception, whatever JSON type it is handed: :func:`validate_input` is the one entry point
and its only failure is a 422.

Money in responses is a JSON *number* with the stored digits (the JSON codec writes Decimals
as literals), so output models declare it as ``number`` in the OpenAPI document
(:data:`Money`); Pydantic's default for Decimal would say ``string``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ledgerbridge import errors, jsonutil
from ledgerbridge.currencies import ISO_4217_CODES
from ledgerbridge.errors import FieldError

MAX_LINE_ITEMS = 1000

# --- scalar types -------------------------------------------------------------------------

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?$")
_BEYOND_MICROSECONDS = re.compile(r"(\.\d{6})\d+")


def _parse_date_time(value: Any) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an RFC 3339 date-time, its offset optional.

    A date-time without an offset is read as UTC, as Panora reads it: Panora's SDKs send a
    naive ``datetime`` that way (``2026-11-24T12:00:00``), and refusing it would break them.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise ValueError("must be a string: YYYY-MM-DD or an RFC 3339 date-time")
    text = value.strip()
    try:
        if _DATE_ONLY.match(text):
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        if matched := _RFC3339.match(text):
            text = text.replace("z", "Z").replace("t", "T")
            if len(matched.group(1) or "") > 7:  # fromisoformat takes 6 fractional digits at most
                text = _BEYOND_MICROSECONDS.sub(r"\1", text)
            parsed = datetime.fromisoformat(text)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"is not a real date: {exc}") from None
    raise ValueError("must be YYYY-MM-DD or an RFC 3339 date-time")


def format_date_time(value: datetime) -> str:
    """RFC 3339; UTC is written with ``Z``."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def now_text() -> str:
    """The current time as Ledgerbridge stores and answers it."""
    return format_date_time(datetime.now(UTC))


DateTime = Annotated[
    datetime,
    BeforeValidator(_parse_date_time),
    PlainSerializer(format_date_time, return_type=str),
    Field(json_schema_extra={"format": "date-time"}),
]


def _parse_currency(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 4217 alphabetic code such as USD")
    code = value.strip().upper()
    if code not in ISO_4217_CODES:  # the value is not echoed: it is the caller's, unbounded
        raise ValueError("is not an ISO 4217 currency code")
    return code


Currency = Annotated[str, BeforeValidator(_parse_currency), Field(examples=["USD"])]

# DynamoDB Numbers: at most 38 significant digits, magnitudes from 1E-130 to under 1E+126;
# boto3 refuses (with an exception, not a validation error) anything it would have to round.
_NUMBER_DIGITS, _NUMBER_MIN_EXPONENT, _NUMBER_MAX_EXPONENT = 38, -130, 125


def storable_number(value: Decimal) -> Decimal:
    """``value`` exactly, in a form DynamoDB stores as it is; ValueError when there is none.

    Judged on the digits alone: context arithmetic (normalize, quantize, comparisons with
    limits) can itself overflow, underflow or round on inputs like ``1e-1000030``. Trailing
    zeros past 38 digits are dropped from the coefficient (``10**39`` becomes ``1E+39``, the
    same number), since boto3 counts them as digits it would have to round away.
    """
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError("must be a finite number")
    significant = "".join(map(str, digits)).lstrip("0")
    if not significant:  # a zero: keep its places (0.00) unless they are absurd
        return value if _NUMBER_MIN_EXPONENT <= exponent <= _NUMBER_MAX_EXPONENT else Decimal(0)
    trimmed = significant.rstrip("0")
    if len(trimmed) > _NUMBER_DIGITS:
        raise ValueError(f"has more than {_NUMBER_DIGITS} significant digits")
    if not _NUMBER_MIN_EXPONENT <= value.adjusted() <= _NUMBER_MAX_EXPONENT:
        raise ValueError("is too large or too small to store exactly")
    if len(significant) <= _NUMBER_DIGITS:
        return value
    dropped = len(significant) - len(trimmed)
    return Decimal((sign, tuple(map(int, trimmed)), exponent + dropped))


def _in_storable_range(value: Any) -> Any:
    """Before Pydantic's own decimal checks, which misjudge exponents past Decimal's limits
    (``1e-1000030`` passes them and then cannot be stored): a number goes on in its storable
    form (the same value), anything else unchanged for Pydantic to name."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        return value
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except ArithmeticError:  # decimal.InvalidOperation: not a number, or one Decimal cannot hold
        raise ValueError("must be a decimal number") from None
    return storable_number(number) if number.is_finite() else number


# What a decimal input accepts, as JSON Schema: a number, or a string of digits (Pydantic's
# own pattern for Decimal). Written out because the generated schema would carry Pydantic's
# keywords (max_digits, decimal_places, gt) that validators and client generators do not know;
# the limits stay visible as x- extensions, and a positive minimum as JSON Schema's own.
_DECIMAL_TEXT = r"^(?!^[-+.]*$)[+-]?0*\d*\.?\d*$"


def _decimal_input_schema(
    max_digits: int, decimal_places: int, example: str, positive: bool = False
) -> WithJsonSchema:
    number: dict[str, Any] = {"type": "number", **({"exclusiveMinimum": 0} if positive else {})}
    return WithJsonSchema(
        {
            "anyOf": [number, {"type": "string", "pattern": _DECIMAL_TEXT}],
            "x-max-digits": max_digits,
            "x-decimal-places": decimal_places,
            "examples": [example],
        }
    )


# 28 digits before and 10 after the point is more than any ledger uses and leaves room for
# sums of 1,000 lines within DynamoDB's 38.
Amount = Annotated[
    Decimal,
    BeforeValidator(_in_storable_range),
    Field(allow_inf_nan=False, max_digits=28, decimal_places=10),
    _decimal_input_schema(28, 10, example="150.25"),
]
# One meaning for every ledger; each provider converts to and from its own convention.
EXCHANGE_RATE_MEANING = (
    "Units of the company's home currency per one unit of the invoice's currency "
    "(a EUR invoice in a USD company at 1 EUR = 1.08 USD is 1.08)."
)
ExchangeRate = Annotated[
    Decimal,
    BeforeValidator(_in_storable_range),
    Field(gt=0, allow_inf_nan=False, max_digits=28, decimal_places=12, description=EXCHANGE_RATE_MEANING),
    _decimal_input_schema(28, 12, example="1.08", positive=True),
]
# Output money: the codec writes the Decimal as a JSON number literal, digit for digit.
Money = Annotated[Decimal, WithJsonSchema({"type": "number"})]
# Panora spells exchange rates as strings on the way out; stored, they are Numbers.
ExchangeRateText = Annotated[
    Decimal, PlainSerializer(str, return_type=str), Field(description=EXCHANGE_RATE_MEANING)
]
# Ids are stored and rendered as their canonical text.
Uuid = Annotated[UUID, PlainSerializer(str, return_type=str)]
ShortText = Annotated[str, Field(max_length=255)]
LongText = Annotated[str, Field(max_length=10_000)]


class InvoiceType(StrEnum):
    ACCOUNTS_RECEIVABLE = "ACCOUNTS_RECEIVABLE"
    ACCOUNTS_PAYABLE = "ACCOUNTS_PAYABLE"


_TYPE_SYNONYMS = {
    InvoiceType.ACCOUNTS_RECEIVABLE: {
        "ACCOUNTS_RECEIVABLE",
        "RECEIVABLE",
        "AR",
        "ACCREC",
        "SALES",
        "SALE",
        "INVOICE",
        "SALES_INVOICE",
        "CUSTOMER_INVOICE",
    },
    InvoiceType.ACCOUNTS_PAYABLE: {
        "ACCOUNTS_PAYABLE",
        "PAYABLE",
        "AP",
        "ACCPAY",
        "BILL",
        "PURCHASE",
        "PURCHASE_INVOICE",
        "SUPPLIER_INVOICE",
        "VENDOR_BILL",
    },
}
_TYPE_BY_SYNONYM = {word: kind for kind, words in _TYPE_SYNONYMS.items() for word in words}


def _normalise_word(value: Any) -> Any:
    if isinstance(value, str):
        return re.sub(r"[\s\-]+", "_", value.strip()).upper()
    return value


def _parse_type(value: Any) -> Any:
    if isinstance(value, InvoiceType):
        return value
    word = _normalise_word(value)
    if not isinstance(word, str) or word not in _TYPE_BY_SYNONYM:
        raise ValueError("must be ACCOUNTS_RECEIVABLE or ACCOUNTS_PAYABLE (or a synonym like ACCREC, Bill)")
    return _TYPE_BY_SYNONYM[word]


class InvoiceStatus(StrEnum):
    DRAFT = "DRAFT"
    SUBMITTED = "SUBMITTED"
    OPEN = "OPEN"
    PAID = "PAID"
    PARTIALLY_PAID = "PARTIALLY_PAID"
    VOID = "VOID"


class SyncStatus(StrEnum):
    PENDING = "pending"
    SYNCED = "synced"
    FAILED = "failed"


InvoiceTypeField = Annotated[InvoiceType, BeforeValidator(_parse_type)]
InvoiceStatusField = Annotated[InvoiceStatus, BeforeValidator(_normalise_word)]
References = Annotated[list[Uuid], Field(max_length=50)]

# --- field mappings -------------------------------------------------------------------------
# Panora's custom field values: text, exact numbers, true/false, null. Nothing nested: no
# ledger's custom field holds a structure. Bounded so one invoice item stays far below
# DynamoDB's 400 KB and every value is storable as it is.
MAX_FIELD_MAPPINGS = 100
MAX_FIELD_MAPPING_KEY = 64
MAX_FIELD_MAPPING_TEXT = 1000
MAX_FIELD_MAPPINGS_BYTES = 16_384


def _field_mapping_value(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > MAX_FIELD_MAPPING_TEXT:
            raise ValueError(f"must be at most {MAX_FIELD_MAPPING_TEXT} characters")
        return value
    if isinstance(value, int):
        value = Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("must be a finite number")
        return storable_number(value)
    raise ValueError("must be a string, a number, true, false or null")


# A name is printable text without surrounding spaces: it is matched against the slugs of a
# connection's custom field settings and echoed in errors, and DynamoDB map keys of bare
# whitespace or control characters are where storage libraries disagree.
_FIELD_MAPPING_KEY = r"^[^\s\x00-\x1f\x7f]([^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$"


def _field_mapping_key(key: Any) -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_FIELD_MAPPING_KEY:
        raise ValueError(f"a custom field name must be 1 to {MAX_FIELD_MAPPING_KEY} characters")
    if not re.match(_FIELD_MAPPING_KEY, key):
        raise ValueError("a custom field name has no control characters and no surrounding spaces")
    return key


def _field_mappings_size(mappings: dict[str, Any]) -> dict[str, Any]:
    if len(jsonutil.dumps(mappings).encode()) > MAX_FIELD_MAPPINGS_BYTES:
        raise ValueError(f"must be at most {MAX_FIELD_MAPPINGS_BYTES} bytes of JSON")
    return mappings


FieldMappingKey = Annotated[
    str,
    BeforeValidator(_field_mapping_key),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_FIELD_MAPPING_KEY,
            "pattern": _FIELD_MAPPING_KEY,
        }
    ),
]
FieldMappingValue = Annotated[
    Any,
    BeforeValidator(_field_mapping_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": MAX_FIELD_MAPPING_TEXT},
                {"type": "number"},
                {"type": "boolean"},
                {"type": "null"},
            ],
            "description": "a custom field value: text, an exact number, true/false or null",
        }
    ),
]
FieldMappings = Annotated[
    dict[FieldMappingKey, FieldMappingValue],
    Field(max_length=MAX_FIELD_MAPPINGS),
    AfterValidator(_field_mappings_size),
]

# --- field descriptions ---------------------------------------------------------------------
# One glossary for the OpenAPI document: a field means the same in the input and the output
# model, so it is described once. Keys are a field name, or "<Model>.<field>" where the same
# name means something else on another model (an input model is named by its output model:
# InvoiceInput reads Invoice's). A Field(description=...) of its own wins. Applied only when
# the JSON schema is generated (building /openapi.json), never when validating.

_MAJOR_UNITS = "in major units of the currency (150.25 is 150 units and 25 hundredths, not cents)"
_FIELD_DESCRIPTIONS = {
    "id": "Ledgerbridge's id for the record (a UUID); what other records and routes refer to",
    "name": "the name the ledger shows",
    "remote_id": "the ledger's own id for the record; null until the ledger has it",
    "remote_data": "the ledger's own record as it answered, when remote_data=true was asked; else null",
    "remote_updated_at": "when the ledger last changed the record (RFC 3339)",
    "field_mappings": "custom fields by name: text, exact numbers, true/false or null",
    "created_at": "when Ledgerbridge stored the record (RFC 3339, UTC)",
    "modified_at": "when Ledgerbridge last changed the record (RFC 3339, UTC)",
    "currency": "ISO 4217 code",
    "company_info_id": "Panora's company info id; company infos are not synced, so always null",
    "status": "the ledger's status for the record",
    "Invoice.type": "ACCOUNTS_RECEIVABLE (a sales invoice, the default) or ACCOUNTS_PAYABLE (a bill);"
    " synonyms such as ACCREC or Bill are accepted on input",
    "number": "the invoice number; the ledger assigns one when absent",
    "issue_date": "the invoice date: YYYY-MM-DD or RFC 3339; a date-time without an offset is UTC",
    "due_date": "when payment is due: YYYY-MM-DD or RFC 3339; not before issue_date",
    "paid_on_date": "when it was paid in full, if it was",
    "memo": "a note for the customer, where the ledger has one (see the provider matrix)",
    "Invoice.currency": "ISO 4217 code of every amount on the invoice (case-insensitive in, upper-case out)",
    "exchange_rate": EXCHANGE_RATE_MEANING,
    "total_discount": f"discount on the whole invoice, {_MAJOR_UNITS}",
    "sub_total": f"total before tax, {_MAJOR_UNITS}",
    "Invoice.status": "DRAFT, SUBMITTED, OPEN, PAID, PARTIALLY_PAID or VOID (any case on input)",
    "total_tax_amount": f"tax on the whole invoice, {_MAJOR_UNITS}",
    "Invoice.total_amount": f"total including tax, {_MAJOR_UNITS}",
    "balance": f"amount still owed, {_MAJOR_UNITS}",
    "contact_id": "id of the customer (receivable) or supplier (payable), from GET /accounting/contacts",
    "accounting_period_id": "id of the connection's accounting period, where its ledger has them"
    " (the provider matrix says which; others refuse it)",
    "Invoice.tracking_categories": "ids of tracking categories for the whole invoice, from"
    " GET /accounting/trackingcategories",
    "line_items": "the invoice's lines, in order",
    "LineItem.description": "what the line is for",
    "LineItem.unit_price": f"price of one unit, {_MAJOR_UNITS}",
    "quantity": "how many units (a decimal number)",
    "LineItem.total_amount": f"the line's amount, {_MAJOR_UNITS}",
    "LineItem.currency": "ISO 4217 code; ledgers that hold one currency per invoice refuse another",
    "item_id": "id of a product or service, from GET /accounting/items",
    "LineItem.tracking_categories": "ids of tracking categories for this line, from"
    " GET /accounting/trackingcategories",
    "data": "the records of this page",
    "next_cursor": "pass as cursor to get the next page; null on the last page",
    "statusCode": "the HTTP status code, repeated",
    "error": "a stable machine-readable code (validation_error, unauthorized, provider_rejected, ...)",
    "message": "what went wrong, for a person",
    "details": "one entry per field at fault",
    "field": "the field's path in the request, dot-separated (line_items.0.unit_price)",
    "reason": "why the field was refused",
    "is_customer": "true: the contact can be invoiced (ACCOUNTS_RECEIVABLE)",
    "is_supplier": "true: the contact can send bills (ACCOUNTS_PAYABLE)",
    "email_address": "the contact's email address",
    "tax_number": "the contact's tax (VAT, GST, EIN) number",
    "Contact.status": "ACTIVE or ARCHIVED",
    "Contact.currency": "ISO 4217 code of the contact's default currency",
    "addresses": "postal addresses",
    "phone_numbers": "phone numbers",
    "street_1": "first address line",
    "street_2": "second address line",
    "city": "city or town",
    "state": "state, region or province",
    "postal_code": "postal or ZIP code",
    "country": "country, as the ledger holds it (a name or an ISO 3166 code)",
    "address_type": "free text as in Panora: BILLING, SHIPPING, ...",
    "phone_number": "the number, as written",
    "phone_type": "free text as in Panora: WORK, MOBILE, FAX, ...",
    "Item.unit_price": f"the item's sales price, {_MAJOR_UNITS}",
    "purchase_price": f"the item's purchase price, {_MAJOR_UNITS}",
    "sales_account": "the ledger's id of the income account sales of the item go to",
    "purchase_account": "the ledger's id of the expense account purchases of the item go to",
    "category_type": "the ledger's kind of category (class, department, tracking option, ...)",
    "parent_category": "the ledger's id of the parent category, if any",
    "Account.description": "the account's description in the ledger",
    "classification": "ASSET, LIABILITY, EQUITY, REVENUE or EXPENSE, as the ledger classes it",
    "Account.type": "the ledger's own account type",
    "current_balance": f"the account's balance as the ledger last reported it, {_MAJOR_UNITS}",
    "Account.currency": "ISO 4217 code of the account",
    "account_number": "the account's code or number in the chart of accounts",
    "parent_account": "the ledger's id of the parent account, if any",
}


def _describe_fields(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """json_schema_extra: give every property its glossary description (see above)."""
    family = model.__name__.removesuffix("Input")
    for name, prop in (schema.get("properties") or {}).items():
        text = _FIELD_DESCRIPTIONS.get(f"{family}.{name}") or _FIELD_DESCRIPTIONS.get(name)
        if text and "description" not in prop:
            prop["description"] = text


class _Documented(BaseModel):
    """Base of every request and response model: its fields are described in /openapi.json."""

    model_config = ConfigDict(json_schema_extra=_describe_fields)


# --- input --------------------------------------------------------------------------------


class _Input(_Documented):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LineItemInput(_Input):
    description: LongText | None = None
    unit_price: Amount | None = None
    quantity: Amount | None = None
    total_amount: Amount | None = None
    currency: Currency | None = None
    exchange_rate: ExchangeRate | None = None
    item_id: Uuid | None = None
    tracking_categories: References | None = None


class InvoiceInput(_Input):
    """Body of ``POST /accounting/invoices``: every field optional and nullable, as in Panora."""

    type: InvoiceTypeField | None = None
    number: ShortText | None = None
    issue_date: DateTime | None = None
    due_date: DateTime | None = None
    paid_on_date: DateTime | None = None
    memo: LongText | None = None
    currency: Currency | None = None
    exchange_rate: ExchangeRate | None = None
    total_discount: Amount | None = None
    sub_total: Amount | None = None
    status: InvoiceStatusField | None = None
    total_tax_amount: Amount | None = None
    total_amount: Amount | None = None
    balance: Amount | None = None
    contact_id: Uuid | None = None
    accounting_period_id: Uuid | None = None
    tracking_categories: References | None = None
    line_items: Annotated[list[LineItemInput], Field(max_length=MAX_LINE_ITEMS)] | None = None
    field_mappings: FieldMappings | None = None

    @field_validator("due_date")
    @classmethod
    def _due_after_issue(cls, due_date: datetime | None, info: ValidationInfo) -> datetime | None:
        issue_date = info.data.get("issue_date")
        if due_date and issue_date and due_date < issue_date:
            raise ValueError("is before issue_date")
        return due_date


def _field_path(location: tuple[int | str, ...]) -> str:
    """``line_items.0.unit_price``; a bad dict key is named by itself, not Pydantic's ``[key]``."""
    parts = location[:-1] if location and location[-1] == "[key]" else location
    return ".".join(str(part) for part in parts)[:200]


def _reason(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    return error["msg"].removeprefix("Value error, ")


def validate_input(model: type[_Input], data: dict[str, Any]) -> Any:
    """``data`` (from ``request_body``) as ``model``, or the 422 naming every invalid field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [FieldError(_field_path(error["loc"]), _reason(error)) for error in exc.errors()]
        raise errors.validation_error(details) from None


# --- output -------------------------------------------------------------------------------


class LineItem(_Documented):
    id: Uuid
    remote_id: str | None = None
    description: str | None = None
    unit_price: Money | None = None
    quantity: Money | None = None
    total_amount: Money | None = None
    currency: str | None = None
    exchange_rate: ExchangeRateText | None = None
    item_id: Uuid | None = None
    tracking_categories: list[Uuid] | None = None
    created_at: DateTime
    modified_at: DateTime


class Invoice(_Documented):
    """An invoice as Ledgerbridge answers it (201 body, GET body)."""

    id: Uuid
    type: InvoiceType = InvoiceType.ACCOUNTS_RECEIVABLE
    number: str | None = None
    issue_date: DateTime | None = None
    due_date: DateTime | None = None
    paid_on_date: DateTime | None = None
    memo: str | None = None
    currency: str | None = None
    exchange_rate: ExchangeRateText | None = None
    total_discount: Money | None = None
    sub_total: Money | None = None
    status: InvoiceStatus | None = None
    total_tax_amount: Money | None = None
    total_amount: Money | None = None
    balance: Money | None = None
    contact_id: Uuid | None = None
    accounting_period_id: Uuid | None = None
    tracking_categories: list[Uuid] | None = None
    line_items: list[LineItem] = Field(default_factory=list)
    field_mappings: dict[str, Any] | None = None
    remote_id: str | None = None
    remote_data: dict[str, Any] | None = None
    remote_updated_at: DateTime | None = None
    created_at: DateTime
    modified_at: DateTime
    sync_status: SyncStatus = Field(description="pending: stored, not yet confirmed by the provider")
    sync_error: str | None = Field(default=None, description="why the provider refused it, when failed")


# Panora's list envelope names the backward cursor ``prev_cursor``; ``previous_cursor``, the
# name this API first used, stays as an alias with the same value.
PrevCursor = Annotated[str | None, Field(description="the previous page's cursor; null on the first page")]
PreviousCursor = Annotated[str | None, Field(description="alias of prev_cursor, kept for older clients")]


class InvoicePage(_Documented):
    data: list[Invoice]
    next_cursor: str | None
    prev_cursor: PrevCursor = None
    previous_cursor: PreviousCursor = None

    @model_validator(mode="after")
    def _alias(self) -> InvoicePage:
        self.previous_cursor = self.prev_cursor = self.prev_cursor or self.previous_cursor
        return self


class FieldErrorBody(_Documented):
    field: str
    reason: str


class ErrorBody(_Documented):
    statusCode: int
    error: str
    message: str
    details: list[FieldErrorBody] = Field(default_factory=list)
    invoice_id: str | None = Field(default=None, description="set when the invoice was stored: GET it")
    contact_id: str | None = Field(default=None, description="set when the contact was stored: GET it")


# --- synced references (Panora's contact, item and tracking category shapes) ----------------


class _Reference(_Documented):
    """Fields every synced record shares; provider-specific extras are dropped."""

    model_config = ConfigDict(extra="ignore")

    id: Uuid
    name: str | None = None
    remote_id: str
    remote_data: dict[str, Any] | None = None
    remote_updated_at: str | None = None
    field_mappings: dict[str, Any] | None = None
    created_at: DateTime
    modified_at: DateTime


class Address(_Documented):
    street_1: str | None = None
    street_2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    address_type: str | None = None


class PhoneNumber(_Documented):
    phone_number: str | None = None
    phone_type: str | None = None


class Contact(_Reference):
    """A customer or supplier: synced from the ledger, or created here (then with its state)."""

    remote_id: str | None = None  # type: ignore[assignment]  # null until the ledger has a created one
    is_customer: bool | None = None
    is_supplier: bool | None = None
    email_address: str | None = None
    tax_number: str | None = None
    status: str | None = None
    currency: str | None = None
    company_info_id: str | None = None  # Panora's; company infos are not synced yet: always null
    addresses: list[Address] | None = None
    phone_numbers: list[PhoneNumber] | None = None
    sync_status: SyncStatus = Field(
        default=SyncStatus.SYNCED, description="pending: stored, not yet confirmed by the ledger"
    )
    sync_error: str | None = Field(default=None, description="why the ledger refused it, when failed")


ContactResponse = Contact  # what POST /accounting/contacts answers: the same shape as GET


class Item(_Reference):
    status: str | None = None
    unit_price: Money | None = None
    purchase_price: Money | None = None
    sales_account: str | None = None
    purchase_account: str | None = None
    company_info_id: str | None = None  # Panora's; company infos are not synced yet: always null


class TrackingCategory(_Reference):
    status: str | None = None
    category_type: str | None = None
    parent_category: str | None = None


class Account(_Reference):
    """Panora's account: a ledger's chart-of-accounts entry (what each ledger syncs as ``account``)."""

    description: str | None = None
    classification: str | None = None
    type: str | None = None
    status: str | None = None
    current_balance: Money | None = None
    currency: str | None = None
    account_number: str | None = None
    parent_account: str | None = None
    company_info_id: str | None = None


class AccountPage(_Documented):  # forward paging only: no prev_cursor yet
    data: list[Account]
    next_cursor: str | None
    prev_cursor: PrevCursor = None
    previous_cursor: PreviousCursor = None


class ContactPage(_Documented):  # forward paging only: no prev_cursor yet
    data: list[Contact]
    next_cursor: str | None
    prev_cursor: PrevCursor = None
    previous_cursor: PreviousCursor = None


class ItemPage(_Documented):  # forward paging only: no prev_cursor yet
    data: list[Item]
    next_cursor: str | None
    prev_cursor: PrevCursor = None
    previous_cursor: PreviousCursor = None


class TrackingCategoryPage(_Documented):  # forward paging only: no prev_cursor yet
    data: list[TrackingCategory]
    next_cursor: str | None
    prev_cursor: PrevCursor = None
    previous_cursor: PreviousCursor = None


# --- contacts: POST /accounting/contacts (Panora's contact input) ----------------------------
# Kept at the end of the file on purpose (another change edits the page models above). The
# output adds what a created contact has and a synced one does not (sync_status, sync_error,
# addresses, phone numbers, a remote_id that is null until the ledger answers); folding these
# fields into ``Contact`` itself is additive and left to whoever owns the page models.

MAX_CONTACT_ADDRESSES = 10
MAX_CONTACT_PHONE_NUMBERS = 10


class ContactStatus(StrEnum):
    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"


class AddressInput(_Input):
    """Panora's address. ``address_type`` is free text as in Panora (BILLING, SHIPPING, ...)."""

    street_1: ShortText | None = None
    street_2: ShortText | None = None
    city: ShortText | None = None
    state: ShortText | None = None
    postal_code: ShortText | None = None
    country: ShortText | None = None
    address_type: ShortText | None = None


class PhoneNumberInput(_Input):
    """Panora's phone number. ``phone_type`` is free text as in Panora (WORK, MOBILE, FAX, ...)."""

    phone_number: ShortText | None = None
    phone_type: ShortText | None = None


PhoneNumbersInput = Annotated[list[PhoneNumberInput], Field(max_length=MAX_CONTACT_PHONE_NUMBERS)]


class ContactInput(_Input):
    """Body of ``POST /accounting/contacts``: every field optional and nullable, as in Panora.

    Booleans are strict (``"yes"`` is no answer to is_supplier). ``remote_updated_at`` is
    accepted because Panora's SDK sends its input shape whole; the ledger decides it.
    """

    name: ShortText | None = None
    is_supplier: Annotated[bool, Field(strict=True)] | None = None
    is_customer: Annotated[bool, Field(strict=True)] | None = None
    email_address: ShortText | None = None
    tax_number: ShortText | None = None
    status: Annotated[ContactStatus, BeforeValidator(_normalise_word)] | None = None
    currency: Currency | None = None
    remote_updated_at: DateTime | None = None
    company_info_id: Uuid | None = None
    addresses: Annotated[list[AddressInput], Field(max_length=MAX_CONTACT_ADDRESSES)] | None = None
    phone_numbers: PhoneNumbersInput | None = None
    field_mappings: FieldMappings | None = None
