"""Zoho Books' side of hosted connect: the consent URL per data centre, a full consent round trip
through the fake Zoho (tests/fakes/zoho_books.py), organisation discovery and token revocation."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from ledgerbridge.providers.base import (
    AuthorizationRequest,
    ProviderUnavailable,
    ReauthorizationRequired,
    Tenant,
    connect_choices,
    supports_connect,
)
from ledgerbridge.providers.oauth import CodeRefused, OAuthApp, OAuthTokens, exchange_code, post_token_request
from ledgerbridge.providers.zoho_books import CONNECT_SCOPES, DATA_CENTERS, ZohoBooksProvider
from tests.fakes.consent import click, query, single
from tests.fakes.zoho_books import (
    API,
    CALLBACK_EXTRAS,
    CLIENT_ID,
    CLIENT_SECRET,
    CONNECT_SPEC,
    REDIRECT_URI,
    REVOKE_PATH,
    SPEC,
    FakeZohoBooks,
    recorded_body,
)
from tests.support.specs import document, query_errors

provider = ZohoBooksProvider()
STATE = "st-zoho-5c1e"
CHALLENGE = "ignored-zoho-takes-no-pkce"


@pytest.fixture(autouse=True)
def _default_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    for kind in ("API", "TOKEN", "AUTHORIZE", "REVOKE"):
        monkeypatch.delenv(f"LEDGERBRIDGE_ZOHO_BOOKS_{kind}_URL", raising=False)


@pytest.fixture
def fake() -> FakeZohoBooks:
    return FakeZohoBooks()


@pytest.fixture
def client(fake: FakeZohoBooks) -> Iterator[httpx.Client]:
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as mock_client:
        yield mock_client


def consent_request(data_center: str = "com") -> AuthorizationRequest:
    return AuthorizationRequest(CLIENT_ID, REDIRECT_URI, STATE, CHALLENGE, {"data_center": data_center})


def app(settings: dict[str, str] | None = None) -> OAuthApp:
    token_url = provider.oauth_token_url(settings or {"data_center": "com"})
    assert token_url is not None
    return OAuthApp(token_url, CLIENT_ID, CLIENT_SECRET, client_auth=provider.oauth_client_auth)


def decide(client: httpx.Client, link_id: str, url: str | None = None) -> dict[str, str]:
    """Open the consent page, follow the ``approve``/``refuse`` link; the callback's query parameters."""
    url = url or provider.authorization_url(consent_request())
    return single(click(client, url, link_id, REDIRECT_URI))


def connect(client: httpx.Client) -> tuple[OAuthTokens, dict[str, str]]:
    callback = decide(client, "approve")
    return exchange_code(client, app(), callback["code"], REDIRECT_URI, None), callback


# --- the authorisation URL ----------------------------------------------------------------


def test_zoho_supports_hosted_connect_asks_the_data_centre_first_and_takes_no_pkce() -> None:
    assert supports_connect(provider)
    (choice,) = connect_choices(provider)
    assert (choice.setting, choice.default) == ("data_center", "com")
    assert [value for value, _ in choice.options] == list(DATA_CENTERS)
    assert all(label for _, label in choice.options)
    assert provider.connect_pkce is False


def test_the_authorisation_url_carries_each_parameter_of_zohos_web_app_flow() -> None:
    url = provider.authorization_url(consent_request())
    assert url.startswith("https://accounts.zoho.com/oauth/v2/auth?")
    assert query(url) == {
        "response_type": ["code"],
        "client_id": [CLIENT_ID],
        "redirect_uri": [REDIRECT_URI],
        "scope": [",".join(CONNECT_SCOPES)],
        "state": [STATE],
        "access_type": ["offline"],  # else no refresh token
        "prompt": ["consent"],  # else no refresh token at a reconnect
    }


def test_the_authorisation_query_is_the_one_zoho_accounts_documents() -> None:
    params = {
        name: values[0] for name, values in query(provider.authorization_url(consent_request())).items()
    }
    assert query_errors(params, CONNECT_SPEC, "authorize") == []
    (authorize,) = (e for e in document(CONNECT_SPEC)["endpoints"] if e["path"] == "/oauth/v2/auth")
    required = {p["name"] for p in authorize["methods"]["get"]["params"] if p["required"]}
    assert required <= set(params)


def test_scopes_are_joined_with_commas_the_delimiter_zoho_documents() -> None:
    raw = urlsplit(provider.authorization_url(consent_request())).query
    pairs = dict(pair.split("=", 1) for pair in raw.split("&"))
    assert pairs["scope"].split("%2C") == list(CONNECT_SCOPES)


def test_the_scopes_are_exactly_those_zohos_reference_names_for_the_calls_made() -> None:
    documented = document(CONNECT_SPEC)["x-oauth-scopes"]
    called = [
        method["operation_id"]
        for spec in (SPEC, CONNECT_SPEC)
        for endpoint in document(spec)["endpoints"]
        for method in endpoint["methods"].values()
        if spec == SPEC or method["operation_id"] == "list_organizations"
    ]
    assert all(operation in documented for operation in called)  # every call has its documented scope
    assert set(CONNECT_SCOPES) == {documented[operation] for operation in called}  # all needed, none unused
    assert not any(scope.endswith((".UPDATE", ".ALL")) or "fullaccess" in scope for scope in CONNECT_SCOPES)


@pytest.mark.parametrize("data_center", list(DATA_CENTERS))
def test_the_consent_token_and_api_hosts_follow_the_chosen_data_centre(data_center: str) -> None:
    api, accounts = DATA_CENTERS[data_center]
    settings = {"data_center": data_center}
    assert provider.authorization_url(consent_request(data_center)).startswith(f"{accounts}/oauth/v2/auth?")
    assert provider.oauth_token_url(settings) == f"{accounts}/oauth/v2/token"
    seen: list[httpx.Request] = []
    answer = {"code": 0, "message": "success", "organizations": []}
    mock = httpx.MockTransport(lambda request: seen.append(request) or httpx.Response(200, json=answer))
    with httpx.Client(transport=mock) as recording:
        assert provider.discover_tenants(recording, "token", settings, {}) == []
    assert str(seen[0].url) == f"{api}/books/v3/organizations"


def test_the_authorisation_url_follows_its_environment_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERBRIDGE_ZOHO_BOOKS_AUTHORIZE_URL", "http://127.0.0.1:8765/oauth/v2/auth/")
    url = provider.authorization_url(consent_request("eu"))
    assert url.startswith("http://127.0.0.1:8765/oauth/v2/auth?")
    assert query(url)["client_id"] == [CLIENT_ID]


# --- the round trip -------------------------------------------------------------------------


def test_consent_then_code_exchange_then_discovery_give_the_users_organisations(
    fake: FakeZohoBooks, client: httpx.Client
) -> None:
    tokens, callback = connect(client)
    assert callback == {**CALLBACK_EXTRAS, "code": callback["code"], "state": STATE}
    exchange = fake.consent.exchanges[-1]
    assert exchange["grant_type"] == "authorization_code" and exchange["redirect_uri"] == REDIRECT_URI
    assert (exchange["client_id"], exchange["client_secret"]) == (CLIENT_ID, CLIENT_SECRET)  # form body
    assert "code_verifier" not in exchange
    assert tokens.refresh_token in fake.refresh_tokens and tokens.access_token in fake.access_tokens

    tenants = provider.discover_tenants(client, tokens.access_token, {"data_center": "com"}, callback)

    recorded, default = recorded_body("list-organizations")["organizations"]
    assert default["is_default_org"] and not recorded["is_default_org"]
    assert tenants == [  # the user's default organisation first
        Tenant(default["organization_id"], default["name"], {**settings_of(default), "data_center": "com"}),
        Tenant(
            recorded["organization_id"], recorded["name"], {**settings_of(recorded), "data_center": "com"}
        ),
    ]
    listing = fake.requests[-1]
    assert (listing.method, str(listing.url)) == ("GET", f"https://www.zohoapis.com{API}/organizations")
    assert listing.headers["authorization"] == f"Zoho-oauthtoken {tokens.access_token}"


def settings_of(organization: dict[str, str]) -> dict[str, str]:
    return {"organization_id": organization["organization_id"]}


def test_the_granted_tokens_work_on_the_api_and_refresh(fake: FakeZohoBooks, client: httpx.Client) -> None:
    tokens, _ = connect(client)
    settings = {"organization_id": fake.organization_id}
    headers = {"authorization": f"Zoho-oauthtoken {tokens.access_token}"}
    items = client.get(f"https://www.zohoapis.com{API}/items", params=settings, headers=headers)
    assert items.status_code == 200 and items.json()["items"]
    refreshed = post_token_request(
        client, app(), {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    )
    assert refreshed.json()["access_token"] in fake.access_tokens
    assert "refresh_token" not in refreshed.json()  # Zoho refresh tokens do not rotate


def test_a_consent_without_offline_access_earns_no_refresh_token(client: httpx.Client) -> None:
    """Why the URL asks access_type=offline: without it the exchange answers an access token only."""
    online = provider.authorization_url(consent_request()).replace("&access_type=offline", "")
    callback = decide(client, "approve", online)
    with pytest.raises(ProviderUnavailable):
        exchange_code(client, app(), callback["code"], REDIRECT_URI, None)


def test_a_refused_consent_comes_back_as_access_denied(fake: FakeZohoBooks, client: httpx.Client) -> None:
    assert decide(client, "refuse") == {"error": "access_denied", "state": STATE}
    assert fake.consent.codes == {}


def test_a_code_is_single_use(client: httpx.Client) -> None:
    callback = decide(client, "approve")
    exchange_code(client, app(), callback["code"], REDIRECT_URI, None)
    with pytest.raises(CodeRefused):
        exchange_code(client, app(), callback["code"], REDIRECT_URI, None)


def test_a_code_for_another_redirect_uri_is_refused(client: httpx.Client) -> None:
    callback = decide(client, "approve")
    with pytest.raises(CodeRefused):
        exchange_code(client, app(), callback["code"], "https://elsewhere.test/connect/callback", None)


# --- discovery ------------------------------------------------------------------------------


def test_inactive_organisations_are_not_offered_and_none_is_an_empty_list(
    fake: FakeZohoBooks, client: httpx.Client
) -> None:
    tokens, callback = connect(client)
    fake.organizations[1]["is_org_active"] = False
    (tenant,) = provider.discover_tenants(client, tokens.access_token, {"data_center": "com"}, callback)
    assert tenant.remote_id == fake.organizations[0]["organization_id"]
    fake.organizations.clear()
    assert provider.discover_tenants(client, tokens.access_token, {"data_center": "com"}, callback) == []


def test_the_tenant_settings_name_the_chosen_data_centre(fake: FakeZohoBooks, client: httpx.Client) -> None:
    tokens, callback = connect(client)
    tenants = provider.discover_tenants(client, tokens.access_token, {"data_center": "EU"}, callback)
    assert {tenant.settings["data_center"] for tenant in tenants} == {"eu"}
    assert fake.requests[-1].url.host == "www.zohoapis.eu"


def test_a_refused_token_needs_consent_again(fake: FakeZohoBooks, client: httpx.Client) -> None:
    tokens, callback = connect(client)
    fake.expire_access_tokens()
    with pytest.raises(ReauthorizationRequired):
        provider.discover_tenants(client, tokens.access_token, {}, callback)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_failing_zoho_is_unavailable(fake: FakeZohoBooks, client: httpx.Client, status: int) -> None:
    tokens, callback = connect(client)
    fake.fail_next(status)
    with pytest.raises(ProviderUnavailable):
        provider.discover_tenants(client, tokens.access_token, {}, callback)


def test_an_unreachable_zoho_is_unavailable(fake: FakeZohoBooks, client: httpx.Client) -> None:
    tokens, callback = connect(client)
    fake.timeout_next()
    with pytest.raises(ProviderUnavailable):
        provider.discover_tenants(client, tokens.access_token, {}, callback)


# --- revocation -----------------------------------------------------------------------------


def test_revoking_reaches_the_accounts_server_and_the_tokens_stop_working(
    fake: FakeZohoBooks, client: httpx.Client
) -> None:
    tokens, callback = connect(client)
    provider.revoke_tokens(client, app(), tokens)

    revocation = fake.requests[-1]
    assert (revocation.method, revocation.url.host, revocation.url.path) == (
        "POST",
        "accounts.zoho.com",
        REVOKE_PATH,
    )
    assert dict(revocation.url.params) == {"token": tokens.refresh_token}
    assert query_errors(dict(revocation.url.params), CONNECT_SPEC, "revoke_token") == []
    assert fake.revoked == [tokens.refresh_token]
    refresh = post_token_request(
        client, app(), {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    )
    assert refresh.json() == {"error": "invalid_code"}
    with pytest.raises(ReauthorizationRequired):  # the access token made with it is revoked too
        provider.discover_tenants(client, tokens.access_token, {}, callback)


def test_revoking_goes_to_the_connections_data_centre(client: httpx.Client, fake: FakeZohoBooks) -> None:
    tokens, _ = connect(client)
    provider.revoke_tokens(client, app({"data_center": "com.au"}), tokens)
    assert str(fake.requests[-1].url).startswith("https://accounts.zoho.com.au/oauth/v2/token/revoke?")


def test_revoking_an_already_revoked_token_is_done(fake: FakeZohoBooks, client: httpx.Client) -> None:
    tokens, _ = connect(client)
    provider.revoke_tokens(client, app(), tokens)
    provider.revoke_tokens(client, app(), tokens)  # Zoho's 400: nothing left to revoke
    assert fake.revoked == [tokens.refresh_token]


def test_a_failing_revocation_is_unavailable(fake: FakeZohoBooks, client: httpx.Client) -> None:
    tokens, _ = connect(client)
    fake.fail_next(503)
    with pytest.raises(ProviderUnavailable):
        provider.revoke_tokens(client, app(), tokens)
    assert tokens.refresh_token in fake.refresh_tokens
