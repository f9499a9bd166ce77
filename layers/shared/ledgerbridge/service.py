"""The invoice logic: the write path of design §2 and the reads.

Order matters and is the whole point: store the invoice (``pending``), then forward it to
the provider with the invoice id as its idempotency key, then settle the stored item
(``synced`` or ``failed``). Whatever happens after the first write, the caller can GET the
invoice and see where it stands. Nothing here knows about API Gateway.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from ledgerbridge import errors
from ledgerbridge.auth import Principal
from ledgerbridge.errors import ApiError, FieldError
from ledgerbridge.ids import reference_id, uuid7
from ledgerbridge.models import Invoice, InvoiceInput, InvoicePage, format_date_time
from ledgerbridge.observability import logger
from ledgerbridge.providers.base import (
    ConnectionContext,
    OutboundInvoice,
    Provider,
    ProviderRejected,
    ProviderUnavailable,
    RemoteInvoice,
)
from ledgerbridge.store import accounts, invoices


def _sandbox() -> Provider:
    from ledgerbridge.providers.sandbox import SandboxProvider
    from ledgerbridge.store.sandbox_ledger import DynamoSandboxLedger

    return SandboxProvider(DynamoSandboxLedger())


PROVIDER_FACTORIES: dict[str, Callable[[], Provider]] = {"sandbox": _sandbox}
_providers: dict[str, Provider] = {}


def provider_for(name: str) -> Provider:
    """One provider instance per container (they hold HTTP clients and caches)."""
    if name not in _providers:
        factory = PROVIDER_FACTORIES.get(name)
        if factory is None:
            raise ApiError(422, "provider_not_supported", f"Provider '{name}' is not supported.")
        _providers[name] = factory()
    return _providers[name]


def now_text() -> str:
    return format_date_time(datetime.now(UTC))


# --- flags and cursors --------------------------------------------------------------------


def parse_flag(value: str | None, name: str) -> bool:
    """``true``/``false``/``1``/``0`` (any case); absent is false; anything else is a 400."""
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise errors.bad_request(
        f"Query parameter {name} must be true, false, 1 or 0.",
        [FieldError(name, "must be true, false, 1 or 0")],
    )


def _encode_cursor(direction: str, invoice_id: str) -> str:
    return base64.urlsafe_b64encode(f"{direction}:{invoice_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        direction, invoice_id = raw.split(":", 1)
        if direction not in ("after", "before"):
            raise ValueError(direction)
        return direction, str(UUID(invoice_id))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise errors.bad_request(
            "Query parameter cursor is not a cursor this API returned.",
            [FieldError("cursor", "not a cursor this API returned")],
        ) from None


# --- references ---------------------------------------------------------------------------


def _reference_fields(invoice: InvoiceInput) -> list[tuple[str, str, UUID]]:
    """(field path, reference kind, uuid) of every Ledgerbridge id the invoice points at."""
    fields: list[tuple[str, str, UUID]] = []
    if invoice.contact_id:
        fields.append(("contact_id", "contact", invoice.contact_id))
    if invoice.accounting_period_id:
        fields.append(("accounting_period_id", "accounting_period", invoice.accounting_period_id))
    for j, ref in enumerate(invoice.tracking_categories or []):
        fields.append((f"tracking_categories.{j}", "tracking_category", ref))
    for i, line in enumerate(invoice.line_items or []):
        if line.item_id:
            fields.append((f"line_items.{i}.item_id", "item", line.item_id))
        for j, ref in enumerate(line.tracking_categories or []):
            fields.append((f"line_items.{i}.tracking_categories.{j}", "tracking_category", ref))
    return fields


def resolve_references(connection_id: str, invoice: InvoiceInput) -> dict[str, str]:
    """Map each referenced UUID to the provider's id; unknown ones are a 422 naming the field."""
    fields = _reference_fields(invoice)
    if not fields:
        return {}
    found = accounts.get_references(connection_id, [(kind, str(ref)) for _, kind, ref in fields])
    unknown = [
        FieldError(path, f"unknown {kind.replace('_', ' ')} for this connection")
        for path, kind, ref in fields
        if (kind, str(ref)) not in found
    ]
    if unknown:
        raise errors.validation_error(unknown)
    return {path: found[(kind, str(ref))] for path, kind, ref in fields}


def sync_references(connection_id: str, provider: str, connection_settings: dict | None = None) -> int:
    """Store every record the provider lists under its stable Ledgerbridge id; returns the count."""
    connection = ConnectionContext(connection_id, provider, connection_settings or {})
    references = provider_for(provider).list_references(connection)
    for ref in references:
        ref_id = reference_id(connection_id, ref.kind, ref.remote_id)
        accounts.put_reference(connection_id, ref.kind, ref_id, ref.remote_id, ref.name)
    return len(references)


# --- write path ---------------------------------------------------------------------------


def _new_record(principal: Principal, invoice: InvoiceInput) -> dict[str, Any]:
    now = now_text()
    record = invoice.model_dump(exclude={"line_items"}, exclude_none=True)
    record["type"] = invoice.type or "ACCOUNTS_RECEIVABLE"
    # Lines share their invoice's timestamps (filled in on read), saving ~70 bytes a line.
    record["line_items"] = [
        {"id": str(uuid7()), **line.model_dump(exclude_none=True)} for line in invoice.line_items or []
    ]
    return {
        **record,
        "connection_id": principal.connection_id,
        "id": str(uuid7()),
        "provider": principal.provider,
        "sync_status": "pending",
        "created_at": now,
        "modified_at": now,
    }


def _settled_changes(record: dict[str, Any], remote: RemoteInvoice) -> dict[str, Any]:
    """What the provider adds: its ids and whatever the caller left blank (numbers, totals).

    Values the caller gave win: a provider's recomputed total never replaces the caller's.
    """
    changes = {key: value for key, value in remote.fields.items() if record.get(key) is None}
    lines = [
        {**line, "remote_id": remote_id}
        for line, remote_id in zip(record["line_items"], remote.line_remote_ids, strict=False)
    ]
    return {
        **changes,
        "line_items": lines + record["line_items"][len(lines) :],
        "remote_id": remote.remote_id,
        "remote_updated_at": format_date_time(remote.remote_updated_at) if remote.remote_updated_at else None,
        "modified_at": now_text(),
        "sync_error": None,
    }


def _count(provider: str, outcome: str) -> None:
    with single_metric(name="InvoiceCreates", unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="provider", value=provider)
        metric.add_dimension(name="outcome", value=outcome)


def create_invoice(principal: Principal, invoice: InvoiceInput, include_remote_data: bool) -> Invoice:
    """Store, forward, settle. Raises ApiError for every outcome but success."""
    remote_ids = resolve_references(principal.connection_id, invoice)
    record = _new_record(principal, invoice)
    invoice_id, connection_id = record["id"], principal.connection_id
    invoices.create_pending(record)
    logger.append_keys(invoice_id=invoice_id, provider=principal.provider)
    connection = ConnectionContext(connection_id, principal.provider, principal.connection_settings)
    try:
        remote = provider_for(principal.provider).create_invoice(
            connection, OutboundInvoice(invoice_id, invoice, remote_ids)
        )
    except ProviderRejected as exc:
        invoices.mark_failed(connection_id, invoice_id, str(exc), now_text())
        _count(principal.provider, "rejected")
        logger.info("provider rejected invoice", extra={"reasons": exc.messages})
        raise ApiError(
            422,
            "provider_rejected",
            f"{principal.provider} refused the invoice: {exc}",
            [FieldError("provider", message) for message in exc.messages],
            invoice_id=invoice_id,
        ) from None
    except ProviderUnavailable as exc:
        invoices.record_attempt_error(connection_id, invoice_id, str(exc), now_text())
        _count(principal.provider, "unavailable")
        logger.warning("provider unavailable", extra={"error": str(exc)})
        raise ApiError(
            502,
            "provider_unavailable",
            f"{principal.provider} could not be reached; the invoice is stored as pending.",
            invoice_id=invoice_id,
        ) from None
    settled = invoices.settle(connection_id, invoice_id, _settled_changes(record, remote), remote.remote_data)
    _count(principal.provider, "created")
    logger.info("invoice created", extra={"remote_id": remote.remote_id})
    return to_invoice(settled, include_remote_data)


# --- reads --------------------------------------------------------------------------------


def to_invoice(record: dict[str, Any], include_remote_data: bool) -> Invoice:
    stamps = {"created_at": record["created_at"], "modified_at": record["modified_at"]}
    lines = [{**stamps, **line} for line in record.get("line_items", [])]
    remote_data = record["remote_data"] if include_remote_data else None
    return Invoice.model_validate({**record, "line_items": lines, "remote_data": remote_data})


def get_invoice(principal: Principal, invoice_id: str, include_remote_data: bool) -> Invoice:
    try:
        key = str(UUID(invoice_id))
    except ValueError:
        raise errors.not_found("Invoice") from None
    record = invoices.get(principal.connection_id, key)
    if record is None:
        raise errors.not_found("Invoice")
    return to_invoice(record, include_remote_data)


def list_invoices(
    principal: Principal, limit: int, cursor: str | None, include_remote_data: bool
) -> InvoicePage:
    """A page in creation order; cursors are opaque and page both ways."""
    direction, anchor = _decode_cursor(cursor) if cursor else ("after", None)
    backward = direction == "before"
    page = invoices.query(
        principal.connection_id,
        limit,
        after_id=None if backward else anchor,
        before_id=anchor if backward else None,
    )
    records = page.records
    first, last = (records[0]["id"], records[-1]["id"]) if records else (None, None)
    more_after = page.has_more if not backward else bool(records)
    more_before = page.has_more if backward else bool(anchor and records)
    return InvoicePage(
        data=[to_invoice(record, include_remote_data) for record in records],
        next_cursor=_encode_cursor("after", last) if more_after and last else None,
        previous_cursor=_encode_cursor("before", first) if more_before and first else None,
    )
