"""Hosted connect for every OAuth ledger, over HTTP: the local stack and each provider's fake.

Per ledger: a session, its page, the ledger chosen (with the page's question answered where
it has one), the fake's consent screen approved, the callback (code exchange and company
discovery at the fake; a company picked where the fake's consent covers several), the
return URL reached with ``status=success``, and the connection token read from the session
creating an invoice that the fake then holds. Refusing consent ends with ``access_denied``
and stores no connection.

The stack reaches each fake through LEDGERBRIDGE_<LEDGER>_API_URL / _TOKEN_URL /
_AUTHORIZE_URL (and _REVOKE_URL); the OAuth apps' ``redirect_uri`` is the stack's own
``/connect/callback``, and each fake's consent screen is told the same, as an operator
registers it with each provider.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from html import unescape
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.e2e.conftest import LocalStack, start_local_stack
from tests.e2e.support import admin, configure_oauth_apps
from tests.fakes import exact_online, freshbooks, pennylane, quickbooks, xero, zoho_books
from tests.fakes.server import serve

pytestmark = pytest.mark.e2e
RETURN_URL = "https://app.example.com/ledger-connected"
COMPANY_LINK = re.compile(r'<a class="button" href="([^"]+)">([^<]+)</a>')


@dataclass(frozen=True)
class Ledger:
    name: str
    env: str
    fake_module: ModuleType
    make_fake: Callable[[], Any]
    answers: dict[str, str] = field(default_factory=dict)  # the page's questions
    company: str | None = None  # the one to pick where the consent covers several (the fake's books)
    item: str | None = None  # an item of the fake's books an approved invoice line can use as it is
    created: Callable[[Any], int] = lambda fake: 0  # how many invoices the fake holds


LEDGERS = [
    Ledger("quickbooks", "QUICKBOOKS", quickbooks, quickbooks.FakeQuickBooks, {"environment": "production"},
           created=lambda fake: len(fake.created())),
    Ledger("xero", "XERO", xero, xero.FakeXero, company="Demo Company (Global)",
           item="Fish out of Water: Finding Your Brand",  # has a sales account: Xero wants one per line
           created=lambda fake: len(fake.invoices)),
    Ledger("freshbooks", "FRESHBOOKS", freshbooks, freshbooks.FakeFreshBooks,
           created=lambda fake: len(fake.created())),
    Ledger("zoho_books", "ZOHO_BOOKS", zoho_books, zoho_books.FakeZohoBooks, {"data_center": "eu"},
           "Ledgerbridge Test Co", created=lambda fake: len(fake.created("invoices"))),
    Ledger("exact_online", "EXACT_ONLINE", exact_online, exact_online.FakeExactOnline, {"country": "nl"},
           "acme", created=lambda fake: len(fake.sales_invoices)),
    Ledger("pennylane", "PENNYLANE", pennylane, pennylane.FakePennylane,
           created=lambda fake: len(fake.created())),
]  # fmt: skip


@dataclass
class Running:
    stack: LocalStack
    fakes: dict[str, Any]


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    with ExitStack() as stack_of:
        fakes = {ledger.name: ledger.make_fake() for ledger in LEDGERS}
        env: dict[str, str] = {}
        for ledger in LEDGERS:
            url = stack_of.enter_context(serve(fakes[ledger.name].handle))
            module = ledger.fake_module
            env[f"LEDGERBRIDGE_{ledger.env}_API_URL"] = url
            env[f"LEDGERBRIDGE_{ledger.env}_TOKEN_URL"] = url + module.TOKEN_PATH
            env[f"LEDGERBRIDGE_{ledger.env}_AUTHORIZE_URL"] = url + module.AUTHORIZE_PATH
            revoke_path = getattr(module, "REVOKE_PATH", getattr(module, "REVOCATION_PATH", None))
            if revoke_path:  # Exact Online has no revocation endpoint
                env[f"LEDGERBRIDGE_{ledger.env}_REVOKE_URL"] = url + revoke_path
        stack = stack_of.enter_context(start_local_stack(env))
        callback = f"{stack.api_url}/connect/callback"
        apps = {}
        for ledger in LEDGERS:
            fakes[ledger.name].consent.redirect_uri = callback
            fake = fakes[ledger.name]
            apps[ledger.name] = {"client_id": fake.consent.client_id, "client_secret": client_secret(fake),
                                 "redirect_uri": callback}  # fmt: skip
        configure_oauth_apps(stack, apps)
        admin(stack, "set-project", "--project", stack.fields["project-id"], "--return-url", RETURN_URL)
        yield Running(stack, fakes)


def client_secret(fake: Any) -> str:
    """The fake app's client secret (a module constant, or the fake's own where it takes one)."""
    return getattr(fake, "client_secret", None) or sys.modules[type(fake).__module__].CLIENT_SECRET


def start(running: Running, ledger: Ledger) -> tuple[dict[str, Any], httpx.Response]:
    """A session for ``ledger`` alone, its page, the ledger chosen: the fake's consent page."""
    stack = running.stack
    session = httpx.post(
        f"{stack.api_url}/connect/sessions",
        json={
            "end_user": {"id": f"user-{ledger.name}"},
            "providers": [ledger.name],
            "return_url": RETURN_URL,
        },
        headers={"x-api-key": stack.api_key},
    )
    assert session.status_code == 201, session.text
    created = session.json()
    page = httpx.get(created["url"])
    assert page.status_code == 200 and f'id="connect-{ledger.name}"' in page.text, page.text
    for setting in ledger.answers:
        assert f'name="{setting}"' in page.text  # the page asks it before consent
    chosen = httpx.post(created["url"], data={"provider": ledger.name, **ledger.answers})
    assert chosen.status_code == 303, chosen.text
    consent = httpx.get(chosen.headers["location"])
    assert consent.status_code == 200, consent.text
    return created, consent


def follow(page: httpx.Response, link_id: str) -> httpx.Response:
    """Click ``link_id`` on a fake's consent page and follow its redirect back to the stack."""
    href = unescape(re.search(rf'id="{link_id}" href="([^"]+)"', page.text).group(1))
    decided = httpx.get(str(page.url.join(href)))
    assert decided.status_code == 302, decided.text
    return httpx.get(decided.headers["location"])


def landed(answer: httpx.Response, company: str | None = None) -> dict[str, list[str]]:
    """The query the browser brings back to the return URL (after picking ``company``, if asked)."""
    if answer.status_code == 200 and "Choose the company" in answer.text:
        offered = {unescape(name): unescape(url) for url, name in COMPANY_LINK.findall(answer.text)}
        assert company in offered, offered
        answer = httpx.get(offered[company])
    assert answer.status_code == 303, answer.text
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == RETURN_URL
    return parse_qs(location.query)


def listed(stack: LocalStack, auth: dict[str, str], kind: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{stack.api_url}/accounting/{kind}", headers=auth, params={"limit": 100})
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def simple_invoice(stack: LocalStack, auth: dict[str, str], item_name: str | None = None) -> dict[str, Any]:
    """A receivable for an active customer and an item (``item_name``, else any) the sync stored."""
    synced = {kind: listed(stack, auth, kind) for kind in ("contacts", "items")}
    customer = next(
        c["id"] for c in synced["contacts"] if c.get("is_customer") and c.get("status") != "ARCHIVED"
    )
    item = next(i for i in synced["items"] if item_name in (None, i["name"]))
    line = {"description": "Connected", "quantity": 1, "unit_price": "10", "item_id": item["id"]}
    return {
        "contact_id": customer,
        "issue_date": "2026-11-24",
        "due_date": "2026-12-24",
        "line_items": [line],
    }


def session_outcome(stack: LocalStack, session_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{stack.api_url}/connect/sessions/{session_id}", headers={"x-api-key": stack.api_key})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("ledger", LEDGERS, ids=[ledger.name for ledger in LEDGERS])
def test_a_customer_connects_and_the_token_creates_an_invoice(running: Running, ledger: Ledger) -> None:
    stack, fake = running.stack, running.fakes[ledger.name]
    session, consent = start(running, ledger)
    approved = landed(follow(consent, "approve"), ledger.company)
    assert approved == {"session_id": [session["id"]], "status": ["success"]}

    outcome = session_outcome(stack, session["id"])
    assert (outcome["status"], outcome["provider"]) == ("connected", ledger.name)
    auth = {"x-api-key": stack.api_key, "x-connection-token": outcome["connection_token"]}
    before = ledger.created(fake)
    invoice = httpx.post(
        f"{stack.api_url}/accounting/invoices", json=simple_invoice(stack, auth, ledger.item), headers=auth
    )
    assert invoice.status_code == 201, invoice.text
    assert invoice.json()["sync_status"] == "synced" and ledger.created(fake) == before + 1


@pytest.mark.parametrize("ledger", LEDGERS, ids=[ledger.name for ledger in LEDGERS])
def test_refused_consent_stores_no_connection(running: Running, ledger: Ledger) -> None:
    stack = running.stack
    before = admin(stack, "list-connections", "--project", stack.fields["project-id"])
    session, consent = start(running, ledger)
    assert landed(follow(consent, "refuse")) == {
        "session_id": [session["id"]], "status": ["error"], "error": ["access_denied"]
    }  # fmt: skip
    assert session_outcome(stack, session["id"])["status"] == "failed"
    assert admin(stack, "list-connections", "--project", stack.fields["project-id"]) == before


def reconnect(running: Running, ledger: Ledger, connection_id: str, company: str) -> dict[str, list[str]]:
    stack = running.stack
    body = {"end_user": {"id": "user-xero"}, "connection_id": connection_id, "return_url": RETURN_URL}
    created = httpx.post(f"{stack.api_url}/connect/sessions", json=body, headers={"x-api-key": stack.api_key})
    assert created.status_code == 201, created.text
    session_url = created.json()["url"]
    chosen = httpx.post(session_url, data={"provider": ledger.name})
    assert chosen.status_code == 303, chosen.text
    return landed(follow(httpx.get(chosen.headers["location"]), "approve"), company)


def test_a_reconnect_repairs_the_connection_and_keeps_its_token(running: Running) -> None:
    [ledger] = [ledger for ledger in LEDGERS if ledger.name == "xero"]
    stack = running.stack
    session, consent = start(running, ledger)
    landed(follow(consent, "approve"), ledger.company)
    outcome = session_outcome(stack, session["id"])
    key = {"x-api-key": stack.api_key}
    auth = {**key, "x-connection-token": outcome["connection_token"]}
    connection_url = f"{stack.api_url}/connections/{outcome['connection_id']}"
    invoice = simple_invoice(stack, auth, ledger.item)
    fake = running.fakes["xero"]
    fake.expire_access_tokens()
    fake.grants.clear()  # the user withdrew the app at Xero: its refresh token is refused
    blocked = httpx.post(f"{stack.api_url}/accounting/invoices", json=invoice, headers=auth)
    assert (blocked.status_code, blocked.json()["error"]) == (409, "reauthorization_required"), blocked.text
    assert httpx.get(connection_url, headers=key).json()["needs_reauthorization"] is True

    other = reconnect(running, ledger, outcome["connection_id"], "acmeAPI")
    assert other["status"] == ["error"] and other["error"] == ["different_company"]
    assert httpx.get(connection_url, headers=key).json()["needs_reauthorization"] is True  # unchanged

    repaired = reconnect(running, ledger, outcome["connection_id"], "Demo Company (Global)")
    assert repaired["status"] == ["success"]
    assert httpx.get(connection_url, headers=key).json()["status"] == "active"
    again = httpx.post(f"{stack.api_url}/accounting/invoices", json=invoice, headers=auth)  # the same token
    assert again.status_code == 201 and again.json()["sync_status"] == "synced", again.text


def test_deleting_a_connection_revokes_its_tokens_at_the_provider(running: Running) -> None:
    [ledger] = [ledger for ledger in LEDGERS if ledger.name == "xero"]
    stack, fake = running.stack, running.fakes["xero"]
    session, consent = start(running, ledger)
    landed(follow(consent, "approve"), ledger.company)
    outcome = session_outcome(stack, session["id"])
    live = set(fake.grants)
    key = {"x-api-key": stack.api_key}
    deleted = httpx.delete(f"{stack.api_url}/connections/{outcome['connection_id']}", headers=key)
    assert deleted.status_code == 204, deleted.text
    [revoked] = live - set(fake.grants)  # this connection's refresh token, and only it
    assert revoked in fake.retired_refresh_tokens
    auth = {**key, "x-connection-token": outcome["connection_token"]}
    assert httpx.get(f"{stack.api_url}/accounting/invoices", headers=auth).status_code == 401
