"""``make load``: the local stack under a bounded load, through its HTTP API on loopback.

It starts ``make run`` as the e2e tests do (``tests.e2e.conftest.start_local_stack``) on free
loopback ports, with schedules off, and for each number of clients (1, 4, 8) sends
``$LOAD_CREATES`` (2,000) ``POST /accounting/invoices`` to the seeded sandbox connection,
each client a thread with its own keep-alive connection, each create a new idempotency key.
Then, once the stack is idle again, it times the first page of ``GET /accounting/invoices``
at the number of invoices the run has made.

Why these figures: a create's latency percentiles and throughput say how the stack serves
several requests at once (``$LOCAL_CONCURRENCY`` containers per function, 4 by default); the
stack's RSS before and after (``/proc/<pid>/status``) and the p50 of the first against the
last 300 creates of a level say whether each create costs more than the last (what the
emulator keeps, or copies, per create). The levels run one after another against the same
stack, so the books grow from level to level, as a long-running ``make run`` does.

What is not a create's cost is kept out of those figures: each client first sends
``WARMUP_CREATES`` (10) creates, not timed, and "RSS before" is read after them, so a
level's first cold starts (new containers, lazy imports, connection pools) do not count as
growth; and "RSS after" and the list page wait until the stack is idle (its CPU time still),
so the stream records still being turned into webhook events, which go when read, do not
count either.

Timings are printed, never enforced: the exit status is non-zero only when the stack did
not start or a create was refused.
"""

from __future__ import annotations

import os
import re
import shlex
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx

from ledgerbridge import jsonutil
from ledgerbridge.local.stack import DEFAULT_CONCURRENCY, DEMO_INVOICE
from tests.e2e.conftest import start_local_stack

CLIENT_LEVELS = (1, 4, 8)
DEFAULT_CREATES = 2000
WARMUP_CREATES = 10  # per client, before a level's clock and RSS start
EDGE = 300  # creates compared at the start and the end of a level (p50 drift)
LIST_SAMPLES = 20
IDLE_CPU_SECONDS = 0.05  # the stack is idle when it uses less CPU than this ...
IDLE_WINDOW_SECONDS = 0.5  # ... over this long
IDLE_TIMEOUT_SECONDS = 120.0
LOG_LINES_SHOWN = 60  # of the stack's warnings and errors, when a create was refused
_PROBLEM = re.compile(r'Traceback|Error|"level":"(WARNING|ERROR|CRITICAL)"| 5\d\d -$')


@dataclass(frozen=True)
class Stack:
    pid: int
    api_url: str
    headers: dict[str, str]
    log_text: Callable[[], str]  # everything the stack printed so far

    def rss_mb(self) -> Decimal:
        """The stack's resident set (VmRSS), in MB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        kb = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1))  # type: ignore[union-attr]
        return (Decimal(kb) / 1024).quantize(Decimal("0.1"))

    def cpu_seconds(self) -> float:
        """The stack's CPU time so far (user and system, ``/proc/<pid>/stat``)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_until_idle(self) -> None:
        """Until the stack uses almost no CPU (its pollers done with what the level wrote)."""
        deadline = time.monotonic() + IDLE_TIMEOUT_SECONDS
        used = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(IDLE_WINDOW_SECONDS)
            used, before = self.cpu_seconds(), used
            if used - before < IDLE_CPU_SECONDS:
                return


@dataclass(frozen=True)
class Level:
    clients: int
    creates: int
    latencies_ms: list[float]  # in the order the creates were sent (per client, interleaved)
    seconds: float
    rss_before: Decimal
    rss_after: Decimal
    list_ms: float
    invoices: int


@contextmanager
def local_stack() -> Iterator[Stack]:
    """The local stack as the e2e tests start it (free loopback ports, output drained), schedules off."""
    with start_local_stack({"LOCAL_SCHEDULE_SECONDS": "0"}) as stack:  # no sweeper or sync mid-run
        headers = {
            "x-api-key": stack.api_key,
            "x-connection-token": stack.connection_token,
            "content-type": "application/json",
        }
        yield Stack(stack.pid, stack.api_url, headers, stack.log_text)


def _client(
    stack: Stack, count: int, tag: str, latencies: list[float], refused: list[str], start: threading.Barrier
) -> None:
    with httpx.Client(base_url=stack.api_url, headers=stack.headers, timeout=120) as client:

        def create(key: str) -> float:
            body = jsonutil.dumps(DEMO_INVOICE)
            started = time.perf_counter()
            response = client.post("/accounting/invoices", content=body, headers={"idempotency-key": key})
            if response.status_code != 201:
                refused.append(f"{response.status_code} {response.text[:200]}")
            return (time.perf_counter() - started) * 1000

        try:
            for n in range(WARMUP_CREATES):
                create(f"{tag}-warmup-{n}")
            start.wait()  # every client warm, RSS read
            start.wait()  # the clock started
        except BaseException:
            start.abort()  # the level stops instead of waiting for this client
            raise
        latencies.extend(create(f"{tag}-{n}") for n in range(count))


def run_level(stack: Stack, clients: int, creates: int, invoices_before: int) -> Level:
    per_client = [creates // clients + (1 if n < creates % clients else 0) for n in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    refused: list[str] = []
    tag = f"load-{clients}-{time.time_ns()}"
    start = threading.Barrier(clients + 1)
    threads = [
        threading.Thread(
            target=_client, args=(stack, per_client[n], f"{tag}-{n}", latencies[n], refused, start)
        )
        for n in range(clients)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    stack.wait_until_idle()
    rss_before = stack.rss_mb()
    started = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    stack.wait_until_idle()
    rss_after = stack.rss_mb()
    if refused:
        problems = [line for line in stack.log_text().splitlines() if _PROBLEM.search(line)]
        print("\n".join(["the stack's warnings and errors:", *problems[-LOG_LINES_SHOWN:]]))
        raise SystemExit(f"{len(refused)} create(s) refused, the first: {refused[0]}")
    ordered = [values[i] for i in range(max(per_client)) for values in latencies if i < len(values)]
    return Level(
        clients,
        creates,
        ordered,
        seconds,
        rss_before,
        rss_after,
        first_page_ms(stack),
        invoices_before + creates + clients * WARMUP_CREATES,
    )


def first_page_ms(stack: Stack) -> float:
    """Median time of ``GET /accounting/invoices`` (its first page), after one warm-up."""
    with httpx.Client(base_url=stack.api_url, headers=stack.headers, timeout=120) as client:
        times = []
        for _ in range(LIST_SAMPLES + 1):
            started = time.perf_counter()
            response = client.get("/accounting/invoices")
            times.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    return statistics.median(times[1:])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def table(levels: list[Level]) -> str:
    header = (
        "clients", "creates", "p50 ms", "p95 ms", "p99 ms", "creates/s", "RSS before MB", "RSS after MB",
        "MB/1,000", "p50 first/last 300 ms", "list p50 ms", "invoices",
    )  # fmt: skip
    rows = [header]
    for level in levels:
        edge = min(EDGE, len(level.latencies_ms) // 2)
        first = statistics.median(level.latencies_ms[:edge])
        last = statistics.median(level.latencies_ms[-edge:])
        growth = (level.rss_after - level.rss_before) * 1000 / level.creates
        rows.append(
            (
                str(level.clients),
                f"{level.creates:,}",
                f"{percentile(level.latencies_ms, 50):.1f}",
                f"{percentile(level.latencies_ms, 95):.1f}",
                f"{percentile(level.latencies_ms, 99):.1f}",
                f"{level.creates / level.seconds:.1f}",
                f"{level.rss_before}",
                f"{level.rss_after}",
                f"{growth:+.1f}",
                f"{first:.1f} / {last:.1f} ({(last - first) / first:+.0%})",
                f"{level.list_ms:.1f}",
                f"{level.invoices:,}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        " | ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows
    )


def main() -> None:
    creates = int(os.environ.get("LOAD_CREATES") or DEFAULT_CREATES)
    levels_text = os.environ.get("LOAD_CLIENTS") or ",".join(map(str, CLIENT_LEVELS))
    client_levels = [int(n) for n in shlex.split(levels_text.replace(",", " "))]
    containers = os.environ.get("LOCAL_CONCURRENCY") or DEFAULT_CONCURRENCY
    print(
        f"local stack load: {creates:,} creates per level (after {WARMUP_CREATES} per client),"
        f" clients {client_levels}, {containers} containers per function, loopback only"
    )
    levels: list[Level] = []
    with local_stack() as stack:
        invoices = 0
        for clients in client_levels:
            levels.append(run_level(stack, clients, creates, invoices))
            invoices = levels[-1].invoices
            print(table(levels[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(levels))


if __name__ == "__main__":
    main()
