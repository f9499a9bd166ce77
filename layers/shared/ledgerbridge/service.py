"""The invoice logic: the write path (store, forward, settle) and the reads.

Order matters and is the whole point: store the invoice (``pending``), then forward it to
the provider with the invoice id as its idempotency key, then settle the stored item
(``synced`` or ``failed``). Whatever happens after the first write, the caller can GET the
invoice and see where it stands. Nothing here knows about API Gateway.

What a provider says when it fails reaches the caller, ``sync_error`` and the logs only
through ``failure_messages``/``failure_text``, which blank credentials it may echo with the
connection's known secrets (see redaction.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any
from uuid import UUID

from ledgerbridge import errors, idempotency, jsonutil
from ledgerbridge.auth import Principal
from ledgerbridge.connections import connection_context, known_secrets, provider_for, resolve_references
from ledgerbridge.errors import ApiError, FieldError
from ledgerbridge.idempotency import Answer, Stored
from ledgerbridge.ids import uuid7
from ledgerbridge.models import Invoice, InvoiceInput, InvoicePage, LineItem, format_date_time, now_text
from ledgerbridge.observability import count, logger
from ledgerbridge.params import decode_cursor, encode_cursor
from ledgerbridge.providers.base import (
    InvalidInvoice,
    OutboundInvoice,
    ProviderRejected,
    ProviderUnavailable,
    ReauthorizationRequired,
    RemoteInvoice,
)
from ledgerbridge.store import invoices
from ledgerbridge.store.dynamo import PENDING_KEY, PENDING_VALUE
from ledgerbridge.store.invoices import InvoiceConflict

# --- write path ---------------------------------------------------------------------------


def _new_record(principal: Principal, invoice: InvoiceInput, invoice_id: str | None) -> dict[str, Any]:
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
        "project_id": principal.project_id,
        "id": invoice_id or str(uuid7()),
        PENDING_KEY: PENDING_VALUE,
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


def _count(provider: str, outcome: str, invoice_id: str, remote_id: str | None = None) -> None:
    """The create's outcome line: a count by provider and outcome, and the log of the outcome,
    naming the invoice (and the ledger's id for it) as searchable metadata. For a delivered
    invoice it is the only line the create writes: a Powertools log line beside it cost ~0.1 ms
    of a warm create's ~3 ms of CPU (``make bench``) and ~560 bytes of logs, to say the same."""
    metadata = {"invoice_id": invoice_id}
    if remote_id is not None:
        metadata["remote_id"] = remote_id
    count("InvoiceCreates", metadata, provider=provider, outcome=outcome)


@dataclass(frozen=True)
class Created:
    """201: stored, and synced at the provider or (``sync_status: pending``) queued because it
    could not be reached in time. 202: stored and queued at the caller's request
    (``respond_async``), the ledger not called. Either way the invoice exists in Ledgerbridge,
    with an id and a Location: a client must not send it again.

    ``record`` is the invoice as this create stored it; ``answer`` renders it without the model
    (``fresh_invoice_document``), ``invoice`` with it, for whoever wants the object."""

    record: dict[str, Any]
    status: int
    include_remote_data: bool

    @cached_property
    def invoice(self) -> Invoice:
        return to_invoice(self.record, self.include_remote_data)

    def answer(self) -> Answer:
        return _answer_of(self.status, fresh_invoice_document(self.record, self.include_remote_data))


def create_invoice(
    principal: Principal,
    invoice: InvoiceInput,
    include_remote_data: bool,
    deadline: float | None = None,
    respond_async: bool = False,
    invoice_id: str | None = None,
) -> Created:
    """Resolve and map (nothing stored yet), store, forward, settle.

    ``deadline`` (``time.monotonic()``) bounds the provider call, retries included; past it,
    the invoice is queued for the retry function and the caller gets 201 with
    ``sync_status: pending`` (a 202 broke Panora's SDK and clients generated from its spec,
    which know only 201, and invited blind resends). ``respond_async`` (``Prefer:
    respond-async``) stores, queues and answers 202 without calling the ledger: everything
    that can be refused is still refused first. Every other outcome but success is an
    ApiError (with ``invoice_id`` once the invoice is stored; a final one is kept on the failed
    invoice for an Idempotency-Key's retry). ``invoice_id`` is the id to give it (one an
    Idempotency-Key's record names), a new one if None.
    """
    references = resolve_references(principal.connection_id, invoice)
    record = _new_record(principal, invoice, invoice_id)
    provider = provider_for(principal.provider)
    connection = connection_context(principal, deadline)
    outbound = OutboundInvoice(record["id"], invoice, references)
    try:
        request = provider.map_invoice(connection, outbound)
    except InvalidInvoice as exc:
        raise errors.validation_error([FieldError(path, reason) for path, reason in exc.details]) from None
    invoices.create_pending(record)
    logger.append_keys(invoice_id=record["id"], provider=principal.provider)
    if respond_async:
        return Created(_queue(principal, record), 202, include_remote_data)
    try:
        settled = settle_delivered(principal, record, provider.send_invoice(connection, outbound, request))
    except ProviderRejected as exc:
        messages = failure_messages(principal, exc)
        reason = "; ".join(messages)
        error = ApiError(
            422,
            "provider_rejected",
            f"{principal.provider} refused the invoice: {reason}",
            [FieldError("provider", message) for message in messages],
            invoice_id=record["id"],
        )
        fail(principal, record["id"], reason, "rejected", error)
        raise error from None
    except ReauthorizationRequired as exc:
        reason = f"connection needs authorising again: {failure_text(principal, exc)}"
        error = ApiError(
            409,
            "reauthorization_required",
            f"{principal.provider} refused this connection's authorisation; connect it again."
            " Nothing was created.",
            invoice_id=record["id"],
        )
        fail(principal, record["id"], reason, "reauthorization_required", error)
        raise error from None
    except (ProviderUnavailable, SettleFailed) as exc:
        return Created(_accept(principal, record, failure_text(principal, exc)), 201, include_remote_data)
    _count(principal.provider, "created", record["id"], settled.get("remote_id"))
    return Created(settled, 201, include_remote_data)


def failure_messages(principal: Principal, exc: Exception) -> list[str]:
    """What a failure says, fit to answer, store and log: provider text cleaned (see redaction.py).

    A refusal keeps its messages apart (capped in number); any other exception is one message.
    Every exception text that may carry the provider's words reaches a response,
    ``sync_error`` or a log line through here or ``failure_text``.
    """
    from ledgerbridge import redaction  # failures only: see _queue_retry

    secrets = known_secrets(principal.connection_id)
    if isinstance(exc, ProviderRejected):
        return redaction.provider_messages(exc.messages, secrets)
    return [redaction.provider_text(str(exc), secrets)]


def failure_text(principal: Principal, exc: Exception) -> str:
    """``failure_messages`` as one reason."""
    return "; ".join(failure_messages(principal, exc))


class SettleFailed(Exception):
    """The provider has the record (an invoice, or a contact) but storing that failed; a retry
    re-derives it from the provider."""


def settle_delivered(principal: Principal, record: dict[str, Any], remote: RemoteInvoice) -> dict[str, Any]:
    """Settle a stored invoice with what the provider recorded; returns the stored invoice.

    Logs nothing when it settles: each caller writes the one line of its outcome (a create its
    ``_count`` line, a retry its own)."""
    try:
        settled = invoices.settle(record, _settled_changes(record, remote), remote.remote_data)
    except InvoiceConflict:  # a concurrent delivery settled it first: theirs is as good
        settled = invoices.get(principal.connection_id, record["id"])
    except ApiError as exc:
        logger.warning("settle failed after the provider accepted", extra={"remote_id": remote.remote_id})
        raise SettleFailed(f"{exc.message} (the provider has it as {remote.remote_id})") from exc
    return settled


def _accept(principal: Principal, record: dict[str, Any], reason: str) -> dict[str, Any]:
    """Keep the invoice pending and queue it; if even that fails, the sweeper will find it.
    Returns the invoice as stored.

    ``reason`` is stored and logged as it is: build it with ``failure_text``.
    """
    _count(principal.provider, "queued", record["id"])
    logger.warning("invoice queued for retry", extra={"reason": reason})
    try:
        record = invoices.record_attempt_error(principal.connection_id, record["id"], reason, now_text())
        _queue_retry(principal, record["id"])
    except Exception:  # the invoice is stored pending: the sweeper re-queues it
        logger.exception("could not queue the retry; the sweeper will")
    return record


def _queue(principal: Principal, record: dict[str, Any]) -> dict[str, Any]:
    """Queue a stored invoice for the retry function without trying the ledger first."""
    _count(principal.provider, "queued_async", record["id"])
    try:
        _queue_retry(principal, record["id"])
    except Exception:  # the invoice is stored pending: the sweeper queues it
        logger.exception("could not queue the invoice; the sweeper will")
    return record


def _queue_retry(principal: Principal, invoice_id: str) -> None:
    """A message for the retry function.

    ``retries`` (with the contacts' store it also serves) and ``redaction`` (its patterns
    compiled at import) are imported by the paths that use them, not at init: a create that
    the ledger takes needs neither, and together they were ~8 ms of every cold start (dev
    machine, Python 3.12). tests/integration/test_cold_start.py checks they stay unloaded."""
    from ledgerbridge import retries

    retries.enqueue(principal.project_id, principal.connection_id, invoice_id, now_text())


def fail(
    principal: Principal, invoice_id: str, reason: str, outcome: str, answer: ApiError | None = None
) -> None:
    """Mark a pending invoice failed for good, with the reason the caller will read.

    ``reason`` is stored and logged as it is: build any exception's part with ``failure_text``.
    ``answer``, the error the create request answers, is kept with it (the same write), so a
    retry with the request's Idempotency-Key answers it again.
    """
    kept = None if answer is None else idempotency.kept(answer)
    invoices.mark_failed(principal.connection_id, invoice_id, reason, now_text(), kept)
    _count(principal.provider, outcome, invoice_id)
    logger.info("invoice failed", extra={"outcome": outcome, "reason": reason})


# --- reads --------------------------------------------------------------------------------


def _stamped_lines(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The invoice's lines with its timestamps, which stored lines share (see ``_new_record``)."""
    stamps = {"created_at": record["created_at"], "modified_at": record["modified_at"]}
    return [{**stamps, **line} for line in record.get("line_items") or ()]


def to_invoice(record: dict[str, Any], include_remote_data: bool) -> Invoice:
    remote_data = record.get("remote_data") if include_remote_data else None  # none before the ledger answers
    lines = _stamped_lines(record)
    return Invoice.model_validate({**record, "line_items": lines, "remote_data": remote_data})


_INVOICE_FIELDS = tuple(Invoice.model_fields)
_LINE_FIELDS = tuple(LineItem.model_fields)


def fresh_invoice_document(record: dict[str, Any], include_remote_data: bool) -> dict[str, Any]:
    """``to_invoice(record, include_remote_data).model_dump()`` for an invoice this create has
    just stored, without the model's round trip.

    Validating our own record into ``Invoice`` parses every date-time and id it holds, and
    dumping it formats them back, to the text they already were: ~0.1 ms of a warm create's ~3
    (``make bench``). A record this create wrote holds what the model would give: date-times
    and ids as canonical text (the input model and ``now_text`` wrote them), amounts as
    Decimals, and the provider adds only numbers, totals, status, currency and exchange rate
    (``RemoteInvoice.fields``). Only the exchange rates differ: answered as strings. Reads of
    stored invoices (GET, lists, a retry's answer) keep the model, which also reads what older
    versions stored; tests/integration/test_invoices.py holds this answer to theirs, byte for
    byte, over generated invoices."""
    document = _dumped(record, _INVOICE_FIELDS)
    document["line_items"] = [_dumped(line, _LINE_FIELDS) for line in _stamped_lines(record)]
    if not include_remote_data:
        document["remote_data"] = None
    return document


def _dumped(values: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """``fields`` of ``values`` as the model dumps them: every one, None if absent, in order;
    the exchange rate as text (``ExchangeRateText``)."""
    dumped = {name: values.get(name) for name in fields}
    if dumped["exchange_rate"] is not None:
        dumped["exchange_rate"] = str(dumped["exchange_rate"])
    return dumped


def _answer_of(status: int, document: dict[str, Any]) -> Answer:
    """The answer of a create: the invoice as JSON and where to GET it."""
    return Answer(status, jsonutil.dumps(document), f"/accounting/invoices/{document['id']}")


def invoice_answer(status: int, invoice: Invoice) -> Answer:
    return _answer_of(status, invoice.model_dump())


def created_state(
    principal: Principal, invoice_id: str, success_status: int, include_remote_data: bool
) -> Stored | None:
    """A stored invoice as a retry of its create (same Idempotency-Key) answers it; None if not
    stored (yet)."""
    record = invoices.get(principal.connection_id, invoice_id)
    if record is None:
        return None
    return idempotency.replayed(
        record, invoice_answer(success_status, to_invoice(record, include_remote_data))
    )


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
    direction, anchor = decode_cursor(cursor) if cursor else ("after", None)
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
        next_cursor=encode_cursor("after", last) if more_after and last else None,
        prev_cursor=encode_cursor("before", first) if more_before and first else None,
    )
