"""HTTP to providers: one client per container, retries that respect the caller's time.

Every provider call goes through ``ProviderHttp.request``: connect/read timeouts; retries
with exponential backoff and full jitter on 429, 5xx and network errors, waiting what
``Retry-After`` asks when it says; never past the request's deadline (the Lambda's
remaining time), so a slow provider turns into ProviderUnavailable instead of a Lambda
timeout; one token refresh and retry on a 401. Idempotency keys make the retries safe:
each provider module sends the invoice id as its provider's key. A request the provider
cannot deduplicate (a create at a ledger without idempotency keys) is sent with
``idempotent=False``: it is retried only when it certainly never reached the provider
(connection refused, 429); anything ambiguous (a read timeout, a reset, a 5xx) raises
ProviderUnavailable at once, and the next attempt starts with ``find_invoice``.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import cache
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Protocol

import httpx

from ledgerbridge import jsonutil
from ledgerbridge.provider_types import ProviderUnavailable, ReauthorizationRequired

CONNECT_TIMEOUT = 3.0
# Failures that prove the request never reached the provider, so even a create may be resent.
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
READ_TIMEOUT = 10.0


def _sleep(seconds: float) -> None:
    time.sleep(seconds)  # looked up per call, so a test can stop time


def endpoint(provider_env_name: str, kind: str, default: str) -> str:
    """A provider base URL, overridable by LEDGERBRIDGE_<PROVIDER>_<API|TOKEN>_URL (never by requests)."""
    return os.environ.get(f"LEDGERBRIDGE_{provider_env_name}_{kind}_URL", default).rstrip("/")


def new_client(transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """A client as provider calls need it: timeouts, no redirects, and no cookies kept.

    One client serves every connection of every project in a container, and a client keeps
    the cookies responses set (load balancers' and API gateways' session cookies) and sends
    them on to the same host: the next call, another customer's, would carry them. Provider
    APIs authenticate by token; a cookie jar whose policy accepts no domain keeps nothing."""
    return httpx.Client(
        timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
        follow_redirects=False,
        cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
        transport=transport,
    )


@cache
def shared_client() -> httpx.Client:
    """One connection pool per container, reused by every invocation."""
    return new_client()


def json_body(response: httpx.Response) -> Any:
    """The response's JSON with exact decimals; None when it is not JSON."""
    try:
        return jsonutil.loads(response.content) if response.content else None
    except ValueError:
        return None


class AccessTokens(Protocol):
    def access_token(self) -> str: ...

    def refresh_after_rejection(self, rejected_access_token: str) -> str: ...


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0

    def backoff(self, attempt: int, jitter: float) -> float:
        """Full jitter: a random wait up to base * 2^(attempt-1), capped."""
        return min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * jitter


def retry_after(response: httpx.Response, now: float) -> float | None:
    """Seconds the provider asked us to wait (delta-seconds or an HTTP date), if it did."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


class ProviderHttp:
    """Requests for one connection during one API call (tokens and deadline are per call)."""

    def __init__(
        self,
        client: httpx.Client,
        tokens: AccessTokens | None = None,
        deadline: float | None = None,
        policy: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ):
        self._client, self._tokens, self._deadline, self._policy = client, tokens, deadline, policy
        self._sleep, self._clock, self._jitter = sleep or _sleep, clock, jitter

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """Send, retrying what is worth retrying; returns any other response for the caller to read."""
        content = None if body is None else jsonutil.dumps(body)
        base_headers = {"accept": "application/json", **(headers or {})}
        if content is not None:
            base_headers["content-type"] = "application/json"
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            token = self._tokens.access_token() if self._tokens else None
            sent_headers = {**base_headers, **({"authorization": f"Bearer {token}"} if token else {})}
            try:
                response = self._client.request(
                    method, url, params=params, headers=sent_headers, content=content, timeout=self._timeout()
                )
            except httpx.TransportError as exc:
                failure, wait = f"{type(exc).__name__} calling the provider", None
                if not idempotent and not isinstance(exc, NEVER_SENT):
                    raise ProviderUnavailable(f"{failure}; it may have been created, so not resent") from exc
            else:
                if response.status_code == 401 and self._tokens and token:
                    if refreshed:
                        raise ReauthorizationRequired("the provider refused a freshly refreshed access token")
                    self._tokens.refresh_after_rejection(token)
                    refreshed = True
                    attempt -= 1  # a refresh is not a failed attempt
                    continue
                if response.status_code != 429 and response.status_code < 500:
                    return response
                failure = f"HTTP {response.status_code} from the provider"
                if not idempotent and response.status_code != 429:
                    raise ProviderUnavailable(f"{failure}; it may have been created, so not resent")
                wait = retry_after(response, time.time())
            self._pause(attempt, failure, wait)

    def _timeout(self) -> httpx.Timeout:
        read = READ_TIMEOUT
        if self._deadline is not None:
            read = min(read, self._deadline - self._clock())
            if read <= 0:
                raise ProviderUnavailable("no time left to call the provider")
        return httpx.Timeout(read, connect=min(CONNECT_TIMEOUT, read))

    def _pause(self, attempt: int, failure: str, wait: float | None) -> None:
        """Sleep before the next attempt, or give up if attempts or time have run out."""
        delay = wait if wait is not None else self._policy.backoff(attempt, self._jitter())
        out_of_time = self._deadline is not None and self._clock() + delay >= self._deadline
        if attempt >= self._policy.max_attempts or out_of_time:
            raise ProviderUnavailable(f"{failure} (gave up after {attempt} attempts)")
        self._sleep(delay)
