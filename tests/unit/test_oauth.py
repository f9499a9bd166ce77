"""TokenSource: refresh before expiry, on 401, under concurrent refresh with rotation."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from ledgerbridge.providers.base import (
    ProviderUnavailable,
    ReauthorizationRequired,
    RefreshRules,
    refresh_rules,
)
from ledgerbridge.providers.oauth import (
    REFRESH_MARGIN_SECONDS,
    TOO_EARLY_RETRY_SECONDS,
    OAuthApp,
    OAuthTokens,
    TokenSource,
)

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


# --- per-provider rules: margin, redirect_uri, "too early" ----------------------------------

EXACT_LIKE = RefreshRules(margin_seconds=25.0, too_early=("access_token not expired",))
TOO_EARLY = {"error": "access_denied", "error_description": "Rate limit exceeded: access_token not expired"}


class ScriptedTokenEndpoint:
    """Answers refreshes from a script (the last answer repeats), keeping every request."""

    def __init__(self, *answers: httpx.Response):
        self.answers, self.requests = list(answers), []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def fresh_tokens() -> httpx.Response:
    return httpx.Response(200, json={"access_token": "at-2", "refresh_token": "rt-2", "expires_in": "600"})


def scripted(
    store: MemoryStore, endpoint: ScriptedTokenEndpoint, now: list[float], app: OAuthApp
) -> TokenSource:
    client = httpx.Client(transport=httpx.MockTransport(endpoint.handle))
    return TokenSource(store, app, client, clock=lambda: now[0])


def exact_like_app(**changes: Any) -> OAuthApp:
    return OAuthApp(APP.token_url, "client-id", "client-secret", "form", rules=EXACT_LIKE, **changes)


def form_of(request: httpx.Request) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(request.content.decode()).items()}


def test_the_default_margin_is_two_minutes() -> None:
    assert REFRESH_MARGIN_SECONDS == RefreshRules().margin_seconds == 120
    assert refresh_rules(object()) == RefreshRules()  # a provider that declares no rules


@pytest.mark.parametrize(("seconds_left", "refreshed"), [(60, False), (26, False), (24, True)])
def test_a_providers_own_margin_decides_when_to_refresh(seconds_left: float, refreshed: bool) -> None:
    endpoint, now = ScriptedTokenEndpoint(fresh_tokens()), [NOW]
    source_ = scripted(MemoryStore(tokens(seconds_left)), endpoint, now, exact_like_app())
    assert source_.access_token() == ("at-2" if refreshed else "at-1")
    assert len(endpoint.requests) == int(refreshed)


@pytest.mark.parametrize("style", ["form", "json", "basic"])
def test_a_provider_that_wants_the_redirect_uri_gets_it_on_every_refresh(style: str) -> None:
    endpoint = ScriptedTokenEndpoint(fresh_tokens())
    rules = RefreshRules(sends_redirect_uri=True)
    app = OAuthApp(APP.token_url, "client-id", "client-secret", style, "https://lb.example/cb", rules)
    scripted(MemoryStore(tokens(10)), endpoint, [NOW], app).access_token()
    [request] = endpoint.requests
    body = json.loads(request.content) if style == "json" else form_of(request)
    assert body["redirect_uri"] == "https://lb.example/cb"
    assert body["grant_type"] == "refresh_token" and body["refresh_token"] == "rt-1"


def test_a_configured_redirect_uri_is_not_sent_where_the_provider_does_not_ask_for_it() -> None:
    endpoint = ScriptedTokenEndpoint(fresh_tokens())
    app = OAuthApp(APP.token_url, "client-id", "client-secret", "form", "https://lb.example/cb")
    scripted(MemoryStore(tokens(10)), endpoint, [NOW], app).access_token()
    assert "redirect_uri" not in form_of(endpoint.requests[0])


def test_an_app_for_a_provider_that_wants_a_redirect_uri_cannot_be_made_without_one() -> None:
    with pytest.raises(ValueError, match="redirect_uri"):
        OAuthApp(APP.token_url, "client-id", "client-secret", rules=RefreshRules(sends_redirect_uri=True))


def test_too_early_keeps_the_current_token_until_it_expires_then_refreshes() -> None:
    store, now = MemoryStore(tokens(20)), [NOW]
    endpoint = ScriptedTokenEndpoint(httpx.Response(400, json=TOO_EARLY), fresh_tokens())
    source_ = scripted(store, endpoint, now, exact_like_app())

    assert source_.access_token() == "at-1"  # refused as too early: the current token is still good
    now[0] = NOW + 19
    assert source_.access_token() == "at-1"  # and nothing is asked again before it expires
    assert len(endpoint.requests) == 1
    assert store.reauthorization is None and store.saves == 0

    now[0] = NOW + 20  # expired by our clock: now the provider must allow it
    assert source_.access_token() == "at-2"
    assert len(endpoint.requests) == 2
    assert store.tokens == OAuthTokens("at-2", "rt-2", NOW + 20 + 600, version=1)


def test_too_early_is_recognised_by_the_reason_header_too() -> None:
    refusal = httpx.Response(
        400, json={"error": "access_denied"}, headers={"Reason": "x access_token not expired"}
    )
    store, endpoint = MemoryStore(tokens(20)), ScriptedTokenEndpoint(refusal)
    assert scripted(store, endpoint, [NOW], exact_like_app()).access_token() == "at-1"
    assert store.reauthorization is None


def test_too_early_for_a_token_our_clock_counts_as_expired_waits_before_asking_again() -> None:
    store, now = MemoryStore(tokens(-5)), [NOW]  # a credentials file with a wrong expiry
    endpoint = ScriptedTokenEndpoint(httpx.Response(400, json=TOO_EARLY), fresh_tokens())
    source_ = scripted(store, endpoint, now, exact_like_app())
    assert source_.access_token() == "at-1"  # the provider says it is valid: use it
    now[0] = NOW + TOO_EARLY_RETRY_SECONDS - 1
    assert source_.access_token() == "at-1"
    assert len(endpoint.requests) == 1
    now[0] = NOW + TOO_EARLY_RETRY_SECONDS
    assert source_.access_token() == "at-2"


def test_too_early_after_a_401_is_unavailable_never_reauthorization() -> None:
    store = MemoryStore(tokens(300))
    endpoint = ScriptedTokenEndpoint(httpx.Response(400, json=TOO_EARLY))
    with pytest.raises(ProviderUnavailable, match="refuses a new access token yet"):
        scripted(store, endpoint, [NOW], exact_like_app()).refresh_after_rejection("at-1")
    assert store.reauthorization is None


def test_the_same_refusal_is_not_too_early_for_a_provider_that_does_not_say_so() -> None:
    store = MemoryStore(tokens(20))
    endpoint = ScriptedTokenEndpoint(httpx.Response(400, json=TOO_EARLY))
    app = OAuthApp(APP.token_url, "client-id", "client-secret", "form")
    with pytest.raises(ProviderUnavailable, match="access_denied"):
        scripted(store, endpoint, [NOW], app).access_token()
    assert store.reauthorization is None


def test_a_dead_refresh_token_still_marks_the_connection_whatever_the_rules() -> None:
    store = MemoryStore(tokens(20))
    endpoint = ScriptedTokenEndpoint(httpx.Response(400, json={"error": "invalid_grant"}))
    with pytest.raises(ReauthorizationRequired):
        scripted(store, endpoint, [NOW], exact_like_app()).access_token()
    assert store.reauthorization == "refresh token invalid_grant"


def test_a_too_early_hold_is_dropped_when_another_container_stored_newer_tokens() -> None:
    store, now = MemoryStore(tokens(20)), [NOW]
    endpoint = ScriptedTokenEndpoint(httpx.Response(400, json=TOO_EARLY), fresh_tokens())
    source_ = scripted(store, endpoint, now, exact_like_app())
    assert source_.access_token() == "at-1"
    store.tokens = OAuthTokens("at-9", "rt-9", NOW + 10, version=3)  # refreshed elsewhere, expiring soon
    assert source_.refresh_after_rejection("at-1") == "at-2"  # the hold was for at-1 only
