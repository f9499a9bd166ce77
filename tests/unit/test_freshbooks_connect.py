"""FreshBooks' side of hosted connect: the consent URL, a full consent round trip through the
fake FreshBooks (tests/fakes/freshbooks.py), tenant discovery and token revocation."""

from __future__ import annotations

from collections.abc import Iterator
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
from ledgerbridge.providers.freshbooks import AUTHORIZE_URL, CONNECT_SCOPES, FreshBooksProvider
from ledgerbridge.providers.http import ProviderHttp
from ledgerbridge.providers.oauth import CodeRefused, OAuthApp, OAuthTokens, exchange_code
from tests.fakes.consent import click, query, single
from tests.fakes.freshbooks import (
    ACCOUNT_ID,
    AUTHORIZE_PATH,
    CLIENT_ID,
    CLIENT_SECRET,
    IDENTITY_PATH,
    REDIRECT_URI,
    REVOKE_PATH,
    TOKEN_PATH,
    FakeFreshBooks,
    fixture,
    recorded_body,
)
from tests.support.specs import assert_valid

provider = FreshBooksProvider()
HOST = "https://api.freshbooks.com"
STATE = "st-4b1e0d"
AUTH_SPEC = "freshbooks/auth"
# Each FreshBooks call this module makes, as scopes.json names it (method and documented path).
CALLS_MADE = (
    "GET /auth/api/v1/users/me",  # discover_tenants
    "GET /accounting/account/{accountId}/users/clients",  # list_references, find_contact
    "POST /accounting/account/{accountId}/users/clients",  # send_contact
    "GET /accounting/account/{accountId}/invoices/invoices",  # find_invoice
    "POST /accounting/account/{accountId}/invoices/invoices",  # send_invoice
    "PUT /accounting/account/{accountId}/invoices/invoices/{invoiceId}",  # mark as sent
    "GET /accounting/account/{accountId}/items/items",  # list_references
    "GET /accounting/account/{accountId}/taxes/taxes",  # an item's taxes
)


@pytest.fixture(autouse=True)
def _default_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    for kind in ("API", "TOKEN", "AUTHORIZE", "REVOKE"):
        monkeypatch.delenv(f"LEDGERBRIDGE_FRESHBOOKS_{kind}_URL", raising=False)


@pytest.fixture
def fake() -> FakeFreshBooks:
    return FakeFreshBooks()


@pytest.fixture
def client(fake: FakeFreshBooks) -> Iterator[httpx.Client]:
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as mock_client:
        yield mock_client


def app(secret: str = CLIENT_SECRET) -> OAuthApp:
    token_url = provider.oauth_token_url({})
    assert token_url is not None
    return OAuthApp(token_url, CLIENT_ID, secret, provider.oauth_client_auth, REDIRECT_URI)


def consent_request(settings: dict[str, str] | None = None) -> AuthorizationRequest:
    return AuthorizationRequest(CLIENT_ID, REDIRECT_URI, STATE, "ignored-challenge", settings or {})


def decide(client: httpx.Client, link_id: str) -> dict[str, str]:
    """Open the consent page, follow the ``approve``/``refuse`` link; the callback's query parameters."""
    return single(click(client, provider.authorization_url(consent_request()), link_id, REDIRECT_URI))


def connect(client: httpx.Client) -> tuple[OAuthTokens, dict[str, str]]:
    callback = decide(client, "approve")
    return exchange_code(client, app(), callback["code"], REDIRECT_URI, None), callback


def token_posts(fake: FakeFreshBooks) -> list[dict[str, object]]:
    return [fake.body_of(r) for r in fake.requests if r.url.path == TOKEN_PATH]


# --- the authorisation URL ----------------------------------------------------------------


def test_freshbooks_supports_hosted_connect_asks_nothing_first_and_sends_no_pkce() -> None:
    assert supports_connect(provider)
    assert connect_choices(provider) == ()
    assert provider.connect_pkce is False


def test_the_authorisation_url_carries_each_parameter_of_freshbooks_sdks_and_the_state() -> None:
    url = provider.authorization_url(consent_request())
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "auth.freshbooks.com", "/oauth/authorize")
    assert url.startswith(AUTHORIZE_URL + "?")
    assert query(url) == {
        "response_type": ["code"],
        "client_id": [CLIENT_ID],
        "redirect_uri": [REDIRECT_URI],
        "scope": [" ".join(CONNECT_SCOPES)],
        "state": [STATE],
    }  # no code_challenge: FreshBooks documents no PKCE


def test_scopes_are_joined_by_spaces_encoded_as_the_node_sdk_encodes_them() -> None:
    raw = urlsplit(provider.authorization_url(consent_request())).query
    pairs = dict(pair.split("=", 1) for pair in raw.split("&"))
    assert pairs["scope"] == "%20".join(scope.replace(":", "%3A") for scope in CONNECT_SCOPES)
    assert pairs["redirect_uri"] == "https%3A%2F%2Fledgerbridge.example%2Fconnect%2Fcallback"


def test_the_scopes_are_exactly_those_freshbooks_documents_for_the_calls_made() -> None:
    documented = fixture("scopes")
    needed = {documented["resources"][call] for call in CALLS_MADE}
    assert set(CONNECT_SCOPES) == needed  # every call allowed, nothing unused asked for
    assert len(CONNECT_SCOPES) == len(needed)
    for scope in CONNECT_SCOPES:  # each follows FreshBooks' grammar: user:<object>:<read|write>
        entity, obj, action = scope.split(":")
        assert (entity, obj in documented["objects"], action in documented["actions"]) == ("user", True, True)
    assert not any(":bills" in scope or "bill_" in scope for scope in CONNECT_SCOPES)  # bills are refused


def test_the_authorisation_url_is_overridable_and_ignores_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERBRIDGE_FRESHBOOKS_AUTHORIZE_URL", "http://127.0.0.1:8765/oauth/authorize/")
    url = provider.authorization_url(consent_request({"time_zone": "Europe/Paris"}))
    assert url.startswith("http://127.0.0.1:8765/oauth/authorize?")
    assert query(url)["client_id"] == [CLIENT_ID]


def test_one_host_for_every_business_whatever_the_settings() -> None:
    assert provider.oauth_token_url({}) == provider.oauth_token_url({"account_id": "X", "time_zone": "UTC"})
    assert provider.oauth_token_url({}) == "https://api.freshbooks.com/auth/oauth/token"


# --- the round trip through the fake ------------------------------------------------------


def test_a_full_consent_round_trip_finds_the_recorded_business(
    fake: FakeFreshBooks, client: httpx.Client
) -> None:
    tokens, callback = connect(client)
    assert set(callback) == {"code", "state"} and callback["state"] == STATE  # FreshBooks adds nothing
    sent = token_posts(fake)[-1]
    assert_valid(sent, AUTH_SPEC, "TokenRequest")  # the Node SDK's authorizeCall body, and no more
    assert sent == {
        "grant_type": "authorization_code",
        "code": callback["code"],
        "redirect_uri": REDIRECT_URI,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert tokens.refresh_token == fake.refresh_token and tokens.access_token in fake.access_tokens
    tenants = provider.discover_tenants(client, tokens.access_token, {}, callback)
    expected = {"account_id": ACCOUNT_ID, "time_zone": "Africa/Nairobi"}
    assert tenants == [Tenant(ACCOUNT_ID, "acme's Company", expected)]
    identity = next(r for r in fake.requests if r.url.path == IDENTITY_PATH)
    assert identity.headers["authorization"] == f"Bearer {tokens.access_token}"


def test_the_discovered_tokens_and_settings_are_a_working_connection(
    fake: FakeFreshBooks, client: httpx.Client
) -> None:
    tokens, callback = connect(client)
    (tenant,) = provider.discover_tenants(client, tokens.access_token, {}, callback)

    class Issued:
        def access_token(self) -> str:
            return tokens.access_token

        def refresh_after_rejection(self, rejected_access_token: str) -> str:
            raise AssertionError("the consented token was refused")

    http = ProviderHttp(client, Issued())
    connection = ConnectionContext("conn-fb", "freshbooks", tenant.settings, http)
    references = provider.list_references(connection)
    assert {r.remote_id for r in references if r.kind == "contact"} == {str(c["id"]) for c in fake.clients}


def test_the_token_answer_and_the_recorded_identity_fit_the_sdks_models(client: httpx.Client) -> None:
    callback = decide(client, "approve")
    grant = {"grant_type": "authorization_code", "code": callback["code"], "redirect_uri": REDIRECT_URI}
    answer = client.post(
        HOST + TOKEN_PATH, json={**grant, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    )
    assert answer.status_code == 200
    assert_valid(answer.json(), AUTH_SPEC, "TokenResponse")
    assert answer.json()["scope"].split() == list(CONNECT_SCOPES)  # what the consent granted
    assert_valid(recorded_body("refresh-token"), AUTH_SPEC, "TokenResponse")
    assert_valid(recorded_body("get-account-id"), AUTH_SPEC, "Identity")


def test_a_token_request_off_the_sdks_model_is_refused(client: httpx.Client) -> None:
    callback = decide(client, "approve")
    grant = {"grant_type": "authorization_code", "code": callback["code"], "redirect_uri": REDIRECT_URI}
    body = {**grant, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code_verifier": "v" * 43}
    answer = client.post(HOST + TOKEN_PATH, json=body)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")
    assert "code_verifier" in answer.json()["error_description"]


def test_a_consent_missing_a_scope_is_refused_by_the_fake(client: httpx.Client) -> None:
    url = provider.authorization_url(consent_request()).replace("%20user%3Ataxes%3Aread", "")
    page = client.get(url)
    assert page.status_code == 400 and "user:taxes:read" in page.text


def test_refused_consent_comes_back_as_access_denied(fake: FakeFreshBooks, client: httpx.Client) -> None:
    callback = decide(client, "refuse")
    assert callback == {"error": "access_denied", "state": STATE}
    assert token_posts(fake) == []


def test_a_code_is_single_use(client: httpx.Client) -> None:
    callback = decide(client, "approve")
    exchange_code(client, app(), callback["code"], REDIRECT_URI, None)
    with pytest.raises(CodeRefused):
        exchange_code(client, app(), callback["code"], REDIRECT_URI, None)


def test_a_code_is_bound_to_its_redirect_uri(client: httpx.Client) -> None:
    callback = decide(client, "approve")
    with pytest.raises(CodeRefused):
        exchange_code(client, app(), callback["code"], "https://elsewhere.example/callback", None)


def test_a_wrong_client_secret_refuses_the_code(client: httpx.Client) -> None:
    callback = decide(client, "approve")
    with pytest.raises(CodeRefused):
        exchange_code(client, app("not-the-secret"), callback["code"], REDIRECT_URI, None)


def test_a_new_consent_retires_the_previous_refresh_token(fake: FakeFreshBooks, client: httpx.Client) -> None:
    first, _ = connect(client)
    second, _ = connect(client)
    assert first.refresh_token in fake.retired_refresh_tokens
    assert fake.refresh_token == second.refresh_token


# --- tenant discovery ---------------------------------------------------------------------


def membership(account_id: str | None, name: str, timezone: str | None = "America/Toronto") -> dict:
    business = {"id": 1, "name": name, "account_id": account_id, "timezone": timezone}
    return {"id": 7, "role": "owner", "business": business}


def test_each_business_with_an_account_is_one_tenant_first_seen_first(
    fake: FakeFreshBooks, client: httpx.Client
) -> None:
    fake.identity["response"]["business_memberships"] = [
        membership("AbC12", "Second Co", "Not/AZone"),
        membership(None, "Projects only"),
        membership(ACCOUNT_ID, "acme's Company", None),
        membership("AbC12", "Second Co again"),
    ]
    assert_valid(fake.identity, AUTH_SPEC, "Identity")
    tenants = provider.discover_tenants(client, "fb-access-0", {}, {})
    assert tenants == [
        Tenant("AbC12", "Second Co", {"account_id": "AbC12"}),  # an unknown zone is left out
        Tenant(ACCOUNT_ID, "acme's Company", {"account_id": ACCOUNT_ID}),
    ]


def test_a_business_without_a_name_is_shown_by_its_account(
    fake: FakeFreshBooks, client: httpx.Client
) -> None:
    fake.identity["response"]["business_memberships"] = [membership("Zz9", "")]
    (tenant,) = provider.discover_tenants(client, "fb-access-0", {}, {})
    assert (tenant.name, tenant.settings) == ("Zz9", {"account_id": "Zz9", "time_zone": "America/Toronto"})


@pytest.mark.parametrize("memberships", [[], None])
def test_no_business_is_no_tenant(fake: FakeFreshBooks, client: httpx.Client, memberships: object) -> None:
    fake.identity["response"]["business_memberships"] = memberships
    assert provider.discover_tenants(client, "fb-access-0", {}, {}) == []


def test_an_unknown_token_needs_consent_again(client: httpx.Client) -> None:
    with pytest.raises(ReauthorizationRequired, match="HTTP 401"):
        provider.discover_tenants(client, "not-a-token", {}, {})


def test_a_forbidden_identity_needs_consent_again(fake: FakeFreshBooks, client: httpx.Client) -> None:
    fake.fail_next(403)
    with pytest.raises(ReauthorizationRequired, match="HTTP 403"):
        provider.discover_tenants(client, "fb-access-0", {}, {})


def test_an_outage_is_provider_unavailable_after_retries(
    fake: FakeFreshBooks, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ledgerbridge.providers.http._sleep", lambda seconds: None)
    fake.fail_next(503, times=10)
    with pytest.raises(ProviderUnavailable):
        provider.discover_tenants(client, "fb-access-0", {}, {})
    assert sum(r.url.path == IDENTITY_PATH for r in fake.requests) == 4  # ProviderHttp's attempts


def test_a_network_failure_is_provider_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ledgerbridge.providers.http._sleep", lambda seconds: None)

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with (
        httpx.Client(transport=httpx.MockTransport(unreachable)) as offline,
        pytest.raises(ProviderUnavailable),
    ):
        provider.discover_tenants(offline, "fb-access-0", {}, {})


def test_an_answer_that_is_not_the_identity_is_provider_unavailable() -> None:
    def html_page(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>maintenance</html>")

    with (
        httpx.Client(transport=httpx.MockTransport(html_page)) as odd,
        pytest.raises(ProviderUnavailable, match="HTTP 200"),
    ):
        provider.discover_tenants(odd, "fb-access-0", {}, {})


def test_discovery_follows_the_api_url_override(
    fake: FakeFreshBooks, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGERBRIDGE_FRESHBOOKS_API_URL", "http://127.0.0.1:8765/")
    provider.discover_tenants(client, "fb-access-0", {}, {})
    assert str(fake.requests[-1].url) == "http://127.0.0.1:8765" + IDENTITY_PATH


# --- revocation ---------------------------------------------------------------------------


def test_revocation_ends_both_tokens_at_freshbooks(fake: FakeFreshBooks, client: httpx.Client) -> None:
    tokens, callback = connect(client)
    provider.revoke_tokens(client, app(), tokens)
    revoke = next(r for r in fake.requests if r.url.path == REVOKE_PATH)
    assert str(revoke.url) == "https://api.freshbooks.com/auth/oauth/revoke"
    assert revoke.headers["content-type"] == "application/json"
    documented = fixture("revoke-token")["exchanges"][0]["request"]["body"]
    assert set(fake.body_of(revoke)) == set(documented)
    assert fake.body_of(revoke) == {
        "token": tokens.refresh_token,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert fake.revoked == [tokens.refresh_token]
    with pytest.raises(ReauthorizationRequired):  # the access token is dead too
        provider.discover_tenants(client, tokens.access_token, {}, callback)
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": tokens.refresh_token,
        "redirect_uri": REDIRECT_URI,
    }
    again = client.post(
        HOST + TOKEN_PATH, json={**refresh, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    )
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


def test_revoking_a_token_already_dead_still_succeeds(fake: FakeFreshBooks, client: httpx.Client) -> None:
    tokens, _ = connect(client)
    provider.revoke_tokens(client, app(), tokens)
    provider.revoke_tokens(client, app(), tokens)  # RFC 7009: 200 whatever the token
    assert fake.revoked == [tokens.refresh_token, tokens.refresh_token]


def test_a_refused_revocation_is_provider_unavailable(fake: FakeFreshBooks, client: httpx.Client) -> None:
    tokens, _ = connect(client)
    with pytest.raises(ProviderUnavailable, match=r"HTTP 401 .*invalid_client"):
        provider.revoke_tokens(client, app("not-the-secret"), tokens)
    assert fake.revoked == [] and tokens.access_token in fake.access_tokens


def test_revocation_follows_its_url_override(
    fake: FakeFreshBooks, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens, _ = connect(client)
    monkeypatch.setenv("LEDGERBRIDGE_FRESHBOOKS_REVOKE_URL", "http://127.0.0.1:8765/auth/oauth/revoke")
    provider.revoke_tokens(client, app(), tokens)
    assert str(fake.requests[-1].url) == "http://127.0.0.1:8765/auth/oauth/revoke"
    assert fake.revoked == [tokens.refresh_token]


def test_the_consent_screen_is_mounted_at_freshbooks_authorisation_path(client: httpx.Client) -> None:
    page = client.get(provider.authorization_url(consent_request()))
    assert urlsplit(str(page.request.url)).path == AUTHORIZE_PATH
    assert 'id="approve"' in page.text and 'id="refuse"' in page.text
