"""The hosted connect flow in headless Chromium: what an end user sees, clicks and lands on.

The HTTP walk (tests/e2e/test_connect_over_http.py) proves the protocol; this proves the pages
work in a real browser, and keep the promises connect_pages.py makes. Decisions:

- One local stack for the module, its QuickBooks and Zoho Books hosts pointed at the fakes
  (tests/fakes), served over HTTP, so the OAuth ledgers walk a consent screen of their own
  and the sandbox its built-in one. The OAuth apps name ``<api-url>/connect/callback`` as
  their redirect URI, and the fakes' consent screens are told the same, as an operator
  registers it with a provider.
- The return URL is an external https URL that cannot load here: the browser context routes
  it to a tiny page of its own, and keeps each request it got, so a test can read where
  the browser landed and which headers it sent (no ``Referer``: the page token never leaks).
- Accessibility is checked as the page works for a person: every ``<select>`` named by its
  ``<label>``, one ``<h1>``, Tab walking the controls in document order (the first one a
  Connect button when the first ledger asks nothing), a visible focus ring, and every text's
  contrast with what is behind it at WCAG AA (4.5:1), read from the computed styles. The
  inline style applied at all proves its CSP hash is right (a wrong one blocks it), and any
  console error (a CSP violation is one) fails the test.
- Screenshots of each step go to the run's screenshot folder (its path is in the summary).
  The ledger-choice page also goes to docs/images/connect-page.png for the README when that
  file is missing or LEDGERBRIDGE_UPDATE_SCREENSHOTS=1: a test run does not otherwise
  rewrite a committed file.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Request, Route
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser.conftest import WatchedPage
from tests.e2e.conftest import LocalStack, start_local_stack
from tests.e2e.support import admin, configure_oauth_apps
from tests.e2e.test_connect_over_http import new_session, read_session
from tests.e2e.test_connect_providers_over_http import simple_invoice
from tests.fakes import quickbooks, zoho_books
from tests.fakes.server import serve

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
RETURN_URL = "https://app.example.com/ledger-connected"
README_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "connect-page.png"
WCAG_AA_CONTRAST = Decimal("4.5")
FOCUS_RING = ("solid", "3px")  # connect_pages' ``outline:3px solid``
_NAME = "c => c.id || c.textContent.trim()"  # how a focused control is told apart
BUTTON_BACKGROUND = "rgb(26, 77, 143)"  # #1a4d8f: only there if the inline style passed the CSP


@dataclass(frozen=True)
class OAuthLedger:
    """A ledger behind a fake's consent screen, and the one question its form asks."""

    provider: str
    fake: Any
    url: str  # where the fake is served
    authorize_path: str
    setting: str
    answer: str
    company: str  # the company the connection must end up with
    several_companies: bool  # the consent covers several: the user picks ``company`` on our page


@dataclass(frozen=True)
class Running:
    stack: LocalStack
    ledgers: dict[str, OAuthLedger]


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    fakes = {"quickbooks": quickbooks.FakeQuickBooks(), "zoho_books": zoho_books.FakeZohoBooks()}
    with ExitStack() as started:
        urls = {name: started.enter_context(serve(fake.handle)) for name, fake in fakes.items()}
        stack = started.enter_context(
            start_local_stack(
                {
                    **provider_hosts("QUICKBOOKS", urls["quickbooks"], quickbooks),
                    **provider_hosts("ZOHO_BOOKS", urls["zoho_books"], zoho_books),
                }
            )
        )
        callback = f"{stack.api_url}/connect/callback"
        for fake in fakes.values():
            fake.consent.redirect_uri = callback
        configure_oauth_apps(
            stack,
            {
                name: {
                    "client_id": fake.client_id,
                    "client_secret": fake.client_secret,
                    "redirect_uri": callback,
                }
                for name, fake in fakes.items()
            },
        )
        admin(stack, "set-project", "--project", stack.fields["project-id"], "--return-url", RETURN_URL)
        qb, zoho = fakes["quickbooks"], fakes["zoho_books"]
        [zoho_company] = [
            o["name"] for o in zoho.organizations if o["organization_id"] == zoho.organization_id
        ]
        ledgers = {
            "quickbooks": OAuthLedger("quickbooks", qb, urls["quickbooks"], quickbooks.AUTHORIZE_PATH,
                                      "environment", "sandbox", qb.company["CompanyName"], False),
            "zoho_books": OAuthLedger("zoho_books", zoho, urls["zoho_books"], zoho_books.AUTHORIZE_PATH,
                                      "data_center", "eu", zoho_company, len(zoho.organizations) > 1),
        }  # fmt: skip
        yield Running(stack, ledgers)


def provider_hosts(env_name: str, url: str, fake_module: Any) -> dict[str, str]:
    """LEDGERBRIDGE_<PROVIDER>_API_URL / _TOKEN_URL / _AUTHORIZE_URL, all on the served fake."""
    return {
        f"LEDGERBRIDGE_{env_name}_API_URL": url,
        f"LEDGERBRIDGE_{env_name}_TOKEN_URL": url + fake_module.TOKEN_PATH,
        f"LEDGERBRIDGE_{env_name}_AUTHORIZE_URL": url + fake_module.AUTHORIZE_PATH,
    }


# --- the browser's side -----------------------------------------------------------------------


def open_session(stack: LocalStack, **body: Any) -> dict[str, Any]:
    """A connect session returning to RETURN_URL, as the SaaS backend creates it."""
    created = new_session(stack, return_url=RETURN_URL, **body)
    assert created.status_code == 201, created.text
    return created.json()


def serve_return_url(page: Page) -> list[Request]:
    """Answer the app's return URL with a tiny page; the requests it got, in order."""
    arrivals: list[Request] = []

    def fulfil(route: Route) -> None:
        arrivals.append(route.request)
        route.fulfill(
            status=200,
            content_type="text/html; charset=utf-8",
            body="<!doctype html><html lang=en><title>Back in the app</title><h1>Back in the app</h1></html>",
        )

    page.route(f"{RETURN_URL}**", fulfil)
    return arrivals


def landed(page: Page, arrivals: list[Request]) -> dict[str, list[str]]:
    """The return URL's query once the browser is there; it must have sent no Referer."""
    try:
        page.wait_for_url(f"{RETURN_URL}?**")
    except PlaywrightTimeoutError:
        pytest.fail(f"the browser stayed on {page.url}: {page.inner_text('body')[:500]}")
    [arrival] = arrivals
    assert "referer" not in arrival.headers, arrival.headers
    return parse_qs(urlsplit(page.url).query)


def open_connect_page(page: Page, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200
    assert_page_headers(response.headers)


def assert_page_headers(headers: dict[str, str]) -> None:
    """The headers connect_pages promises on every page."""
    policy = headers["content-security-policy"]
    for directive in (
        "default-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "style-src 'sha256-",
    ):
        assert directive in policy, policy
    assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"


def assert_accessible(page: Page, controls: str = "select, button") -> list[str]:
    """A connect page's accessibility promises; what Tab focuses (id, else text), in order."""
    assert page.locator("h1").count() == 1 and page.evaluate("document.documentElement.lang") == "en"
    unlabelled = page.eval_on_selector_all(
        "select", "all => all.filter(s => ![...s.labels].some(l => l.textContent.trim())).map(s => s.id)"
    )
    assert unlabelled == []
    in_order = page.eval_on_selector_all(controls, f"all => all.map({_NAME})")
    styled = page.locator("button, .button").first
    assert styled.evaluate("b => getComputedStyle(b).backgroundColor") == BUTTON_BACKGROUND
    focused = []
    for _ in in_order:
        page.keyboard.press("Tab")
        focused.append(page.evaluate(f"({_NAME})(document.activeElement)"))
        ring = page.evaluate(
            "(s => [s.outlineStyle, s.outlineWidth])(getComputedStyle(document.activeElement))"
        )
        assert tuple(ring) == FOCUS_RING, (focused[-1], ring)
    assert focused == in_order
    assert_text_contrast(page)
    return focused


_TEXT_COLOURS = """() => {
  const behind = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const colour = getComputedStyle(e).backgroundColor;
      if (colour !== 'rgba(0, 0, 0, 0)' && colour !== 'transparent') return colour;
    }
    return 'rgb(255, 255, 255)';
  };
  const hasText = (e) => [...e.childNodes].some(n => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
  return [...document.body.querySelectorAll('*')].filter(hasText)
    .map(e => [e.textContent.trim().slice(0, 40), getComputedStyle(e).color, behind(e)]);
}"""


def assert_text_contrast(page: Page) -> None:
    texts = page.evaluate(_TEXT_COLOURS)
    assert texts
    low = [(text, fore, back) for text, fore, back in texts if contrast(fore, back) < WCAG_AA_CONTRAST]
    assert low == [], low


def contrast(foreground: str, background: str) -> Decimal:
    """WCAG 2's contrast ratio of two computed ``rgb()`` colours, to two decimals."""
    lighter, darker = sorted((luminance(foreground), luminance(background)), reverse=True)
    return ((lighter + Decimal("0.05")) / (darker + Decimal("0.05"))).quantize(Decimal("0.01"))


def luminance(colour: str) -> Decimal:
    """WCAG 2's relative luminance of an ``rgb(r, g, b)`` colour."""
    red, green, blue = (_linear(Decimal(part) / 255) for part in re.findall(r"\d+", colour)[:3])
    return Decimal("0.2126") * red + Decimal("0.7152") * green + Decimal("0.0722") * blue


def _linear(channel: Decimal) -> Decimal:
    if channel <= Decimal("0.04045"):
        return channel / Decimal("12.92")
    return ((channel + Decimal("0.055")) / Decimal("1.055")) ** Decimal("2.4")


def screenshot(page: Page, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def keep_for_readme(shot: Path) -> None:
    if not README_SCREENSHOT.exists() or os.environ.get("LEDGERBRIDGE_UPDATE_SCREENSHOTS") == "1":
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, README_SCREENSHOT)


def choose_sandbox(
    watched: WatchedPage, stack: LocalStack, shots: Path, name: str
) -> tuple[dict[str, Any], list[Request], Path]:
    """A new session's page, the sandbox chosen by its button: the browser on its consent page.

    Answers the session, the return URL's arrivals and the ledger page's screenshot.
    """
    session = open_session(stack)
    page = watched.page
    arrivals = serve_return_url(page)
    open_connect_page(page, session["url"])
    ledger_page = screenshot(page, shots, f"{name}-1-choose-ledger")
    assert assert_accessible(page)[0] == "connect-sandbox"  # Tab lands on the first Connect button
    with page.expect_navigation(url="**/connect/sandbox/consent?**") as consent:
        page.click("#connect-sandbox")
    assert consent.value is not None
    assert_page_headers(consent.value.headers)
    assert page.locator("h1").inner_text() == "Sandbox ledger: allow access?"
    assert assert_accessible(page, controls="a") == ["approve", "refuse"]
    screenshot(page, shots, f"{name}-2-consent")
    return session, arrivals, ledger_page


def pick_company(page: Page, ledger: OAuthLedger, screenshots: Path) -> None:
    """Allow on the consent screen, then choose ``ledger.company`` on our page of companies."""
    with page.expect_response(lambda r: "/connect/callback?" in r.url and r.status == 200) as answered:
        page.click("#approve")
    assert_page_headers(answered.value.headers)
    assert page.locator("h1").inner_text() == "Choose the company to connect"
    assert ledger.company in assert_accessible(page, controls="a")
    screenshot(page, screenshots, f"{ledger.provider}-3-choose-company")
    page.get_by_role("link", name=ledger.company).click()


# --- the tests ----------------------------------------------------------------------------------


def test_the_sandbox_connects_in_the_browser_and_its_token_creates_an_invoice(
    running: Running, watched_page: WatchedPage, screenshots: Path
) -> None:
    stack, page = running.stack, watched_page.page
    session, arrivals, ledger_page = choose_sandbox(watched_page, stack, screenshots, "sandbox-allow")
    keep_for_readme(ledger_page)
    page.click("#approve")

    assert landed(page, arrivals) == {"session_id": [session["id"]], "status": ["success"]}
    screenshot(page, screenshots, "sandbox-allow-3-back-in-the-app")
    assert watched_page.errors == []
    outcome = read_session(stack, session["id"])
    assert (outcome["status"], outcome["provider"]) == ("connected", "sandbox")
    invoice = httpx.post(
        f"{stack.api_url}/accounting/invoices",
        json={
            "currency": "USD",
            "line_items": [{"description": "Set-up", "quantity": 1, "unit_price": "99.5"}],
        },
        headers={"x-api-key": stack.api_key, "x-connection-token": outcome["connection_token"]},
    )
    assert invoice.status_code == 201 and invoice.json()["sync_status"] == "synced", invoice.text


def test_denying_the_sandbox_returns_access_denied(
    running: Running, watched_page: WatchedPage, screenshots: Path
) -> None:
    stack, page = running.stack, watched_page.page
    session, arrivals, _ = choose_sandbox(watched_page, stack, screenshots, "sandbox-deny")
    page.click("#refuse")

    query = landed(page, arrivals)
    assert query == {"session_id": [session["id"]], "status": ["error"], "error": ["access_denied"]}
    assert watched_page.errors == []
    outcome = read_session(stack, session["id"])
    assert (outcome["status"], outcome["connection_token"]) == ("failed", None)


@pytest.mark.parametrize("provider", ["quickbooks", "zoho_books"])
def test_an_oauth_ledger_connects_through_its_consent_screen(
    running: Running, watched_page: WatchedPage, screenshots: Path, provider: str
) -> None:
    stack, page, ledger = running.stack, watched_page.page, running.ledgers[provider]
    session = open_session(stack, providers=[provider])
    arrivals = serve_return_url(page)
    open_connect_page(page, session["url"])
    choice = f"#{provider}-{ledger.setting}"
    assert assert_accessible(page) == [choice[1:], f"connect-{provider}"]  # its question, then its button
    page.select_option(choice, ledger.answer)
    screenshot(page, screenshots, f"{provider}-1-choose-ledger")
    page.click(f"#connect-{provider}")

    page.wait_for_url(f"{ledger.url}{ledger.authorize_path}?**")
    [consent_request] = [r for r in ledger.fake.requests if r.url.path == ledger.authorize_path]
    assert "referer" not in consent_request.headers  # the page token stays on our page
    screenshot(page, screenshots, f"{provider}-2-consent")
    if ledger.several_companies:
        pick_company(page, ledger, screenshots)
    else:
        page.click("#approve")

    assert landed(page, arrivals) == {"session_id": [session["id"]], "status": ["success"]}
    assert watched_page.errors == []
    assert len(ledger.fake.consent.exchanges) == 1  # the code was exchanged at the fake's token endpoint
    outcome = read_session(stack, session["id"])
    assert (outcome["status"], outcome["provider"]) == ("connected", provider)
    api_key = {"x-api-key": stack.api_key}
    connected = httpx.get(f"{stack.api_url}/connections/{outcome['connection_id']}", headers=api_key)
    assert connected.json()["tenant_name"] == ledger.company, connected.text
    [connection] = [
        c
        for c in admin(stack, "list-connections", "--project", stack.fields["project-id"])
        if c["connection_id"] == outcome["connection_id"]
    ]
    assert connection["settings"][ledger.setting] == ledger.answer  # the page's answer was kept
    auth = {**api_key, "x-connection-token": outcome["connection_token"]}
    body = simple_invoice(stack, auth)
    invoice = httpx.post(f"{stack.api_url}/accounting/invoices", json=body, headers=auth)
    assert invoice.status_code == 201, invoice.text  # at the fake, with the references synced at connect
    assert invoice.json()["sync_status"] == "synced" and invoice.json()["remote_id"]
