"""Xero hosted connect: the consent URL, the code exchange, tenant discovery and revocation.

The round trips run against the fake Xero (its consent screen, token, connections and
revocation endpoints) through httpx.MockTransport; the URL and scopes are checked against
Xero's own OpenAPI document (tests/fixtures/specs) and Xero's published scope list
(tests/fixtures/providers/xero/oauth-scopes.json).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ledgerbridge.providers import http as provider_http
from ledgerbridge.providers.base import (
    AuthorizationRequest,
    ConnectionContext,
    ProviderUnavailable,
    ReauthorizationRequired,
    Tenant,
    connect_choices,
    supports_connect,
)
from ledgerbridge.providers.oauth import CodeRefused, OAuthApp, OAuthTokens, exchange_code, post_token_request
from ledgerbridge.providers.xero import CONNECT_SCOPES, XeroProvider
from tests.fakes.consent import click, query, s256
from tests.fakes.xero import (
    AUTHORIZE_PATH,
    CLIENT_ID,
    CLIENT_SECRET,
    CONNECTIONS_PATH,
    REDIRECT_URI,
    REVOCATION_PATH,
    TENANT_ID,
    FakeXero,
    recorded_body,
)
from tests.support.openapi import _document
from tests.support.providers import fake_http

provider = XeroProvider()
STATE = "state-7f3a"
SCOPES = json.loads((Path(__file__).parents[1] / "fixtures/providers/xero/oauth-scopes.json").read_text())
# Every Accounting API operation Ledgerbridge calls (providers/xero.py): sync, contacts, invoices, memo notes.
OPERATIONS = (
    ("get", "/Accounts"),
    ("get", "/Items"),
    ("get", "/TrackingCategories"),
    ("get", "/Contacts"),
    ("put", "/Contacts"),
    ("put", "/Invoices"),
    ("put", "/Invoices/{InvoiceID}/History"),
)


def spec() -> dict[str, Any]:
    registry, uri = _document("xero_accounting")
    document: dict[str, Any] = registry.contents(uri)
    return document


def request(settings: dict[str, str] | None = None) -> AuthorizationRequest:
    return AuthorizationRequest(CLIENT_ID, REDIRECT_URI, STATE, s256("v" * 64), settings or {})


def app() -> OAuthApp:
    token_url = provider.oauth_token_url()
    assert token_url is not None
    return OAuthApp(token_url, CLIENT_ID, CLIENT_SECRET, provider.oauth_client_auth)


def browse(client: httpx.Client, url: str) -> httpx.Response:
    return client.get(url, follow_redirects=False)


def decide(client: httpx.Client, link: str) -> dict[str, list[str]]:
    """Open the consent page, click ``link`` (approve/refuse); the query Xero redirects back with."""
    return click(client, provider.authorization_url(request()), link, REDIRECT_URI)


def consent(client: httpx.Client) -> OAuthTokens:
    """Approve, come back with the code, exchange it: what the callback does."""
    callback = decide(client, "approve")
    assert callback["state"] == [STATE]
    return exchange_code(client, app(), callback["code"][0], REDIRECT_URI, None)


class Held:
    """The access token a consent just gave; a 401 would mean that consent is no good."""

    def __init__(self, tokens: OAuthTokens):
        self.tokens = tokens

    def access_token(self) -> str:
        return self.tokens.access_token

    def refresh_after_rejection(self, rejected_access_token: str) -> str:
        raise ReauthorizationRequired("the new access token was refused")


@pytest.fixture
def fake() -> FakeXero:
    return FakeXero()


@pytest.fixture
def client(fake: FakeXero) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(fake.handle))


@pytest.fixture
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(provider_http, "_sleep", waits.append)
    return waits


# --- the authorisation URL ------------------------------------------------------------------


def test_the_authorisation_url_is_xeros_documented_endpoint_with_a_code_request() -> None:
    url = provider.authorization_url(request())
    flows = spec()["components"]["securitySchemes"]["OAuth2"]["flows"]["authorizationCode"]
    assert (
        url.split("?")[0] == flows["authorizationUrl"] == "https://login.xero.com/identity/connect/authorize"
    )
    assert provider.oauth_token_url() == flows["tokenUrl"]
    sent = query(url)
    assert sorted(sent) == ["client_id", "redirect_uri", "response_type", "scope", "state"]
    assert sent["response_type"] == ["code"]
    assert sent["client_id"] == [CLIENT_ID]
    assert sent["redirect_uri"] == [REDIRECT_URI]
    assert sent["state"] == [STATE]
    assert " " not in url and "%20" in url  # scopes are space-separated, encoded as %20


def test_no_pkce_and_no_questions_before_consent() -> None:
    assert provider.connect_pkce is False
    assert "code_challenge" not in provider.authorization_url(request())
    assert connect_choices(provider) == ()
    assert supports_connect(provider)
    # With no choice the host cannot depend on settings: any settings give the same consent screen.
    assert provider.authorization_url(request({"tenant_id": "x"})) == provider.authorization_url(request())


def test_the_scopes_are_xeros_current_granular_ones_with_a_refresh_token() -> None:
    scopes = query(provider.authorization_url(request()))["scope"][0].split(" ")
    assert scopes == list(CONNECT_SCOPES)
    assert scopes == [
        "offline_access",
        "accounting.invoices",
        "accounting.contacts",
        "accounting.settings.read",
    ]
    assert SCOPES["offline_access"] in scopes  # Xero issues a refresh token only with it
    for scope in scopes[1:]:
        assert scope in SCOPES["accounting_scopes"], scope
        assert scope not in SCOPES["deprecated"], scope


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_the_scopes_allow_every_operation_ledgerbridge_calls(method: str, path: str) -> None:
    """Each operation's scopes in Xero's OpenAPI, the deprecated broad one read as its granular successor."""
    required = spec()["paths"][path][method]["security"][0]["OAuth2"]
    resource = path.strip("/").split("/")[0]
    accepted = {
        SCOPES["granular_successor_by_endpoint"].get(scope, {}).get(resource, scope) for scope in required
    }
    assert accepted & set(CONNECT_SCOPES), (method, path, required)


def test_an_environment_override_moves_the_consent_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERBRIDGE_XERO_AUTHORIZE_URL", "http://127.0.0.1:8765/identity/connect/authorize/")
    url = provider.authorization_url(request())
    assert url.split("?")[0] == "http://127.0.0.1:8765/identity/connect/authorize"
    assert query(url)["state"] == [STATE]


# --- consent, code exchange, tenants ----------------------------------------------------------


def test_a_full_consent_finds_both_organisations_and_the_new_tokens_work(
    fake: FakeXero, client: httpx.Client
) -> None:
    tokens = consent(client)

    token_request = next(r for r in fake.requests if r.url.path == "/connect/token")
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert token_request.headers["authorization"] == f"Basic {basic}"
    assert token_request.url.host == "identity.xero.com"
    assert "code_verifier" not in parse_qs(token_request.content.decode())
    assert tokens.access_token in fake.access_tokens and tokens.refresh_token in fake.grants

    tenants = provider.discover_tenants(client, tokens.access_token, {}, {"code": "used", "state": STATE})
    recorded = recorded_body("list-tenants")
    assert tenants == [
        Tenant(recorded[0]["tenantId"], "Demo Company (Global)", {"tenant_id": recorded[0]["tenantId"]}),
        Tenant(recorded[1]["tenantId"], "acmeAPI", {"tenant_id": recorded[1]["tenantId"]}),
    ]
    listed = fake.requests[-1]
    assert (listed.method, listed.url.host, listed.url.path) == ("GET", "api.xero.com", CONNECTIONS_PATH)
    assert listed.headers["authorization"] == f"Bearer {tokens.access_token}"

    # The connection made from the first tenant's settings reaches its books with the new token.
    connection = ConnectionContext(
        "conn-new", "xero", tenants[0].settings, http=fake_http(fake.handle, Held(tokens))
    )
    references = provider.list_references(connection)
    assert {ref.kind for ref in references} == {"contact", "item", "account", "tracking_category"}
    assert fake.requests[-1].headers["xero-tenant-id"] == TENANT_ID == tenants[0].remote_id


def test_the_code_grant_answers_xeros_token_shape_with_the_consented_scopes(
    fake: FakeXero, client: httpx.Client
) -> None:
    callback = decide(client, "approve")
    grant = {"grant_type": "authorization_code", "code": callback["code"][0], "redirect_uri": REDIRECT_URI}
    answer = post_token_request(client, app(), grant)
    assert answer.status_code == 200
    body = answer.json()
    assert sorted(body) == ["access_token", "expires_in", "refresh_token", "scope", "token_type"]
    assert (body["expires_in"], body["token_type"]) == (1800, "Bearer")
    assert body["scope"].split(" ") == list(CONNECT_SCOPES)


def test_refusing_consent_comes_back_with_access_denied(client: httpx.Client) -> None:
    assert decide(client, "refuse") == {"error": ["access_denied"], "state": [STATE]}


def test_a_code_cannot_be_exchanged_twice(client: httpx.Client) -> None:
    code = decide(client, "approve")["code"][0]
    exchange_code(client, app(), code, REDIRECT_URI, None)
    with pytest.raises(CodeRefused):
        exchange_code(client, app(), code, REDIRECT_URI, None)


def test_a_code_is_refused_for_another_redirect_uri(client: httpx.Client) -> None:
    code = decide(client, "approve")["code"][0]
    with pytest.raises(CodeRefused):
        exchange_code(client, app(), code, "https://elsewhere.test/connect/callback", None)


def test_the_consent_screen_refuses_a_request_missing_a_scope(client: httpx.Client) -> None:
    url = provider.authorization_url(request()).replace("%20accounting.invoices", "")
    page = browse(client, url)
    assert page.status_code == 400 and "accounting.invoices" in page.text and "location" not in page.headers


# --- tenant discovery: what else Xero can answer ----------------------------------------------


def test_only_organisations_become_tenants_and_none_is_an_empty_list(
    fake: FakeXero, client: httpx.Client
) -> None:
    tokens = consent(client)
    acme = recorded_body("list-tenants")[1]
    practice = {**acme, "tenantId": "5b1c5b8a-0000-4000-8000-000000000001", "tenantType": "PRACTICE"}
    fake.connections = [practice, acme]
    assert [t.name for t in provider.discover_tenants(client, tokens.access_token, {}, {})] == ["acmeAPI"]
    fake.connections = []
    assert provider.discover_tenants(client, tokens.access_token, {}, {}) == []


def test_a_refused_token_needs_a_new_consent(fake: FakeXero, client: httpx.Client) -> None:
    with pytest.raises(ReauthorizationRequired):
        provider.discover_tenants(client, "not-a-xero-token", {}, {})
    tokens = consent(client)
    fake.fail_next(403)
    with pytest.raises(ReauthorizationRequired):
        provider.discover_tenants(client, tokens.access_token, {}, {})


def test_an_unavailable_xero_is_retried_then_reported(
    fake: FakeXero, client: httpx.Client, no_waiting: list[float]
) -> None:
    tokens = consent(client)
    fake.fail_next(503, times=1)
    assert len(provider.discover_tenants(client, tokens.access_token, {}, {})) == 2
    assert len(no_waiting) == 1
    fake.fail_next(503, times=4)
    with pytest.raises(ProviderUnavailable):
        provider.discover_tenants(client, tokens.access_token, {}, {})


def test_a_network_failure_is_unavailable(no_waiting: list[float]) -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ProviderUnavailable):
        provider.discover_tenants(httpx.Client(transport=httpx.MockTransport(unreachable)), "token", {}, {})
    assert len(no_waiting) == 3


def test_discovery_follows_the_api_url_override(
    fake: FakeXero, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = consent(client)
    monkeypatch.setenv("LEDGERBRIDGE_XERO_API_URL", "http://127.0.0.1:8765")
    assert len(provider.discover_tenants(client, tokens.access_token, {}, {})) == 2
    assert str(fake.requests[-1].url) == "http://127.0.0.1:8765/connections"


# --- revocation -----------------------------------------------------------------------------


def test_revocation_reaches_xero_and_the_tokens_are_dead_after(fake: FakeXero, client: httpx.Client) -> None:
    tokens = consent(client)
    provider.revoke_tokens(client, app(), tokens)

    revoked = fake.requests[-1]
    assert (revoked.method, revoked.url.host, revoked.url.path) == (
        "POST",
        "identity.xero.com",
        REVOCATION_PATH,
    )
    assert parse_qs(revoked.content.decode()) == {"token": [tokens.refresh_token]}
    assert revoked.headers["authorization"].startswith("Basic ")

    refresh = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    assert post_token_request(client, app(), refresh).json() == {"error": "invalid_grant"}
    with pytest.raises(ReauthorizationRequired):
        provider.discover_tenants(client, tokens.access_token, {}, {})


def test_a_failed_revocation_is_reported(fake: FakeXero, client: httpx.Client) -> None:
    tokens = consent(client)
    fake.fail_next(503)
    with pytest.raises(ProviderUnavailable):
        provider.revoke_tokens(client, app(), tokens)
    wrong_secret = OAuthApp(app().token_url, CLIENT_ID, "wrong", "basic")
    with pytest.raises(ProviderUnavailable, match="invalid_client"):
        provider.revoke_tokens(client, wrong_secret, tokens)
    assert tokens.refresh_token in fake.grants  # nothing was revoked


def test_revocation_follows_its_override(
    fake: FakeXero, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = consent(client)
    monkeypatch.setenv("LEDGERBRIDGE_XERO_REVOKE_URL", "http://127.0.0.1:8765/connect/revocation")
    provider.revoke_tokens(client, app(), tokens)
    assert str(fake.requests[-1].url) == "http://127.0.0.1:8765/connect/revocation"
    assert tokens.refresh_token not in fake.grants


def test_the_fake_mounts_its_consent_screen_at_xeros_path(fake: FakeXero) -> None:
    assert urlsplit(provider.authorization_url(request())).path == AUTHORIZE_PATH == fake.consent.path
