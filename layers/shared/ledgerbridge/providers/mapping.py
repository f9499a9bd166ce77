"""What every provider's mapper shares: refusals collected per field, and provider values read.

A mapper collects every field its ledger cannot take before answering, so the caller gets
one 422 naming all of them instead of fixing them one round trip at a time.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from ledgerbridge.models import InvoiceInput, InvoiceType
from ledgerbridge.providers.base import OutboundInvoice


class RefusingMapper:
    """Mixin for a provider's request mapper (a dataclass with ``outbound`` and ``problems``)."""

    outbound: OutboundInvoice
    problems: list[tuple[str, str]]

    @property
    def invoice(self) -> InvoiceInput:
        return self.outbound.invoice

    @property
    def payable(self) -> bool:
        return self.invoice.type == InvoiceType.ACCOUNTS_PAYABLE

    def refuse(self, path: str, reason: str) -> None:
        self.problems.append((path, reason))


def text(value: Any) -> str | None:
    """Ledgers send empty strings (or padding) for unset text; unified fields say null."""
    cleaned = str(value).strip() if value is not None else ""
    return cleaned or None


def type_word(value: str | None) -> str:
    """Panora's free-text kinds (``address_type``, ``phone_type``) as one word to match on:
    ``"Shipping"``, ``" work "`` and ``"po-box"`` become SHIPPING, WORK and PO_BOX."""
    return (value or "").strip().upper().replace(" ", "_").replace("-", "_")


def money(value: Any) -> Decimal | None:
    """A ledger's amount (number, Decimal from json_body, or decimal string) as an exact Decimal.

    Null, empty, booleans and junk read as None: a display field is then simply unknown.
    """
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


# Significant decimal digits an IEEE 754 double always carries exactly (DBL_DIG).
DOUBLE_DIGITS = 15


def fits_double(value: Decimal) -> bool:
    """Whether a ledger that reads this JSON number as a double records exactly ``value``.

    A decimal of at most 15 significant digits survives the trip to a double and back to its
    shortest decimal form unchanged; a longer one may come back as a neighbouring number. Ledgers
    whose APIs type a field as a double (Exact's ``Rate``, Zoho's ``exchange_rate``) refuse
    longer values here instead of recording something else.
    """
    return len(value.normalize().as_tuple().digits) <= DOUBLE_DIGITS
