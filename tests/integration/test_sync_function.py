"""The scheduled sync function: every connection synced; failures reported, not hidden."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from ledgerbridge import admin
from ledgerbridge.store import references
from tests.conftest import ROOT


def sync_handler() -> Any:
    spec = importlib.util.spec_from_file_location(
        "ledgerbridge_sync_app", ROOT / "functions" / "sync" / "app.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_connection_is_synced(demo: dict[str, Any], lambda_context: Any) -> None:
    other = admin.create_connection(admin.create_project("Other")["project_id"], "sandbox")
    assert references.page(other["connection_id"], "contact", 10, None)[0] == []
    assert sync_handler().handler({}, lambda_context) == {"connections": 2}
    contacts, _ = references.page(other["connection_id"], "contact", 10, None)
    assert {c["remote_id"] for c in contacts} == {"C-1001", "C-1002", "V-2001"}


def test_a_failing_connection_fails_the_run_after_the_others_are_done(
    demo: dict[str, Any], lambda_context: Any
) -> None:
    project = admin.create_project("Broken")["project_id"]
    tokens = {"access_token": "a", "refresh_token": "r", "expires_in": 3600}
    admin.create_connection(
        project, "xero", tokens, {"tenant_id": "t"}
    )  # the OAuth app secret is still empty
    module = sync_handler()
    with pytest.raises(module.SyncFailed, match="1 of 2 connections"):
        module.handler({}, lambda_context)
