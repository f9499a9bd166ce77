"""Delivering queued invoices: the retry function's logic, and the sweeper's.

A queued invoice is already stored; delivering it again must never create a second one at
the provider. So each attempt first asks the provider for an invoice an earlier attempt
may have created (``find_invoice``: a lookup by unique reference for providers without
idempotency keys), and otherwise resends with the invoice id as the provider's
idempotency key. The stored invoice decides everything: one that is no longer pending
needs nothing, however many messages name it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ledgerbridge import retries
from ledgerbridge.auth import Principal
from ledgerbridge.connections import connection_context, provider_for, resolve_references
from ledgerbridge.errors import ApiError
from ledgerbridge.models import InvoiceInput, format_date_time, now_text
from ledgerbridge.observability import logger
from ledgerbridge.providers.base import (
    InvalidInvoice,
    OutboundInvoice,
    ProviderRejected,
    ProviderUnavailable,
    ReauthorizationRequired,
)
from ledgerbridge.service import SettleFailed, fail, failure_text, settle_delivered
from ledgerbridge.store import accounts, invoices

READ_ONLY_LINE_FIELDS = ("id", "remote_id")


class RetryLater(Exception):
    """The provider is still unavailable: the message should come back after a backoff."""


def stored_input(record: dict[str, Any]) -> InvoiceInput:
    """The unified invoice as the caller sent it, from the stored record."""
    fields = {name: record[name] for name in InvoiceInput.model_fields if record.get(name) is not None}
    fields["line_items"] = [
        {key: value for key, value in line.items() if key not in READ_ONLY_LINE_FIELDS}
        for line in record.get("line_items") or []
    ]
    return InvoiceInput.model_validate(fields)


def _principal(project_id: str, connection_id: str) -> Principal:
    connection = accounts.get_connection(project_id, connection_id)
    if connection is None:
        raise LookupError(f"connection {connection_id} no longer exists")
    return Principal(project_id, connection_id, connection["provider"], connection.get("settings") or {})


def redeliver(
    project_id: str, connection_id: str, invoice_id: str, final: bool, deadline: float | None
) -> str:
    """One delivery attempt; returns the outcome, or raises RetryLater to be tried again."""
    record = invoices.get(connection_id, invoice_id)
    if record is None or record["sync_status"] != "pending":
        return "already settled"
    principal = _principal(project_id, connection_id)
    try:
        return _attempt(principal, record, deadline)
    except (ProviderUnavailable, SettleFailed) as exc:
        reason = failure_text(principal, exc)
        if final:
            gave_up = f"gave up after {retries.max_attempts()} attempts: {reason}"
            fail(principal, invoice_id, gave_up, "gave_up")
            return "gave up"
        invoices.record_attempt_error(connection_id, invoice_id, reason, now_text())
        raise RetryLater(reason) from None  # not chained: the raw provider text stays out of tracebacks


def _attempt(principal: Principal, record: dict[str, Any], deadline: float | None) -> str:
    invoice_id = record["id"]
    try:
        invoice = stored_input(record)
        references = resolve_references(principal.connection_id, invoice)
        provider = provider_for(principal.provider)
        connection = connection_context(principal, deadline)
        outbound = OutboundInvoice(invoice_id, invoice, references)
        remote = provider.find_invoice(connection, outbound)
        if remote is None:
            remote = provider.send_invoice(connection, outbound, provider.map_invoice(connection, outbound))
    except InvalidInvoice as exc:
        return _give_up(principal, invoice_id, failure_text(principal, exc), "invalid")
    except ProviderRejected as exc:
        return _give_up(principal, invoice_id, failure_text(principal, exc), "rejected")
    except ReauthorizationRequired as exc:
        reason = f"connection needs authorising again: {failure_text(principal, exc)}"
        return _give_up(principal, invoice_id, reason, "reauthorization")
    except ApiError as exc:
        if exc.status >= 500:
            raise ProviderUnavailable(exc.message) from exc
        return _give_up(principal, invoice_id, exc.message, "invalid")
    settle_delivered(principal, record, remote)
    return "delivered"


def _give_up(principal: Principal, invoice_id: str, reason: str, outcome: str) -> str:
    fail(principal, invoice_id, reason, outcome)
    return outcome


def sweep(older_than_seconds: int, requeue_after_seconds: int) -> int:
    """Re-queue invoices pending longer than a threshold with no retry recently queued."""
    now = datetime.now(UTC)
    cutoff = format_date_time(now - timedelta(seconds=older_than_seconds))
    stale_queue = format_date_time(now - timedelta(seconds=requeue_after_seconds))
    requeued = 0
    for record in invoices.pending_since(cutoff):
        queued_at = record.get("retry_queued_at")
        if queued_at and queued_at > stale_queue:
            continue  # a retry is in flight
        retries.enqueue(record["project_id"], record["connection_id"], record["id"], now_text())
        requeued += 1
    if requeued:
        logger.info("re-queued stale pending invoices", extra={"count": requeued})
    return requeued
