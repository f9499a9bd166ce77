"""``make bench``: how far the API function is from its two budgets, measured side by side.

Two ratios, each against the cheapest thing that could possibly do the job, so that the
figures mean the same on a laptop and in CI:

- cold start: a fresh Python process importing and initialising the API handler (as
  Lambda does from the template's ``Handler``), against a fresh process that only imports
  boto3 and creates a DynamoDB client -- the floor of any Python function that talks to
  DynamoDB. The handler creates its AWS clients lazily, so its side also creates its
  DynamoDB client; otherwise the two sides would not do the same work.
- warm path: CPU time of one ``POST /accounting/invoices`` through the handler (DynamoDB
  is moto in-process, provider is the built-in sandbox), against parsing and validating
  the same body with the Pydantic model alone -- the part of the work that cannot go away.

The two sides of each ratio run interleaved, so a noisy neighbour slows both, and medians
are reported. Targets are printed, never enforced: timings do not belong in tests.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
from moto import mock_aws
from moto.core.botocore_stubber import BotocoreStubber

from ledgerbridge import jsonutil
from ledgerbridge.local.stack import LambdaContext, LocalFunction, Request, load_functions, proxy_event
from ledgerbridge.local.template import (
    Route,
    Stack,
    api_routes,
    create_resources,
    function_environment,
    load_template,
)
from ledgerbridge.models import InvoiceInput

FUNCTION = "ApiFunction"
COLD_RUNS = 7
WARM_UP_CALLS = 5
WARM_CALLS = 200
TARGETS = {"cold_start_ratio": Decimal("1.3"), "warm_path_ratio": Decimal("3")}
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

# Each child prints one number: milliseconds from just before the import to after init.
HANDLER_CHILD = """
import importlib, sys, time
sys.path.insert(0, {code_dir!r})
start = time.perf_counter()
module = importlib.import_module({module!r})
getattr(module, {attribute!r})
from ledgerbridge.aws import client
client("dynamodb")
print((time.perf_counter() - start) * 1000)
"""
BASELINE_CHILD = """
import time
start = time.perf_counter()
import boto3
boto3.client("dynamodb")
print((time.perf_counter() - start) * 1000)
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


# --- environment --------------------------------------------------------------------------


def lambda_environment(stack: Stack) -> dict[str, str]:
    """What the template gives the function, plus what Lambda itself sets; no real AWS possible."""
    environment = {name: value for name, value in os.environ.items() if name not in UNSAFE_AWS}
    environment.update(function_environment(stack, FUNCTION))
    environment.update(FAKE_AWS)
    environment["POWERTOOLS_TRACE_DISABLED"] = "true"  # no X-Ray daemon here
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


def child_ms(code: str, environment: dict[str, str]) -> float:
    """Run ``code`` in a fresh interpreter and read the milliseconds it prints."""
    result = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{result.stderr}")
    return float(result.stdout.strip().splitlines()[-1])


def cold_start(route: Route, environment: dict[str, str]) -> tuple[Series, Series]:
    """Interleave fresh-process runs of both sides; the first run of each only warms caches."""
    module, _, attribute = route.handler.rpartition(".")
    handler_code = HANDLER_CHILD.format(code_dir=str(route.code_uri), module=module, attribute=attribute)
    sides = [
        (Series("cold: handler import + client", "ms", []), handler_code),
        (Series("cold: boto3 + client", "ms", []), BASELINE_CHILD),
    ]
    for _, code in sides:  # .pyc files and the OS file cache, so run 1 is not an outlier
        child_ms(code, environment)
    for run in range(COLD_RUNS):
        for series, code in sides if run % 2 == 0 else reversed(sides):
            series.samples.append(child_ms(code, environment))
    return sides[0][0], sides[1][0]


# --- warm path ----------------------------------------------------------------------------


def create_event(route: Route, demo: dict[str, Any], body: bytes) -> dict[str, Any]:
    """The proxy event API Gateway sends, built by the local stack's own event builder."""
    headers = [
        ("content-type", "application/json"),
        ("x-api-key", demo["api_key"]),
        ("x-connection-token", demo["connection_token"]),
    ]
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


def invoke_create(function: LocalFunction, event: dict[str, Any]) -> float:
    elapsed, result = cpu_ms(lambda: function.handler(event, LambdaContext(function)))
    if result["statusCode"] != 201:
        raise SystemExit(f"create failed: {result['statusCode']} {result['body']}")
    return elapsed


def parse_only(body: bytes) -> float:
    return cpu_ms(lambda: InvoiceInput.model_validate(jsonutil.loads(body)))[0]


def count_dynamodb_calls(function: LocalFunction, event: dict[str, Any]) -> Counter[str]:
    """DynamoDB operations of one create (the design budgets one write to create, one to settle)."""
    from ledgerbridge.aws import client  # the handler's own cached client

    calls: Counter[str] = Counter()

    def record(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    events = client("dynamodb").meta.events
    events.register("before-call.dynamodb", record)
    invoke_create(function, event)
    events.unregister("before-call.dynamodb", record)
    return calls


@dataclass
class WarmResult:
    handler: Series
    handler_own: Series
    model: Series
    calls: Counter[str]


def measure_warm(function: LocalFunction, route: Route, demo: dict[str, Any], body: bytes) -> WarmResult:
    """Interleave creates through the handler with model-only parses of the same body."""
    result = WarmResult(
        Series("warm: handler create (CPU)", "ms", []),
        Series("  of which not moto (CPU)", "ms", []),
        Series("warm: pydantic parse (CPU)", "ms", []),
        count_dynamodb_calls(function, create_event(route, demo, body)),
    )
    with EmulatorClock().installed() as moto_clock:
        for _ in range(WARM_CALLS):
            event = create_event(route, demo, body)
            moto_before = moto_clock.ms
            total = invoke_create(function, event)
            result.handler.samples.append(total)
            result.handler_own.samples.append(total - (moto_clock.ms - moto_before))
            result.model.samples.append(parse_only(body))
    return result


def warm_path(stack: Stack, route: Route) -> WarmResult:
    """Seed the demo credentials, warm the handler up, then measure."""
    from ledgerbridge.admin import seed_demo  # reads the table names set from the template

    function = load_functions(stack, [route])[route.function]
    body = jsonutil.dumps(INVOICE).encode()
    demo = seed_demo()
    with quiet_stdout():
        for _ in range(WARM_UP_CALLS):  # lazy clients, auth cache, provider instance
            invoke_create(function, create_event(route, demo, body))
            parse_only(body)
        return measure_warm(function, route, demo, body)


# --- report -------------------------------------------------------------------------------


def table(rows: list[Series]) -> str:
    lines = [f"  {'measurement':<32}{'median':>12}{'min':>12}{'max':>12}{'runs':>7}"]
    for row in rows:
        figures = (row.median, min(row.samples), max(row.samples))
        cells = "".join(f"{value:>9.3f} {row.unit}" for value in figures)
        lines.append(f"  {row.label:<32}{cells}{len(row.samples):>7}")
    return "\n".join(lines)


def ratio_line(name: str, top: Series, bottom: Series, top_name: str, bottom_name: str) -> str:
    ratio = top.median / bottom.median
    precision = 0 if top.unit == "ms" and top.median > 100 else 3
    return (
        f"{name}: {ratio:.2f}x ({top_name} {top.median:.{precision}f} {top.unit} vs "
        f"{bottom_name} {bottom.median:.{precision}f} {bottom.unit}, median of {len(top.samples)})"
    )


def report(cold: tuple[Series, Series], warm: WarmResult) -> str:
    operations = ", ".join(f"{name} {count}" for name, count in sorted(warm.calls.items())) or "none"
    return "\n".join(
        [
            f"Ledgerbridge benchmarks (Python {platform.python_version()}, {platform.machine()})",
            "  cold: fresh process, perf_counter from just before the import to after init;",
            "        the handler side also creates its DynamoDB client (ledgerbridge.aws.client),",
            "        because it creates AWS clients lazily and the baseline creates one. .pyc warm.",
            "  warm: CPU (process_time) of one call after warm-up; 'of which not moto' leaves out",
            "        moto's in-process DynamoDB (in Lambda a network wait; grows with table size).",
            "",
            table([*cold, warm.handler, warm.handler_own, warm.model]),
            f"  DynamoDB calls per create: {operations}",
            "",
            ratio_line("cold_start_ratio", *cold, "handler", "boto3+client"),
            ratio_line("warm_path_ratio", warm.handler, warm.model, "handler", "pydantic"),
            ratio_line("warm_path_ratio_without_moto", warm.handler_own, warm.model, "handler", "pydantic"),
            "targets (reported, not enforced): "
            + ", ".join(f"{name} <= {target}x" for name, target in TARGETS.items()),
        ]
    )


def main() -> None:
    os.environ.update(FAKE_AWS)
    for name in UNSAFE_AWS:
        os.environ.pop(name, None)
    with mock_aws():
        stack = Stack(load_template())
        create_resources(stack, *map(boto3.client, ("dynamodb", "kms", "secretsmanager", "sqs", "s3")))
        environment = lambda_environment(stack)
        os.environ.update(environment)  # before the handler and ledgerbridge.admin are imported
        route = api_route(stack, "POST", "/accounting/invoices")
        cold = cold_start(route, environment)
        warm = warm_path(stack, route)
    print(report(cold, warm))


if __name__ == "__main__":
    main()
