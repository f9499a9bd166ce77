"""Creating a contact (customer or supplier) in the connection's ledger: POST /accounting/contacts.

The write path is the invoices' (service.py), for the same reasons: map first (a field the
ledger cannot hold, or a ledger that cannot create contacts at all, is a 422 before anything
is stored), store the contact ``pending``, forward it with its id as the ledger's
idempotency key (QuickBooks ``requestid``, Xero ``Idempotency-Key``, the sandbox's request
key; FreshBooks, Zoho Books, Exact Online and Pennylane have no keys, so their modules write
the id into a field of the contact that they look up before any resend, ``find_contact``),
then settle it ``synced`` (or ``failed``). Decisions:

- The contact is a reference record of kind ``contact`` (store/contacts.py), not a table of
  its own: ``resolve_references`` and ``GET /accounting/contacts`` see it at once, and an
  invoice can name it as ``contact_id`` as soon as it is synced.
- Its id is a UUIDv7 minted before the ledger answers (it is the idempotency key), so not
  the UUIDv5 the reference sync derives from a remote id; settling records remote id -> id
  and the sync keeps that id (connections.sync_references).
- The ledger refusing it: 422 ``provider_rejected`` with ``contact_id``, stored ``failed``
  with the ledger's reason, redacted (service.failure_messages). A refused connection: 409
  ``reauthorization_required``, stored ``failed``.
- The ledger unreachable (or the settle write failing after it accepted): 201 with
  ``sync_status: pending`` and the reason in ``sync_error``, as invoices answer, and the
  contact is queued on the invoices' retry queue (retries.py, a message of kind
  ``contact``) rather than a queue of its own: one connection's contacts and invoices then
  reach the ledger in the order they were made, through one retry function, one backoff and
  one dead-letter queue. If even queueing fails, the sweeper finds the pending contact
  (store/contacts.py's sparse index) and queues it.
- A retry (``deliver_pending``, run by redelivery.py) re-reads the stored contact and does
  nothing unless it is still pending; it asks the ledger for the contact an earlier attempt
  may have created (``base.find_contact``, for ledgers without idempotency keys), else maps
  and sends it again under the same id, so a lost answer never makes a second contact; and
  it settles as the request would have (``settle_delivered``), so the remote id -> id record
  is written and a later reference sync keeps the id. The ledger refusing it then stores it
  ``failed`` with the reason; after the queue's last attempt it is ``failed`` with "gave up
  after N attempts: ..." (redelivery.py decides both, for invoices and contacts alike).
- An invoice naming a contact that is still pending (or failed) is a 422 on ``contact_id``
  saying so (connections.resolve_references): the ledger has no record to point at yet. The
  shared FIFO group would deliver such an invoice after its contact, but the caller would
  then hold a pending invoice whose fate hangs on another record's; refusing it is plainer,
  and the caller retries once GET shows the contact synced.
- ``company_info_id`` is refused: Ledgerbridge syncs no company infos, so no id can be
  known. ``remote_updated_at`` is accepted (Panora's SDK sends its input shape whole) and
  ignored: the ledger decides it. ``field_mappings`` are stored beside the fields, not among
  them: a retry must resend exactly the contact the caller sent, but they are not answered
  as the contact's own (a ledger may ignore them). Values the caller gave win over the
  ledger's echo of them when stored (Xero, for one, decides is_customer/is_supplier from
  transactions only); the next reference sync replaces them with the ledger's own.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from ledgerbridge import errors, idempotency, jsonutil, retries
from ledgerbridge.auth import Principal
from ledgerbridge.connections import connection_context, provider_for
from ledgerbridge.errors import ApiError, FieldError
from ledgerbridge.idempotency import Answer, Stored
from ledgerbridge.ids import uuid7
from ledgerbridge.models import ContactInput, ContactResponse, now_text
from ledgerbridge.observability import logger
from ledgerbridge.providers import base
from ledgerbridge.providers.base import (
    ContactsNotSupported,
    InvalidInvoice,
    OutboundContact,
    ProviderRejected,
    ProviderUnavailable,
    ReauthorizationRequired,
    RemoteReference,
)
from ledgerbridge.service import SettleFailed, failure_messages, failure_text
from ledgerbridge.store import contacts as store
from ledgerbridge.store.contacts import ContactConflict

# Input fields not stored among the contact's fields (name and field_mappings are stored beside them).
_NOT_FIELDS = {"name", "remote_updated_at", "company_info_id", "field_mappings"}


@dataclass(frozen=True)
class CreatedContact:
    """201 either way: ``sync_status`` says synced, or pending (and queued) when the ledger did not answer."""

    contact: ContactResponse
    status: int


def create_contact(
    principal: Principal,
    contact: ContactInput,
    include_remote_data: bool,
    deadline: float | None = None,
    contact_id: str | None = None,
) -> CreatedContact:
    """Map (nothing stored yet), store pending, forward, settle; see the module docstring.

    Every outcome but 201 is an ApiError (with ``contact_id`` once the contact is stored; a
    final one is kept on the failed contact for an Idempotency-Key's retry). ``contact_id`` is
    the id to give it (one an Idempotency-Key's record names), a new one if None.
    """
    if contact.company_info_id is not None:
        raise errors.validation_error(
            [FieldError("company_info_id", "unknown company info for this connection")]
        )
    contact_id = contact_id or str(uuid7())
    provider = provider_for(principal.provider)
    if not base.supports_contacts(provider):  # before the connection's credentials are even loaded
        raise _not_supported(principal)
    connection = connection_context(principal, deadline)
    outbound = OutboundContact(contact_id, contact)
    request = _map(principal, provider, connection, outbound)
    fields = _fields(contact)
    store.create_pending(
        principal.project_id, principal.connection_id, contact_id, contact.name, fields, now_text(),
        field_mappings=contact.field_mappings,
    )  # fmt: skip
    logger.append_keys(contact_id=contact_id, provider=principal.provider)
    try:
        remote = base.send_contact(provider, connection, outbound, request)
        record = settle_delivered(principal, contact_id, fields, remote)
    except ProviderRejected as exc:
        raise _rejected(principal, contact_id, exc) from None
    except ReauthorizationRequired as exc:
        reason = f"connection needs authorising again: {failure_text(principal, exc)}"
        error = ApiError(
            409,
            "reauthorization_required",
            f"{principal.provider} refused this connection's authorisation; connect it again."
            " Nothing was created.",
            contact_id=contact_id,
        )
        fail(principal, contact_id, reason, "reauthorization_required", error)
        raise error from None
    except (ProviderUnavailable, SettleFailed) as exc:
        return CreatedContact(_keep_pending(principal, contact_id, failure_text(principal, exc)), 201)
    return CreatedContact(to_contact(record, include_remote_data), 201)


def deliver_pending(principal: Principal, record: dict[str, Any], deadline: float | None) -> None:
    """A retry's attempt at a stored pending contact: found at the ledger, else sent again; settled.

    The ledger's refusals and outages propagate (redelivery.py decides what each means), as
    does SettleFailed when the ledger has the contact but storing that failed.
    """
    contact_id, fields = record["id"], record.get("fields") or {}
    provider = provider_for(principal.provider)
    connection = connection_context(principal, deadline)
    outbound = OutboundContact(contact_id, stored_input(record))
    remote = base.find_contact(provider, connection, outbound)
    if remote is None:
        request = base.map_contact(provider, connection, outbound)
        remote = base.send_contact(provider, connection, outbound, request)
    settle_delivered(principal, contact_id, fields, remote)


def stored_input(record: dict[str, Any]) -> ContactInput:
    """The contact as the caller sent it (less what is never sent on), from the stored record."""
    given = {"name": record.get("name"), "field_mappings": record.get("field_mappings")}
    return ContactInput.model_validate({**(record.get("fields") or {}), **given})


def _map(
    principal: Principal, provider: Any, connection: base.ConnectionContext, outbound: OutboundContact
) -> Any:
    try:
        return base.map_contact(provider, connection, outbound)
    except ContactsNotSupported:
        raise _not_supported(principal) from None
    except InvalidInvoice as exc:
        raise errors.validation_error([FieldError(path, reason) for path, reason in exc.details]) from None


def _not_supported(principal: Principal) -> ApiError:
    return ApiError(
        422,
        "not_supported",
        f"Creating contacts in {principal.provider} is not supported yet. Nothing was stored.",
        [FieldError("provider", f"{principal.provider} cannot create contacts through Ledgerbridge yet")],
    )


def _fields(contact: ContactInput) -> dict[str, Any]:
    """The caller's unified fields as stored (JSON-shaped: the status as its text)."""
    dumped = contact.model_dump(mode="json", exclude_none=True)
    return {key: value for key, value in dumped.items() if key not in _NOT_FIELDS}


def settle_delivered(principal: Principal, contact_id: str, fields: dict, remote: RemoteReference) -> dict:
    """pending -> synced with what the ledger recorded; returns the stored contact.

    Raises SettleFailed when the store fails after the ledger accepted (the contact stays
    pending, and a retry finds it at the ledger or replays its idempotency key).
    """
    merged = {**{k: v for k, v in remote.fields.items() if v is not None}, **fields}
    try:
        record = store.settle(principal.connection_id, contact_id, remote, merged, now_text())
    except ContactConflict:  # settled (or failed) by another writer: theirs stands
        record = store.get(principal.connection_id, contact_id) or {}
    except ApiError as exc:
        logger.warning(
            "contact settle failed after the ledger accepted", extra={"remote_id": remote.remote_id}
        )
        raise SettleFailed(f"{exc.message} (the ledger has it as {remote.remote_id})") from exc
    logger.info("contact created", extra={"remote_id": remote.remote_id})
    return record


def _rejected(principal: Principal, contact_id: str, exc: ProviderRejected) -> ApiError:
    messages = failure_messages(principal, exc)
    reason = "; ".join(messages)
    error = ApiError(
        422,
        "provider_rejected",
        f"{principal.provider} refused the contact: {reason}",
        [FieldError("provider", message) for message in messages],
        contact_id=contact_id,
    )
    fail(principal, contact_id, reason, "rejected", error)
    return error


def fail(
    principal: Principal,
    contact_id: str,
    reason: str,
    outcome: str = "rejected",
    answer: ApiError | None = None,
) -> None:
    """Mark a pending contact failed for good; ``outcome`` names why in the log (redelivery's words).

    ``reason`` is stored and logged as it is: build any provider text with ``failure_text``.
    ``answer``, the error the create request answers, is kept with it (the same write) for a
    retry with the request's Idempotency-Key.
    """
    kept = None if answer is None else idempotency.kept(answer)
    with contextlib.suppress(ContactConflict):  # already settled or failed: that state stands
        store.mark_failed(principal.connection_id, contact_id, reason, now_text(), kept)
    logger.info("contact failed", extra={"outcome": outcome, "reason": reason})


def _keep_pending(principal: Principal, contact_id: str, reason: str) -> ContactResponse:
    """The ledger did not answer: the contact stays pending with the reason and is queued for a retry.

    If queueing fails too, the contact is still stored pending, and the sweeper queues it.
    """
    logger.warning("contact queued for retry", extra={"reason": reason})
    try:
        record = store.record_attempt_error(principal.connection_id, contact_id, reason, now_text())
    except (ContactConflict, ApiError):
        record = store.get(principal.connection_id, contact_id) or {}
    try:
        retries.enqueue(
            principal.project_id, principal.connection_id, contact_id, now_text(), retries.CONTACT
        )
    except Exception:  # the contact is stored pending: the sweeper queues it
        logger.exception("could not queue the contact's retry; the sweeper will")
    return to_contact(record, include_remote_data=False)


def contact_answer(status: int, contact: ContactResponse) -> Answer:
    """The answer of a create: the contact as JSON and where to GET it."""
    return Answer(status, jsonutil.dumps(contact.model_dump()), f"/accounting/contacts/{contact.id}")


def created_state(
    principal: Principal, contact_id: str, success_status: int, include_remote_data: bool
) -> Stored | None:
    """A stored contact as a retry of its create (same Idempotency-Key) answers it; None if not
    stored (yet)."""
    record = store.get(principal.connection_id, contact_id)
    if record is None:
        return None
    return idempotency.replayed(
        record, contact_answer(success_status, to_contact(record, include_remote_data))
    )


def to_contact(record: dict[str, Any], include_remote_data: bool) -> ContactResponse:
    """A stored contact record (store/references.unpack shape) as the API answers it."""
    flat = {
        **(record.get("fields") or {}),
        **{key: record.get(key) for key in ("id", "name", "remote_id", "created_at", "modified_at")},
        "sync_status": record.get("sync_status") or "synced",
        "sync_error": record.get("sync_error"),
        "remote_data": record.get("remote_data") if include_remote_data else None,
    }
    return ContactResponse.model_validate(flat)
