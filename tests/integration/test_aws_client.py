"""The shared AWS client: botocore's per-call extras we do not need are off, and DynamoDB
still refuses a malformed request, answered as storage trouble."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from ledgerbridge.aws import USER_AGENT, client
from ledgerbridge.errors import ApiError
from ledgerbridge.store.dynamo import conditional_write


def test_requests_are_not_checked_against_the_model_and_carry_a_fixed_user_agent(aws: Any) -> None:
    """A wrong type reaches signing (botocore with validation on refuses it before)."""
    dynamodb = client("dynamodb")
    sent: list[str] = []

    def record(request: Any, **_: Any) -> None:
        agent = request.headers["User-Agent"]
        sent.append(agent.decode() if isinstance(agent, bytes) else agent)

    dynamodb.meta.events.register("before-sign.dynamodb", record)
    with contextlib.suppress(Exception):  # moto may refuse it: what matters is that it got this far
        dynamodb.list_tables(Limit="not a number")
    assert len(sent) == 1
    assert sent[0].startswith(USER_AGENT)


def test_a_malformed_request_is_still_refused_and_answered_503(aws: Any) -> None:
    with pytest.raises(ApiError) as caught:
        conditional_write("put_item", TableName="no-such-table", Item={"id": {"S": "x"}})
    assert caught.value.status == 503


def test_throttled_calls_are_retried_with_backoff_until_one_gets_through(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Standard retry mode: DynamoDB's throttling answers are retried (sleeps skipped here)."""
    dynamodb = client("dynamodb")
    attempts: list[int] = []
    throttled = b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"}'

    def answer(request: Any, **_: Any) -> Any:
        attempts.append(1)
        if len(attempts) <= 2:
            return AWSResponse(request.url, 400, {"x-amzn-ErrorType": "ThrottlingException"}, _Raw(throttled))
        return None  # on to moto

    monkeypatch.setattr("time.sleep", lambda seconds: None)
    dynamodb.meta.events.register_first("before-send.dynamodb", answer)
    try:
        dynamodb.list_tables()
    finally:
        dynamodb.meta.events.unregister("before-send.dynamodb", answer)
    assert len(attempts) == 3


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body
