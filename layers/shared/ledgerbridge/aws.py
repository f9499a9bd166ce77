"""AWS clients, created once per container and reused by every invocation.

Adaptive retry mode backs off when DynamoDB throttles; short timeouts keep a slow call
from eating the API Gateway's 29 s budget. ``AWS_ENDPOINT_URL`` (honoured by botocore)
points everything at the local stack.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 5},
    connect_timeout=2,
    read_timeout=5,
)


@cache
def client(service: str) -> Any:
    return boto3.session.Session().client(service, config=_CONFIG)
