"""Connections at work: which provider, with which credentials, and what it knows.

This is where a connection's provider module meets Ledgerbridge's storage: the provider
registry, the per-request ConnectionContext (HTTP with the connection's OAuth tokens and
the request's deadline), and references (sync from the provider, resolve for an invoice,
list for the reference routes). Provider modules stay free of DynamoDB; the store stays
free of HTTP.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any
from uuid import UUID

from ledgerbridge import errors
from ledgerbridge.auth import Principal
from ledgerbridge.errors import ApiError, FieldError
from ledgerbridge.expiring import ExpiringCache
from ledgerbridge.ids import reference_id
from ledgerbridge.models import InvoiceInput, now_text
from ledgerbridge.params import decode_cursor, encode_cursor
from ledgerbridge.providers.base import ConnectionContext, Provider, RemoteReference, refresh_rules
from ledgerbridge.store import references


def _sandbox() -> Provider:
    from ledgerbridge.providers.sandbox import SandboxProvider
    from ledgerbridge.store.sandbox_ledger import DynamoSandboxLedger

    return SandboxProvider(DynamoSandboxLedger())


def _lazy(module: str, class_name: str) -> Callable[[], Provider]:
    """A factory importing the provider's module on first use, so a container loads only what it uses."""

    def factory() -> Provider:
        return getattr(importlib.import_module(f"ledgerbridge.providers.{module}"), class_name)()

    return factory


PROVIDER_FACTORIES: dict[str, Callable[[], Provider]] = {
    "sandbox": _sandbox,
    "quickbooks": _lazy("quickbooks", "QuickBooksProvider"),
    "xero": _lazy("xero", "XeroProvider"),
    "freshbooks": _lazy("freshbooks", "FreshBooksProvider"),
    "zoho_books": _lazy("zoho_books", "ZohoBooksProvider"),
    "exact_online": _lazy("exact_online", "ExactOnlineProvider"),
    "pennylane": _lazy("pennylane", "PennylaneProvider"),
}
_providers: dict[str, Provider] = {}
_token_sources: dict[str, Any] = {}


def provider_for(name: str) -> Provider:
    """One provider instance per container."""
    if name not in _providers:
        factory = PROVIDER_FACTORIES.get(name)
        if factory is None:
            raise ApiError(422, "provider_not_supported", f"Provider '{name}' is not supported.")
        _providers[name] = factory()
    return _providers[name]


def _token_source(principal: Principal, provider: Provider, token_url: str) -> Any:
    """The connection's TokenSource, kept per container so warm calls skip KMS and refreshes."""
    source = _token_sources.get(principal.connection_id)
    if source is None:
        from ledgerbridge.providers.http import shared_client
        from ledgerbridge.providers.oauth import OAuthApp, TokenSource
        from ledgerbridge.secrets import oauth_client
        from ledgerbridge.store.credentials import DynamoCredentialStore

        rules = refresh_rules(provider)
        client_id, secret, redirect_uri = oauth_client(provider.name, rules.sends_redirect_uri)
        app = OAuthApp(token_url, client_id, secret, provider.oauth_client_auth, redirect_uri, rules)
        store = DynamoCredentialStore(principal.project_id, principal.connection_id)
        source = _token_sources[principal.connection_id] = TokenSource(store, app, shared_client())
    return source


def store_connection(
    project_id: str,
    provider: str,
    credentials: dict[str, Any] | None,
    connection_settings: dict[str, str] | None,
    tenant_name: str | None = None,
) -> tuple[str, str]:
    """A new connection (credentials KMS-encrypted) and its token; returns (connection id, token).

    The token exists only here and as its hash: whoever creates the connection hands it on
    (the admin CLI prints it, a connect session keeps it encrypted until it expires).
    """
    import secrets

    from ledgerbridge.auth import secret_hash
    from ledgerbridge.ids import uuid7
    from ledgerbridge.models import now_text
    from ledgerbridge.store import accounts
    from ledgerbridge.store.credentials import encrypt_credentials

    connection_id = str(uuid7())
    token = f"lbc_{secrets.token_urlsafe(32)}"
    record = {
        "project_id": project_id,
        "connection_id": connection_id,
        "provider": provider,
        "settings": connection_settings or {},
        "credentials": encrypt_credentials(connection_id, credentials) if credentials else None,
        "credentials_version": 0 if credentials else None,
        "created_at": now_text(),
        **({"tenant_name": tenant_name} if tenant_name else {}),
    }
    accounts.put_connection(record, secret_hash(token))
    return connection_id, token


def known_secrets(connection_id: str) -> tuple[str, ...]:
    """The connection's secrets this container holds (OAuth tokens, the app's client secret).

    For ``redaction.provider_text``: what a provider might echo back in an error. Nothing is
    loaded to answer (no KMS, no Secrets Manager), so it is safe on any failure path; a
    connection whose tokens were never loaded here has sent none, and has none to hide.
    """
    source = _token_sources.get(connection_id)
    return source.known_secrets() if source is not None else ()


def connection_context(principal: Principal, deadline: float | None = None) -> ConnectionContext:
    """What the connection's provider needs for one call: settings, and HTTP with its tokens."""
    provider = provider_for(principal.provider)
    http = None
    token_url = provider.oauth_token_url(principal.connection_settings)
    if token_url:
        from ledgerbridge.providers.http import ProviderHttp, shared_client

        http = ProviderHttp(shared_client(), _token_source(principal, provider, token_url), deadline)
    return ConnectionContext(
        principal.connection_id, principal.provider, principal.connection_settings, http, deadline
    )


# --- references ---------------------------------------------------------------------------


def sync_references(principal: Principal) -> dict[str, int]:
    """Store every record the provider lists under its stable Ledgerbridge id; counts by kind.

    A record created through Ledgerbridge keeps the id it was created with (store/references.py).
    """
    connection = connection_context(principal)
    counts: dict[str, int] = {}
    synced_at = now_text()
    known = references.known_ids(principal.connection_id)
    for ref in provider_for(principal.provider).list_references(connection):
        ref_id = known.get((ref.kind, ref.remote_id)) or reference_id(
            principal.connection_id, ref.kind, ref.remote_id
        )
        references.put(principal.connection_id, ref_id, ref, synced_at)
        counts[ref.kind] = counts.get(ref.kind, 0) + 1
    return counts


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


# Resolved references a warm container keeps (see _records), by (connection id, kind, id).
_resolved: ExpiringCache[tuple[str, str, str], dict[str, Any]] = ExpiringCache(limit=4096)
RESOLVED_SECONDS = 60


def resolve_references(connection_id: str, invoice: InvoiceInput) -> dict[str, RemoteReference]:
    """The provider's record behind each referenced UUID; unknown ones are a 422 naming the field."""
    fields = _reference_fields(invoice)
    if not fields:
        return {}
    found = _records(connection_id, [(kind, str(ref)) for _, kind, ref in fields])
    unknown = [
        FieldError(path, f"unknown {kind.replace('_', ' ')} for this connection")
        for path, kind, ref in fields
        if (kind, str(ref)) not in found
    ]
    unknown += [
        FieldError(path, _not_in_ledger(kind, found[(kind, str(ref))]))
        for path, kind, ref in fields
        if (kind, str(ref)) in found and not found[(kind, str(ref))].get("remote_id")
    ]
    if unknown:
        raise errors.validation_error(unknown)
    return {path: _remote_reference(found[(kind, str(ref))]) for path, kind, ref in fields}


def _records(connection_id: str, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """``references.get_many``, answered from what this container resolved in the last
    RESOLVED_SECONDS where it can, so a warm create that names a customer and an item reads
    nothing (one BatchGetItem per create before).

    Only records already in the ledger are kept: their remote id is fixed for good (the
    reference id is derived from it), so no create can reach the wrong ledger record. What can
    be that much behind is the rest of the record, as the last sync left it (a contact's
    currency, an item's price), which providers read while mapping; a pending or failed
    contact is read again every time, as it may settle any moment.
    """
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, ref in keys:
        record = _resolved.get((connection_id, kind, ref))
        if record is not None:
            found[(kind, ref)] = record
    missing = [key for key in keys if key not in found]
    if missing:
        fetched = references.get_many(connection_id, missing)
        for (kind, ref), record in fetched.items():
            if record.get("remote_id"):
                _resolved.put((connection_id, kind, ref), record, RESOLVED_SECONDS)
        found.update(fetched)
    return found


def _not_in_ledger(kind: str, record: dict[str, Any]) -> str:
    """Why a record created through Ledgerbridge cannot be pointed at yet (no remote id)."""
    what = kind.replace("_", " ")
    if record.get("sync_status") == "failed":
        return f"this {what} did not reach the ledger (sync_status failed; sync_error says why)"
    return f"this {what} is not yet created in the ledger (sync_status pending); try again later"


def _remote_reference(record: dict[str, Any]) -> RemoteReference:
    return RemoteReference(
        kind=record["kind"],
        remote_id=record["remote_id"],
        name=record["name"],
        fields=record.get("fields") or {},
        remote_data=record.get("remote_data"),
    )


def list_references(
    principal: Principal, kind: str, limit: int, cursor: str | None, include_remote_data: bool
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of one kind's references as flat records, and the next cursor (forward only)."""
    after = None
    if cursor:
        direction, after = decode_cursor(cursor)
        if direction != "after":
            raise errors.bad_request(
                "Reference lists page forward only.", [FieldError("cursor", "forward only")]
            )
    records, has_more = references.page(principal.connection_id, kind, limit, after)
    flat = [_flat_reference(record, include_remote_data) for record in records]
    next_cursor = encode_cursor("after", records[-1]["id"]) if has_more and records else None
    return flat, next_cursor


def get_reference(
    principal: Principal, kind: str, reference_id: str, include_remote_data: bool
) -> dict[str, Any]:
    """One of the connection's references as a flat record; 404 when it is not this connection's."""
    try:
        key = (kind, str(UUID(reference_id)))
    except ValueError:
        raise errors.not_found(kind.replace("_", " ").capitalize()) from None
    record = references.get_many(principal.connection_id, [key]).get(key)
    if record is None:
        raise errors.not_found(kind.replace("_", " ").capitalize())
    return _flat_reference(record, include_remote_data)


def _flat_reference(record: dict[str, Any], include_remote_data: bool) -> dict[str, Any]:
    """Panora's flat shape: the provider's mapped fields beside the common ones."""
    return {
        **(record.get("fields") or {}),
        **{key: record[key] for key in ("id", "created_at", "modified_at")},
        **{key: record.get(key) for key in ("name", "remote_id")},
        **{key: record[key] for key in ("sync_status", "sync_error") if key in record},
        "remote_data": record["remote_data"] if include_remote_data else None,
    }
