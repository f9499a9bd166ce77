"""Fixtures of the fuzz suite, and its summary at the end of the run.

Every fuzz test gets a fresh moto account (``aws``), the demo project (``demo``) and a
:class:`~tests.fuzz.harness.Harness` around them. ``make test`` prints one line such as
``fuzz: requests=10234 5xx=0 ...``; ``make fuzz`` (``LEDGERBRIDGE_FUZZ_TABLE=1``) also prints
the table by category.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from ledgerbridge.local.template import Stack
from tests.fuzz.harness import TABLE_VARIABLE, Harness, build_harness, logs_per_request
from tests.fuzz.oracle import tally

# Hypothesis keeps caches (constants found in the source, Unicode tables) under ./.hypothesis;
# keep them out of the repository. No example database is used (database=None everywhere).
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "ledgerbridge-hypothesis")


@pytest.fixture
def harness(aws: Stack, demo: dict[str, Any]) -> Iterator[Harness]:
    with logs_per_request():
        yield build_harness(aws, demo)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    session = tally()
    if not session.requests:
        return
    if os.environ.get(TABLE_VARIABLE):
        terminalreporter.write_sep("=", "fuzz requests by category")
        terminalreporter.write_line(session.table())
    terminalreporter.write_line(session.summary_line())
