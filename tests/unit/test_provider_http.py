"""ProviderHttp: retries, Retry-After, deadlines, one refresh on 401, exact JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ledgerbridge.providers.base import ProviderUnavailable, ReauthorizationRequired
from ledgerbridge.providers.http import ProviderHttp, RetryPolicy, endpoint, new_client, shared_client

URL = "https://ledger.example/api"


class Clock:
    """A fake monotonic clock that fake sleeps advance."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


class Tokens:
    def __init__(self) -> None:
        self.current, self.refreshes = "token-1", 0

    def access_token(self) -> str:
        return self.current

    def refresh_after_rejection(self, rejected_access_token: str) -> str:
        assert rejected_access_token == self.current
        self.refreshes += 1
        self.current = f"token-{self.refreshes + 1}"
        return self.current


def scripted(*answers: httpx.Response | Exception) -> tuple[Callable, list[httpx.Request]]:
    """A transport answering each request with the next scripted answer (the last one repeats)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle, seen


def make_http(handler: Callable, clock: Clock, tokens: Tokens | None = None, deadline: float | None = None):
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return ProviderHttp(
        client, tokens, deadline, RetryPolicy(), sleep=clock.sleep, clock=clock, jitter=lambda: 0.5
    )


def test_429_with_retry_after_is_waited_out() -> None:
    clock = Clock()
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "1"}), httpx.Response(200, json={}))
    assert make_http(handler, clock).request("GET", URL).status_code == 200
    assert clock.slept == [1.0]
    assert len(seen) == 2


def test_retry_after_as_an_http_date_is_honoured() -> None:
    clock = Clock()
    handler, _ = scripted(
        httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), httpx.Response(200)
    )
    make_http(handler, clock).request("GET", URL)
    assert clock.slept == [0.0]  # a date in the past means now


def test_5xx_is_retried_with_exponential_backoff_and_jitter() -> None:
    clock = Clock()
    handler, seen = scripted(
        httpx.Response(503), httpx.Response(502), httpx.Response(500), httpx.Response(201)
    )
    assert make_http(handler, clock).request("POST", URL, body={"a": 1}).status_code == 201
    assert clock.slept == [0.25, 0.5, 1.0]  # base 0.5 * 2^(n-1) * jitter 0.5
    assert len(seen) == 4


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), httpx.RemoteProtocolError("reset")]
)
def test_network_errors_are_retried(error: Exception) -> None:
    clock = Clock()
    handler, seen = scripted(error, httpx.Response(200))
    assert make_http(handler, clock).request("GET", URL).status_code == 200
    assert len(seen) == 2


def test_gives_up_after_the_policy_attempts() -> None:
    clock = Clock()
    handler, seen = scripted(httpx.Response(503))
    with pytest.raises(ProviderUnavailable, match=r"HTTP 503 .* after 4 attempts"):
        make_http(handler, clock).request("GET", URL)
    assert len(seen) == 4
    assert len(clock.slept) == 3


def test_never_waits_past_the_deadline() -> None:
    clock = Clock()
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "30"}), httpx.Response(200))
    with pytest.raises(ProviderUnavailable, match="429"):
        make_http(handler, clock, deadline=clock.now + 5).request("GET", URL)
    assert clock.slept == []
    assert len(seen) == 1


def test_no_time_left_means_no_call() -> None:
    clock = Clock()
    handler, seen = scripted(httpx.Response(200))
    with pytest.raises(ProviderUnavailable, match="no time left"):
        make_http(handler, clock, deadline=clock.now - 1).request("GET", URL)
    assert seen == []


def test_client_errors_are_returned_not_retried() -> None:
    clock = Clock()
    handler, seen = scripted(httpx.Response(400, json={"error": "bad"}))
    assert make_http(handler, clock).request("POST", URL, body={}).status_code == 400
    assert len(seen) == 1


def test_a_401_refreshes_once_and_retries_with_the_new_token() -> None:
    clock, tokens = Clock(), Tokens()
    handler, seen = scripted(httpx.Response(401), httpx.Response(200))
    assert make_http(handler, clock, tokens).request("GET", URL).status_code == 200
    assert [r.headers["authorization"] for r in seen] == ["Bearer token-1", "Bearer token-2"]
    assert tokens.refreshes == 1
    assert clock.slept == []


def test_a_401_after_a_refresh_means_reauthorization() -> None:
    clock, tokens = Clock(), Tokens()
    handler, _ = scripted(httpx.Response(401))
    with pytest.raises(ReauthorizationRequired):
        make_http(handler, clock, tokens).request("GET", URL)
    assert tokens.refreshes == 1


def test_json_bodies_keep_exact_decimals() -> None:
    clock = Clock()
    handler, seen = scripted(httpx.Response(200))
    make_http(handler, clock).request("POST", URL, body={"Amount": Decimal("0.1"), "Qty": Decimal("3")})
    assert seen[0].content == b'{"Amount":0.1,"Qty":3}'
    assert seen[0].headers["content-type"] == "application/json"
    assert json.loads(seen[0].content) == {"Amount": 0.1, "Qty": 3}


def test_base_urls_are_overridable_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert endpoint("XERO", "API", "https://api.xero.com") == "https://api.xero.com"
    monkeypatch.setenv("LEDGERBRIDGE_XERO_API_URL", "http://127.0.0.1:9999/")
    assert endpoint("XERO", "API", "https://api.xero.com") == "http://127.0.0.1:9999"


@pytest.mark.parametrize(
    "answer",
    [httpx.ReadTimeout("lost"), httpx.RemoteProtocolError("reset"), httpx.Response(503), httpx.Response(500)],
)
def test_a_non_idempotent_request_is_not_resent_after_an_ambiguous_failure(answer: Any) -> None:
    clock = Clock()
    handler, seen = scripted(answer, httpx.Response(201))
    with pytest.raises(ProviderUnavailable, match="not resent"):
        make_http(handler, clock).request("POST", URL, body={}, idempotent=False)
    assert len(seen) == 1


@pytest.mark.parametrize(
    "answer", [httpx.ConnectError("refused"), httpx.Response(429, headers={"Retry-After": "1"})]
)
def test_a_non_idempotent_request_is_resent_when_it_never_reached_the_provider(answer: Any) -> None:
    clock = Clock()
    handler, seen = scripted(answer, httpx.Response(201))
    assert make_http(handler, clock).request("POST", URL, body={}, idempotent=False).status_code == 201
    assert len(seen) == 2


def test_a_cookie_one_connection_is_given_is_never_sent_for_another() -> None:
    """One client serves every customer in a container: a session cookie a provider sets on one
    connection's call must not ride along on the next call, another customer's."""
    handle, seen = scripted(
        httpx.Response(200, headers={"set-cookie": "JSESSIONID=customer-a; Path=/; Secure"}, json={}),
        httpx.Response(200, json={}),
    )
    client = new_client(httpx.MockTransport(handle))
    clock = Clock()
    for token in ("customer-a-token", "customer-b-token"):
        tokens = Tokens()
        tokens.current = token
        ProviderHttp(client, tokens, None, RetryPolicy(), sleep=clock.sleep, clock=clock).request("GET", URL)
    assert [request.headers.get("cookie") for request in seen] == [None, None]
    assert len(client.cookies) == 0
    answer = httpx.Response(200, headers={"set-cookie": "AWSALB=sticky"}, request=httpx.Request("GET", URL))
    shared_client().cookies.extract_cookies(answer)  # the container's own client keeps none either
    assert len(shared_client().cookies) == 0
