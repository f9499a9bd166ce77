"""QuickBooks Online's side of hosted connect: the consent URL checked against Intuit's discovery
documents, a full consent round trip through FakeQuickBooks (tests/fakes/quickbooks.py), tenant
discovery from the callback's ``realmId`` and token revocation."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from ledgerbridge.providers.base import (
    AuthorizationRequest,
    ConnectionContext,
    ProviderUnavailable,
    ReauthorizationRequired,
    Tenant,
    connect_choices,
    supports_connect,
)
from ledgerbridge.providers.http import ProviderHttp
from ledgerbridge.providers.oauth import CodeRefused, OAuthApp, OAuthTokens, exchange_code, post_token_request
from ledgerbridge.providers.quickbooks import (
    AUTHORIZE_URL,
    CONNECT_SCOPES,
    ENVIRONMENT_CHOICE,
    PRODUCTION_API_URL,
    REVOKE_URL,
    SANDBOX_API_URL,
    TOKEN_URL,
    QuickBooksProvider,
    api_base_url,
)
from tests.fakes.consent import click, query, s256, single
from tests.fakes.quickbooks import (
    AUTHORIZE_PATH,
    REALM_ID,
    REDIRECT_URI,
    REQUIRED_SCOPES,
    REVOKE_PATH,
    TOKEN_PATH,
    FakeQuickBooks,
    load_fixture,
    recorded_response,
)
from tests.support.quickbooks_xsd import assert_valid

provider = QuickBooksProvider()
CLIENT_ID, CLIENT_SECRET = "qb-client-id", "qb-client-secret"
STATE = "st-4d91be"
VERIFIER = "v" * 43 + "-quickbooks-verifier"
CONSENT_HOST = "https://appcenter.intuit.com"
COMPANY = recorded_response("get-company-info.json")["CompanyInfo"]


def discovery_documents() -> dict[str, dict[str, Any]]:
    """Intuit's production and sandbox discovery documents, by the path each is published at."""
    return {
        exchange["path"]: exchange["response"]["body"]
        for exchange in load_fixture("openid-configuration.json")["exchanges"]
    }


@pytest.fixture(autouse=True)
def _default_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    for kind in ("API", "TOKEN", "AUTHORIZE", "REVOKE"):
        monkeypatch.delenv(f"LEDGERBRIDGE_QUICKBOOKS_{kind}_URL", raising=False)


@pytest.fixture
def fake() -> FakeQuickBooks:
    return FakeQuickBooks(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)


@pytest.fixture
def client(fake: FakeQuickBooks) -> Iterator[httpx.Client]:
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as mock_client:
        yield mock_client


def app(secret: str = CLIENT_SECRET) -> OAuthApp:
    token_url = provider.oauth_token_url({})
    assert token_url is not None
    return OAuthApp(token_url, CLIENT_ID, secret, client_auth=provider.oauth_client_auth)


def consent_request(settings: dict[str, str] | None = None) -> AuthorizationRequest:
    return AuthorizationRequest(CLIENT_ID, REDIRECT_URI, STATE, s256(VERIFIER), settings or {})


def decide(client: httpx.Client, link_id: str, url: str | None = None) -> dict[str, str]:
    """Open the consent page, follow the ``approve``/``refuse`` link; the callback's query parameters."""
    url = url or provider.authorization_url(consent_request())
    return single(click(client, url, link_id, REDIRECT_URI))


def connect(client: httpx.Client) -> tuple[OAuthTokens, dict[str, str]]:
    """Consent, then the code exchange as the core makes it: no verifier, since connect_pkce is False."""
    callback = decide(client, "approve")
    verifier = VERIFIER if provider.connect_pkce else None
    return exchange_code(client, app(), callback["code"], REDIRECT_URI, verifier), callback


def basic_credentials(request: httpx.Request) -> str:
    scheme, _, encoded = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    return base64.b64decode(encoded).decode()


class FixedToken:
    """AccessTokens for the token a consent just granted (a connection would use oauth.TokenSource)."""

    def __init__(self, token: str):
        self.token = token

    def access_token(self) -> str:
        return self.token

    def refresh_after_rejection(self, rejected_access_token: str) -> str:
        raise AssertionError("the freshly granted token was refused")


# --- what the connect page asks and where it sends the browser -------------------------------


def test_quickbooks_supports_hosted_connect_and_asks_for_the_environment_first() -> None:
    assert supports_connect(provider)
    assert connect_choices(provider) == (ENVIRONMENT_CHOICE,)
    assert ENVIRONMENT_CHOICE.setting == "environment"
    assert [value for value, _ in ENVIRONMENT_CHOICE.options] == ["production", "sandbox"]
    assert ENVIRONMENT_CHOICE.default == "production"


def test_each_answer_to_the_environment_question_chooses_the_api_host_the_module_uses() -> None:
    hosts = {value: api_base_url({"environment": value}) for value, _ in ENVIRONMENT_CHOICE.options}
    assert hosts == {"production": PRODUCTION_API_URL, "sandbox": SANDBOX_API_URL}


def test_the_authorisation_url_carries_each_parameter_intuits_sdks_send_and_no_pkce() -> None:
    url = provider.authorization_url(consent_request())
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "appcenter.intuit.com", "/connect/oauth2")
    assert query(url) == {
        "client_id": [CLIENT_ID],
        "response_type": ["code"],
        "scope": ["com.intuit.quickbooks.accounting"],
        "redirect_uri": [REDIRECT_URI],
        "state": [STATE],
    }
    assert provider.connect_pkce is False


def test_the_scope_is_intuits_accounting_scope_alone() -> None:
    """intuitlib.enums.Scopes.ACCOUNTING covers every Accounting API call (invoices, bills,
    customers, vendors, items, accounts, classes, departments, CompanyInfo); the OpenID scopes
    the discovery documents list would only ask the user for their identity."""
    assert CONNECT_SCOPES == ("com.intuit.quickbooks.accounting",)
    for document in discovery_documents().values():
        assert set(CONNECT_SCOPES).isdisjoint(document["scopes_supported"])


def test_the_urls_are_the_endpoints_of_both_intuit_discovery_documents() -> None:
    """The answer to the environment question moves no OAuth endpoint: both documents agree."""
    documents = discovery_documents()
    assert set(documents) == {
        "/.well-known/openid_configuration",
        "/.well-known/openid_sandbox_configuration",
    }
    for document in documents.values():
        assert document["authorization_endpoint"] == AUTHORIZE_URL
        assert document["token_endpoint"] == TOKEN_URL
        assert document["revocation_endpoint"] == REVOKE_URL
        assert "code" in document["response_types_supported"]
        assert "client_secret_basic" in document["token_endpoint_auth_methods_supported"]
        assert "code_challenge_methods_supported" not in document  # hence connect_pkce False
    assert provider.oauth_client_auth == "basic"


@pytest.mark.parametrize("environment", ["production", "sandbox"])
def test_the_authorisation_and_token_urls_are_the_same_for_either_environment(environment: str) -> None:
    settings = {"environment": environment}
    assert provider.authorization_url(consent_request(settings)) == provider.authorization_url(
        consent_request()
    )
    assert provider.oauth_token_url(settings) == TOKEN_URL


def test_the_authorisation_url_follows_its_environment_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERBRIDGE_QUICKBOOKS_AUTHORIZE_URL", "http://127.0.0.1:8765/connect/oauth2/")
    url = provider.authorization_url(consent_request())
    assert url.startswith("http://127.0.0.1:8765/connect/oauth2?")
    assert query(url)["state"] == [STATE]


def test_the_fake_serves_intuits_endpoints_at_their_real_paths() -> None:
    assert urlsplit(AUTHORIZE_URL).path == AUTHORIZE_PATH
    assert urlsplit(TOKEN_URL).path == TOKEN_PATH
    assert urlsplit(REVOKE_URL).path == REVOKE_PATH
    assert REQUIRED_SCOPES == CONNECT_SCOPES


# --- the round trip -------------------------------------------------------------------------


def test_consent_then_code_exchange_then_discovery_give_the_company_of_the_realm(
    fake: FakeQuickBooks, client: httpx.Client
) -> None:
    tokens, callback = connect(client)
    assert callback == {"code": callback["code"], "state": STATE, "realmId": REALM_ID}
    exchange = fake.consent.exchanges[-1]
    assert exchange == {
        "grant_type": "authorization_code",
        "code": callback["code"],
        "redirect_uri": REDIRECT_URI,
    }
    token_call = next(request for request in fake.requests if request.url.path == TOKEN_PATH)
    assert basic_credentials(token_call) == f"{CLIENT_ID}:{CLIENT_SECRET}"
    assert tokens.access_token in fake.access_tokens and tokens.refresh_token in fake.refresh_tokens

    tenants = provider.discover_tenants(client, tokens.access_token, {"environment": "production"}, callback)

    assert tenants == [
        Tenant(REALM_ID, "Sandbox Company_US_1", {"realm_id": REALM_ID, "environment": "production"})
    ]
    read = fake.requests[-1]
    assert (read.method, read.url.host, read.url.path) == (
        "GET",
        "quickbooks.api.intuit.com",
        f"/v3/company/{REALM_ID}/companyinfo/{REALM_ID}",
    )
    assert read.headers["authorization"] == f"Bearer {tokens.access_token}"
    assert dict(read.url.params) == {"minorversion": "75"}


def test_a_sandbox_company_is_read_on_the_sandbox_host_and_keeps_its_environment(
    fake: FakeQuickBooks, client: httpx.Client
) -> None:
    tokens, callback = connect(client)
    tenants = provider.discover_tenants(client, tokens.access_token, {"environment": "sandbox"}, callback)
    assert tenants[0].settings == {"realm_id": REALM_ID, "environment": "sandbox"}
    assert fake.requests[-1].url.host == "sandbox-quickbooks.api.intuit.com"


def test_the_company_fixture_the_fake_answers_is_a_valid_intuit_company_info() -> None:
    assert_valid(COMPANY, "CompanyInfo")
    assert COMPANY["CompanyName"] == "Sandbox Company_US_1"


def test_the_granted_tokens_sync_references_with_the_tenants_settings_and_refresh(
    fake: FakeQuickBooks, client: httpx.Client
) -> None:
    tokens, callback = connect(client)
    (tenant,) = provider.discover_tenants(client, tokens.access_token, {}, callback)
    http = ProviderHttp(client, tokens=FixedToken(tokens.access_token))
    references = provider.list_references(ConnectionContext("conn-new", "quickbooks", tenant.settings, http))
    assert {reference.kind for reference in references} >= {"contact", "item", "account"}
    refreshed = post_token_request(
        client, app(), {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    )
    assert refreshed.status_code == 200 and refreshed.json()["refresh_token"] in fake.refresh_tokens


def test_the_consent_screen_refuses_a_request_without_the_accounting_scope(client: httpx.Client) -> None:
    url = provider.authorization_url(consent_request()).replace("com.intuit.quickbooks.accounting", "openid")
    page = client.get(url)
    assert page.status_code == 400 and "com.intuit.quickbooks.accounting" in page.text


def test_refused_consent_redirects_with_access_denied_and_no_code(client: httpx.Client) -> None:
    assert decide(client, "refuse") == {"error": "access_denied", "state": STATE}


def test_a_code_used_once_is_refused_the_second_time(client: httpx.Client) -> None:
    callback = decide(client, "approve")
    exchange_code(client, app(), callback["code"], REDIRECT_URI, None)
    with pytest.raises(CodeRefused, match="invalid_grant"):
        exchange_code(client, app(), callback["code"], REDIRECT_URI, None)


def test_a_code_is_bound_to_the_redirect_uri_of_its_consent(client: httpx.Client) -> None:
    callback = decide(client, "approve")
    with pytest.raises(CodeRefused, match="invalid_grant"):
        exchange_code(client, app(), callback["code"], "https://elsewhere.test/connect/callback", None)


def test_a_code_exchange_with_a_wrong_secret_is_refused(client: httpx.Client) -> None:
    callback = decide(client, "approve")
    with pytest.raises(CodeRefused, match="invalid_client"):
        exchange_code(client, app("not-the-secret"), callback["code"], REDIRECT_URI, None)


# --- discovery failures ---------------------------------------------------------------------


def test_an_unknown_token_needs_consent_again(client: httpx.Client) -> None:
    with pytest.raises(ReauthorizationRequired, match="401"):
        provider.discover_tenants(client, "not-a-token", {}, {"realmId": REALM_ID})


def test_another_companys_realm_needs_consent_again(client: httpx.Client) -> None:
    tokens, _ = connect(client)
    with pytest.raises(ReauthorizationRequired, match="403"):
        provider.discover_tenants(client, tokens.access_token, {}, {"realmId": "4620816365000000000"})


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_server_failure_is_provider_unavailable(
    fake: FakeQuickBooks, client: httpx.Client, status: int
) -> None:
    tokens, callback = connect(client)
    fake.fail_next(status)
    with pytest.raises(ProviderUnavailable, match=str(status)):
        provider.discover_tenants(client, tokens.access_token, {}, callback)


def test_a_network_failure_is_provider_unavailable(fake: FakeQuickBooks, client: httpx.Client) -> None:
    tokens, callback = connect(client)
    fake.timeout_next()
    with pytest.raises(ProviderUnavailable, match="ReadTimeout"):
        provider.discover_tenants(client, tokens.access_token, {}, callback)


def test_an_answer_without_company_info_is_provider_unavailable(
    fake: FakeQuickBooks, client: httpx.Client
) -> None:
    tokens, callback = connect(client)
    fake.answer_next(200, {"time": "2026-04-05T10:41:17.815-07:00"})
    with pytest.raises(ProviderUnavailable, match="CompanyInfo"):
        provider.discover_tenants(client, tokens.access_token, {}, callback)


@pytest.mark.parametrize("realm", [None, "", "  "])
def test_a_callback_without_a_realm_is_no_company_and_calls_nothing(
    fake: FakeQuickBooks, client: httpx.Client, realm: str | None
) -> None:
    tokens, callback = connect(client)
    calls = len(fake.requests)
    without = {key: value for key, value in callback.items() if key != "realmId"}
    if realm is not None:
        without["realmId"] = realm
    assert provider.discover_tenants(client, tokens.access_token, {}, without) == []
    assert len(fake.requests) == calls


def test_a_company_without_a_name_is_named_by_its_legal_name_then_its_realm(
    fake: FakeQuickBooks, client: httpx.Client
) -> None:
    tokens, callback = connect(client)
    fake.company["CompanyName"] = " "
    assert (
        provider.discover_tenants(client, tokens.access_token, {}, callback)[0].name == COMPANY["LegalName"]
    )
    del fake.company["LegalName"]
    assert provider.discover_tenants(client, tokens.access_token, {}, callback)[0].name == REALM_ID


# --- revocation -----------------------------------------------------------------------------


def test_revocation_reaches_intuit_and_ends_both_tokens(fake: FakeQuickBooks, client: httpx.Client) -> None:
    tokens, callback = connect(client)

    provider.revoke_tokens(client, app(), tokens)

    revoke = fake.requests[-1]
    assert (revoke.method, revoke.url.host, revoke.url.path) == (
        "POST",
        "developer.api.intuit.com",
        REVOKE_PATH,
    )
    assert basic_credentials(revoke) == f"{CLIENT_ID}:{CLIENT_SECRET}"
    assert revoke.headers["content-type"] == "application/json"
    assert json.loads(revoke.content) == {"token": tokens.refresh_token}
    assert fake.revoked == [tokens.refresh_token]
    with pytest.raises(ReauthorizationRequired):
        provider.discover_tenants(client, tokens.access_token, {}, callback)
    refused = post_token_request(
        client, app(), {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    )
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")


def test_revoking_one_connection_leaves_another_consent_working(
    fake: FakeQuickBooks, client: httpx.Client
) -> None:
    first, callback = connect(client)
    second, _ = connect(client)
    provider.revoke_tokens(client, app(), first)
    assert provider.discover_tenants(client, second.access_token, {}, callback)


def test_revoking_with_a_wrong_secret_is_provider_unavailable_and_revokes_nothing(
    fake: FakeQuickBooks, client: httpx.Client
) -> None:
    tokens, callback = connect(client)
    with pytest.raises(ProviderUnavailable, match="401"):
        provider.revoke_tokens(client, app("not-the-secret"), tokens)
    assert fake.revoked == []
    assert provider.discover_tenants(client, tokens.access_token, {}, callback)


def test_a_network_failure_while_revoking_is_provider_unavailable() -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no route", request=request)

    tokens = OAuthTokens("qb-access-9", "qb-refresh-9", 0.0)
    with (
        httpx.Client(transport=httpx.MockTransport(unreachable)) as offline,
        pytest.raises(ProviderUnavailable, match="ConnectError"),
    ):
        provider.revoke_tokens(offline, app(), tokens)


def test_revocation_follows_its_environment_override(
    monkeypatch: pytest.MonkeyPatch, fake: FakeQuickBooks, client: httpx.Client
) -> None:
    tokens, _ = connect(client)
    monkeypatch.setenv("LEDGERBRIDGE_QUICKBOOKS_REVOKE_URL", "http://127.0.0.1:8765/v2/oauth2/tokens/revoke")
    seen: list[httpx.Request] = []

    def elsewhere(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(elsewhere)) as other:
        provider.revoke_tokens(other, app(), tokens)
    assert [str(request.url) for request in seen] == ["http://127.0.0.1:8765/v2/oauth2/tokens/revoke"]
    assert fake.revoked == []
