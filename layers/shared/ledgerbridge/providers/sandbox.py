"""The built-in ``sandbox`` ledger: a small accounting system that behaves like a real one.

It numbers invoices, computes line amounts and totals, refuses what a real ledger refuses
(nothing to bill, a line with no price, totals that do not add up, a reused invoice
number), honours an idempotency key, and keeps its books through a ``SandboxLedger`` so
this module stays free of storage details. The local stack connects to it by default.

Contacts: it creates customers and suppliers as a ledger does, once per idempotency key
(the Ledgerbridge contact id). A contact needs a name, unique among the company's contacts
(case-insensitive, as QuickBooks and Xero insist); a refusal is the ledger's (422
``provider_rejected``). It keeps every Panora contact field but custom fields
(``field_mappings`` is refused before anything is stored). Neither flag given makes a
customer. Created contacts are listed by the reference sync next to the fixed directory.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

from ledgerbridge.models import InvoiceInput, InvoiceStatus, InvoiceType, LineItemInput, format_date_time
from ledgerbridge.provider_types import NumberTaken as NumberTaken
from ledgerbridge.providers.base import (
    ConnectionContext,
    InvalidInvoice,
    OutboundContact,
    OutboundInvoice,
    ProviderRejected,
    RemoteInvoice,
    RemoteReference,
)

ZERO = Decimal(0)


class SandboxLedger(Protocol):
    """Storage for the sandbox's books, one set per connection."""

    def find(self, connection_id: str, number: str) -> dict[str, Any] | None: ...

    def record(self, connection_id: str, record: dict[str, Any]) -> dict[str, Any]:
        """Store a new invoice under its number, once: the record already there if it has the same
        ``external_id`` (a resend), NumberTaken if another invoice has the number."""
        ...

    def find_contact(self, connection_id: str, request_key: str) -> dict[str, Any] | None: ...

    def record_contact(self, connection_id: str, request_key: str, record: dict[str, Any]) -> dict[str, Any]:
        """Store a new contact once per request key; a resend gets the first one back."""
        ...

    def contacts(self, connection_id: str) -> list[dict[str, Any]]:
        """Every contact created in this connection's sandbox."""
        ...


@dataclass(frozen=True)
class _Line:
    description: str | None
    quantity: Decimal
    unit_price: Decimal | None
    amount: Decimal
    item: str | None


def _line(index: int, line: LineItemInput, item: str | None) -> _Line:
    quantity = line.quantity if line.quantity is not None else Decimal(1)
    computed = quantity * line.unit_price if line.unit_price is not None else None
    if computed is None and line.total_amount is None:
        raise ProviderRejected([f"Line {index + 1} has neither a unit price nor an amount."])
    if computed is not None and line.total_amount is not None and computed != line.total_amount:
        raise ProviderRejected(
            [f"Line {index + 1} amount {line.total_amount} is not quantity x unit price ({computed})."]
        )
    amount = line.total_amount if line.total_amount is not None else computed
    return _Line(line.description, quantity, line.unit_price, amount, item)


def _totals(invoice: InvoiceInput, lines: list[_Line]) -> dict[str, Decimal]:
    discount = invoice.total_discount or ZERO
    tax = invoice.total_tax_amount or ZERO
    if lines:
        sub_total = sum((line.amount for line in lines), ZERO)
        total = sub_total - discount + tax
        if invoice.total_amount is not None and invoice.total_amount != total:
            raise ProviderRejected(
                [f"total_amount {invoice.total_amount} does not match the lines ({total})."]
            )
    else:
        total = invoice.total_amount
        sub_total = total + discount - tax
    if invoice.sub_total is not None and invoice.sub_total != sub_total:
        raise ProviderRejected([f"sub_total {invoice.sub_total} does not match the lines ({sub_total})."])
    paid = invoice.status == InvoiceStatus.PAID
    balance = ZERO if paid else (invoice.balance if invoice.balance is not None else total)
    return {
        "sub_total": sub_total,
        "total_discount": discount,
        "total_tax_amount": tax,
        "total_amount": total,
        "balance": balance,
    }


def _date(value: datetime | None) -> str | None:
    return value.date().isoformat() if value else None


# The sandbox company's directory: what a fresh sandbox ledger already knows.
_CUSTOMER = {"is_customer": True, "is_supplier": False, "status": "ACTIVE", "currency": "USD"}
_SUPPLIER = {"is_customer": False, "is_supplier": True, "status": "ACTIVE", "currency": "USD"}
DIRECTORY = (
    RemoteReference(
        "contact", "C-1001", "Acme Corporation", _CUSTOMER | {"email_address": "ap@acme.example"}
    ),
    RemoteReference(
        "contact", "C-1002", "Globex Ltd", _CUSTOMER | {"email_address": "billing@globex.example"}
    ),
    RemoteReference(
        "contact", "V-2001", "Initech Supplies", _SUPPLIER | {"email_address": "ar@initech.example"}
    ),
    RemoteReference("item", "I-1", "Consulting hour", {"status": "ACTIVE", "unit_price": Decimal("150.25")}),
    RemoteReference("item", "I-2", "Software licence", {"status": "ACTIVE", "unit_price": Decimal("99.00")}),
    RemoteReference("tracking_category", "T-1", "Sales", {"status": "ACTIVE", "category_type": "DEPARTMENT"}),
    RemoteReference(
        "tracking_category", "T-2", "Engineering", {"status": "ACTIVE", "category_type": "DEPARTMENT"}
    ),
    RemoteReference("accounting_period", "P-2026", "Fiscal year 2026", {"status": "ACTIVE"}),
    RemoteReference(
        "account",
        "A-4000",
        "Sales revenue",
        {"classification": "REVENUE", "type": "INCOME", "status": "ACTIVE", "account_number": "4000"},
    ),
    RemoteReference(
        "account",
        "A-5000",
        "Cost of sales",
        {"classification": "EXPENSE", "type": "COST_OF_SALES", "status": "ACTIVE", "account_number": "5000"},
    ),
)


class SandboxProvider:
    """Creates invoices in the sandbox ledger; see the module docstring."""

    name = "sandbox"
    oauth_client_auth = "basic"

    def oauth_token_url(self, settings: dict[str, str] | None = None) -> str | None:
        return None

    def map_invoice(self, connection: ConnectionContext, outbound: OutboundInvoice) -> None:
        """The sandbox takes the unified invoice as it is; its checks are the ledger's own."""

    def find_invoice(self, connection: ConnectionContext, outbound: OutboundInvoice) -> RemoteInvoice | None:
        existing = self._ledger.find(connection.connection_id, _number(outbound))
        return (
            _remote(existing)
            if existing is not None and existing["external_id"] == outbound.invoice_id
            else None
        )

    def list_references(self, connection: ConnectionContext) -> list[RemoteReference]:
        """A fresh sandbox company's directory, with itself as the provider's record, and its new contacts."""
        directory = [
            replace(ref, remote_data={"id": ref.remote_id, "name": ref.name, **ref.fields})
            for ref in DIRECTORY
        ]
        return directory + [
            contact_reference(record) for record in self._ledger.contacts(connection.connection_id)
        ]

    def map_contact(self, connection: ConnectionContext, outbound: OutboundContact) -> None:
        """The sandbox keeps every contact field but custom ones."""
        if outbound.contact.field_mappings:
            raise InvalidInvoice([("field_mappings", "the sandbox ledger has no custom contact fields")])

    def send_contact(
        self, connection: ConnectionContext, outbound: OutboundContact, request: None
    ) -> RemoteReference:
        ledger, connection_id = self._ledger, connection.connection_id
        existing = ledger.find_contact(connection_id, outbound.contact_id)
        if existing is not None:
            return contact_reference(existing)
        name = outbound.contact.name
        if not name:
            raise ProviderRejected(["A contact needs a name."])
        taken = [ref.name for ref in DIRECTORY if ref.kind == "contact"]
        taken += [record["name"] for record in ledger.contacts(connection_id)]
        if name.casefold() in {other.casefold() for other in taken}:
            raise ProviderRejected([f"A contact named '{name}' already exists."])
        record = _contact_record(outbound)
        return contact_reference(ledger.record_contact(connection_id, outbound.contact_id, record))

    def __init__(self, ledger: SandboxLedger):
        self._ledger = ledger

    def send_invoice(
        self, connection: ConnectionContext, outbound: OutboundInvoice, request: None
    ) -> RemoteInvoice:
        invoice = outbound.invoice
        if not invoice.line_items and invoice.total_amount is None:
            raise ProviderRejected(["An invoice needs at least one line item or a total_amount."])
        lines = [
            _line(i, line, outbound.remote_id(f"line_items.{i}.item_id"))
            for i, line in enumerate(invoice.line_items or [])
        ]
        record = _record(outbound, lines, _totals(invoice, lines))
        try:
            stored = self._ledger.record(connection.connection_id, record)
        except NumberTaken:
            raise ProviderRejected([f"Invoice number {record['invoice_number']} is already used."]) from None
        return _remote(stored)


# Crockford's base32: no I, L, O or U, so a number read aloud or retyped survives.
_BASE32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ledger_code(ledger_id: str) -> str:
    """The sandbox's own id for a record, derived from its Ledgerbridge id (a UUIDv7): 20
    characters, in creation order.

    Derived, not counted: a resend computes the same code, so the books find the first record
    by it without an index or a read before writing, and no counter item is written per create.
    The code is the id's 48-bit millisecond, its 12-bit sequence and 40 of its random bits (100
    bits): two ids made in the same millisecond by two containers share a code with odds of 1
    in 2^50, and ids of one process never do.
    """
    value = UUID(ledger_id).int
    bits = ((value >> 80) << 52) | (((value >> 64) & 0xFFF) << 40) | ((value >> 22) & ((1 << 40) - 1))
    return "".join(_BASE32[(bits >> shift) & 31] for shift in range(95, -1, -5))


def _kind(invoice: InvoiceInput) -> str:
    return "bill" if invoice.type == InvoiceType.ACCOUNTS_PAYABLE else "sales_invoice"


def _number(outbound: OutboundInvoice) -> str:
    """The caller's number, or the one the sandbox assigns: ``INV-``/``BILL-`` and the code."""
    if outbound.invoice.number:
        return outbound.invoice.number
    return f"{'BILL' if _kind(outbound.invoice) == 'bill' else 'INV'}-{ledger_code(outbound.invoice_id)}"


def _record(outbound: OutboundInvoice, lines: list[_Line], totals: dict) -> dict[str, Any]:
    invoice = outbound.invoice
    now = format_date_time(datetime.now(UTC))
    code = ledger_code(outbound.invoice_id)
    return {
        "id": code,
        "kind": _kind(invoice),
        "invoice_number": _number(outbound),
        "status": (invoice.status or InvoiceStatus.OPEN).value,
        "contact": outbound.remote_id("contact_id"),
        "issued_on": _date(invoice.issue_date) or now[:10],
        "due_on": _date(invoice.due_date),
        "currency": invoice.currency or "USD",
        "exchange_rate": invoice.exchange_rate,
        "reference": invoice.memo,
        "lines": [
            {
                "line_id": f"{code}-{index + 1}",
                "description": line.description,
                "item": line.item,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "amount": line.amount,
            }
            for index, line in enumerate(lines)
        ],
        "subtotal": totals["sub_total"],
        "discount": totals["total_discount"],
        "tax": totals["total_tax_amount"],
        "total": totals["total_amount"],
        "amount_due": totals["balance"],
        "external_id": outbound.invoice_id,
        "created_at": now,
        "updated_at": now,
    }


def _contact_record(outbound: OutboundContact) -> dict[str, Any]:
    contact = outbound.contact
    now = format_date_time(datetime.now(UTC))
    is_supplier = bool(contact.is_supplier)
    fields = contact.model_dump(
        mode="json",
        exclude_none=True,
        include={"email_address", "tax_number", "currency", "addresses", "phone_numbers"},
    )
    return {
        "id": f"CT-{ledger_code(outbound.contact_id)}",
        "name": contact.name,
        "is_customer": contact.is_customer if contact.is_customer is not None else not is_supplier,
        "is_supplier": is_supplier,
        "status": (contact.status.value if contact.status else "ACTIVE"),
        **fields,
        "external_id": outbound.contact_id,
        "created_at": now,
        "updated_at": now,
    }


_NOT_FIELDS = {"id", "name", "external_id", "created_at", "updated_at"}


def contact_reference(record: dict[str, Any]) -> RemoteReference:
    """A sandbox contact as a ``contact`` reference, its unified fields as the ledger keeps them."""
    fields = {key: value for key, value in record.items() if key not in _NOT_FIELDS}
    fields["remote_updated_at"] = record["updated_at"]
    return RemoteReference("contact", record["id"], record["name"], fields, remote_data=record)


def _remote(record: dict[str, Any]) -> RemoteInvoice:
    return RemoteInvoice(
        remote_id=record["id"],
        remote_data=record,
        remote_updated_at=datetime.fromisoformat(record["updated_at"]),
        fields={
            "number": record["invoice_number"],
            "status": record["status"],
            "sub_total": record["subtotal"],
            "total_discount": record["discount"],
            "total_tax_amount": record["tax"],
            "total_amount": record["total"],
            "balance": record["amount_due"],
        },
        line_remote_ids=[line["line_id"] for line in record["lines"]],
    )
