"""Drive the API handler with HTTP API events (payload format 2.0), against moto."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import pytest

from ledgerbridge import jsonutil


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def json(self) -> Any:
        return jsonutil.loads(self.text)


STAGE = "v1"  # template.yaml's HttpApi stage


def http_event(
    method: str,
    path: str,
    *,
    route: str,
    body: str | None = None,
    headers: dict[str, str | None] | None = None,
    query: dict[str, str] | list[tuple[str, str]] | None = None,
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The event an HTTP API sends for one request to the stage's own URL (payload format 2.0):
    ``route`` is the template's path (``/accounting/invoices/{id}``), ``path`` the request's;
    header names lower case, the stage at the start of ``rawPath``, keys with nothing to hold
    left out. ``headers`` default to a JSON Content-Type; a None value leaves the header out.
    ``query`` as pairs may repeat a name: ``queryStringParameters`` joins its values with commas."""
    merged = {"content-type": "application/json", **(headers or {})}
    sent = {name.lower(): value for name, value in merged.items() if value is not None}
    pairs = list(query.items()) if isinstance(query, dict) else list(query or [])
    joined: dict[str, str] = {}
    for name, value in pairs:
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    raw_path, route_key = f"/{STAGE}{path}", f"{method} {route}"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": urlencode(pairs),
        "headers": sent,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "a1b2c3d4e5",
            "domainName": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "a1b2c3d4e5",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": sent.get("user-agent", ""),
            },
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "routeKey": route_key,
            "stage": STAGE,
            "time": "24/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1795514400000,
        },
        "isBase64Encoded": False,
    }
    optional = {"queryStringParameters": joined, "pathParameters": path_parameters, "body": body}
    event.update((key, value) for key, value in optional.items() if value)
    return event


class Api:
    """A tiny client: each call is one Lambda invocation of the real handler."""

    def __init__(self, module: ModuleType, context: Any, credentials: dict[str, str]):
        self._module, self._context, self.credentials = module, context, credentials

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: str | None = None,
        headers: dict[str, str | None] | None = None,
        query: dict[str, str] | list[tuple[str, str]] | None = None,
        auth: bool = True,
        base64_body: bool = False,
    ) -> Answer:
        """``base64_body``: the body base64-encoded, as an HTTP API passes a Content-Type it does
        not take for text (``application/vnd.api+json``)."""
        route, params = path, None
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "accounting":  # /accounting/<kind>/<id>
            route, params = f"/accounting/{parts[2]}/{{id}}", {"id": parts[3]}
        sent = {**(self.credentials if auth else {}), **(headers or {})}
        text = raw if raw is not None else (jsonutil.dumps(body) if body is not None else None)
        event = http_event(
            method, path, route=route, body=text, headers=sent, query=query, path_parameters=params
        )
        if base64_body and text is not None:
            event.update(body=base64.b64encode(text.encode()).decode(), isBase64Encoded=True)
        result = self._module.handler(event, self._context)
        assert result["statusCode"] != 500, result["body"]
        return Answer(result["statusCode"], result.get("headers") or {}, result["body"])

    def create(self, body: Any, **kwargs: Any) -> Answer:
        return self.call("POST", "/accounting/invoices", body=body, **kwargs)


@pytest.fixture
def api(api_module: ModuleType, lambda_context: Any, demo: dict[str, Any]) -> Api:
    return Api(
        api_module,
        lambda_context,
        {"x-api-key": demo["api_key"], "x-connection-token": demo["connection_token"]},
    )


def as_json(answer: Answer) -> str:
    return json.dumps(answer.json, default=str)


@contextmanager
def seeded_stack() -> Iterator[dict[str, Any]]:
    """The template's resources in a moto account and the demo seeded, for a script run in a
    fresh interpreter (outside pytest's fixtures) that checks what the API function's first
    requests import; yields the demo. The handler is left for the script to load, after it
    has looked at what the harness itself loaded."""
    import boto3
    from moto import mock_aws

    from ledgerbridge.local.template import Stack, create_resources, function_environment, load_template

    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        os.environ.pop(name, None)
    with mock_aws():
        stack = Stack(load_template())
        create_resources(stack, *map(boto3.client, ("dynamodb", "kms", "secretsmanager", "sqs", "s3")))
        for name, value in function_environment(stack, "ApiFunction").items():
            if not name.startswith("POWERTOOLS_"):
                os.environ[name] = value
        from ledgerbridge.admin import seed_demo

        yield seed_demo()


def demo_credentials(demo: dict[str, Any]) -> dict[str, str]:
    return {"x-api-key": demo["api_key"], "x-connection-token": demo["connection_token"]}
