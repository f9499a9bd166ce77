"""Each provider's refresh rules against its fake token endpoint: what is sent, and when.

FreshBooks wants the app's registered redirect_uri on every refresh (its Node SDK always sends
it); Exact Online issues a new access token only in the current one's last half minute and
answers "too early" before that. The TokenSource is built the way connections.py builds it:
the provider's own ``oauth_client_auth`` and ``oauth_refresh``.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import pytest

from ledgerbridge import jsonutil
from ledgerbridge.providers.base import ProviderUnavailable, ReauthorizationRequired, refresh_rules
from ledgerbridge.providers.exact_online import ExactOnlineProvider
from ledgerbridge.providers.freshbooks import FreshBooksProvider
from ledgerbridge.providers.http import ProviderHttp
from ledgerbridge.providers.oauth import OAuthApp, OAuthTokens, TokenSource
from tests.fakes import exact_online, freshbooks
from tests.unit.test_oauth import MemoryStore

NOW = 1_800_000_000.0


def token_source(
    provider: FreshBooksProvider | ExactOnlineProvider,
    fake_handle: Callable[[httpx.Request], httpx.Response],
    store: MemoryStore,
    clock: Callable[[], float],
    client_id: str,
    client_secret: str,
    redirect_uri: str | None = None,
) -> tuple[TokenSource, httpx.Client]:
    client = httpx.Client(transport=httpx.MockTransport(fake_handle))
    app = OAuthApp(
        provider.oauth_token_url({}) or "", client_id, client_secret, provider.oauth_client_auth,
        redirect_uri, refresh_rules(provider),
    )  # fmt: skip
    return TokenSource(store, app, client, clock=clock), client


# --- FreshBooks: the registered redirect_uri on every refresh -----------------------------------


def freshbooks_source(fake: freshbooks.FakeFreshBooks, store: MemoryStore) -> TokenSource:
    source, _ = token_source(
        FreshBooksProvider(), fake.handle, store, lambda: NOW,
        freshbooks.CLIENT_ID, freshbooks.CLIENT_SECRET, freshbooks.REDIRECT_URI,
    )  # fmt: skip
    return source


def test_freshbooks_refreshes_carry_the_apps_redirect_uri() -> None:
    fake = freshbooks.FakeFreshBooks()
    store = MemoryStore(OAuthTokens("fb-access-0", "fb-refresh-0", expires_at=NOW - 1))
    assert freshbooks_source(fake, store).access_token() == "fb-access-1"
    [refresh] = [r for r in fake.requests if r.url.path == freshbooks.TOKEN_PATH]
    assert fake.body_of(refresh) == {
        "grant_type": "refresh_token",
        "refresh_token": "fb-refresh-0",
        "redirect_uri": freshbooks.REDIRECT_URI,
        "client_id": freshbooks.CLIENT_ID,
        "client_secret": freshbooks.CLIENT_SECRET,
    }
    assert store.tokens.refresh_token == "fb-refresh-1"


def test_freshbooks_declares_that_it_wants_the_redirect_uri() -> None:
    assert refresh_rules(FreshBooksProvider()).sends_redirect_uri is True
    assert refresh_rules(ExactOnlineProvider()).sends_redirect_uri is False


@pytest.mark.parametrize(
    ("redirect_uri", "description"),
    [(None, "Missing required parameter: redirect_uri."),
     ("https://elsewhere.example/cb", "The redirect uri included is not valid.")],
)  # fmt: skip
def test_the_freshbooks_fake_refuses_a_refresh_without_the_registered_redirect_uri(
    redirect_uri: str | None, description: str
) -> None:
    fake = freshbooks.FakeFreshBooks()
    body = {"grant_type": "refresh_token", "refresh_token": "fb-refresh-0",
            "client_id": freshbooks.CLIENT_ID, "client_secret": freshbooks.CLIENT_SECRET}  # fmt: skip
    if redirect_uri:
        body["redirect_uri"] = redirect_uri
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
        answer = client.post(f"https://api.freshbooks.com{freshbooks.TOKEN_PATH}", json=body)
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": "invalid_request", "error_description": description},
    )
    assert fake.refresh_token == "fb-refresh-0"  # nothing rotated


def test_a_refresh_without_redirect_uri_is_a_configuration_problem_not_a_lost_connection() -> None:
    """What Ledgerbridge sent before FreshBooks declared its rule: refused, yet the connection stays."""
    fake, store = (
        freshbooks.FakeFreshBooks(),
        MemoryStore(OAuthTokens("fb-access-0", "fb-refresh-0", NOW - 1)),
    )
    provider = FreshBooksProvider()
    app = OAuthApp(provider.oauth_token_url() or "", freshbooks.CLIENT_ID, freshbooks.CLIENT_SECRET, "json")
    client = httpx.Client(transport=httpx.MockTransport(fake.handle))
    with pytest.raises(ProviderUnavailable, match="invalid_request"):
        TokenSource(store, app, client, clock=lambda: NOW).access_token()
    assert store.reauthorization is None
    assert store.tokens.refresh_token == "fb-refresh-0"


# --- Exact Online: refresh only in the last half minute; "too early" is not re-consent ----------


def exact(
    now: list[float], expires_at: float
) -> tuple[exact_online.FakeExactOnline, MemoryStore, TokenSource, str]:
    """The fake (its first token issued at NOW), a store whose token expires at ``expires_at``."""
    fake = exact_online.FakeExactOnline(clock=lambda: now[0])
    store = MemoryStore(OAuthTokens("exact-access-0", "exact-refresh-0", expires_at=expires_at))
    source, _ = token_source(
        ExactOnlineProvider(), fake.handle, store, lambda: now[0],
        exact_online.CLIENT_ID, exact_online.CLIENT_SECRET,
    )  # fmt: skip
    return fake, store, source, "https://start.exactonline.nl/api/v1/current/Me"


def test_exact_tokens_are_kept_until_the_last_half_minute_then_refreshed_once() -> None:
    now = [NOW]
    fake, store, source, _ = exact(now, expires_at=NOW + 600)
    for elapsed in (0, 480, 560, 574):  # a two-minute margin would have asked at 480, and been refused
        now[0] = NOW + elapsed
        assert source.access_token() == "exact-access-0"
    assert fake.token_requests() == []

    now[0] = NOW + 580  # 20 seconds left: inside Exact's window
    assert source.access_token() == "exact-access-1"
    [refresh] = fake.token_requests()
    assert "redirect_uri" not in parse_qs(refresh.content.decode())
    assert (store.tokens.refresh_token, store.tokens.expires_at) == ("exact-refresh-1", NOW + 580 + 600)


def test_exacts_too_early_answer_keeps_the_current_token_and_the_connection() -> None:
    """A credentials file that understated the expiry: Exact says the token is not expired yet."""
    now = [NOW]
    fake, store, source, me = exact(now, expires_at=NOW + 15)
    http = ProviderHttp(httpx.Client(transport=httpx.MockTransport(fake.handle)), source)

    answer = http.request("GET", me)  # asks for a new token, is told "too early", uses the current one
    assert answer.status_code == 200
    assert answer.request.headers["authorization"] == "Bearer exact-access-0"
    assert len(fake.token_requests()) == 1
    assert fake.refresh_token == "exact-refresh-0" and store.reauthorization is None

    now[0] = NOW + 14  # not asked again before the token expires by our clock
    assert http.request("GET", me).status_code == 200
    assert len(fake.token_requests()) == 1

    now[0] = NOW + 575  # Exact's window: the refresh goes through
    assert source.access_token() == "exact-access-1"
    assert store.reauthorization is None


def test_the_exact_fake_answers_too_early_as_exact_does() -> None:
    now = [NOW]
    fake = exact_online.FakeExactOnline(clock=lambda: now[0])  # its first token is issued now
    now[0] = NOW + 100
    form = {"grant_type": "refresh_token", "refresh_token": "exact-refresh-0",
            "client_id": exact_online.CLIENT_ID, "client_secret": exact_online.CLIENT_SECRET}  # fmt: skip
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
        early = client.post("https://start.exactonline.nl/api/oauth2/token", data=form)
    assert early.status_code == 400
    assert jsonutil.loads(early.content) == {
        "error": "access_denied",
        "error_description": "Rate limit exceeded: access_token not expired",
    }
    assert early.headers["reason"].startswith("TooEarlyToRefreshTokens")
    assert fake.refresh_token == "exact-refresh-0"


def test_a_dead_exact_refresh_token_marks_the_connection_for_reauthorization() -> None:
    now = [NOW + 700]  # the access token has expired, so a refresh is allowed
    fake, store, source, _ = exact(now, expires_at=NOW + 600)
    fake.refresh_token = "exact-refresh-rotated-elsewhere"
    with pytest.raises(ReauthorizationRequired, match="invalid_grant"):
        source.access_token()
    assert store.reauthorization == "refresh token invalid_grant"
