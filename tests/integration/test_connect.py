"""Hosted connect's rules that need a clock or a second project (ledgerbridge.connect, against moto).

The flow itself runs over HTTP in tests/e2e/test_connect_over_http.py and
test_connect_providers_over_http.py; here: expiry of sessions and states, field errors with
nothing stored, and a session readable by its own project only.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from ledgerbridge import admin, connect
from ledgerbridge.errors import ApiError
from ledgerbridge.store import accounts

PUBLIC_URL = "https://api.ledgerbridge.test/v1"
RETURN_URL = "https://app.example.com/back"


@pytest.fixture
def project(aws: Any) -> str:
    project_id = admin.create_project("Connect tests")["project_id"]
    admin.set_project(project_id, [RETURN_URL])
    return project_id


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Move connect's clock (and its store's) ``seconds`` ahead."""
    now = time.time() + seconds
    monkeypatch.setattr("ledgerbridge.connect.time.time", lambda: now)
    monkeypatch.setattr("ledgerbridge.store.connect_sessions.time.time", lambda: now)


def page_token(session: dict[str, Any]) -> str:
    return session["url"].rsplit("/", 1)[1]


def sessions_of(project_id: str) -> list[dict[str, Any]]:
    return accounts._query(f"PROJECT#{project_id}", "CONNECT#")


def test_an_expired_session_shows_expired_and_its_page_is_gone(project: str, monkeypatch: Any) -> None:
    session = connect.create_session(
        project, {"end_user": {"id": "u1"}, "return_url": RETURN_URL}, PUBLIC_URL
    )
    assert connect.read_session(project, session["id"])["status"] == "pending"
    later(monkeypatch, connect.SESSION_SECONDS + 1)
    assert connect.read_session(project, session["id"])["status"] == "expired"
    with pytest.raises(connect.ConnectFailed) as gone:
        connect.page(page_token(session))
    assert gone.value.code == "expired"
    with pytest.raises(connect.ConnectFailed):
        connect.authorize(page_token(session), "sandbox", {}, PUBLIC_URL)


def test_a_state_older_than_ten_minutes_completes_nothing(project: str, monkeypatch: Any) -> None:
    session = connect.create_session(project, {"end_user": {"id": "u2"}}, PUBLIC_URL)
    consent = connect.authorize(page_token(session), "sandbox", {}, PUBLIC_URL)
    [state] = parse_qs(urlsplit(consent.url).query)["state"]
    later(monkeypatch, connect.STATE_SECONDS + 1)
    with pytest.raises(connect.ConnectFailed) as refused:
        connect.callback({"state": state, "code": "sandbox"}, PUBLIC_URL)
    assert refused.value.code == "invalid_state"
    assert connect.read_session(project, session["id"])["status"] == "pending"  # the user may start again
    assert admin.list_connections(project) == []


def test_bad_session_fields_are_named_and_nothing_is_stored(project: str) -> None:
    body = {"end_user": {"email": 3}, "providers": ["sandbox", "nope"], "return_url": "https://evil.test/",
            "connection_id": "not-one-of-yours", "colour": "blue"}  # fmt: skip
    with pytest.raises(ApiError) as refused:
        connect.create_session(project, body, PUBLIC_URL)
    fields = {detail.field for detail in refused.value.details}
    assert {"end_user.id", "end_user.email", "providers", "return_url", "colour"} <= fields
    assert refused.value.status == 422 and sessions_of(project) == []
    with pytest.raises(ApiError) as unknown:
        connect.create_session(project, {"end_user": {"id": "u"}, "connection_id": "01a2-none"}, PUBLIC_URL)
    assert [d.field for d in unknown.value.details] == ["connection_id"]


def test_a_session_is_read_by_its_own_project_only(project: str) -> None:
    session = connect.create_session(project, {"end_user": {"id": "u3"}}, PUBLIC_URL)
    other = admin.create_project("Someone else")["project_id"]
    with pytest.raises(ApiError) as hidden:
        connect.read_session(other, session["id"])
    assert hidden.value.status == 404


def connected_session(project: str) -> dict[str, Any]:
    """A session completed through the sandbox's consent, holding its connection token."""
    session = connect.create_session(project, {"end_user": {"id": "u4"}}, PUBLIC_URL)
    consent = connect.authorize(page_token(session), "sandbox", {}, PUBLIC_URL)
    [state] = parse_qs(urlsplit(consent.url).query)["state"]
    connect.callback({"state": state, "code": "sandbox"}, PUBLIC_URL)
    assert connect.read_session(project, session["id"])["connection_token"]
    return session


def test_the_sweeper_removes_a_token_its_session_no_longer_reveals(project: str, monkeypatch: Any) -> None:
    session = connected_session(project)
    [stored] = sessions_of(project)
    assert stored.get("token_blob") and stored["pending"] == "T"
    assert connect.forget_expired_tokens() == 0  # not expired yet: kept for the backend to read
    later(monkeypatch, connect.SESSION_SECONDS + 1)
    assert connect.forget_expired_tokens() == 1
    [stored] = sessions_of(project)
    assert "token_blob" not in stored and "pending" not in stored  # only the token's hash is left
    assert connect.read_session(project, session["id"])["connection_token"] is None
    assert connect.forget_expired_tokens() == 0


def test_reading_an_expired_session_removes_its_token_too(project: str, monkeypatch: Any) -> None:
    session = connected_session(project)
    later(monkeypatch, connect.SESSION_SECONDS + 1)
    outcome = connect.read_session(project, session["id"])
    assert (outcome["status"], outcome["connection_token"]) == ("connected", None)
    assert "token_blob" not in sessions_of(project)[0]
