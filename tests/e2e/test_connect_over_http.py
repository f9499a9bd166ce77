"""Hosted connect through the local stack over HTTP, with the sandbox ledger (no provider account).

Session → page → ledger chosen → the sandbox's own consent page → callback → the return URL
(or a page) → the backend reads the session and creates an invoice with the connection token
it got. Then what must end in an error and store nothing: refused consent, a replayed
``state``, a foreign return URL, a page token that does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.e2e.conftest import LocalStack, start_local_stack
from tests.e2e.support import admin

pytestmark = pytest.mark.e2e
RETURN_URL = "https://app.example.com/ledger-connected"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with start_local_stack() as running:
        admin(running, "set-project", "--project", running.fields["project-id"], "--return-url", RETURN_URL)
        yield running


def new_session(stack: LocalStack, **body: Any) -> httpx.Response:
    payload = {"end_user": {"id": "customer-42", "organization_name": "Acme & Sons"}, **body}
    return httpx.post(f"{stack.api_url}/connect/sessions", json=payload, headers={"x-api-key": stack.api_key})


def read_session(stack: LocalStack, session_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{stack.api_url}/connect/sessions/{session_id}", headers={"x-api-key": stack.api_key})
    assert answer.status_code == 200, answer.text
    return answer.json()


def link(page: httpx.Response, link_id: str) -> str:
    return unescape(re.search(rf'id="{link_id}" href="([^"]+)"', page.text).group(1))


def consent_page(stack: LocalStack, session: dict[str, Any]) -> httpx.Response:
    """Open the session's page, choose the sandbox, land on its consent page."""
    page = httpx.get(session["url"])
    assert page.status_code == 200 and 'id="connect-sandbox"' in page.text
    chosen = httpx.post(session["url"], data={"provider": "sandbox"})
    assert chosen.status_code == 303, chosen.text
    consent = httpx.get(chosen.headers["location"])
    assert consent.status_code == 200
    return consent


def test_the_whole_flow_ends_in_a_connection_that_creates_invoices(stack: LocalStack) -> None:
    created = new_session(stack, return_url=RETURN_URL)
    assert created.status_code == 201, created.text
    session = created.json()
    assert set(session) == {"id", "url", "expires_at"} and session["url"].startswith(
        f"{stack.api_url}/connect/"
    )

    page = httpx.get(session["url"])
    for header, value in (("x-frame-options", "DENY"), ("referrer-policy", "no-referrer")):
        assert page.headers[header] == value
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "Acme &amp; Sons" in page.text and "<script" not in page.text

    approve = link(consent_page(stack, session), "approve")
    back = httpx.get(approve)
    assert back.status_code == 303
    landed = urlsplit(back.headers["location"])
    assert f"{landed.scheme}://{landed.netloc}{landed.path}" == RETURN_URL
    assert parse_qs(landed.query) == {"session_id": [session["id"]], "status": ["success"]}

    outcome = read_session(stack, session["id"])
    assert (outcome["status"], outcome["provider"]) == ("connected", "sandbox")
    token = outcome["connection_token"]
    assert token and outcome["connection_id"]
    invoice = httpx.post(
        f"{stack.api_url}/accounting/invoices",
        json={
            "currency": "USD",
            "line_items": [{"description": "Set-up", "quantity": 1, "unit_price": "99.5"}],
        },
        headers={"x-api-key": stack.api_key, "x-connection-token": token},
    )
    assert invoice.status_code == 201 and invoice.json()["sync_status"] == "synced", invoice.text
    key = {"x-api-key": stack.api_key}
    connection = httpx.get(f"{stack.api_url}/connections/{outcome['connection_id']}", headers=key).json()
    assert connection["last_used_at"] == invoice.json()["created_at"]
    assert (
        httpx.delete(f"{stack.api_url}/connections/{outcome['connection_id']}", headers=key).status_code
        == 204
    )
    kept = httpx.get(f"{stack.api_url}/connections/{outcome['connection_id']}/invoices", headers=key)
    assert [i["id"] for i in kept.json()["data"]] == [invoice.json()["id"]]  # still the project's to read
    bad_limit = httpx.get(
        f"{stack.api_url}/connections/{outcome['connection_id']}/invoices?limit=0", headers=key
    )
    assert bad_limit.status_code == 400 and bad_limit.json()["details"][0]["field"] == "limit"
    assert httpx.get(session["url"]).status_code == 400  # the page is done once the session is
    state = parse_qs(urlsplit(approve).query)["state"][0]
    secrets = {"page token": session["url"].rsplit("/", 1)[1], "state": state, "connection token": token}
    logs = stack.log_text()
    assert "connect session completed" in logs  # the logs are there, and hold none of the secrets
    assert [name for name, secret in secrets.items() if secret in logs] == []


def test_a_replayed_state_or_a_refusal_stores_nothing(stack: LocalStack) -> None:
    before = admin(stack, "list-connections", "--project", stack.fields["project-id"])
    session = new_session(stack, return_url=RETURN_URL).json()
    consent = consent_page(stack, session)
    refused = httpx.get(link(consent, "refuse"))
    assert refused.status_code == 303
    assert parse_qs(urlsplit(refused.headers["location"]).query) == {
        "session_id": [session["id"]], "status": ["error"], "error": ["access_denied"]
    }  # fmt: skip
    replayed = httpx.get(link(consent, "approve"))  # the same state, already used by the refusal
    assert replayed.status_code == 400 and "already been used" in replayed.text
    assert read_session(stack, session["id"])["status"] == "failed"
    assert read_session(stack, session["id"])["connection_token"] is None
    assert admin(stack, "list-connections", "--project", stack.fields["project-id"]) == before


def test_sessions_refuse_what_a_payments_grade_api_must(stack: LocalStack) -> None:
    foreign = new_session(stack, return_url="https://evil.example/steal")
    assert foreign.status_code == 422 and foreign.json()["details"][0]["field"] == "return_url"
    assert new_session(stack, providers=["nope"]).json()["details"][0]["field"] == "providers"
    anonymous = httpx.post(f"{stack.api_url}/connect/sessions", json={"end_user": {"id": "x"}})
    assert anonymous.status_code == 401
    assert httpx.get(f"{stack.api_url}/connect/not-a-real-token").status_code == 400
    bogus_callback = httpx.get(f"{stack.api_url}/connect/callback", params={"state": "forged", "code": "x"})
    assert bogus_callback.status_code == 400 and "already been used or has expired" in bogus_callback.text


def test_the_project_lists_and_deletes_its_connections(stack: LocalStack) -> None:
    session = new_session(stack, return_url=RETURN_URL).json()
    assert httpx.get(link(consent_page(stack, session), "approve")).status_code == 303
    outcome = read_session(stack, session["id"])
    key = {"x-api-key": stack.api_key}
    listed = httpx.get(f"{stack.api_url}/connections", headers=key).json()["data"]
    [mine] = [c for c in listed if c["id"] == outcome["connection_id"]]
    assert (mine["provider"], mine["status"], mine["needs_reauthorization"]) == ("sandbox", "active", False)
    assert mine["last_used_at"] is None and mine["created_at"]  # its token is still unused
    one = httpx.get(f"{stack.api_url}/connections/{mine['id']}", headers=key)
    assert one.status_code == 200 and one.json() == mine
    assert httpx.get(f"{stack.api_url}/connections", headers={"x-api-key": "lbk_nope"}).status_code == 401

    assert httpx.delete(f"{stack.api_url}/connections/{mine['id']}", headers=key).status_code == 204
    refused = httpx.get(
        f"{stack.api_url}/accounting/invoices",
        headers={**key, "x-connection-token": outcome["connection_token"]},
    )
    assert refused.status_code == 401  # never used before, so no container had it cached
    assert httpx.get(f"{stack.api_url}/connections/{mine['id']}", headers=key).status_code == 404
    assert httpx.delete(f"{stack.api_url}/connections/{mine['id']}", headers=key).status_code == 404
    assert mine["id"] not in {
        c["id"] for c in httpx.get(f"{stack.api_url}/connections", headers=key).json()["data"]
    }


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe\x00provider=sandbox", b"&".join(b"f%d=x" % n for n in range(50)), b"provider=" + b"x" * 9000],
    ids=["not-utf8", "too-many-fields", "too-large"],
)
def test_a_hostile_ledger_form_is_a_page_saying_so_never_a_500(stack: LocalStack, body: bytes) -> None:
    session = new_session(stack).json()
    answer = httpx.post(
        session["url"], content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert answer.status_code == 400 and "Could not connect" in answer.text, answer.text
    assert httpx.get(session["url"]).status_code == 200  # the link still works
