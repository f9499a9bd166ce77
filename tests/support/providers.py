"""ProviderHttp for unit tests of provider modules: a fake behind it, and time that never passes."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from ledgerbridge.providers.http import AccessTokens, ProviderHttp, RetryPolicy


def fake_http(
    handler: Callable[[httpx.Request], httpx.Response],
    tokens: AccessTokens,
    sleeps: list[float] | None = None,
    attempts: int = 4,
) -> ProviderHttp:
    """Waits are appended to ``sleeps`` instead of slept; jitter is fixed at 0.5 (delays are exact)."""
    return ProviderHttp(
        httpx.Client(transport=httpx.MockTransport(handler)),
        tokens=tokens,
        policy=RetryPolicy(max_attempts=attempts, base_delay=0.5),
        sleep=(sleeps if sleeps is not None else []).append,
        jitter=lambda: 0.5,
    )
