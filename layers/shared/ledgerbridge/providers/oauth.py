"""OAuth 2 access tokens for one connection: refresh ahead of expiry, and once on a 401.

Xero and Exact Online rotate refresh tokens: each refresh returns a new one and retires
the old. Several Lambda containers may refresh one connection at the same moment, so the
stored tokens carry a version and a save only succeeds against the version it replaces.
The loser of a race re-reads and uses the winner's tokens; a refresh refused because the
refresh token was just rotated by someone else is resolved the same way. Only a refusal
with nothing newer stored means the connection must be authorised again.

What differs between token endpoints is the provider's ``RefreshRules`` (providers/base.py),
carried by the ``OAuthApp``:

- When to refresh: ``margin_seconds`` before expiry (two minutes unless the provider says
  otherwise; Exact Online refreshes only in the last half minute, see exact_online.py).
- What to send: grant type, refresh token and client credentials (``client_auth`` says
  where), plus the app's registered ``redirect_uri`` for endpoints documented to require it
  (FreshBooks).
- Which refusals mean what. ``invalid_grant`` (Zoho: ``invalid_code``) says the refresh token
  itself is dead: the connection is marked ``needs_reauthorization``. A refusal naming one
  of the provider's ``too_early`` texts (Exact: "access_token not expired") says the current
  access token is still good: it is kept, and no new refresh is asked for before it expires
  by our clock (Exact also counts token calls and errors against a daily and hourly limit).
  After a 401 the rejected token cannot be kept, so a "too early" then is
  ProviderUnavailable: the invoice waits for its retry, the connection stays connected.
  Anything else (``invalid_client``, ``invalid_request``: the deployment's OAuth app is
  wrong) is ProviderUnavailable too, never a reason to send every connection back to consent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, quote_plus, urlencode

import httpx

from ledgerbridge.provider_types import OAuthTokens as OAuthTokens
from ledgerbridge.provider_types import ProviderUnavailable, ReauthorizationRequired
from ledgerbridge.providers.base import DEFAULT_REFRESH_RULES, AuthorizationRequest, RefreshRules
from ledgerbridge.providers.http import json_body

REFRESH_MARGIN_SECONDS = DEFAULT_REFRESH_RULES.margin_seconds  # the default; a provider may choose its own
# Answers meaning "this refresh token is no good" (Zoho says invalid_code, with HTTP 200).
REFUSED_GRANT = ("invalid_grant", "invalid_code")
# After a "too early" refusal of a token our clock already counts as expired: ask again after this.
TOO_EARLY_RETRY_SECONDS = 30.0


def _error_in_body(response: httpx.Response) -> bool:
    """Some token endpoints (Zoho) refuse with HTTP 200 and an ``error`` field."""
    body = json_body(response) if response.status_code == 200 else None
    return isinstance(body, dict) and "error" in body and "access_token" not in body


def _error_texts(response: httpx.Response) -> tuple[str, str]:
    """A refusal's ``error`` code and its description (body and ``Reason`` header), for matching."""
    body = json_body(response)
    body = body if isinstance(body, dict) else {}
    description = f"{body.get('error_description', '')} {response.headers.get('reason', '')}"
    return str(body.get("error", "")), description.lower()


class CredentialStore(Protocol):
    """Where one connection's tokens live (DynamoDB + KMS in production)."""

    def load(self) -> OAuthTokens:
        """The stored tokens (consistent read); raises ReauthorizationRequired if marked so."""
        ...

    def save(self, tokens: OAuthTokens, replaces: OAuthTokens) -> bool:
        """Store ``tokens`` if ``replaces`` is still what is stored; False if someone was first."""
        ...

    def mark_needs_reauthorization(self, reason: str) -> None: ...


CLIENT_AUTH_STYLES = ("basic", "form", "json")


@dataclass(frozen=True)
class OAuthApp:
    """The deployment's OAuth app at one provider (client id/secret are configuration).

    ``client_auth`` is how the token endpoint wants the client credentials: ``basic`` (HTTP
    Basic, RFC 6749's default: Intuit, Xero), ``form`` (client_id/client_secret in the form
    body: Zoho, Exact Online, Pennylane) or ``json`` (a JSON body: FreshBooks).
    ``redirect_uri`` is the one registered with the app (configuration too); ``rules`` are the
    provider's, and say whether refreshes carry it.
    """

    token_url: str
    client_id: str
    client_secret: str
    client_auth: str = "basic"
    redirect_uri: str | None = None
    rules: RefreshRules = DEFAULT_REFRESH_RULES

    def __post_init__(self) -> None:
        if self.rules.sends_redirect_uri and not self.redirect_uri:
            raise ValueError("this provider's token endpoint needs the app's registered redirect_uri")


@dataclass(frozen=True)
class _Hold:
    """After a "too early" refusal: keep ``access_token`` without asking again until ``until``."""

    access_token: str
    until: float


def post_token_request(client: httpx.Client, app: OAuthApp, grant: dict[str, str]) -> httpx.Response:
    """POST ``grant`` to the app's token endpoint with the client credentials where it wants them."""
    credentials = {"client_id": app.client_id, "client_secret": app.client_secret}
    request: dict[str, Any] = {"headers": {"accept": "application/json"}}
    if app.client_auth == "basic":
        request.update(data=grant, auth=(app.client_id, app.client_secret))
    elif app.client_auth == "json":
        request.update(json={**grant, **credentials})
    else:
        request.update(data={**grant, **credentials})
    try:
        return client.post(app.token_url, **request)
    except httpx.TransportError as exc:
        raise ProviderUnavailable(f"{type(exc).__name__} calling the token endpoint") from exc


def code_flow_url(
    authorize_url: str,
    request: AuthorizationRequest,
    scope: str | None = None,
    extra: dict[str, str] | None = None,
    spaces_as: str = "+",
) -> str:
    """A consent screen's URL (RFC 6749 4.1.1): ``response_type=code``, the client, the redirect
    URI and ``state``, then the ledger's ``scope`` and ``extra`` parameters (PKCE, offline access).

    ``spaces_as`` is how a space in the scope is written: ``+`` (form encoding) or ``%20``
    (what FreshBooks' and Xero's SDKs send).
    """
    query = {
        "response_type": "code",
        "client_id": request.client_id,
        "redirect_uri": request.redirect_uri,
        "state": request.state,
        **({"scope": scope} if scope is not None else {}),
        **(extra or {}),
    }
    return f"{authorize_url}?{urlencode(query, quote_via=quote if spaces_as == '%20' else quote_plus)}"


def pkce_parameters(request: AuthorizationRequest) -> dict[str, str]:
    """RFC 7636's S256 challenge of the connect session's verifier."""
    return {"code_challenge": request.code_challenge, "code_challenge_method": "S256"}


class CodeRefused(Exception):
    """The token endpoint refused the authorisation code (expired, used, or not this app's)."""


def exchange_code(
    client: httpx.Client,
    app: OAuthApp,
    code: str,
    redirect_uri: str,
    code_verifier: str | None,
    clock: Callable[[], float] = time.time,
) -> OAuthTokens:
    """The authorisation code grant (RFC 6749 4.1.3, with PKCE's verifier where one was sent).

    A refusal (400/401, or Zoho's HTTP 200 with ``error``) is CodeRefused; anything else that
    is not a token is ProviderUnavailable. The answer's own text is never raised: it may echo
    the code.
    """
    grant = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if code_verifier:
        grant["code_verifier"] = code_verifier
    response = post_token_request(client, app, grant)
    if response.status_code in (400, 401) or _error_in_body(response):
        error, _ = _error_texts(response)
        raise CodeRefused(f"the token endpoint refused the code ({error or response.status_code})")
    body = json_body(response) if response.status_code == 200 else None
    if not isinstance(body, dict) or not body.get("access_token") or not body.get("refresh_token"):
        raise ProviderUnavailable(f"token endpoint answered HTTP {response.status_code} without tokens")
    return OAuthTokens(
        access_token=str(body["access_token"]),
        refresh_token=str(body["refresh_token"]),
        expires_at=clock() + float(body.get("expires_in", 1800)),
        version=0,
    )


class TokenSource:
    """Access tokens for one connection, kept in memory between invocations of a container."""

    def __init__(
        self,
        store: CredentialStore,
        app: OAuthApp,
        client: httpx.Client,
        clock: Callable[[], float] = time.time,
    ):
        self._store, self._app, self._client, self._clock = store, app, client, clock
        self._tokens: OAuthTokens | None = None
        self._hold: _Hold | None = None

    def access_token(self) -> str:
        tokens = self._tokens or self._remember(self._store.load())
        if self._expiring(tokens) and not self._held(tokens):
            tokens = self._refresh(tokens)
        return tokens.access_token

    def refresh_after_rejection(self, rejected_access_token: str) -> str:
        """After a 401: use a newer token if someone refreshed meanwhile, else refresh now."""
        tokens = self._remember(self._store.load())
        if tokens.access_token != rejected_access_token and not self._expiring(tokens):
            return tokens.access_token
        return self._refresh(tokens, force=True).access_token

    def known_secrets(self) -> tuple[str, ...]:
        """The tokens held in memory and the app's client secret: what provider text must not show.

        Only what is already held: nothing is loaded or refreshed to answer, and a provider can
        only echo what was sent to it, which was held here.
        """
        tokens = (self._tokens.access_token, self._tokens.refresh_token) if self._tokens else ()
        return (*tokens, self._app.client_secret)

    def _expiring(self, tokens: OAuthTokens) -> bool:
        return tokens.expires_at - self._clock() < self._app.rules.margin_seconds

    def _held(self, tokens: OAuthTokens) -> bool:
        hold = self._hold
        return hold is not None and hold.access_token == tokens.access_token and self._clock() < hold.until

    def _remember(self, tokens: OAuthTokens) -> OAuthTokens:
        self._tokens = tokens
        return tokens

    def _refresh(self, stale: OAuthTokens, force: bool = False) -> OAuthTokens:
        latest = self._store.load()
        if latest.version != stale.version and not self._expiring(latest):
            return self._remember(latest)  # another container refreshed already
        if not force and not self._expiring(latest):
            return self._remember(latest)
        response = self._post_refresh(latest.refresh_token)
        if response.status_code in (400, 401) or _error_in_body(response):
            return self._refused(latest, response, force)
        if response.status_code != 200:
            raise ProviderUnavailable(f"token endpoint answered HTTP {response.status_code}")
        fresh = self._parse(response, latest)
        if self._store.save(fresh, replaces=latest):
            return self._remember(fresh)
        return self._remember(self._store.load())  # lost the race: the stored tokens are newest

    def _post_refresh(self, refresh_token: str) -> httpx.Response:
        grant = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if self._app.rules.sends_redirect_uri:
            grant["redirect_uri"] = self._app.redirect_uri or ""
        return post_token_request(self._client, self._app, grant)

    def _refused(self, latest: OAuthTokens, response: httpx.Response, force: bool) -> OAuthTokens:
        """A refused refresh: rotated by a concurrent refresh, too early, truly revoked, or our app's fault.

        Only ``invalid_grant`` speaks about the connection's refresh token; anything else
        (``invalid_client``: a wrong client secret) is the deployment's problem, and must
        not send every connection back through the consent screen.
        """
        again = self._store.load()
        if again.version != latest.version:
            return self._remember(again)
        reason, description = _error_texts(response)
        if any(text.lower() in description for text in self._app.rules.too_early):
            return self._too_early(latest, reason, force)
        if reason not in REFUSED_GRANT:
            raise ProviderUnavailable(
                f"token endpoint refused Ledgerbridge's OAuth app ({reason or response.status_code})"
            )
        self._store.mark_needs_reauthorization(f"refresh token {reason}")
        raise ReauthorizationRequired(f"the provider refused the refresh token ({reason})")

    def _too_early(self, latest: OAuthTokens, reason: str, force: bool) -> OAuthTokens:
        """The provider says the current access token is still valid: keep it until it expires.

        After a 401 (``force``) that token was just refused, so there is nothing to keep: the
        call fails as ProviderUnavailable and is retried later, when a refresh is allowed.
        """
        if force:
            raise ProviderUnavailable(f"the provider refuses a new access token yet ({reason or 'early'})")
        now = self._clock()
        until = latest.expires_at if latest.expires_at > now else now + TOO_EARLY_RETRY_SECONDS
        self._hold = _Hold(latest.access_token, until)
        return self._remember(latest)

    def _parse(self, response: httpx.Response, latest: OAuthTokens) -> OAuthTokens:
        body = json_body(response)
        if not isinstance(body, dict) or "access_token" not in body:
            raise ProviderUnavailable("token endpoint answered without an access token")
        return OAuthTokens(
            access_token=str(body["access_token"]),
            refresh_token=str(body.get("refresh_token") or latest.refresh_token),
            expires_at=self._clock() + float(body.get("expires_in", 1800)),
            version=latest.version + 1,
        )
