"""DynamoCredentialStore on moto: encrypted, versioned, conditional, reauthorization flag."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from ledgerbridge import admin
from ledgerbridge.config import settings
from ledgerbridge.providers.base import ReauthorizationRequired
from ledgerbridge.providers.oauth import OAuthTokens
from ledgerbridge.store.credentials import DynamoCredentialStore


@pytest.fixture
def connection(aws: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr("time.time", lambda: 1_800_000_000.0)
    project = admin.create_project("P")
    credentials = {"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 3600}
    return admin.create_connection(project["project_id"], "xero", credentials, {"tenant_id": "t-1"})


def store_for(connection: dict[str, Any]) -> DynamoCredentialStore:
    return DynamoCredentialStore(connection["project_id"], connection["connection_id"])


def test_tokens_from_the_credentials_file_load_back_with_version_0(connection: dict[str, Any]) -> None:
    assert store_for(connection).load() == OAuthTokens("at-1", "rt-1", 1_800_003_600.0, version=0)


def test_a_save_replacing_the_stored_version_wins_and_a_stale_one_loses(connection: dict[str, Any]) -> None:
    store = store_for(connection)
    first = store.load()
    newer = OAuthTokens("at-2", "rt-2", 1_800_005_400.0, version=1)
    assert store.save(newer, replaces=first) is True
    assert store.save(OAuthTokens("at-x", "rt-x", 0, version=1), replaces=first) is False
    assert store.load() == newer


def test_saved_tokens_are_encrypted_at_rest(connection: dict[str, Any]) -> None:
    store = store_for(connection)
    store.save(OAuthTokens("at-SECRET", "rt-SECRET", 1.0, version=1), replaces=store.load())
    items = boto3.client("dynamodb").scan(TableName=settings().accounts_table)["Items"]
    assert "SECRET" not in repr(items)


def test_a_connection_marked_for_reauthorization_refuses_to_load(connection: dict[str, Any]) -> None:
    store = store_for(connection)
    store.mark_needs_reauthorization("refresh token invalid_grant")
    with pytest.raises(ReauthorizationRequired, match="invalid_grant"):
        store.load()
