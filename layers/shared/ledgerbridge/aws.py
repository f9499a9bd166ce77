"""AWS clients, created once per container and reused by every invocation.

Retries are botocore's standard mode: throttling and transient errors are retried up to 5
attempts with jittered exponential backoff, within a retry quota. Not adaptive mode: its
client-side rate limiter (a token bucket consulted around every call) cost ~50 µs of CPU per
DynamoDB call, a tenth of the call, and limits nothing that matters in a container that makes
three calls per request, one request at a time. Short timeouts keep a slow call from eating
the API Gateway's 29 s budget. ``AWS_ENDPOINT_URL`` (honoured by botocore)
points everything at the local stack.

Two settings trade botocore's per-call work for nothing we need, measured on a warm create
(``make bench``; a third of the handler's CPU was botocore building and checking requests):
``parameter_validation=False`` skips walking every request against the service model before
sending it (our requests are built by ``store/dynamo.py``'s serializer, which refuses what
DynamoDB cannot hold, and DynamoDB validates every request itself: a malformed one is still a
ValidationException, answered 503 like any storage failure), and a fixed ``user_agent`` spares
rebuilding botocore's feature-tagged User-Agent string twice per call.

A client is created with the cyclic garbage collector paused: creating one parses its
service's model into tens of thousands of objects, all kept as long as the container (the
client is cached), so a collection during it can free nothing, yet walks them. For the API
function, whose first request creates its DynamoDB client, that was ~5 ms of the cold start's
CPU once init's heap is frozen (``ledgerbridge.snapstart``; dev machine, Lambda's Python 3.12,
``make bench``). Reference counting frees as usual meanwhile; the collector resumes right
after, unless it was off before.
"""

from __future__ import annotations

import gc
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

USER_AGENT = "ledgerbridge"

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=2,
    read_timeout=5,
    parameter_validation=False,
    user_agent=USER_AGENT,
)


@cache
def client(service: str) -> Any:
    collecting = gc.isenabled()  # someone else's pause is left alone
    gc.disable()
    try:
        return boto3.session.Session().client(service, config=_CONFIG)
    finally:
        if collecting:
            gc.enable()
