"""``make bench``: how far the API function is from its budgets, measured side by side.

Each figure is a ratio against a floor that does the work any correct handler must do, so
that it means the same on a laptop and in CI:

- cold start: a fresh Python process importing the API handler *and serving its first
  create* (CPU, ``process_time``: Lambda bills and waits for it), against a fresh process
  that imports boto3, creates its DynamoDB client, imports pydantic and the project's models
  (``ledgerbridge.models``), then validates the same body and sends a PutItem and an
  UpdateItem. Both talk to the same moto server on loopback (its CPU is another process's).
- warm create: CPU of one ``POST /accounting/invoices`` through the handler (moto
  in-process, the built-in sandbox provider), without and with ``Idempotency-Key``,
  against the floor's validation + PutItem + UpdateItem with bare boto3 on the same stub;
  with the AWS calls and write units of one create (``benchmarks.aws_calls``).
- the deployed layers' sizes, zipped.

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
from dataclasses import dataclass
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

import boto3
import floor
from aws_calls import Calls, counted
from moto import mock_aws
from moto.core.botocore_stubber import BotocoreStubber
from moto.server import ThreadedMotoServer
from runtime import lambda_python

from ledgerbridge import jsonutil
from ledgerbridge.config import settings
from ledgerbridge.local.stack import LambdaContext, LocalFunction, Request, load_functions, proxy_event
from ledgerbridge.local.template import (
    Route,
    Stack,
    api_routes,
    create_resources,
    function_environment,
    load_template,
)

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = ROOT / ".bench-venv"
FUNCTION = "ApiFunction"
COLD_RUNS = 9
WARM_UP_CALLS = 5
WARM_CALLS = 200
TARGETS = {"cold_start_ratio": Decimal("1.2"), "warm_create_ratio": Decimal("1.5")}
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
# its first import of the work to after its first answer.
HANDLER_CHILD = """
import importlib, json, sys, time
event = json.loads(sys.stdin.read())
class Context:
    function_name, function_version, memory_limit_in_mb = {function!r}, "$LATEST", 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
    aws_request_id, log_group_name, log_stream_name = "bench", "/aws/lambda/bench", "bench"
    def get_remaining_time_in_millis(self):
        return 29000
cpu, wall = time.process_time(), time.perf_counter()
handler = getattr(importlib.import_module({module!r}), {attribute!r})
answer = handler(event, Context())
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
assert answer["statusCode"] == 201, answer
print(cpu * 1000, wall * 1000)
"""
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
) -> tuple[Series, Series]:
    """Interleave fresh-process runs of both sides; the first run of each only warms the OS cache."""
    module, _, attribute = route.handler.rpartition(".")
    handler_code = HANDLER_CHILD.format(function=FUNCTION, module=module, attribute=attribute)
    floor_code = FLOOR_CHILD.format(table=settings().invoices_table, connection_id=demo["connection_id"])
    floor_path = os.pathsep.join(map(str, (Path(floor.__file__).parent, built.shared, built.dependencies)))
    floor_environment = {**environment, "PYTHONPATH": floor_path}
    sides = [
        (Series("cold: handler import + 1st create", "ms CPU", []), handler_code, environment),
        (Series("cold: floor import + 1st create", "ms CPU", []), floor_code, floor_environment),
    ]
    for _, code, env in sides:
        child_ms(built.python, code, env, event)
    for run in range(COLD_RUNS):
        for series, code, env in sides if run % 2 == 0 else reversed(sides):
            series.samples.append(child_ms(built.python, code, env, event))
    return sides[0][0], sides[1][0]


# --- warm path ----------------------------------------------------------------------------


def create_event(
    route: Route, demo: dict[str, Any], body: bytes, idempotency_key: bool = False
) -> dict[str, Any]:
    """The proxy event API Gateway sends, built by the local stack's own event builder."""
    headers = [
        ("content-type", "application/json"),
        ("x-api-key", demo["api_key"]),
        ("x-connection-token", demo["connection_token"]),
    ]
    if idempotency_key:
        headers.append(("idempotency-key", str(uuid.uuid4())))
    return proxy_event(route, {}, Request(route.method, route.path, headers, body, "127.0.0.1"))


def cpu_ms(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.process_time()
    result = call()
    return (time.process_time() - start) * 1000, result


class EmulatorClock:
    """CPU spent inside moto's emulated DynamoDB, to report the handler's own share too.

    In Lambda that time is a network wait, not CPU; and moto's TransactWriteItems
    deep-copies the whole table, so its cost grows with every invoice the benchmark adds.
    """

    def __init__(self) -> None:
        self.ms = 0.0

    @contextmanager
    def installed(self) -> Iterator[EmulatorClock]:
        """Wrap the stubber that mock_aws puts in front of every botocore request."""
        original = BotocoreStubber.__call__

        def timed(stubber: BotocoreStubber, *args: Any, **kwargs: Any) -> Any:
            elapsed, result = cpu_ms(lambda: original(stubber, *args, **kwargs))
            self.ms += elapsed
            return result

        BotocoreStubber.__call__ = timed  # type: ignore[method-assign]
        try:
            yield self
        finally:
            BotocoreStubber.__call__ = original  # type: ignore[method-assign]


def invoke_create(function: LocalFunction, event: dict[str, Any]) -> None:
    result = function.handler(event, LambdaContext(function))
    if result["statusCode"] != 201:
        raise SystemExit(f"create failed: {result['statusCode']} {result['body']}")


@dataclass
class WarmSide:
    total: Series
    own: Series  # without moto's CPU
    call: Callable[[], Any]

    def measure(self, clock: EmulatorClock) -> None:
        moto_before = clock.ms
        elapsed, _ = cpu_ms(self.call)
        self.total.samples.append(elapsed)
        self.own.samples.append(elapsed - (clock.ms - moto_before))


def warm_side(label: str, call: Callable[[], Any]) -> WarmSide:
    return WarmSide(Series(label, "ms CPU", []), Series("  of which not moto", "ms CPU", []), call)


def warm_path(stack: Stack, route: Route, demo: dict[str, Any]) -> tuple[list[WarmSide], dict[str, Calls]]:
    """Creates through the handler (without and with Idempotency-Key) interleaved with the floor's."""
    function = load_functions(stack, [route])[route.function]
    body = jsonutil.dumps(INVOICE).encode()
    dynamodb = boto3.client("dynamodb")
    table = settings().invoices_table
    sides = [
        warm_side("warm: handler create", lambda: invoke_create(function, create_event(route, demo, body))),
        warm_side(
            "warm: handler + Idempotency-Key",
            lambda: invoke_create(function, create_event(route, demo, body, idempotency_key=True)),
        ),
        warm_side("warm: floor create", lambda: floor.create(dynamodb, table, demo["connection_id"], body)),
    ]
    calls: dict[str, Calls] = {}
    with quiet_stdout():
        for _ in range(WARM_UP_CALLS):  # lazy clients, auth cache, provider instance
            for side in sides:
                side.call()
        for side, name in zip(sides[:2], ("without Idempotency-Key", "with Idempotency-Key"), strict=True):
            with counted() as calls[name]:
                side.call()
        with EmulatorClock().installed() as clock:
            for run in range(WARM_CALLS):
                for side in sides if run % 2 == 0 else reversed(sides):
                    side.measure(clock)
    return sides, calls


# --- report -------------------------------------------------------------------------------


def table(rows: list[Series]) -> str:
    lines = [f"  {'measurement':<34}{'median':>16}{'min':>16}{'max':>16}{'runs':>6}"]
    for row in rows:
        figures = (row.median, min(row.samples), max(row.samples))
        cells = "".join(f"{value:>9.3f} {row.unit}" for value in figures)
        lines.append(f"  {row.label:<34}{cells}{len(row.samples):>6}")
    return "\n".join(lines)


def ratio_line(name: str, top: Series, bottom: Series) -> str:
    ratio = top.median / bottom.median
    return (
        f"{name}: {ratio:.2f}x ({top.median:.1f} vs {bottom.median:.1f} {top.unit}, "
        f"median of {len(top.samples)})"
    )


def size_line(name: str, directory: Path) -> str:
    raw, zipped = zipped_size(directory)
    return f"  {name:<34}{zipped / 1e6:>8.2f} MB zipped {raw / 1e6:>8.2f} MB unzipped"


def report(built: Build, cold: tuple[Series, Series], warm: list[WarmSide], calls: dict[str, Calls]) -> str:
    python = subprocess.run(
        [built.python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    handler, handler_key, floor_side = warm
    lines = [
        f"Ledgerbridge benchmarks (cold side: Python {python} {built.python}; warm side: Python "
        f"{platform.python_version()}; {platform.machine()})",
        "  cold: fresh process, CPU from just before the first import to after the first create's",
        "        answer; code as the Makefiles build it (.pyc as shipped), DynamoDB a moto server.",
        "  warm: CPU of one create after warm-up, DynamoDB moto in-process; 'not moto' leaves out",
        "        moto's CPU (in Lambda a network wait; grows with table size).",
        "",
        table([*cold, *(series for side in warm for series in (side.total, side.own))]),
        "",
    ]
    for name, counted_calls in calls.items():
        operations = ", ".join(f"{op} {n}" for op, n in sorted(counted_calls.operations.items()))
        lines.append(
            f"  AWS calls per warm create {name}: {operations}; {counted_calls.write_units} write units"
        )
    lines += [
        "",
        "  layer sizes (as deployed: arm64 dependencies)",
        size_line("SharedLayer", built.shared.parent),
        size_line("DependenciesLayer", built.deployed_dependencies),
        size_line("ApiFunction", built.function),
        "",
        ratio_line("cold_start_ratio", *cold),
        ratio_line("warm_create_ratio", handler.total, floor_side.total),
        ratio_line("warm_create_ratio_keyed", handler_key.total, floor_side.total),
        ratio_line("warm_create_ratio_without_moto", handler.own, floor_side.own),
        ratio_line("warm_create_ratio_keyed_without_moto", handler_key.own, floor_side.own),
        "targets (reported, not enforced): " + ", ".join(f"{n} <= {t}x" for n, t in TARGETS.items()),
    ]
    return "\n".join(lines)


def main() -> None:
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
            warm, calls = warm_path(stack, route, demo)
        finally:
            server.stop()
        print(report(built, cold, warm, calls))


if __name__ == "__main__":
    main()
