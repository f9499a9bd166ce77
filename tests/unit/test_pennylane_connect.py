"""Pennylane's side of hosted connect: the consent URL, a full consent round trip through the
fake Pennylane (tests/fakes/pennylane.py), tenant discovery and token revocation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

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
from ledgerbridge.providers.pennylane import AUTHORIZE_URL, CONNECT_SCOPES, PennylaneProvider
from tests.fakes.consent import click, query, s256, single
from tests.fakes.pennylane import (
    AUTHORIZE_PATH,
    CLIENT_ID,
    CLIENT_SECRET,
    HOST,
    REDIRECT_URI,
    REVOKE_PATH,
    TOKEN_PATH,
    FakePennylane,
    recorded_body,
)
from tests.support.specs import document

provider = PennylaneProvider()
STATE = "st-7f3a9c"
VERIFIER = "v" * 43 + "-pennylane-verifier"
# Every operation this module calls, by spec excerpt (tests/fixtures/specs/pennylane).
CALLED_OPERATIONS = {
    "pennylane/customer_invoices": (
        "getCustomerInvoices",
        "postCustomerInvoices",
        "getCustomerInvoiceInvoiceLines",
        "getCustomers",
        "getLedgerAccounts",
        "getProducts",
    ),
    "pennylane/customers": ("postCompanyCustomer",),
}
SCOPE_NOTE = re.compile(r"This endpoint requires (?:the following scope|one of the following scopes): (.+)")


@pytest.fixture(autouse=True)
def _default_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    for kind in ("API", "TOKEN", "AUTHORIZE", "REVOKE"):
        monkeypatch.delenv(f"LEDGERBRIDGE_PENNYLANE_{kind}_URL", raising=False)


@pytest.fixture
def fake() -> FakePennylane:
    return FakePennylane()


@pytest.fixture
def client(fake: FakePennylane) -> Iterator[httpx.Client]:
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as mock_client:
        yield mock_client


def app(secret: str = CLIENT_SECRET) -> OAuthApp:
    token_url = provider.oauth_token_url({})
    assert token_url is not None
    return OAuthApp(token_url, CLIENT_ID, secret, client_auth=provider.oauth_client_auth)


def consent_request(challenge: str = s256(VERIFIER)) -> AuthorizationRequest:
    return AuthorizationRequest(CLIENT_ID, REDIRECT_URI, STATE, challenge, {})


def decide(client: httpx.Client, link_id: str, request: AuthorizationRequest | None = None) -> dict[str, str]:
    """Open the consent page, follow the ``approve``/``refuse`` link; the callback's query parameters."""
    url = provider.authorization_url(request or consent_request())
    return single(click(client, url, link_id, REDIRECT_URI))


def connect(client: httpx.Client) -> tuple[OAuthTokens, dict[str, str]]:
    callback = decide(client, "approve")
    return exchange_code(client, app(), callback["code"], REDIRECT_URI, VERIFIER), callback


# --- the authorisation URL ----------------------------------------------------------------


def test_pennylane_supports_hosted_connect_and_asks_nothing_before_consent() -> None:
    assert supports_connect(provider)
    assert connect_choices(provider) == ()
    assert provider.connect_pkce is True


def test_the_authorisation_url_carries_each_parameter_of_pennylanes_oauth_guide() -> None:
    url = provider.authorization_url(consent_request())
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "app.pennylane.com", "/oauth/authorize")
    assert url.startswith(AUTHORIZE_URL + "?")
    assert query(url) == {
        "client_id": [CLIENT_ID],
        "redirect_uri": [REDIRECT_URI],
        "response_type": ["code"],
        "scope": [" ".join(CONNECT_SCOPES)],
        "state": [STATE],
        "code_challenge": [s256(VERIFIER)],
        "code_challenge_method": ["S256"],
    }


def test_scopes_are_joined_with_plus_the_delimiter_pennylane_documents() -> None:
    raw = urlsplit(provider.authorization_url(consent_request())).query
    pairs = dict(pair.split("=", 1) for pair in raw.split("&"))
    assert pairs["scope"] == (
        "customer_invoices%3Aall+customers%3Aall+products%3Areadonly+ledger_accounts%3Areadonly"
    )


def test_the_scopes_are_exactly_those_pennylanes_openapi_document_names_for_the_calls_made() -> None:
    needed: list[tuple[str, ...]] = []
    for spec, operations in CALLED_OPERATIONS.items():
        for endpoint in document(spec)["endpoints"]:
            for method in endpoint["methods"].values():
                if method["operation_id"] in operations:
                    note = SCOPE_NOTE.search(method["description"])
                    assert note is not None, method["operation_id"]
                    needed.append(tuple(re.findall(r"`([a-z_]+:[a-z]+)`", note.group(1))))
    assert len(needed) == sum(len(operations) for operations in CALLED_OPERATIONS.values())
    assert all(set(accepted) & set(CONNECT_SCOPES) for accepted in needed)  # every call is allowed
    assert all(any(scope in accepted for accepted in needed) for scope in CONNECT_SCOPES)  # none unused
    # least privilege: a write scope only where a create needs it
    writes = {scope for scope in CONNECT_SCOPES if scope.endswith(":all")}
    assert writes == {"customer_invoices:all", "customers:all"}


def test_the_authorisation_url_follows_its_environment_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERBRIDGE_PENNYLANE_AUTHORIZE_URL", "https://pennylane.test/oauth/authorize/")
    url = provider.authorization_url(consent_request())
    assert url.startswith("https://pennylane.test/oauth/authorize?")
    assert query(url)["client_id"] == [CLIENT_ID]


def test_no_setting_chooses_another_host() -> None:
    """Pennylane has one host: no connect choice, and the same token URL whatever the settings."""
    assert provider.oauth_token_url({"country": "de"}) == provider.oauth_token_url({}) == HOST + TOKEN_PATH


# --- the round trip -------------------------------------------------------------------------


def test_consent_then_code_exchange_then_discovery_give_the_company_of_the_token(
    fake: FakePennylane, client: httpx.Client
) -> None:
    tokens, callback = connect(client)
    assert set(callback) == {"code", "state"}  # Pennylane adds nothing to the callback
    assert callback["state"] == STATE
    exchange = fake.consent.exchanges[-1]
    assert exchange["grant_type"] == "authorization_code"
    assert (exchange["client_id"], exchange["client_secret"]) == (CLIENT_ID, CLIENT_SECRET)  # form body
    assert exchange["code_verifier"] == VERIFIER
    assert tokens.refresh_token == fake.refresh_token and tokens.access_token in fake.access_tokens

    tenants = provider.discover_tenants(client, tokens.access_token, {}, callback)

    company = recorded_body("get-me")["company"]
    assert tenants == [Tenant(remote_id=str(company["id"]), name=company["name"], settings={})]
    me = fake.requests[-1]
    assert (me.method, me.url.path, me.headers["authorization"]) == (
        "GET",
        "/api/external/v2/me",
        f"Bearer {tokens.access_token}",
    )
    assert not me.url.params  # getMe documents no query parameter


def test_the_granted_tokens_work_on_the_api_and_refresh(fake: FakePennylane, client: httpx.Client) -> None:
    tokens, _ = connect(client)
    customers = client.get(
        f"{HOST}/api/external/v2/customers", headers={"authorization": f"Bearer {tokens.access_token}"}
    )
    assert customers.status_code == 200 and customers.json()["items"]
    refreshed = post_token_request(
        client, app(), {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    )
    assert refreshed.status_code == 200 and refreshed.json()["refresh_token"] == fake.refresh_token


def test_the_consent_screen_refuses_a_request_without_a_required_scope(client: httpx.Client) -> None:
    url = provider.authorization_url(consent_request()).replace("+products%3Areadonly", "")
    page = client.get(url)
    assert page.status_code == 400 and "products:readonly" in page.text


def test_refused_consent_redirects_with_access_denied_and_no_code(client: httpx.Client) -> None:
    assert decide(client, "refuse") == {"error": "access_denied", "state": STATE}


def test_a_code_used_once_is_refused_the_second_time(client: httpx.Client) -> None:
    callback = decide(client, "approve")
    exchange_code(client, app(), callback["code"], REDIRECT_URI, VERIFIER)
    with pytest.raises(CodeRefused, match="invalid_grant"):
        exchange_code(client, app(), callback["code"], REDIRECT_URI, VERIFIER)


def test_a_code_is_bound_to_the_verifier_of_its_challenge(client: httpx.Client) -> None:
    callback = decide(client, "approve")
    with pytest.raises(CodeRefused, match="invalid_grant"):
        exchange_code(client, app(), callback["code"], REDIRECT_URI, "another-verifier-" + "x" * 30)


def test_a_code_exchange_with_a_wrong_secret_is_refused(client: httpx.Client) -> None:
    callback = decide(client, "approve")
    with pytest.raises(CodeRefused, match="invalid_client"):
        exchange_code(client, app("not-the-secret"), callback["code"], REDIRECT_URI, VERIFIER)


# --- discovery failures ---------------------------------------------------------------------


def test_an_unknown_token_needs_consent_again(client: httpx.Client) -> None:
    with pytest.raises(ReauthorizationRequired):
        provider.discover_tenants(client, "not-a-token", {}, {})


def test_a_forbidden_profile_needs_consent_again(fake: FakePennylane, client: httpx.Client) -> None:
    tokens, callback = connect(client)
    fake.fail_next(403, body={"error": "Forbidden", "status": 403})
    with pytest.raises(ReauthorizationRequired, match="403"):
        provider.discover_tenants(client, tokens.access_token, {}, callback)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_server_failure_is_provider_unavailable(
    fake: FakePennylane, client: httpx.Client, status: int
) -> None:
    tokens, callback = connect(client)
    fake.fail_next(status)
    with pytest.raises(ProviderUnavailable, match=str(status)):
        provider.discover_tenants(client, tokens.access_token, {}, callback)


def test_a_network_failure_is_provider_unavailable(fake: FakePennylane, client: httpx.Client) -> None:
    tokens, callback = connect(client)
    fake.timeout_next()
    with pytest.raises(ProviderUnavailable, match="ReadTimeout"):
        provider.discover_tenants(client, tokens.access_token, {}, callback)


def test_a_profile_without_a_company_is_no_tenant(fake: FakePennylane, client: httpx.Client) -> None:
    tokens, callback = connect(client)
    fake.profile = {"user": recorded_body("get-me")["user"], "company": None}
    assert provider.discover_tenants(client, tokens.access_token, {}, callback) == []


def test_a_company_without_a_name_is_named_by_its_id(fake: FakePennylane, client: httpx.Client) -> None:
    tokens, callback = connect(client)
    fake.profile = {**fake.profile, "company": {"id": 77, "name": "", "reg_no": None}}
    assert provider.discover_tenants(client, tokens.access_token, {}, callback) == [Tenant("77", "77", {})]


# --- revocation -----------------------------------------------------------------------------


def test_revocation_reaches_pennylane_and_ends_both_tokens(fake: FakePennylane, client: httpx.Client) -> None:
    tokens, callback = connect(client)

    provider.revoke_tokens(client, app(), tokens)

    revoke = fake.requests[-1]
    assert (revoke.method, revoke.url.path) == ("POST", REVOKE_PATH)
    assert parse_qs(revoke.content.decode()) == {
        "token": [tokens.refresh_token],
        "token_type_hint": ["refresh_token"],
        "client_id": [CLIENT_ID],
        "client_secret": [CLIENT_SECRET],
    }
    assert fake.revoked == [tokens.refresh_token]
    with pytest.raises(ReauthorizationRequired):
        provider.discover_tenants(client, tokens.access_token, {}, callback)
    refused = post_token_request(
        client, app(), {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    )
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")


def test_revoking_with_a_wrong_secret_is_provider_unavailable_and_revokes_nothing(
    fake: FakePennylane, client: httpx.Client
) -> None:
    tokens, callback = connect(client)
    with pytest.raises(ProviderUnavailable, match="401"):
        provider.revoke_tokens(client, app("not-the-secret"), tokens)
    assert fake.revoked == []
    assert provider.discover_tenants(client, tokens.access_token, {}, callback)


def test_revocation_follows_its_environment_override(
    monkeypatch: pytest.MonkeyPatch, fake: FakePennylane, client: httpx.Client
) -> None:
    tokens, _ = connect(client)
    monkeypatch.setenv("LEDGERBRIDGE_PENNYLANE_REVOKE_URL", "https://pennylane.test/oauth/revoke")
    seen: list[httpx.Request] = []

    def elsewhere(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    with httpx.Client(transport=httpx.MockTransport(elsewhere)) as other:
        provider.revoke_tokens(other, app(), tokens)
    assert [str(request.url) for request in seen] == ["https://pennylane.test/oauth/revoke"]
    assert fake.revoked == []


def test_the_consent_screen_is_served_at_pennylanes_authorisation_path() -> None:
    assert urlsplit(AUTHORIZE_URL).path == AUTHORIZE_PATH


def test_the_fake_ends_the_pair_when_its_access_token_is_revoked(
    fake: FakePennylane, client: httpx.Client
) -> None:
    tokens, _ = connect(client)
    revocation = OAuthApp(HOST + REVOKE_PATH, CLIENT_ID, CLIENT_SECRET, client_auth="form")
    answer = post_token_request(client, revocation, {"token": tokens.access_token})
    assert (answer.status_code, answer.json()) == (200, {})
    assert tokens.access_token not in fake.access_tokens and fake.refresh_token is None
    again = post_token_request(client, revocation, {"token": tokens.access_token})
    assert (again.status_code, again.json()) == (200, {})  # RFC 7009: a dead token is no error
