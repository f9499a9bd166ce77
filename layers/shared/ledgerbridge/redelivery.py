"""Delivering queued invoices and contacts: the retry function's logic, and the sweeper's.

A queued record is already stored; delivering it again must never create a second one at
the ledger. So each attempt first asks the ledger for the record an earlier attempt may
have created (``find_invoice``/``find_contact``: a lookup by unique reference for ledgers
without idempotency keys), and otherwise resends with the record's id as the ledger's
idempotency key. The stored record decides everything: one that is no longer pending needs
nothing, however many messages name it.

Decisions:

- What a retry does with the ledger's answer is one piece of code for every kind
  (``redeliver``/``_attempt``): refused, invalid or unauthorised -> failed with the reason;
  unavailable (or the settle write failing) -> try again later, the reason noted; the last
  attempt -> failed "gave up after N attempts: ...". A kind (``_Kind``) only says how to
  read, deliver, fail and note its records, and where the sweeper finds its pending ones.
- Invoices deliver through service.py's settle, contacts through contacts.py's, so a record
  settled by a retry is the one the request would have stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ledgerbridge import contacts, retries
from ledgerbridge.auth import Principal
from ledgerbridge.connections import connection_context, provider_for, resolve_references
from ledgerbridge.errors import ApiError
from ledgerbridge.models import InvoiceInput, format_date_time, now_text
from ledgerbridge.observability import logger
from ledgerbridge.providers.base import (
    ContactsNotSupported,
    InvalidInvoice,
    OutboundInvoice,
    ProviderRejected,
    ProviderUnavailable,
    ReauthorizationRequired,
)
from ledgerbridge.retries import Message
from ledgerbridge.service import SettleFailed, fail, failure_text, settle_delivered
from ledgerbridge.store import accounts, invoices
from ledgerbridge.store import contacts as contact_store

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


def _deliver_invoice(principal: Principal, record: dict[str, Any], deadline: float | None) -> None:
    """Find the invoice at the ledger or send it again under its id; settle it."""
    invoice = stored_input(record)
    references = resolve_references(principal.connection_id, invoice)
    provider = provider_for(principal.provider)
    connection = connection_context(principal, deadline)
    outbound = OutboundInvoice(record["id"], invoice, references)
    remote = provider.find_invoice(connection, outbound)
    if remote is None:
        remote = provider.send_invoice(connection, outbound, provider.map_invoice(connection, outbound))
    settle_delivered(principal, record, remote)
    logger.info("invoice delivered", extra={"invoice_id": record["id"], "remote_id": remote.remote_id})


@dataclass(frozen=True)
class _Kind:
    """How the retry function and the sweeper handle one kind of queued record."""

    get: Callable[[str, str], dict[str, Any] | None]  # (connection id, record id)
    deliver: Callable[[Principal, dict[str, Any], float | None], None]
    fail: Callable[[Principal, str, str, str], Any]  # (principal, record id, reason, outcome)
    note_attempt_error: Callable[[str, str, str, str], Any]  # (connection id, record id, reason, now)
    pending_since: Callable[[str], list[dict[str, Any]]]  # id, connection_id, project_id, retry_queued_at


_KINDS = {
    retries.INVOICE: _Kind(
        invoices.get, _deliver_invoice, fail, invoices.record_attempt_error, invoices.pending_since
    ),
    retries.CONTACT: _Kind(
        contact_store.get,
        contacts.deliver_pending,
        contacts.fail,
        contact_store.record_attempt_error,
        contact_store.pending_since,
    ),
}


def _principal(project_id: str, connection_id: str) -> Principal:
    connection = accounts.get_connection(project_id, connection_id)
    if connection is None:
        raise LookupError(f"connection {connection_id} no longer exists")
    return Principal(project_id, connection_id, connection["provider"], connection.get("settings") or {})


def redeliver(message: Message, final: bool, deadline: float | None) -> str:
    """One delivery attempt; returns the outcome, or raises RetryLater to be tried again."""
    kind = _KINDS[message.kind]
    record = kind.get(message.connection_id, message.record_id)
    if record is None or record["sync_status"] != "pending":
        return "already settled"
    principal = _principal(message.project_id, message.connection_id)
    try:
        return _attempt(kind, principal, record, deadline)
    except (ProviderUnavailable, SettleFailed) as exc:
        reason = failure_text(principal, exc)
        if final:
            gave_up = f"gave up after {retries.max_attempts()} attempts: {reason}"
            kind.fail(principal, message.record_id, gave_up, "gave_up")
            return "gave up"
        kind.note_attempt_error(message.connection_id, message.record_id, reason, now_text())
        raise RetryLater(reason) from None  # not chained: the raw provider text stays out of tracebacks


def _attempt(kind: _Kind, principal: Principal, record: dict[str, Any], deadline: float | None) -> str:
    record_id = record["id"]
    try:
        kind.deliver(principal, record, deadline)
    except (InvalidInvoice, ContactsNotSupported) as exc:
        return _give_up(kind, principal, record_id, failure_text(principal, exc), "invalid")
    except ProviderRejected as exc:
        return _give_up(kind, principal, record_id, failure_text(principal, exc), "rejected")
    except ReauthorizationRequired as exc:
        reason = f"connection needs authorising again: {failure_text(principal, exc)}"
        return _give_up(kind, principal, record_id, reason, "reauthorization")
    except ApiError as exc:
        if exc.status >= 500:
            raise ProviderUnavailable(exc.message) from exc
        return _give_up(kind, principal, record_id, exc.message, "invalid")
    return "delivered"


def _give_up(kind: _Kind, principal: Principal, record_id: str, reason: str, outcome: str) -> str:
    kind.fail(principal, record_id, reason, outcome)
    return outcome


def sweep(older_than_seconds: int, requeue_after_seconds: int) -> int:
    """Re-queue invoices and contacts pending longer than a threshold with no retry recently queued.

    Each kind's pending records come from a sparse index (one Query), never a table scan.
    """
    now = datetime.now(UTC)
    cutoff = format_date_time(now - timedelta(seconds=older_than_seconds))
    stale_queue = format_date_time(now - timedelta(seconds=requeue_after_seconds))
    requeued = 0
    for name, kind in _KINDS.items():
        for record in kind.pending_since(cutoff):
            queued_at = record.get("retry_queued_at")
            if queued_at and queued_at > stale_queue:
                continue  # a retry is in flight
            retries.enqueue(record["project_id"], record["connection_id"], record["id"], now_text(), name)
            requeued += 1
    if requeued:
        logger.info("re-queued stale pending records", extra={"count": requeued})
    return requeued
