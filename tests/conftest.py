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

from ledgerbridge import snapstart
from ledgerbridge.config import settings
from ledgerbridge.local.template import Stack, create_resources, function_environment, load_template

ROOT = Path(__file__).resolve().parents[1]


def _reset_caches() -> None:
    """What a process keeps between tests (settings read from the environment, boto3 and httpx
    clients, principals, providers): what a SnapStart restore drops, plus the settings, since
    each test has its own environment and moto account."""
    settings.cache_clear()
    snapstart.clear_caches()
    snapstart.drop_connections()


@pytest.fixture
def moto_account(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh, empty moto account in this process: test credentials and region, none of the
    shell's endpoint or profile, and nothing cached from an earlier test's account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        _reset_caches()
        yield
    # The test's own patches go first (one may stand in for the shared httpx client), so that
    # what is dropped is what the next test would otherwise find.
    monkeypatch.undo()
    _reset_caches()


@pytest.fixture
def aws(moto_account: None, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """A fresh moto account with the template's tables and key, and the function's environment."""
    stack = Stack(load_template())
    create_resources(stack, *map(boto3.client, ("dynamodb", "kms", "secretsmanager", "sqs", "s3")))
    for name, value in function_environment(stack, "ApiFunction").items():
        if not name.startswith("POWERTOOLS_"):
            monkeypatch.setenv(name, value)
    settings.cache_clear()  # read again: the environment now names the stack's resources
    return stack


def load_handler_module(function: str = "api") -> ModuleType:
    """functions/<function>/app.py, imported the way Lambda would (the module named by Handler),
    as a module of its own each call: a new execution environment."""
    path = ROOT / "functions" / function / "app.py"
    spec = importlib.util.spec_from_file_location(f"ledgerbridge_{function}_app", path)
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
