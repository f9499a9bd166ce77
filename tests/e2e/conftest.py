"""The local stack (``make run``) in a subprocess on free ports, shared by the e2e tests."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import IO

import pytest

from ledgerbridge.local.stack import READY_LINE

START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 15
_FIELD = re.compile(r"^\s+([a-z][a-z-]*): (\S+)$")  # "  x-api-key: lb_..." in the banner


@dataclass(frozen=True)
class LocalStack:
    api_url: str
    aws_endpoint: str
    api_key: str
    connection_token: str
    env: dict[str, str]  # the banner's export line: AWS SDKs and ledgerbridge-admin against the stack
    fields: dict[str, str]  # every "name: value" line of the banner (project-id, connection-id, ...)
    banner: list[str]  # what `make run` printed up to the ready line
    extra_env: dict[str, str] = field(default_factory=dict)  # what the stack was started with
    output: _Output | None = field(default=None, compare=False, repr=False)  # everything it printed
    pid: int = 0  # the stack's process (benchmarks/load.py reads its RSS)

    def log_text(self) -> str:
        """All the stack has printed so far (its logs), for tests that check what never appears."""
        return self.output.text() if self.output else ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Output:
    """Drains the stack's stdout+stderr in a thread, so a chatty server never blocks on a full pipe."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))
            if line.strip() == READY_LINE:
                self.ready.set()
        self.ready.set()  # the process ended: stop waiting

    def text(self) -> str:
        return "\n".join(self.lines)


def _parse(lines: list[str]) -> LocalStack:
    fields = dict(match.groups() for line in lines if (match := _FIELD.match(line)))
    export = next(line for line in lines if line.startswith("export "))
    env = dict(assignment.split("=", 1) for assignment in shlex.split(export)[1:])
    return LocalStack(
        api_url=fields["api-url"],
        aws_endpoint=fields["aws-endpoint"],
        api_key=fields["x-api-key"],
        connection_token=fields["x-connection-token"],
        env=env,
        fields=fields,
        banner=list(lines),
    )


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    with start_local_stack() as stack:
        yield stack


@contextmanager
def start_local_stack(extra_env: dict[str, str] | None = None) -> Iterator[LocalStack]:
    """`make run` in a subprocess on free ports, with ``extra_env`` (e.g. provider URL overrides)."""
    ports = {"API_PORT": str(_free_port()), "AWS_PORT": str(_free_port())}
    env = {**os.environ, **ports, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    env.pop("AWS_ENDPOINT_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "ledgerbridge.local.stack"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = _Output(process.stdout)
    try:
        if not output.ready.wait(START_TIMEOUT_SECONDS) or process.poll() is not None:
            pytest.fail(f"local stack did not get ready:\n{output.text()}")
        yield replace(_parse(output.lines), extra_env=extra_env or {}, output=output, pid=process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            returncode = process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            returncode = process.wait()
    assert returncode == 0, f"local stack exited {returncode}:\n{output.text()}"
