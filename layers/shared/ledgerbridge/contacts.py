"""Creating a contact (customer or supplier) in the connection's ledger: POST /accounting/contacts.

The write path is the invoices' (service.py), for the same reasons: map first (a field the
ledger cannot hold, or a ledger that cannot create contacts at all, is a 422 before anything
is stored), store the contact ``pending``, forward it with its id as the ledger's
idempotency key (QuickBooks ``requestid``, Xero ``Idempotency-Key``, the sandbox's request
key), then settle it ``synced`` (or ``failed``). Decisions:

- The contact is a reference record of kind ``contact`` (store/contacts.py), not a table of
  its own: ``resolve_references`` and ``GET /accounting/contacts`` see it at once, and an
  invoice can name it as ``contact_id`` as soon as it is synced.
- Its id is a UUIDv7 minted before the ledger answers (it is the idempotency key), so not
  the UUIDv5 the reference sync derives from a remote id; settling records remote id -> id
  and the sync keeps that id (connections.sync_references).
- An invoice naming a contact that is still pending (or failed) is a 422 on ``contact_id``
  saying so (connections.resolve_references): the ledger has no record to point at, and
  queueing the invoice behind the contact would need a retry path contacts do not have.
- The ledger refusing it: 422 ``provider_rejected`` with ``contact_id``, stored ``failed``
  with the ledger's reason, redacted (service.failure_messages). A refused connection: 409
  ``reauthorization_required``, stored ``failed``.
- The ledger unreachable (or the settle write failing after it accepted): 201 with
  ``sync_status: pending`` and the reason in ``sync_error``, as invoices answer. There is no
  retry queue for contacts yet: the contact stays pending until someone creates it again.
  A resend of the same contact id would replay at the ledger, but nothing resends it; and
  when the ledger did create it (a lost answer), the next reference sync lists it under a
  new UUIDv5 id beside the pending one. A contact retry (the invoices' retry function keyed
  by kind) is the next step.
- ``company_info_id`` is refused: Ledgerbridge syncs no company infos, so no id can be
  known. ``remote_updated_at`` is accepted (Panora's SDK sends its input shape whole) and
  ignored: the ledger decides it. Values the caller gave win over the ledger's echo of them
  when stored (Xero, for one, decides is_customer/is_supplier from transactions only); the
  next reference sync replaces them with the ledger's own.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from ledgerbridge import errors
from ledgerbridge.auth import Principal
from ledgerbridge.connections import connection_context, provider_for
from ledgerbridge.errors import ApiError, FieldError
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
from ledgerbridge.service import failure_messages, failure_text
from ledgerbridge.store import contacts as store
from ledgerbridge.store.contacts import ContactConflict

# Fields stored with the contact and answered flat (name is stored beside them).
_IGNORED = {"name", "remote_updated_at", "company_info_id", "field_mappings"}


@dataclass(frozen=True)
class CreatedContact:
    """201 either way: ``sync_status`` says synced, or pending when the ledger did not answer."""

    contact: ContactResponse
    status: int


def create_contact(
    principal: Principal, contact: ContactInput, include_remote_data: bool, deadline: float | None = None
) -> CreatedContact:
    """Map (nothing stored yet), store pending, forward, settle; see the module docstring.

    Every outcome but 201 is an ApiError (with ``contact_id`` once the contact is stored).
    """
    if contact.company_info_id is not None:
        raise errors.validation_error(
            [FieldError("company_info_id", "unknown company info for this connection")]
        )
    contact_id = str(uuid7())
    provider = provider_for(principal.provider)
    if not base.supports_contacts(provider):  # before the connection's credentials are even loaded
        raise _not_supported(principal)
    connection = connection_context(principal, deadline)
    outbound = OutboundContact(contact_id, contact)
    request = _map(principal, provider, connection, outbound)
    fields = _fields(contact)
    store.create_pending(principal.connection_id, contact_id, contact.name, fields, now_text())
    logger.append_keys(contact_id=contact_id, provider=principal.provider)
    try:
        remote = base.send_contact(provider, connection, outbound, request)
    except ProviderRejected as exc:
        raise _rejected(principal, contact_id, exc) from None
    except ReauthorizationRequired as exc:
        _fail(principal, contact_id, f"connection needs authorising again: {failure_text(principal, exc)}")
        raise ApiError(
            409,
            "reauthorization_required",
            f"{principal.provider} refused this connection's authorisation; connect it again."
            " Nothing was created.",
            contact_id=contact_id,
        ) from None
    except ProviderUnavailable as exc:
        return CreatedContact(_keep_pending(principal, contact_id, failure_text(principal, exc)), 201)
    return CreatedContact(_settle(principal, contact_id, fields, remote, include_remote_data), 201)


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
    return {k: v for k, v in contact.model_dump(mode="json", exclude_none=True).items() if k not in _IGNORED}


def _settle(
    principal: Principal, contact_id: str, fields: dict, remote: RemoteReference, include_remote_data: bool
) -> ContactResponse:
    merged = {**{k: v for k, v in remote.fields.items() if v is not None}, **fields}
    try:
        record = store.settle(principal.connection_id, contact_id, remote, merged, now_text())
    except ContactConflict:  # settled (or failed) by another writer: theirs stands
        record = store.get(principal.connection_id, contact_id) or {}
    except ApiError as exc:
        logger.warning(
            "contact settle failed after the ledger accepted", extra={"remote_id": remote.remote_id}
        )
        reason = f"{exc.message} (the ledger has it as {remote.remote_id})"
        return _keep_pending(principal, contact_id, reason)
    logger.info("contact created", extra={"remote_id": remote.remote_id})
    return to_contact(record, include_remote_data)


def _rejected(principal: Principal, contact_id: str, exc: ProviderRejected) -> ApiError:
    messages = failure_messages(principal, exc)
    reason = "; ".join(messages)
    _fail(principal, contact_id, reason)
    return ApiError(
        422,
        "provider_rejected",
        f"{principal.provider} refused the contact: {reason}",
        [FieldError("provider", message) for message in messages],
        contact_id=contact_id,
    )


def _fail(principal: Principal, contact_id: str, reason: str) -> None:
    """``reason`` is stored and logged as it is: build any provider text with ``failure_text``."""
    with contextlib.suppress(ContactConflict):  # already settled or failed: that state stands
        store.mark_failed(principal.connection_id, contact_id, reason, now_text())
    logger.info("contact failed", extra={"reason": reason})


def _keep_pending(principal: Principal, contact_id: str, reason: str) -> ContactResponse:
    """The ledger did not answer: the contact stays pending with the reason (no retry queue yet)."""
    logger.warning("contact left pending", extra={"reason": reason})
    try:
        record = store.record_attempt_error(principal.connection_id, contact_id, reason, now_text())
    except (ContactConflict, ApiError):
        record = store.get(principal.connection_id, contact_id) or {}
    return to_contact(record, include_remote_data=False)


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
