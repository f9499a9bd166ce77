"""Shared fixtures: AWS in-process (moto) with the resources template.yaml declares."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

# Powertools reads these when ledgerbridge.observability is first imported (below).
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "ledgerbridge")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Ledgerbridge")
os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"

import boto3
import pytest
from moto import mock_aws

from ledgerbridge import auth, connections
from ledgerbridge.aws import client
from ledgerbridge.config import settings
from ledgerbridge.local.template import Stack, create_resources, function_environment, load_template

ROOT = Path(__file__).resolve().parents[1]


def _reset_powertools_parameters() -> None:
    """Powertools Parameters keeps its boto3 clients and values per process; moto is per test."""
    from aws_lambda_powertools.utilities import parameters

    parameters.base.DEFAULT_PROVIDERS.clear()
    parameters.clear_caches()


def _reset_caches() -> None:
    settings.cache_clear()
    client.cache_clear()
    auth._cache.clear()
    connections._providers.clear()
    connections._token_sources.clear()
    _reset_powertools_parameters()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """A fresh moto account with the template's tables and key, and the function's environment."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        stack = Stack(load_template())
        create_resources(stack, *map(boto3.client, ("dynamodb", "kms", "secretsmanager", "sqs", "s3")))
        for name, value in function_environment(stack, "ApiFunction").items():
            if not name.startswith("POWERTOOLS_"):
                monkeypatch.setenv(name, value)
        _reset_caches()
        yield stack
    _reset_caches()


def load_handler_module() -> ModuleType:
    """functions/api/app.py, imported the way Lambda would (the module named by Handler)."""
    path = ROOT / "functions" / "api" / "app.py"
    spec = importlib.util.spec_from_file_location("ledgerbridge_api_app", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def api_module() -> ModuleType:
    return load_handler_module()


class FakeLambdaContext:
    function_name = "ledgerbridge-ApiFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ledgerbridge-ApiFunction"
    aws_request_id = "test-request"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def demo(aws: Stack) -> dict[str, Any]:
    """A project, API key and sandbox connection, created through the admin functions."""
    from ledgerbridge.admin import seed_demo

    return seed_demo()
