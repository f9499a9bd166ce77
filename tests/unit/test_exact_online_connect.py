"""Hosted connect for Exact Online: consent URL, code grant and divisions, against the fake Exact."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from ledgerbridge.providers import base, exact_online
from ledgerbridge.providers import http as provider_http
from ledgerbridge.providers.base import (
    AuthorizationRequest,
    ConnectionContext,
    ProviderRejected,
    ProviderUnavailable,
    ReauthorizationRequired,
    Tenant,
)
from ledgerbridge.providers.exact_online import APP_SCOPES, HOSTS, ExactOnlineProvider, token_url
from ledgerbridge.providers.oauth import CodeRefused, OAuthApp, OAuthTokens, exchange_code
from tests.fakes.consent import click, query, s256
from tests.fakes.exact_online import (
    AUTHORIZE_PATH,
    CLIENT_ID,
    CLIENT_SECRET,
    DIVISION,
    REDIRECT_URI,
    RESOURCE_SCOPES,
    FakeExactOnline,
)
from tests.unit.test_exact_online import (
    CUSTOMER,
    FULL_CONTACT,
    FULL_INVOICE,
    FULL_REFERENCES,
    PURCHASE,
    SERVICES,
    SETTINGS,
    SUPPLIER,
    account,
    connect,
    contact_out,
    create,
    create_contact,
    item,
    outbound,
)

provider = ExactOnlineProvider()
STATE = "state-7f3a9c"
VERIFIER = "a-verifier-that-exact-never-sees-0123456789abcdefghij"
NOW = 1_800_000_000.0
# The scopes the endpoints Ledgerbridge writes to need at "Manage" (Exact's REST reference, per endpoint).
WRITTEN = {
    "crm/Accounts",
    "salesinvoice/SalesInvoices",
    "salesentry/SalesEntries",
    "purchaseentry/PurchaseEntries",
}


@pytest.fixture(autouse=True)
def _default_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    for kind in ("API", "TOKEN", "AUTHORIZE"):
        monkeypatch.delenv(f"LEDGERBRIDGE_EXACT_ONLINE_{kind}_URL", raising=False)


@pytest.fixture
def fake() -> FakeExactOnline:
    return FakeExactOnline(app_scopes={scope.name: scope.access for scope in APP_SCOPES}, clock=lambda: NOW)


@pytest.fixture
def browser(fake: FakeExactOnline) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(fake.handle))


def consent_request(country: str | None = "fr") -> AuthorizationRequest:
    settings = {"country": country} if country is not None else {}
    return AuthorizationRequest(CLIENT_ID, REDIRECT_URI, STATE, s256(VERIFIER), settings)


def decide(browser: httpx.Client, link: str, country: str = "fr") -> dict[str, list[str]]:
    """Open the consent page, follow its ``approve`` or ``refuse`` link; the redirect's query."""
    return click(browser, provider.authorization_url(consent_request(country)), link, REDIRECT_URI)


def app(country: str = "fr") -> OAuthApp:
    return OAuthApp(
        token_url({"country": country}), CLIENT_ID, CLIENT_SECRET, client_auth=provider.oauth_client_auth
    )


def approved_tokens(browser: httpx.Client, country: str = "fr") -> OAuthTokens:
    callback = decide(browser, "approve", country)
    return exchange_code(browser, app(country), callback["code"][0], REDIRECT_URI, None, clock=lambda: NOW)


# --- the authorisation URL ------------------------------------------------------------------


def test_the_consent_url_asks_exact_for_a_code_with_exactly_what_exact_documents() -> None:
    url = provider.authorization_url(consent_request("nl"))

    assert url.split("?")[0] == "https://start.exactonline.nl/api/oauth2/auth"
    # Exact's authorisation request: client_id, redirect_uri, response_type (code), state. Scopes are
    # the app's registration in Exact's App Store, not a parameter; Exact documents no PKCE.
    assert query(url) == {
        "client_id": [CLIENT_ID],
        "redirect_uri": [REDIRECT_URI],
        "response_type": ["code"],
        "state": [STATE],
    }
    assert provider.connect_pkce is False


@pytest.mark.parametrize("country", list(HOSTS))
def test_the_consent_screen_and_the_token_endpoint_are_on_the_chosen_countrys_host(country: str) -> None:
    url = provider.authorization_url(consent_request(country))

    assert url.split("?")[0] == f"https://start.exactonline.{country}/api/oauth2/auth"
    assert token_url({"country": country}) == f"https://start.exactonline.{country}/api/oauth2/token"
    assert exact_online.api_base_url({"country": country}) == f"https://start.exactonline.{country}"


def test_without_a_country_the_consent_goes_to_the_netherlands() -> None:
    assert provider.authorization_url(consent_request(None)).startswith("https://start.exactonline.nl/")


def test_a_country_exact_does_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match="country must be one of"):
        provider.authorization_url(consent_request("us"))


def test_the_authorize_url_environment_override_replaces_the_consent_screen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEDGERBRIDGE_EXACT_ONLINE_AUTHORIZE_URL", "http://127.0.0.1:9999/api/oauth2/auth/")

    url = provider.authorization_url(consent_request("be"))

    assert url.split("?")[0] == "http://127.0.0.1:9999/api/oauth2/auth"
    assert query(url)["state"] == [STATE]


def test_the_connect_page_asks_the_country_first_offering_every_exact_host() -> None:
    [choice] = base.connect_choices(provider)

    assert choice.setting == "country" and choice.default == "nl"
    assert [value for value, _ in choice.options] == list(HOSTS)
    assert dict(choice.options)["co.uk"] == "United Kingdom (start.exactonline.co.uk)"
    assert base.supports_connect(provider)
    assert not hasattr(provider, "revoke_tokens")  # Exact has no revocation endpoint


# --- scopes ---------------------------------------------------------------------------------


def test_the_app_scopes_are_those_exacts_reference_names_for_every_endpoint_ledgerbridge_calls() -> None:
    needed: dict[str, str] = {}
    for resource, scope in RESOURCE_SCOPES.items():
        if scope is not None:
            access = "Manage" if resource in WRITTEN else "Read"
            needed[scope] = "Manage" if "Manage" in (access, needed.get(scope)) else "Read"

    assert {scope.name: scope.access for scope in APP_SCOPES} == needed


def test_an_app_registered_with_these_scopes_does_everything_ledgerbridge_does(fake: FakeExactOnline) -> None:
    connection = connect(fake.handle)

    kinds = {reference.kind for reference in provider.list_references(connection)}
    create_contact(connection, contact_out(FULL_CONTACT))
    create(connection, outbound(FULL_INVOICE, FULL_REFERENCES))
    bill = {"contact_id": account(SUPPLIER), "line_items.0.item_id": item(SERVICES)}
    create(connect(fake.handle, {**SETTINGS, "default_purchase_vat_code": "V20"}), outbound(PURCHASE, bill))

    assert kinds == {"contact", "item", "account", "tracking_category"}
    assert len(fake.account_requests()) == 1
    assert len(fake.sales_invoices) == 1 and len(fake.purchase_entries) == 1


def test_a_scope_registered_read_only_refuses_the_write_as_exact_does() -> None:
    scopes = {scope.name: scope.access for scope in APP_SCOPES} | {"Crm accounts": "Read"}
    fake = FakeExactOnline(app_scopes=scopes)

    with pytest.raises(ProviderRejected, match=r"Application Scope Violated\. Cannot manage 'crm\.accounts'"):
        create_contact(connect(fake.handle), contact_out(FULL_CONTACT))
    assert all(account["Name"] != FULL_CONTACT["name"] for account in fake.accounts)


# --- the round trip -------------------------------------------------------------------------


def test_consent_code_tokens_and_divisions_round_trip(fake: FakeExactOnline, browser: httpx.Client) -> None:
    callback = decide(browser, "approve")
    assert set(callback) == {"code", "state"}  # Exact adds nothing to its redirect
    assert callback["state"] == [STATE]

    tokens = exchange_code(browser, app(), callback["code"][0], REDIRECT_URI, None, clock=lambda: NOW)

    [grant] = fake.consent.exchanges
    assert grant == {
        "grant_type": "authorization_code",
        "code": callback["code"][0],
        "redirect_uri": REDIRECT_URI,
        "client_id": CLIENT_ID,  # in the form body, as Exact takes client credentials
        "client_secret": CLIENT_SECRET,
    }
    assert tokens.expires_at == NOW + 600  # Exact's 10-minute access token, expires_in sent as "600"
    assert fake.refresh_token == tokens.refresh_token and "exact-refresh-0" in fake.retired_refresh_tokens

    tenants = provider.discover_tenants(browser, tokens.access_token, {"country": "fr"}, {"state": STATE})

    # The recorded user works in 124132; 118554 is archived and 131077 deleted: neither is offered.
    assert tenants == [
        Tenant("124132", "acme", {"division": "124132", "country": "fr"}),
        Tenant("124140", "acme Services", {"division": "124140", "country": "fr"}),
    ]
    me, divisions = [r for r in fake.requests if r.url.path.startswith("/api/v1/")]
    assert str(me.url).startswith("https://start.exactonline.fr/api/v1/current/Me")
    assert me.headers["authorization"] == f"Bearer {tokens.access_token}"
    assert divisions.url.path == f"/api/v1/{DIVISION}/hrm/Divisions"
    assert divisions.url.params["$select"] == exact_online.DIVISION_SELECT


def test_the_tenants_settings_make_a_connection_that_works_with_the_new_tokens(
    fake: FakeExactOnline, browser: httpx.Client
) -> None:
    tokens = approved_tokens(browser)
    [tenant, _] = provider.discover_tenants(browser, tokens.access_token, {"country": "fr"}, {})

    http = provider_http.ProviderHttp(browser, tokens=exact_online.ConsentToken(tokens.access_token))
    connection = ConnectionContext("conn-new", "exact_online", tenant.settings, http)
    references = provider.list_references(connection)

    assert any(r.kind == "contact" and r.remote_id == CUSTOMER for r in references)
    api_calls = [r for r in fake.requests if r.url.path.startswith("/api/v1")]
    assert {r.url.host for r in api_calls} == {"start.exactonline.fr"}
    assert {r.headers["authorization"] for r in api_calls} == {f"Bearer {tokens.access_token}"}


def test_the_current_division_comes_first_then_by_number(
    fake: FakeExactOnline, browser: httpx.Client
) -> None:
    fake.divisions.insert(0, {**fake.divisions[1], "Code": 100001, "Description": "acme Holding"})
    tokens = approved_tokens(browser)

    tenants = provider.discover_tenants(browser, tokens.access_token, {"country": "fr"}, {})

    assert [tenant.remote_id for tenant in tenants] == ["124132", "100001", "124140"]


def test_a_division_without_a_description_is_named_after_its_owner(
    fake: FakeExactOnline, browser: httpx.Client
) -> None:
    fake.divisions = [{**fake.divisions[1], "Description": None}]
    tokens = approved_tokens(browser)

    [tenant] = provider.discover_tenants(browser, tokens.access_token, {"country": "fr"}, {})

    assert tenant == Tenant("124132", "acme", {"division": "124132", "country": "fr"})


def test_no_usable_division_is_no_tenant(fake: FakeExactOnline, browser: httpx.Client) -> None:
    fake.divisions = [d for d in fake.divisions if d["Status"] == 1 or d["BlockingStatus"] >= 100]
    tokens = approved_tokens(browser)

    assert provider.discover_tenants(browser, tokens.access_token, {"country": "fr"}, {}) == []


def test_a_user_without_a_current_division_has_no_tenant(
    fake: FakeExactOnline, browser: httpx.Client
) -> None:
    tokens = approved_tokens(browser)

    def no_division(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/current/Me":
            user = {"__metadata": {}, "CurrentDivision": None}
            return httpx.Response(200, json={"d": {"results": [user]}})
        return fake.handle(request)

    client = httpx.Client(transport=httpx.MockTransport(no_division))
    assert provider.discover_tenants(client, tokens.access_token, {"country": "fr"}, {}) == []


# --- refusals -------------------------------------------------------------------------------


def test_a_refused_consent_comes_back_as_access_denied(fake: FakeExactOnline, browser: httpx.Client) -> None:
    callback = decide(browser, "refuse")

    assert callback == {"error": ["access_denied"], "state": [STATE]}
    assert fake.consent.codes == {}


def test_a_code_is_good_once(fake: FakeExactOnline, browser: httpx.Client) -> None:
    code = decide(browser, "approve")["code"][0]
    exchange_code(browser, app(), code, REDIRECT_URI, None)

    with pytest.raises(CodeRefused, match="invalid_grant"):
        exchange_code(browser, app(), code, REDIRECT_URI, None)


def test_a_code_with_another_redirect_uri_is_refused(fake: FakeExactOnline, browser: httpx.Client) -> None:
    code = decide(browser, "approve")["code"][0]

    with pytest.raises(CodeRefused, match="invalid_grant"):
        exchange_code(browser, app(), code, "https://elsewhere.example/callback", None)


def test_the_consent_screen_refuses_a_redirect_uri_the_app_did_not_register(browser: httpx.Client) -> None:
    request = AuthorizationRequest(CLIENT_ID, "https://evil.example/cb", STATE, "", {"country": "nl"})

    page = browser.get(provider.authorization_url(request))

    assert page.status_code == 400 and "redirect_uri" in page.text
    assert urlsplit(str(page.request.url)).path == AUTHORIZE_PATH


def test_a_token_exact_refuses_during_discovery_needs_a_new_consent(
    fake: FakeExactOnline, browser: httpx.Client
) -> None:
    tokens = approved_tokens(browser)
    fake.expire_access_tokens()

    with pytest.raises(ReauthorizationRequired, match="refused the access token"):
        provider.discover_tenants(browser, tokens.access_token, {"country": "fr"}, {})


def test_no_access_to_the_current_division_needs_a_new_consent() -> None:
    other = FakeExactOnline(division=999999)  # the user's current division 124132 was not granted
    client = httpx.Client(transport=httpx.MockTransport(other.handle))
    tokens = exchange_code(client, app(), decide(client, "approve")["code"][0], REDIRECT_URI, None)

    with pytest.raises(ReauthorizationRequired, match="refused listing the divisions"):
        provider.discover_tenants(client, tokens.access_token, {"country": "fr"}, {})


@pytest.mark.parametrize("outage", ["503", "timeout"])
def test_an_unreachable_exact_during_discovery_is_provider_unavailable(
    outage: str, fake: FakeExactOnline, browser: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = approved_tokens(browser)
    waits: list[float] = []
    monkeypatch.setattr(provider_http, "_sleep", waits.append)
    if outage == "503":
        fake.fail_next(503, times=10)
    else:
        fake.timeout_next(times=10)

    with pytest.raises(ProviderUnavailable):
        provider.discover_tenants(browser, tokens.access_token, {"country": "fr"}, {})
    assert len(waits) == 3  # retried as every provider call is, then given up
