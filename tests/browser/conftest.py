"""Headless Chromium for the browser tests, or a plain skip where the machine has none.

Decisions:
- The browser is Debian's ``chromium`` (apt), driven by Playwright's Python client through
  ``executable_path``. Playwright's own browser download (``playwright install``) is never used:
  it needs a host this project does not reach, and the distribution's build is what .ci/run can
  install with apt.
- Without Chromium the tests are skipped, not failed (a developer machine without apt can still
  run ``make test``), and the run's summary says so in a line of its own, so a skip is seen.
- ``--no-sandbox`` only when running as root: Chromium refuses to start its sandbox as root,
  and CI runs as root; anyone else keeps the sandbox.
- One browser per module, a fresh context (cookies, storage) per test, an 800px wide viewport
  (the README's screenshot width). Every console error and uncaught page error is recorded, so
  a test can assert a page produced none (a CSP violation is one).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _pytest.terminal import TerminalReporter
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

CHROMIUM = shutil.which("chromium")
SKIP_REASON = "chromium not found (apt-get install chromium)"
VIEWPORT = {"width": 800, "height": 600}
TIMEOUT_MS = 10_000  # each step is a local round trip: a stuck one fails fast, not after Playwright's 30s
_SCREENSHOTS = pytest.StashKey[Path]()
_SKIPPED = pytest.StashKey[int]()


@dataclass
class WatchedPage:
    """A page in its own browser context, with what its console reported as errors."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def record_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} ({message.location.get('url', '')})")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    browser_items = [item for item in items if item.get_closest_marker("browser")]
    if CHROMIUM is None:
        for item in browser_items:
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))
        config.stash[_SKIPPED] = len(browser_items)


def pytest_terminal_summary(terminalreporter: TerminalReporter, config: pytest.Config) -> None:
    if config.stash.get(_SKIPPED, 0):
        terminalreporter.write_line(f"browser tests skipped: {SKIP_REASON}", yellow=True, bold=True)
    if _SCREENSHOTS in config.stash:
        terminalreporter.write_line(f"browser screenshots: {config.stash[_SCREENSHOTS]}")


def launch_arguments() -> list[str]:
    return ["--no-sandbox"] if os.geteuid() == 0 else []


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=launch_arguments())
        yield launched
        launched.close()


@pytest.fixture
def watched_page(browser: Browser) -> Iterator[WatchedPage]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    watched = WatchedPage(context.new_page())
    watched.page.on("console", watched.record_console)
    watched.page.on("pageerror", lambda error: watched.errors.append(f"uncaught: {error}"))
    yield watched
    context.close()


@pytest.fixture(scope="session")
def screenshots(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this run's screenshots go; the run's summary prints the path."""
    folder = tmp_path_factory.mktemp("connect-screenshots", numbered=True)
    request.config.stash[_SCREENSHOTS] = folder
    return folder
