# ruff: noqa: E402  (awscrt is blocked before anything imports botocore)
"""``make bench``: how far the API function is from its budgets, measured side by side.

Each figure is a ratio against a floor that does the work any correct handler must do, so
that it means the same on a laptop and in CI:

- cold start: a fresh Python process importing the API handler *and serving its first
  create* (CPU, ``process_time``: Lambda bills and waits for it), against a fresh process
  that imports boto3, creates its DynamoDB client, imports pydantic and the project's models
  (``ledgerbridge.models``), then validates the same body and sends a PutItem and an
  UpdateItem. Both talk to the same moto server on loopback (its CPU is another process's).
- warm create: CPU of one ``POST /accounting/invoices`` through the handler, in this
  process, on four paths: the built-in sandbox and QuickBooks (the tests' fake company behind
  the real provider module, token source and ProviderHttp; ``benchmarks.quickbooks``), each
  without and with ``Idempotency-Key``. Each is held to its provider's floor
  (``benchmarks.floor``: validation + PutItem + UpdateItem with bare boto3, plus the POST to
  QuickBooks on that path); a key's record counts against the handler. Both sides get every
  AWS and QuickBooks answer from the same stub (``benchmarks.canned``): recorded from moto
  and the fake during warm-up, replayed byte for byte in moto's place while timed, so botocore
  and httpx serialise, sign and parse as in Lambda and no emulator CPU is counted. A timed
  create must answer 201 *synced* (201 alone also answers a create left pending), and a call
  with no recorded answer stops the run. Beside each path: the AWS calls and write units of
  one create (``benchmarks.aws_calls``), counted on the last warm-up create, and the CPU the
  create spent inside botocore's API calls (serialise, sign, the stub's answer, parse;
  ``BotocoreClock``), as a multiple of the floor's whole create: what the calls a path must
  make cost before any of its own code runs.
- the deployed layers' sizes, zipped.

The warm side runs under Lambda's CPython 3.12 too: when ``make bench`` starts on another
Python and a 3.12 is found, the bench runs itself again in a venv of the project's dev
dependencies on 3.12 (``on_lambda_python``). It runs without ``awscrt`` (blocked before
botocore is imported): the dev dependencies have it (moto and the SAM CLI pull it in), so
botocore would sign with the CRT, but Lambda's Python runtime ships boto3 without it and
signs in Python, as the cold side's venv does.

Fair means as deployed: the cold side runs under CPython 3.12 (the template's runtime; from
pyenv or PATH, printed; else the dev venv's Python with a warning) in a throwaway venv
(``.bench-venv/``) holding only boto3 at the dev pins, standing in for the runtime's. The
code comes from the layer and function Makefiles' own build targets run into a temporary
``ARTIFACTS_DIR``, as ``sam build`` runs them. The dependency layer is built for Lambda's
arm64, whose wheels cannot run here, so the bench also builds a host-platform copy of the
same pinned requirements with the same pruning and .pyc step (``PLATFORM``) and times that;
the arm64 build gives the sizes. The children get the template's environment plus what
Lambda sets (``LAMBDA_TASK_ROOT``, ``AWS_LAMBDA_FUNCTION_NAME``, the X-Ray variables of
``Tracing: Active``), and no ``POWERTOOLS_TRACE_DISABLED``.

The two sides of each ratio run interleaved, so a noisy neighbour slows both, and medians
are reported. Targets are printed, never enforced: timings do not belong in tests.
"""

from __future__ import annotations

import sys

sys.modules["awscrt"] = None  # type: ignore[assignment]  # as in Lambda: see the module docstring

import hashlib
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

import boto3
import floor
import httpx
import quickbooks
from aws_calls import BotocoreClock, Calls, counted
from canned import Recording, Stub
from moto import mock_aws
from moto.server import ThreadedMotoServer
from runtime import LAMBDA_PYTHON, lambda_python

from ledgerbridge import jsonutil
from ledgerbridge.config import settings
from ledgerbridge.local.stack import LambdaContext, Request, load_functions, proxy_event
from ledgerbridge.local.template import (
    Route,
    Stack,
    api_routes,
    create_resources,
    function_environment,
    load_template,
)
from ledgerbridge.providers import http as provider_http

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = ROOT / ".bench-venv"
FUNCTION = "ApiFunction"
COLD_RUNS = 25  # a fresh process varies by ±10 % here: 15 runs moved the ratio 1.08-1.24x run to run
WARM_UP_CALLS = 5
WARM_CALLS = 200
TARGETS = {"cold_start_ratio": Decimal("1.2"), "warm_create_ratio_<path>": Decimal("1.5")}
INVOICE = {
    "currency": "EUR",
    "issue_date": "2026-11-24",
    "due_date": "2026-12-24",
    "memo": "November consulting, PO 7731",
    "line_items": [
        {"description": "Consulting (hours)", "quantity": Decimal("2"), "unit_price": Decimal("150.25")},
        {"description": "Card processing fee", "quantity": Decimal("1"), "unit_price": Decimal("0.1")},
    ],
}
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
# Anything that could send an AWS SDK elsewhere than the fake credentials above.
UNSAFE_AWS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
)

# Each child reads its event on stdin, then prints CPU and wall milliseconds from just before
# its first import of the work to after its first answer. The handler's children share this
# start (a Lambda context) and end (the answer checked, the figures printed).
_HANDLER_CONTEXT = """
import importlib, json, os, sys, time
event = json.loads(sys.stdin.read())
class Context:
    function_name, function_version, memory_limit_in_mb = {function!r}, "$LATEST", 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
    aws_request_id, log_group_name, log_stream_name = "bench", "/aws/lambda/bench", "bench"
    def get_remaining_time_in_millis(self):
        return 29000
"""
_HANDLER_ANSWERED = """
answer = handler(event, Context())
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
assert answer["statusCode"] == 201, answer
print(cpu * 1000, wall * 1000, flush=True)
"""
HANDLER_CHILD = (
    _HANDLER_CONTEXT
    + """
cpu, wall = time.process_time(), time.perf_counter()
handler = getattr(importlib.import_module({module!r}), {attribute!r})
"""
    + _HANDLER_ANSWERED
)
# SnapStart: init runs untimed, then a fork stands in for a restore of its snapshot (the child
# starts from the parent's memory, as each restore starts from the snapshot's); the child runs
# the after-restore hooks, as Lambda's runtime would, then serves the first create, timed. What
# Lambda spends restoring (its Restore Duration) cannot be measured outside Lambda.
RESTORED_CHILD = (
    _HANDLER_CONTEXT
    + """
handler = getattr(importlib.import_module({module!r}), {attribute!r})
from ledgerbridge import snapstart
sys.stdout.flush()
pid = os.fork()
if pid:
    os._exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
cpu, wall = time.process_time(), time.perf_counter()
for hook in snapstart.AFTER_RESTORE:
    hook()
"""
    + _HANDLER_ANSWERED
    + "os._exit(0)\n"
)
FLOOR_CHILD = """
import json, sys, time
event = json.loads(sys.stdin.read())
cpu, wall = time.process_time(), time.perf_counter()
import boto3
dynamodb = boto3.session.Session().client("dynamodb")
import floor
from runtime import lambda_python
floor.create(dynamodb, {table!r}, {connection_id!r}, event["body"])
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
print(cpu * 1000, wall * 1000)
"""


@dataclass
class Series:
    """One side of a comparison: a label, a unit and its samples."""

    label: str
    unit: str
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


# --- the deployed code, built as sam build builds it ---------------------------------------


@dataclass
class Build:
    python: str  # the interpreter the cold side runs
    function: Path
    shared: Path
    dependencies: Path  # host-platform copy, for timing
    deployed_dependencies: Path  # Lambda's arm64 build, for its size

    @property
    def python_path(self) -> str:
        return os.pathsep.join(str(p) for p in (self.function, self.shared, self.dependencies))


def bench_venv(python: str) -> str:
    """A venv of ``python`` holding only boto3 at the dev pins: the runtime's own boto3 stands in."""
    pins = [f"boto3=={version('boto3')}", f"botocore=={version('botocore')}"]
    venv = BENCH_VENV / Path(python).name
    stamp = venv / ".installed"
    if not stamp.exists() or stamp.read_text() != " ".join(pins):
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, *pins], check=True)
        stamp.write_text(" ".join(pins))
    return str(venv / "bin" / "python")


def make(directory: str, target: str, artifacts: Path, **variables: str) -> Path:
    """Run a Makefile's build target into ``artifacts``, as sam build does (BuildMethod: makefile)."""
    artifacts.mkdir(parents=True)
    settings_ = [f"{name}={value}" for name, value in variables.items()]
    subprocess.run(
        ["make", "-s", "-C", str(ROOT / directory), target, f"ARTIFACTS_DIR={artifacts}", *settings_],
        check=True,
    )
    return artifacts


def build(workdir: Path) -> Build:
    python = lambda_python()
    if python is None:
        print(
            f"warning: no CPython 3.12 (Lambda's runtime) found: timing with {sys.executable} "
            f"(Python {platform.python_version()}), not what Lambda runs",
            file=sys.stderr,
        )
        python, child = sys.executable, sys.executable
    else:
        child = bench_venv(python)
    compiler = {"PYTHON": sys.executable, "PYTHON312": python}
    host = f"manylinux2014_{platform.machine()}"
    child_version = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    result = Build(
        python=child,
        function=make("functions/api", "build-ApiFunction", workdir / "function", **compiler),
        shared=make("layers/shared", "build-SharedLayer", workdir / "shared", **compiler) / "python",
        dependencies=make(
            "layers/dependencies",
            "build-DependenciesLayer",
            workdir / "deps-host",
            PLATFORM=host,
            PYTHON_VERSION=child_version,
            **compiler,
        )
        / "python",
        deployed_dependencies=make(
            "layers/dependencies", "build-DependenciesLayer", workdir / "deps", **compiler
        ),
    )
    if python == sys.executable:  # the Makefiles compile for 3.12 only; the fallback gets its own .pyc
        for directory in (result.function, result.shared, result.dependencies):
            subprocess.run(
                [python, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(directory)],
                check=True,
            )
    return result


def zipped_size(directory: Path) -> tuple[int, int]:
    """Bytes of ``directory`` unzipped and zipped (deflate, as sam packages a layer)."""
    with tempfile.TemporaryFile() as archive:
        raw = 0
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            for path in sorted(directory.rglob("*")):
                if path.is_file():
                    raw += path.stat().st_size
                    zipped.write(path, path.relative_to(directory))
        return raw, archive.tell()


# --- environment --------------------------------------------------------------------------


def lambda_environment(stack: Stack, endpoint: str, built: Build) -> dict[str, str]:
    """The template's variables plus what Lambda sets; every AWS call goes to ``endpoint``."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in UNSAFE_AWS and not name.startswith(("PYTHON", "VIRTUAL_ENV", "POWERTOOLS_TRACE"))
    }
    environment.update(function_environment(stack, FUNCTION))
    environment.update(FAKE_AWS)
    environment.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "LAMBDA_TASK_ROOT": str(built.function),
            "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            # Tracing: Active -- Lambda sets these; nothing listens on the daemon's loopback port.
            "_X_AMZN_TRACE_ID": "Root=1-674b8f2a-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=1",
            "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "PYTHONPATH": built.python_path,
            "PYTHONDONTWRITEBYTECODE": "1",  # read-only code, as in /var/task and /opt
        }
    )
    return environment


def api_route(stack: Stack, method: str, path: str) -> Route:
    """The template's route, so the benchmark follows template.yaml's Handler and CodeUri."""
    for route in api_routes(stack.template):
        if (route.method, route.path) == (method, path):
            return route
    raise SystemExit(f"template.yaml has no {method} {path} route")


@contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send the handler's logs and EMF metrics to /dev/null: they still cost CPU, as in Lambda."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


# --- cold start ---------------------------------------------------------------------------


def child_ms(python: str, code: str, environment: dict[str, str], event: dict[str, Any]) -> float:
    """Run ``code`` in a fresh interpreter with ``event`` on stdin; its CPU milliseconds."""
    result = subprocess.run(
        [python, "-c", code],
        env=environment,
        input=json.dumps(event),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{result.stderr}")
    return float(result.stdout.strip().splitlines()[-1].split()[0])


def cold_start(
    route: Route, built: Build, environment: dict[str, str], event: dict[str, Any], demo: dict[str, Any]
) -> tuple[Series, Series, Series]:
    """Interleave fresh-process runs of each side (the handler, the floor, the handler restored
    from a snapshot); the first run of each only warms the OS cache."""
    module, _, attribute = route.handler.rpartition(".")
    handler_code = HANDLER_CHILD.format(function=FUNCTION, module=module, attribute=attribute)
    restored_code = RESTORED_CHILD.format(function=FUNCTION, module=module, attribute=attribute)
    floor_code = FLOOR_CHILD.format(table=settings().invoices_table, connection_id=demo["connection_id"])
    floor_path = os.pathsep.join(map(str, (Path(floor.__file__).parent, built.shared, built.dependencies)))
    floor_environment = {**environment, "PYTHONPATH": floor_path}
    sides = [
        (Series("cold: handler import + 1st create", "ms CPU", []), handler_code, environment),
        (Series("cold: floor import + 1st create", "ms CPU", []), floor_code, floor_environment),
        (Series("cold: restored + 1st create", "ms CPU", []), restored_code, environment),
    ]
    for _, code, env in sides:
        child_ms(built.python, code, env, event)
    for run in range(COLD_RUNS):
        for series, code, env in sides if run % 2 == 0 else reversed(sides):
            series.samples.append(child_ms(built.python, code, env, event))
    return sides[0][0], sides[1][0], sides[2][0]


# --- warm path ----------------------------------------------------------------------------


def create_event(
    route: Route, credentials: dict[str, Any], body: bytes, idempotency_key: bool = False
) -> dict[str, Any]:
    """The HTTP API event (payload format 2.0) API Gateway sends, built by the local stack's own
    event builder."""
    headers = [
        ("content-type", "application/json"),
        ("x-api-key", credentials["api_key"]),
        ("x-connection-token", credentials["connection_token"]),
    ]
    if idempotency_key:
        headers.append(("idempotency-key", str(uuid.uuid4())))
    return proxy_event(route, {}, Request(route.method, route.path, headers, body, "127.0.0.1"))


def cpu_ms(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.process_time()
    result = call()
    return (time.process_time() - start) * 1000, result


def synced(answer: dict[str, Any]) -> None:
    """A create answered 201 *and* synced at the ledger (201 also answers a create left pending)."""
    if answer["statusCode"] != 201 or jsonutil.loads(answer["body"]).get("sync_status") != "synced":
        raise SystemExit(f"create failed: {answer['statusCode']} {answer['body']}")


@dataclass
class Side:
    """One thing timed on the warm side: a create through the handler, or the floor's."""

    series: Series
    request: Callable[[], Any]  # untimed: what to send (a new Idempotency-Key each time)
    create: Callable[[Any], Any]  # timed
    check: Callable[[Any], None] | None = None  # untimed; the floor raises by itself
    recording: Recording = field(default_factory=Recording)
    in_botocore: list[float] = field(default_factory=list)  # ms CPU per create inside botocore calls

    def warm_up(self, stub: Stub) -> None:
        """One create against the emulators, its answers recorded for the measured ones."""
        request = self.request()
        with stub.recording(self.recording):
            answer = self.create(request)
        if self.check:
            self.check(answer)

    def measure(self, stub: Stub, clock: BotocoreClock) -> None:
        request = self.request()
        clock.ms = 0.0
        with stub.replaying(self.recording):
            elapsed, answer = cpu_ms(lambda: self.create(request))
        if stub.unanswered:
            raise SystemExit(f"{self.series.label}: no recorded answer to {', '.join(stub.unanswered)}")
        if self.check:
            self.check(answer)
        self.series.samples.append(elapsed)
        self.in_botocore.append(clock.ms)


@dataclass
class WarmPath:
    """One kind of create (provider, with or without Idempotency-Key) and the floor it is held to."""

    name: str
    label: str
    handler: Side
    floor: Side
    calls: Calls = field(default_factory=Calls)
    first_floor: Side | None = None  # the floor as the issue first wrote it, when ``floor`` does more

    @property
    def sides(self) -> list[Side]:
        return [self.handler, self.floor, *([self.first_floor] if self.first_floor else [])]


def fake_quickbooks() -> Any:
    """The tests' stateful QuickBooks (tests/fakes): the warm-up records its answers."""
    if str(ROOT) not in sys.path:
        sys.path.append(str(ROOT))
    from tests.fakes.quickbooks import FakeQuickBooks

    return FakeQuickBooks()


def warm_paths(stack: Stack, route: Route, demo: dict[str, Any], stub: Stub) -> list[WarmPath]:
    """The sandbox and QuickBooks creates, each without and with Idempotency-Key, and their floors."""
    function = load_functions(stack, [route])[route.function]
    fake = fake_quickbooks()
    client = httpx.Client(transport=stub.transport(fake.handle))
    provider_http.shared_client = lambda: client  # every ledger call of the handler goes to the stub
    qb = quickbooks.connect(demo["project_id"], fake)
    dynamodb = boto3.client("dynamodb")
    table, books = settings().invoices_table, settings().accounts_table

    def handler_side(label: str, credentials: dict[str, Any], body: bytes, unkeyed: Side | None) -> Side:
        """A create through the handler; with an Idempotency-Key (a new one each time) if ``unkeyed``."""

        def request() -> tuple[dict[str, Any], LambdaContext]:
            return create_event(route, credentials, body, unkeyed is not None), LambdaContext(function)

        recording = Recording(fallback=unkeyed.recording if unkeyed else None)
        return Side(Series(label, "ms CPU", []), request, lambda r: function.handler(*r), synced, recording)

    sandbox_body = jsonutil.dumps(INVOICE).encode()
    # The same invoice to the fake company's customer, in the customer's currency.
    qb_body = jsonutil.dumps({**INVOICE, "currency": "USD", "contact_id": qb.contact_id}).encode()
    qb_credentials = {"api_key": demo["api_key"], "connection_token": qb.connection_token}
    ledger = floor.QuickBooks(
        qb.invoice_url, qb.minor_version, qb.access_token, quickbooks.CUSTOMER_ID, quickbooks.ITEM_ID
    )
    sandbox_floor = Side(
        Series("floor: sandbox", "ms CPU", []),
        lambda: sandbox_body,
        lambda body: floor.create(dynamodb, table, demo["connection_id"], body, books_table=books),
    )
    sandbox_floor_without_books = Side(
        Series("floor: sandbox without its books' write", "ms CPU", []),
        lambda: sandbox_body,
        lambda body: floor.create(dynamodb, table, demo["connection_id"], body),
    )
    qb_floor = Side(
        Series("floor: quickbooks", "ms CPU", []),
        lambda: qb_body,
        lambda body: floor.create_at_quickbooks(dynamodb, client, table, qb.connection_id, body, ledger),
    )

    def without_and_with_key(
        name: str, credentials: dict[str, Any], body: bytes, held_to: Side, first_floor: Side | None = None
    ) -> list[WarmPath]:
        plain = handler_side(name, credentials, body, None)
        keyed = handler_side(f"{name} keyed", credentials, body, plain)
        return [
            WarmPath(name, name, plain, held_to, first_floor=first_floor),
            WarmPath(f"{name}_keyed", f"{name} + Idempotency-Key", keyed, held_to, first_floor=first_floor),
        ]

    sandbox = without_and_with_key("sandbox", demo, sandbox_body, sandbox_floor, sandbox_floor_without_books)
    return sandbox + without_and_with_key("quickbooks", qb_credentials, qb_body, qb_floor)


def warm(stack: Stack, route: Route, demo: dict[str, Any]) -> list[WarmPath]:
    """Warm up and record against the emulators, then time creates answered from the recordings.

    Every side runs WARM_UP_CALLS recorded creates (lazy clients, the auth cache, the
    provider, the connection's tokens), then each handler path one more, counted
    (``benchmarks.aws_calls``), whose answers are the ones replayed. The timed creates of all
    sides run interleaved, the order reversed every round, so a noisy neighbour slows them all.
    """
    stub, clock = Stub(), BotocoreClock()
    with quiet_stdout(), stub.installed(), clock.installed():
        paths = warm_paths(stack, route, demo, stub)
        sides = list({id(side): side for path in paths for side in path.sides}.values())
        for _ in range(WARM_UP_CALLS):
            for side in sides:
                side.warm_up(stub)
        for path in paths:
            with counted() as path.calls:
                path.handler.warm_up(stub)
        for run in range(WARM_CALLS):
            for side in sides if run % 2 == 0 else reversed(sides):
                side.measure(stub, clock)
    return paths


# --- report -------------------------------------------------------------------------------


def calls_text(calls: Calls) -> str:
    """``3: PutItem 2, UpdateItem 1`` (DynamoDB's operations by their names, others with service)."""
    named = sorted((op.removeprefix("dynamodb."), n) for op, n in calls.operations.items())
    return f"{sum(calls.operations.values())}: " + ", ".join(f"{op} {n}" for op, n in named)


def ratio(top: Series, bottom: Series) -> float:
    return top.median / bottom.median


def ratio_line(name: str, top: Series, bottom: Series) -> str:
    return (
        f"{name}: {ratio(top, bottom):.2f}x ({top.median:.2f} vs {bottom.median:.2f} {top.unit}, "
        f"median of {len(top.samples)})"
    )


def size_line(name: str, directory: Path) -> str:
    raw, zipped = zipped_size(directory)
    return f"  {name:<36}{zipped / 1e6:>8.2f} MB zipped {raw / 1e6:>8.2f} MB unzipped"


def table(cold: tuple[Series, Series, Series], paths: list[WarmPath]) -> list[str]:
    """One row per comparison: medians (ms CPU), max in brackets, the ratio, and the AWS work."""

    def cell(series: Series) -> str:
        return f"{series.median:>8.2f} ({max(series.samples):>7.2f})"

    head = (
        f"  {'create':<36}{'handler (max)':>19}{'floor (max)':>19}{'ratio':>8}"
        f"  {'in calls':>15}  {'WCU':>4}  AWS calls"
    )
    lines = [
        head,
        f"  {'cold: import + 1st create':<36}{cell(cold[0])}{cell(cold[1])}{ratio(cold[0], cold[1]):>7.2f}x",
        f"  {'cold, SnapStart: 1st create':<36}{cell(cold[2])}",
    ]
    for path in paths:
        in_calls = statistics.median(path.handler.in_botocore)
        lines.append(
            f"  {'warm: ' + path.label:<36}{cell(path.handler.series)}{cell(path.floor.series)}"
            f"{ratio(path.handler.series, path.floor.series):>7.2f}x"
            f"  {in_calls:>5.2f} = {in_calls / path.floor.series.median:>4.2f}x"
            f"  {path.calls.write_units:>4}  {calls_text(path.calls)}"
        )
    floors = list({id(path.floor): path.floor for path in paths}.values())
    lines += [
        f"  {side.series.label + ': in its calls':<36}{statistics.median(side.in_botocore):>8.2f} ms of"
        f" {side.series.median:.2f}"
        for side in floors
    ]
    first_floors = {id(path.first_floor): path.first_floor for path in paths if path.first_floor}
    for side in first_floors.values():
        held = [path for path in paths if path.first_floor is side]
        ratios = ", ".join(f"{path.label} {ratio(path.handler.series, side.series):.2f}x" for path in held)
        lines.append(f"  {side.series.label}: {side.series.median:.2f} ms; against it: {ratios}")
    return lines


def report(built: Build, cold: tuple[Series, Series, Series], paths: list[WarmPath]) -> str:
    python = subprocess.run(
        [built.python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    lines = [
        f"Ledgerbridge benchmarks (cold side: Python {python} {built.python}; warm side: Python "
        f"{platform.python_version()}; {platform.machine()})",
        f"  cold: fresh process, CPU from just before the first import to after the first create's answer;"
        f" median of {len(cold[0].samples)}",
        "        code as the Makefiles build it (.pyc as shipped), DynamoDB a moto server.",
        "        SnapStart: init untimed, then a fork stands in for a restore; CPU of the after-restore",
        "        hooks and the first create (Lambda's own Restore Duration is not measurable here).",
        f"  warm: CPU of one create after warm-up, median of {WARM_CALLS}; every AWS and QuickBooks answer",
        "        replayed from the warm-up's recording in moto's place (botocore and httpx do all",
        "        their work, no emulator runs). in calls: the handler's CPU inside botocore's API",
        "        calls (ms), and that as a multiple of the floor's whole create. WCU: DynamoDB write",
        "        units per create.",
        "",
        *table(cold, paths),
        "",
        "  layer sizes (as deployed: arm64 dependencies)",
        size_line("SharedLayer", built.shared.parent),
        size_line("DependenciesLayer", built.deployed_dependencies),
        size_line("ApiFunction", built.function),
        "",
        ratio_line("cold_start_ratio", cold[0], cold[1]),
        *(ratio_line(f"warm_create_ratio_{p.name}", p.handler.series, p.floor.series) for p in paths),
        "targets (reported, not enforced): " + ", ".join(f"{n} <= {t}x" for n, t in TARGETS.items()),
    ]
    return "\n".join(lines)


def on_lambda_python() -> None:
    """Run this bench again under Lambda's CPython (3.12), unless this is it or there is none.

    The warm side runs in this process, so the whole bench moves: to a venv of the project's
    dev dependencies on that Python (``.bench-venv/dev-python3.12``, built on first use, ~2
    minutes, and again whenever pyproject.toml changes). Without a 3.12 the bench goes on here
    and ``build`` says so.
    """
    python = lambda_python()
    if sys.version_info[:2] == LAMBDA_PYTHON or python is None:
        return
    venv = BENCH_VENV / f"dev-{Path(python).name}"
    stamp, wanted = venv / ".installed", hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != wanted:
        print(f"building {venv}: the project's dev dependencies on {python}", file=sys.stderr, flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
        stamp.write_text(wanted)
    bench_python = str(venv / "bin" / "python")
    os.execv(bench_python, [bench_python, str(Path(__file__).resolve()), *sys.argv[1:]])


def main() -> None:
    on_lambda_python()
    os.environ.update(FAKE_AWS)
    for name in UNSAFE_AWS:
        os.environ.pop(name, None)
    with tempfile.TemporaryDirectory(prefix="ledgerbridge-bench-") as workdir, mock_aws():
        built = build(Path(workdir))
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        server.start()  # in this process: it serves the same emulated accounts as mock_aws
        try:
            host, port = server.get_host_and_port()
            stack = Stack(load_template())
            create_resources(stack, *map(boto3.client, ("dynamodb", "kms", "secretsmanager", "sqs", "s3")))
            environment = lambda_environment(stack, f"http://{host}:{port}", built)
            os.environ.update(function_environment(stack, FUNCTION))  # before ledgerbridge.admin
            from ledgerbridge.admin import seed_demo

            demo = seed_demo()
            route = api_route(stack, "POST", "/accounting/invoices")
            event = create_event(route, demo, jsonutil.dumps(INVOICE).encode())
            cold = cold_start(route, built, environment, event, demo)
            paths = warm(stack, route, demo)
        finally:
            server.stop()
        print(report(built, cold, paths))


if __name__ == "__main__":
    main()
