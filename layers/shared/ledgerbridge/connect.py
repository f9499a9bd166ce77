"""Hosted connect: an end customer connects their ledger in the browser; nobody carries tokens.

The flow, and the decisions a payments-grade API owes its callers:

1. ``create_session`` (the SaaS backend, ``x-api-key``): a session for one end user, expiring
   after 30 minutes, with an unguessable page token in its URL. ``return_url`` must be one the
   project registered (``ledgerbridge-admin set-project --return-url``): no open redirect.
   ``providers`` narrows the ledgers offered; ``connection_id`` makes it a reconnect of that
   connection (same provider only).
2. ``page`` (the end user): the ledgers offered, each with the questions it needs answered
   before consent (``ConnectChoice``). The page token stays usable until the session is
   settled or expires, so a user who comes back from a consent screen without finishing can
   choose again; once settled it only says so.
3. ``authorize``: a random ``state`` (stored as a hash, single use, 10 minutes, bound to the
   session and the ledger) and a PKCE verifier where the ledger takes PKCE; the answer is the
   provider's consent URL. The sandbox has no OAuth: its "consent screen" is Ledgerbridge's
   own page (``sandbox_consent``), so the whole flow can be seen without a provider account.
4. ``callback``: the ``state`` is taken (deleted) first, so a replayed or forged callback
   stores nothing and ends on an error page. A refusal at the provider settles the session
   ``failed`` (``access_denied``). Otherwise the code is exchanged (providers/oauth.py), the
   tenants the consent covers are discovered; several (Xero) → the user picks one on a page
   of ours (the tokens wait KMS-encrypted under a new single-use choice token). Then the
   connection is stored as ``create-connection`` stores it, its references are synced, and
   the browser goes to ``return_url?session_id=...&status=success`` (or ``status=error&
   error=...``; with no return URL, a page says what happened).
5. ``read_session`` (the backend): status, error, provider, connection id, and the connection
   token, which is kept KMS-encrypted only until the session expires.

Reconnect: the session's connection keeps its id and token; its credentials are replaced and
it is active again. A consent for another company than the connection's (a tenant whose
settings differ from the connection's in any setting both have) is refused, and nothing
changes. Codes, tokens and ``state`` values never reach a log line or an error text.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from ledgerbridge import connections
from ledgerbridge.auth import secret_hash
from ledgerbridge.errors import ApiError, FieldError, validation_error
from ledgerbridge.ids import uuid7
from ledgerbridge.models import format_date_time
from ledgerbridge.observability import logger
from ledgerbridge.providers import base
from ledgerbridge.store import accounts, invoices
from ledgerbridge.store import connect_sessions as store

SESSION_SECONDS = 30 * 60
STATE_SECONDS = 10 * 60
SANDBOX = "sandbox"
LEDGER_NAMES = {
    "sandbox": "Sandbox ledger (demo)",
    "quickbooks": "QuickBooks Online",
    "xero": "Xero",
    "freshbooks": "FreshBooks",
    "zoho_books": "Zoho Books",
    "exact_online": "Exact Online",
    "pennylane": "Pennylane",
}


class ConnectFailed(Exception):
    """The flow cannot go on; ``code`` is what the return URL's ``error`` says, ``message`` the page."""

    def __init__(self, code: str, message: str, session: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.message, self.session = code, message, session


@dataclass(frozen=True)
class Ledger:
    """One ledger as the connect page offers it."""

    name: str
    title: str
    choices: tuple[base.ConnectChoice, ...]


@dataclass(frozen=True)
class Page:
    session: dict[str, Any]
    ledgers: list[Ledger]


@dataclass(frozen=True)
class Redirect:
    """Where the browser goes next."""

    url: str


@dataclass(frozen=True)
class TenantChoice:
    """Several companies: the page lists them, each a link completing the flow with that one."""

    session: dict[str, Any]
    tenants: list[tuple[str, str]]  # (choice URL, company name)


# --- sessions (the SaaS backend) -------------------------------------------------------------


def _hash(secret: str) -> str:
    return secret_hash(secret)


def _connectable(name: str) -> bool:
    return name == SANDBOX or base.supports_connect(connections.provider_for(name))


def create_session(project_id: str, body: dict[str, Any], public_url: str) -> dict[str, Any]:
    """201 body ``{"id", "url", "expires_at"}``; a 422 naming each bad field, nothing stored."""
    project = accounts.get_project(project_id) or {}
    return_url, providers, connection_id, end_user = _session_fields(project, body)
    if connection_id:
        connection = accounts.get_connection(project_id, connection_id) if _is_id(connection_id) else None
        if connection is None or connection.get("status") == "deleted":
            raise validation_error([FieldError("connection_id", "no such connection in this project")])
        providers = [connection["provider"]]
    session_id, page_token = str(uuid7()), secrets.token_urlsafe(32)
    expires_at = int(time.time()) + SESSION_SECONDS
    session = {
        "project_id": project_id,
        "session_id": session_id,
        "end_user": end_user,
        "providers": providers,
        "return_url": return_url,
        "connection_id": connection_id,
        "status": "pending",
        "created_at": format_date_time_epoch(time.time()),
        "expires_at": expires_at,
    }
    store.put_session({k: v for k, v in session.items() if v is not None}, _hash(page_token))
    logger.info("connect session created", extra={"session_id": session_id})
    return {
        "id": session_id,
        "url": f"{public_url}/connect/{page_token}",
        "expires_at": format_date_time_epoch(expires_at),
    }


def format_date_time_epoch(seconds: float) -> str:
    """Epoch seconds (a stored Number comes back as a Decimal) as the API writes date-times."""
    from datetime import UTC, datetime

    return format_date_time(datetime.fromtimestamp(int(seconds), UTC))


def _session_fields(project: dict[str, Any], body: dict[str, Any]) -> tuple[Any, ...]:
    problems: list[FieldError] = []
    unknown = set(body) - {"end_user", "providers", "return_url", "connection_id"}
    problems += [FieldError(name[:64], "unknown field") for name in sorted(unknown)]
    end_user = body.get("end_user") if isinstance(body.get("end_user"), dict) else {}
    user_id = end_user.get("id")
    if not isinstance(user_id, str) or not user_id.strip():
        problems.append(FieldError("end_user.id", "required: the SaaS's own id for this end user"))
    for key in ("id", "email", "organization_name"):
        value = end_user.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > 255):
            problems.append(FieldError(f"end_user.{key}", "must be text of at most 255 characters"))
    extra = set(end_user) - {"id", "email", "organization_name"}
    problems += [FieldError(f"end_user.{name}"[:64], "unknown field") for name in sorted(extra)]
    return_url = body.get("return_url")
    registered = project.get("return_urls") or []
    if return_url is not None and (not isinstance(return_url, str) or return_url not in registered):
        problems.append(FieldError("return_url", "must be one of the project's registered return URLs"))
    providers = body.get("providers")
    if providers is None:
        providers = [name for name in LEDGER_NAMES if _connectable(name)]
    elif not isinstance(providers, list) or not providers or not all(isinstance(p, str) for p in providers):
        problems.append(FieldError("providers", "must be a non-empty list of ledger names"))
    else:
        bad = [name for name in providers if name not in LEDGER_NAMES or not _connectable(name)]
        if bad:
            problems.append(FieldError("providers", f"unknown or not connectable: {', '.join(bad)[:200]}"))
    connection_id = body.get("connection_id")
    if connection_id is not None and not isinstance(connection_id, str):
        problems.append(FieldError("connection_id", "must be a connection id"))
    if problems:
        raise validation_error(problems)
    clean_user = {key: end_user[key] for key in ("id", "email", "organization_name") if end_user.get(key)}
    return return_url, list(dict.fromkeys(providers)), connection_id, clean_user


def read_session(project_id: str, session_id: str) -> dict[str, Any]:
    """The outcome for the backend; the connection token only while the session lives."""
    session = store.get_session(project_id, session_id) if _is_id(session_id) else None
    if session is None:
        raise ApiError(404, "not_found", "Connect session not found.")
    expired = session["expires_at"] <= time.time()
    token = None
    if session.get("token_blob") and expired:
        store.forget_token(project_id, session_id)
    elif session.get("token_blob"):
        from ledgerbridge.store.credentials import decrypt_credentials

        token = decrypt_credentials(session["connection_id"], _blob(session["token_blob"]))["token"]
    view = session_view(session)
    expires_at = view.pop("expires_at")  # the token goes before it, as it always has
    return {**view, "connection_token": token, "expires_at": expires_at}


def session_view(session: dict[str, Any]) -> dict[str, Any]:
    """A stored session as ``read_session`` answers it, without the connection token: what a
    webhook event may carry (a token never leaves Ledgerbridge but through that GET)."""
    expired = session["expires_at"] <= time.time()
    status = "expired" if expired and session["status"] == "pending" else session["status"]
    return {
        "id": session["session_id"],
        "status": status,
        "error": session.get("error"),
        "provider": session.get("provider"),
        "connection_id": session.get("connection_id") if session["status"] == "connected" else None,
        "expires_at": format_date_time_epoch(session["expires_at"]),
    }


def _blob(value: Any) -> bytes:
    """A stored binary attribute (boto3 hands back ``Binary``) as bytes."""
    return bytes(getattr(value, "value", value))


def _is_id(value: str) -> bool:
    return 0 < len(value) <= 64 and value.replace("-", "").isalnum()


# --- the page and consent (the end user's browser) -------------------------------------------


def page(page_token: str) -> Page:
    session = _open(page_token)
    return Page(session, [_ledger(name) for name in session["providers"]])


def _open(page_token: str) -> dict[str, Any]:
    session = store.find_session_by_url_token(_hash(page_token)) if 0 < len(page_token) <= 128 else None
    if session is None or session["expires_at"] <= time.time():
        raise ConnectFailed("expired", "This link has expired or is not valid. Ask for a new one.")
    if session["status"] != "pending":
        raise ConnectFailed(
            "already_completed", "This connection request has already been completed.", session
        )
    return session


def _ledger(name: str) -> Ledger:
    choices = () if name == SANDBOX else base.connect_choices(connections.provider_for(name))
    return Ledger(name, LEDGER_NAMES[name], choices)


def authorize(page_token: str, provider: str, answers: dict[str, str], public_url: str) -> Redirect:
    """The consent screen to send the browser to, with a fresh single-use ``state``."""
    session = _open(page_token)
    if provider not in session["providers"]:
        raise ConnectFailed("invalid_request", "That ledger is not offered for this connection.", session)
    ledger = _ledger(provider)
    settings = {}
    for choice in ledger.choices:
        value = answers.get(choice.setting, choice.default)
        if value not in {option for option, _ in choice.options}:
            raise ConnectFailed("invalid_request", f"Choose a valid {choice.label.lower()}.", session)
        settings[choice.setting] = value
    state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    record = {
        "project_id": session["project_id"],
        "session_id": session["session_id"],
        "provider": provider,
        "settings": settings,
        "code_verifier": verifier,
        "expires_at": int(time.time()) + STATE_SECONDS,
    }
    store.put_state(_hash(state), record)
    if provider == SANDBOX:
        return Redirect(f"{public_url}/connect/sandbox/consent?{urlencode({'state': state})}")
    implementation = connections.provider_for(provider)
    client = _oauth_client(provider)
    request = base.AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri(client, public_url),
        state=state,
        code_challenge=_s256(verifier),
        settings=settings,
    )
    return Redirect(implementation.authorization_url(request))  # type: ignore[attr-defined]


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _oauth_client(provider: str) -> Any:
    from ledgerbridge.secrets import oauth_client

    try:
        return oauth_client(provider)
    except ApiError:
        raise ConnectFailed(
            "provider_not_configured", f"{LEDGER_NAMES[provider]} cannot be connected yet."
        ) from None


def _oauth_app(provider_name: str, settings: dict[str, str]) -> tuple[Any, Any]:
    """The deployment's OAuth app at the provider, for the token endpoint ``settings`` choose."""
    from ledgerbridge.providers.oauth import OAuthApp

    provider = connections.provider_for(provider_name)
    client = _oauth_client(provider_name)
    token_url = provider.oauth_token_url(settings) or ""
    rules = base.refresh_rules(provider)
    app = OAuthApp(token_url, client.client_id, client.client_secret, provider.oauth_client_auth,
                   client.redirect_uri, rules)  # fmt: skip
    return app, client


def redirect_uri(client: Any, public_url: str) -> str:
    """The callback the provider redirects to: the OAuth app's registered one, else ours."""
    return client.redirect_uri or f"{public_url}/connect/callback"


def sandbox_consent_is_valid(state: str) -> bool:
    """Whether the sandbox's own consent page may be shown for ``state`` (never consumed here)."""
    return 0 < len(state) <= 128


# --- the callback ---------------------------------------------------------------------------


def callback(query: dict[str, str], public_url: str) -> Redirect | TenantChoice:
    state = query.get("state") or ""
    record = store.take_state(_hash(state)) if 0 < len(state) <= 128 else None
    if record is None:
        raise ConnectFailed(
            "invalid_state", "This sign-in link has already been used or has expired. Start again."
        )
    session = _live_session(record)
    if query.get("error") or not query.get("code"):
        code = "access_denied" if query.get("error") == "access_denied" else "authorization_failed"
        return _fail(session, code, record["provider"])
    provider = record["provider"]
    try:
        if provider == SANDBOX:
            tokens, tenants = None, [base.Tenant("sandbox", "Sandbox ledger", {})]
        else:
            tokens, tenants = _exchange(record, query, public_url)
    except ConnectFailed as failed:
        return _fail(session, failed.code, provider)
    if not tenants:
        return _fail(session, "no_company", provider)
    if len(tenants) == 1:
        return _finish(session, provider, record["settings"], tenants[0], tokens)
    return _offer_tenants(session, record, tenants, tokens, public_url)


def _live_session(record: dict[str, Any]) -> dict[str, Any]:
    """The pending, unexpired session a state or choice record belongs to."""
    session = store.get_session(record["project_id"], record["session_id"])
    if session is None or session["expires_at"] <= time.time() or session["status"] != "pending":
        raise ConnectFailed(
            "expired", "This connection request has expired or is already completed.", session
        )
    return session


def _exchange(
    record: dict[str, Any], query: dict[str, str], public_url: str
) -> tuple[Any, list[base.Tenant]]:
    from ledgerbridge.provider_types import ProviderUnavailable, ReauthorizationRequired
    from ledgerbridge.providers.http import shared_client
    from ledgerbridge.providers.oauth import CodeRefused, exchange_code

    provider = connections.provider_for(record["provider"])
    settings = record["settings"]
    app, client = _oauth_app(record["provider"], settings)
    verifier = record["code_verifier"] if getattr(provider, "connect_pkce", False) else None
    try:
        tokens = exchange_code(
            shared_client(), app, query["code"], redirect_uri(client, public_url), verifier
        )
        tenants = provider.discover_tenants(shared_client(), tokens.access_token, settings, query)  # type: ignore[attr-defined]
    except CodeRefused:
        raise ConnectFailed("authorization_failed", "The ledger refused the sign-in.") from None
    except (ProviderUnavailable, ReauthorizationRequired):
        raise ConnectFailed("provider_unavailable", "The ledger could not be reached. Try again.") from None
    return tokens, list(tenants)


def _offer_tenants(
    session: dict[str, Any], record: dict[str, Any], tenants: list[base.Tenant], tokens: Any, public_url: str
) -> TenantChoice:
    from ledgerbridge.store.credentials import encrypt_credentials

    choices = []
    for tenant in tenants:
        choice = secrets.token_urlsafe(32)
        blob = encrypt_credentials(session["session_id"], tokens.to_credentials()) if tokens else None
        store.put_state(
            _hash(choice),
            {
                **{k: record[k] for k in ("project_id", "session_id", "provider", "settings")},
                "tenant": {"remote_id": tenant.remote_id, "name": tenant.name, "settings": tenant.settings},
                "tokens_blob": blob,
                "expires_at": int(time.time()) + STATE_SECONDS,
            },
        )
        choices.append((f"{public_url}/connect/tenant?{urlencode({'choice': choice})}", tenant.name))
    return TenantChoice(session, choices)


def choose_tenant(choice: str) -> Redirect:
    """The user picked one company: finish with it (every other choice of the page is void)."""
    from ledgerbridge.provider_types import OAuthTokens
    from ledgerbridge.store.credentials import decrypt_credentials

    record = store.take_state(_hash(choice)) if 0 < len(choice) <= 128 else None
    if record is None or "tenant" not in record:
        raise ConnectFailed("invalid_state", "This choice has already been used or has expired. Start again.")
    session = _live_session(record)
    tenant = base.Tenant(**record["tenant"])
    tokens = None
    if record.get("tokens_blob"):
        saved = decrypt_credentials(session["session_id"], _blob(record["tokens_blob"]))
        tokens = OAuthTokens(saved["access_token"], saved["refresh_token"], float(saved["expires_at"]))
    return _finish(session, record["provider"], record["settings"], tenant, tokens)


# --- finishing --------------------------------------------------------------------------------


def _finish(
    session: dict[str, Any], provider: str, settings: dict[str, str], tenant: base.Tenant, tokens: Any
) -> Redirect:
    from ledgerbridge.auth import Principal
    from ledgerbridge.store.credentials import encrypt_credentials

    connection_settings = {**settings, **tenant.settings}
    credentials = tokens.to_credentials() if tokens else None
    if session.get("connection_id"):
        try:
            connection_id, token = _reconnect(session, provider, connection_settings, credentials)
        except ConnectFailed as failed:
            return _fail(session, failed.code, provider)
    else:
        connection_id, token = connections.store_connection(
            session["project_id"], provider, credentials, connection_settings, tenant.name
        )
    blob = encrypt_credentials(connection_id, {"token": token}) if token else None
    changes = {"status": "connected", "provider": provider, "connection_id": connection_id}
    if blob:  # kept until the session expires; the sweeper finds it by ``pending`` (store docstring)
        changes.update(token_blob=blob, pending=store.TOKEN_HELD)
    store.finish_session(session["project_id"], session["session_id"], changes)
    principal = Principal(session["project_id"], connection_id, provider, connection_settings)
    try:
        connections.sync_references(principal)
    except Exception:  # the connection stands; the scheduled sync will try again
        logger.warning("references not synced after connect", extra={"connection_id": connection_id})
    logger.info(
        "connect session completed", extra={"session_id": session["session_id"], "provider": provider}
    )
    return Redirect(_outcome_url(session, {"status": "success"}))


def _reconnect(
    session: dict[str, Any], provider: str, settings: dict[str, str], credentials: dict[str, Any] | None
) -> tuple[str, str | None]:
    from ledgerbridge.store.credentials import replace_credentials

    connection = accounts.get_connection(session["project_id"], session["connection_id"]) or {}
    current = connection.get("settings") or {}
    if connection.get("provider") != provider or any(
        key in current and current[key] != value for key, value in settings.items()
    ):
        raise ConnectFailed(
            "different_company",
            "You signed in to a different company than this connection uses. Nothing was changed.",
            session,
        )
    replace_credentials(session["project_id"], session["connection_id"], credentials)
    return session["connection_id"], None


def _fail(session: dict[str, Any], code: str, provider: str) -> Redirect:
    store.finish_session(session["project_id"], session["session_id"], {"status": "failed", "error": code,
                                                                        "provider": provider})  # fmt: skip
    logger.info("connect session failed", extra={"session_id": session["session_id"], "error": code})
    if not session.get("return_url"):
        raise ConnectFailed(code, _MESSAGES.get(code, "The connection could not be completed."), session)
    return Redirect(_outcome_url(session, {"status": "error", "error": code}))


_MESSAGES = {
    "access_denied": "You declined access, so nothing was connected.",
    "authorization_failed": "The ledger did not complete the sign-in, so nothing was connected.",
    "provider_unavailable": "The ledger could not be reached, so nothing was connected. Try again later.",
    "no_company": "Your sign-in gives access to no company, so nothing was connected.",
}


def _outcome_url(session: dict[str, Any], outcome: dict[str, str]) -> str:
    query = urlencode({"session_id": session["session_id"], **outcome})
    return_url = session.get("return_url")
    if not return_url:
        return ""
    separator = "&" if urlsplit(return_url).query else "?"
    return f"{return_url}{separator}{query}"


# --- the project's connections (the SaaS backend) ------------------------------------------------


def connection_view(connection: dict[str, Any]) -> dict[str, Any]:
    """A stored connection as GET /connections/{id} answers it (webhook events carry it too)."""
    status = connection.get("status") or "active"
    return {
        "id": connection["connection_id"],
        "provider": connection["provider"],
        "status": status,
        "tenant_name": connection.get("tenant_name"),
        "created_at": connection.get("created_at"),
        "last_used_at": invoices.last_created_at(connection["connection_id"]),
        "needs_reauthorization": status == "needs_reauthorization",
        "status_reason": connection.get("status_reason"),
    }


def list_connections(project_id: str) -> list[dict[str, Any]]:
    """The project's connections, deleted ones left out, oldest first."""
    found = accounts.list_connections(project_id)
    return [connection_view(c) for c in found if c.get("status") != "deleted"]


def get_connection(project_id: str, connection_id: str) -> dict[str, Any]:
    connection = accounts.get_connection(project_id, connection_id) if _is_id(connection_id) else None
    if connection is None or connection.get("status") == "deleted":
        raise ApiError(404, "not_found", "Connection not found.")
    return connection_view(connection)


def delete_connection(project_id: str, connection_id: str) -> None:
    """Revoke the tokens at the provider where it can, then forget them and refuse the token.

    A revocation that fails (the provider down) does not keep the connection: the caller asked
    for it gone, its credentials are deleted here either way, and the provider's tokens expire
    on their own; the failure is logged. Stored invoices stay in the invoices table.
    """
    connection = accounts.get_connection(project_id, connection_id) if _is_id(connection_id) else None
    if connection is None or connection.get("status") == "deleted":
        raise ApiError(404, "not_found", "Connection not found.")
    _revoke(connection)
    from ledgerbridge.models import now_text

    accounts.mark_connection_deleted(project_id, connection_id, now_text())
    logger.info("connection deleted", extra={"connection_id": connection_id})


def _revoke(connection: dict[str, Any]) -> None:
    provider = connections.provider_for(connection["provider"])
    revoke = getattr(provider, "revoke_tokens", None)
    if not callable(revoke) or not connection.get("credentials"):
        return
    from ledgerbridge.provider_types import OAuthTokens
    from ledgerbridge.providers.http import shared_client
    from ledgerbridge.store.credentials import decrypt_credentials

    try:
        app, _ = _oauth_app(connection["provider"], connection.get("settings") or {})
        saved = decrypt_credentials(connection["connection_id"], _blob(connection["credentials"]))
        revoke(shared_client(), app, OAuthTokens.from_credentials(saved, 0))
    except Exception as exc:  # see delete_connection: logged, never a reason to keep the connection
        logger.warning("token revocation failed", extra={"error": type(exc).__name__})


def connection_invoices(
    project_id: str, connection_id: str, limit: int, cursor: str | None, include_remote_data: bool
) -> Any:
    """A connection's invoices for its project, deleted connections included: its token may be
    gone, but what was stored stays the project's (the same page as GET /accounting/invoices)."""
    from ledgerbridge.auth import Principal
    from ledgerbridge.service import list_invoices

    connection = accounts.get_connection(project_id, connection_id) if _is_id(connection_id) else None
    if connection is None:
        raise ApiError(404, "not_found", "Connection not found.")
    principal = Principal(project_id, connection_id, connection["provider"], connection.get("settings") or {})
    return list_invoices(principal, limit, cursor, include_remote_data)


def forget_expired_tokens() -> int:
    """The sweeper's share: remove the connection token of every expired session still holding one."""
    cutoff = format_date_time_epoch(time.time() - SESSION_SECONDS)
    held = store.sessions_holding_tokens(cutoff)
    for item in held:
        store.forget_token(item["pk"].removeprefix("PROJECT#"), item["sk"].removeprefix("CONNECT#"))
    if held:
        logger.info("expired connect sessions' tokens removed", extra={"count": len(held)})
    return len(held)
