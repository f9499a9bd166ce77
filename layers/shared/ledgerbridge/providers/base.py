"""The interface every accounting provider implements.

A provider maps a unified invoice to its own request, sends it and maps the answer back.
It knows nothing of DynamoDB or API Gateway: references arrive already resolved to the
provider's ids, and storage it needs (the sandbox's ledger; later, OAuth tokens) is passed
in behind a small protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ledgerbridge.models import InvoiceInput


@dataclass(frozen=True)
class ConnectionContext:
    connection_id: str
    provider: str
    settings: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboundInvoice:
    """What a provider is asked to create.

    ``invoice_id`` is Ledgerbridge's id, passed to the provider as its idempotency key so a
    resend can never create a second invoice. ``remote_ids`` maps each reference's field
    path (``contact_id``, ``line_items.0.item_id``, ``tracking_categories.1``) to the
    provider's id for it.
    """

    invoice_id: str
    invoice: InvoiceInput
    remote_ids: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RemoteInvoice:
    """What the provider recorded, mapped back to unified fields."""

    remote_id: str
    remote_data: dict[str, Any]
    remote_updated_at: datetime | None
    fields: dict[str, Any]  # unified fields the provider decided: number, totals, balance, status
    line_remote_ids: list[str | None]


@dataclass(frozen=True)
class RemoteReference:
    """A record of the provider's that invoices point at: contact, item, tracking category."""

    kind: str  # contact | item | tracking_category | accounting_period
    remote_id: str
    name: str


class ProviderRejected(Exception):
    """The provider refused the invoice as invalid: resending the same thing will not help."""

    def __init__(self, messages: list[str]):
        super().__init__("; ".join(messages))
        self.messages = messages


class ProviderUnavailable(Exception):
    """The provider could not be reached or failed on its side: the invoice may be resent."""


class Provider(Protocol):
    def create_invoice(self, connection: ConnectionContext, outbound: OutboundInvoice) -> RemoteInvoice: ...

    def list_references(self, connection: ConnectionContext) -> list[RemoteReference]: ...
