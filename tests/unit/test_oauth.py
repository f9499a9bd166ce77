"""TokenSource: refresh before expiry, on 401, under concurrent refresh with rotation."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import httpx
import pytest

from ledgerbridge.providers.base import ProviderUnavailable, ReauthorizationRequired
from ledgerbridge.providers.oauth import REFRESH_MARGIN_SECONDS, OAuthApp, OAuthTokens, TokenSource

NOW = 1_800_000_000.0
CLIENT_JSON = '{"client_id": "client-id", "client_secret": "client-secret"}'
APP = OAuthApp("https://identity.example/token", "client-id", "client-secret")


class MemoryStore:
    """CredentialStore with DynamoDB's contract: versioned, conditional saves."""

    def __init__(self, tokens: OAuthTokens):
        self.tokens, self.reauthorization = tokens, None
        self.saves = 0

    def load(self) -> OAuthTokens:
        if self.reauthorization:
            raise ReauthorizationRequired(self.reauthorization)
        return self.tokens

    def save(self, tokens: OAuthTokens, replaces: OAuthTokens) -> bool:
        if self.tokens.version != replaces.version:
            return False
        self.tokens, self.saves = tokens, self.saves + 1
        return True

    def mark_needs_reauthorization(self, reason: str) -> None:
        self.reauthorization = reason


class RotatingTokenEndpoint:
    """Issues a new refresh token on every refresh and retires the one used (as Xero does)."""

    def __init__(self, valid_refresh_token: str, status: int = 200):
        self.valid, self.status, self.calls = {valid_refresh_token}, status, 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        assert (
            request.headers["authorization"]
            == "Basic " + base64.b64encode(b"client-id:client-secret").decode()
        )
        form = {key: values[0] for key, values in parse_qs(request.content.decode()).items()}
        assert form["grant_type"] == "refresh_token"
        if self.status != 200:
            return httpx.Response(self.status)
        if form["refresh_token"] not in self.valid:
            return httpx.Response(400, json={"error": "invalid_grant"})
        self.valid.discard(form["refresh_token"])
        fresh = f"rt-{self.calls + 1}"
        self.valid.add(fresh)
        return httpx.Response(200, json={"access_token": f"at-{self.calls + 1}", "refresh_token": fresh,
                                         "expires_in": 1800, "token_type": "Bearer"})  # fmt: skip


def source(store: MemoryStore, endpoint: RotatingTokenEndpoint) -> TokenSource:
    client = httpx.Client(transport=httpx.MockTransport(endpoint.handle))
    return TokenSource(store, APP, client, clock=lambda: NOW)


def tokens(expires_in: float, version: int = 0) -> OAuthTokens:
    return OAuthTokens("at-1", "rt-1", NOW + expires_in, version)


def test_a_valid_token_is_used_without_refreshing() -> None:
    store, endpoint = MemoryStore(tokens(3600)), RotatingTokenEndpoint("rt-1")
    assert source(store, endpoint).access_token() == "at-1"
    assert endpoint.calls == 0


def test_a_token_about_to_expire_is_refreshed_once_and_stored() -> None:
    store, endpoint = MemoryStore(tokens(REFRESH_MARGIN_SECONDS - 1)), RotatingTokenEndpoint("rt-1")
    tokens_source = source(store, endpoint)
    assert tokens_source.access_token() == "at-2"
    assert tokens_source.access_token() == "at-2"  # kept in memory, no second refresh
    assert endpoint.calls == 1
    assert store.tokens == OAuthTokens("at-2", "rt-2", NOW + 1800, version=1)


def test_a_rejected_token_is_refreshed_even_before_expiry() -> None:
    store, endpoint = MemoryStore(tokens(3600)), RotatingTokenEndpoint("rt-1")
    assert source(store, endpoint).refresh_after_rejection("at-1") == "at-2"
    assert store.tokens.refresh_token == "rt-2"


def test_a_rejection_of_an_already_replaced_token_uses_the_stored_one() -> None:
    store, endpoint = (
        MemoryStore(OAuthTokens("at-9", "rt-9", NOW + 3600, version=4)),
        RotatingTokenEndpoint("rt-9"),
    )
    assert source(store, endpoint).refresh_after_rejection("at-1") == "at-9"
    assert endpoint.calls == 0


def test_concurrent_refreshes_with_rotation_end_with_the_newest_token_stored() -> None:
    store, endpoint = MemoryStore(tokens(10)), RotatingTokenEndpoint("rt-1")
    first, second = source(store, endpoint), source(store, endpoint)
    second._remember(store.load())  # both containers hold the same expiring tokens
    assert first.access_token() == "at-2"  # refreshes with rt-1, which is now retired
    assert second.refresh_after_rejection("at-1") == "at-2"  # sees the newer stored tokens
    assert store.tokens.refresh_token == "rt-2"
    assert store.reauthorization is None
    assert endpoint.calls == 1


def test_losing_the_race_after_both_refreshed_keeps_the_winners_tokens() -> None:
    store, endpoint = MemoryStore(tokens(10)), RotatingTokenEndpoint("rt-1")
    loser = source(store, endpoint)
    winner_tokens = OAuthTokens("at-w", "rt-w", NOW + 1800, version=1)

    real_post = loser._post_refresh

    def post_then_lose(refresh_token: str) -> httpx.Response:
        response = real_post(refresh_token)
        store.tokens = winner_tokens  # another container saved first
        return response

    loser._post_refresh = post_then_lose
    assert loser.access_token() == "at-w"
    assert store.tokens == winner_tokens


def test_a_refused_refresh_marks_the_connection_for_reauthorization() -> None:
    store, endpoint = MemoryStore(tokens(10)), RotatingTokenEndpoint("some-other-token")
    with pytest.raises(ReauthorizationRequired, match="invalid_grant"):
        source(store, endpoint).access_token()
    assert store.reauthorization == "refresh token invalid_grant"
    with pytest.raises(ReauthorizationRequired):
        source(store, endpoint).access_token()  # later calls fail fast, without the provider


def test_a_failing_token_endpoint_is_provider_unavailable_not_reauthorization() -> None:
    store, endpoint = MemoryStore(tokens(10)), RotatingTokenEndpoint("rt-1", status=503)
    with pytest.raises(ProviderUnavailable):
        source(store, endpoint).access_token()
    assert store.reauthorization is None


def test_a_wrong_client_secret_does_not_send_connections_back_to_consent() -> None:
    store = MemoryStore(tokens(10))

    def invalid_client(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "invalid_client"})

    client = httpx.Client(transport=httpx.MockTransport(invalid_client))
    with pytest.raises(ProviderUnavailable, match="invalid_client"):
        TokenSource(store, APP, client, clock=lambda: NOW).access_token()
    assert store.reauthorization is None


@pytest.mark.parametrize("style", ["basic", "form", "json"])
def test_client_credentials_go_where_the_token_endpoint_wants_them(style: str) -> None:
    seen: list[httpx.Request] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 600})

    app = OAuthApp(APP.token_url, "client-id", "client-secret", client_auth=style)
    client = httpx.Client(transport=httpx.MockTransport(endpoint))
    assert TokenSource(MemoryStore(tokens(10)), app, client, clock=lambda: NOW).access_token() == "at-2"
    [request] = seen
    basic = "Basic " + base64.b64encode(b"client-id:client-secret").decode()
    if style == "json":
        body = json.loads(request.content)
        assert body == {"grant_type": "refresh_token", "refresh_token": "rt-1", **json.loads(CLIENT_JSON)}
        assert "authorization" not in request.headers
    else:
        form = {key: values[0] for key, values in parse_qs(request.content.decode()).items()}
        assert form["refresh_token"] == "rt-1"
        assert (request.headers.get("authorization") == basic) is (style == "basic")
        assert ("client_secret" in form) is (style == "form")


def test_a_refusal_sent_with_http_200_is_still_a_refusal() -> None:
    store = MemoryStore(tokens(10))

    def zoho_style(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"error": "invalid_code"})

    client = httpx.Client(transport=httpx.MockTransport(zoho_style))
    with pytest.raises(ReauthorizationRequired, match="invalid_code"):
        TokenSource(store, APP, client, clock=lambda: NOW).access_token()
    assert store.reauthorization == "refresh token invalid_code"
