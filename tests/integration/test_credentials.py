"""Connection credentials on moto: encrypted, versioned, conditional, reauthorization flag.

Also what goes in: the credentials file's expiry (epoch seconds, RFC 3339, or seconds from now)
and the OAuth app's redirect_uri, which FreshBooks refreshes carry.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
import pytest

from ledgerbridge import admin, connections
from ledgerbridge.auth import Principal
from ledgerbridge.config import settings
from ledgerbridge.errors import ApiError
from ledgerbridge.providers.base import ReauthorizationRequired
from ledgerbridge.providers.oauth import OAuthTokens
from ledgerbridge.store.credentials import DynamoCredentialStore
from tests.fakes import freshbooks


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


# --- the credentials file's expiry ---------------------------------------------------------------


def stored_expiry(project_id: str, credentials: dict[str, Any]) -> float:
    connection = admin.create_connection(project_id, "xero", credentials, {"tenant_id": "t-1"})
    return store_for(connection).load().expires_at


@pytest.mark.parametrize(
    ("expiry", "expected"),
    [
        ({"expires_at": 1_800_007_200}, 1_800_007_200.0),
        ({"expires_at": 1_800_007_200.5}, 1_800_007_200.5),
        ({"expires_at": "2027-01-15T08:00:00Z"}, datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()),
        ({"expires_at": "2027-01-15T09:00:00+01:00"}, datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()),
        ({"expires_at": "2027-01-15T08:00:00"}, datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()),  # UTC
        ({"expires_in": 3600}, 1_800_003_600.0),
        ({"expires_in": "600"}, 1_800_000_600.0),  # as Exact Online's token endpoint writes it
        ({"expires_at": 1_800_007_200, "expires_in": 60}, 1_800_007_200.0),  # the absolute one wins
        ({}, 1_800_000_000.0),  # unknown: refreshed on first use
    ],
)
def test_the_expiry_is_read_as_epoch_seconds_rfc_3339_or_seconds_from_now(
    aws: Any, monkeypatch: pytest.MonkeyPatch, expiry: dict[str, Any], expected: float
) -> None:
    monkeypatch.setattr("time.time", lambda: 1_800_000_000.0)
    project = admin.create_project("P")["project_id"]
    assert stored_expiry(project, {"access_token": "at", "refresh_token": "rt", **expiry}) == expected


@pytest.mark.parametrize(
    ("expiry", "field"),
    [
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"expires_at": "2027-02-30T08:00:00Z"}, "expires_at"),
        ({"expires_at": True}, "expires_at"),
        ({"expires_at": 1_800_007_200_000}, "expires_at"),  # milliseconds
        ({"expires_at": -1}, "expires_at"),
        ({"expires_at": {"seconds": 1}}, "expires_at"),
        ({"expires_in": "an hour"}, "expires_in"),
        ({"expires_in": -5}, "expires_in"),
        ({"expires_in": [3600]}, "expires_in"),
    ],
)
def test_any_other_expiry_is_refused_naming_the_field(aws: Any, expiry: dict[str, Any], field: str) -> None:
    project = admin.create_project("P")["project_id"]
    with pytest.raises(admin.AdminError, match=f"credentials file's {field} must be"):
        admin.create_connection(project, "xero", {"access_token": "a", "refresh_token": "r", **expiry})
    assert admin.list_connections(project) == []  # nothing was created


# --- the OAuth app's redirect_uri (FreshBooks refreshes carry it) --------------------------------


def put_oauth_apps(apps: dict[str, Any]) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=settings().oauth_clients_secret, SecretString=json.dumps(apps)
    )


def freshbooks_connection(expires_in: int) -> Principal:
    project = admin.create_project("P")["project_id"]
    tokens = {"access_token": "fb-access-0", "refresh_token": "fb-refresh-0", "expires_in": expires_in}
    settings_ = {"account_id": freshbooks.ACCOUNT_ID}
    created = admin.create_connection(project, "freshbooks", tokens, settings_)
    return Principal(project, created["connection_id"], "freshbooks", settings_)


def test_a_freshbooks_app_without_its_redirect_uri_is_not_configured(aws: Any) -> None:
    put_oauth_apps({"freshbooks": {"client_id": "id", "client_secret": "secret"}})
    with pytest.raises(ApiError) as refused:
        connections.connection_context(freshbooks_connection(3600))
    assert (refused.value.status, refused.value.error) == (503, "provider_not_configured")
    assert "redirect_uri is missing" in refused.value.message


def test_the_secrets_redirect_uri_goes_with_every_freshbooks_refresh(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = freshbooks.FakeFreshBooks()
    client = httpx.Client(transport=httpx.MockTransport(fake.handle))
    monkeypatch.setattr("ledgerbridge.providers.http.shared_client", lambda: client)
    app = {"client_id": freshbooks.CLIENT_ID, "client_secret": freshbooks.CLIENT_SECRET}
    put_oauth_apps({"freshbooks": {**app, "redirect_uri": freshbooks.REDIRECT_URI}})
    principal = freshbooks_connection(expires_in=0)  # expired: the first call refreshes

    counts = connections.sync_references(principal)

    assert counts["contact"] > 0
    [refresh] = [r for r in fake.requests if r.url.path == freshbooks.TOKEN_PATH]
    assert fake.body_of(refresh)["redirect_uri"] == freshbooks.REDIRECT_URI
    stored = DynamoCredentialStore(principal.project_id, principal.connection_id).load()
    assert (stored.refresh_token, stored.version) == ("fb-refresh-1", 1)
