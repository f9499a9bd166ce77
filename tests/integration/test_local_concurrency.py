"""The local stack serves several requests at once, as Lambda runs several containers of a
function: each event gets a container (a copy of the handler's module) that has no other
event under way, up to the function's concurrency, and concurrent invocations see their own
event and log with their own keys, though Powertools keeps those once per process."""

from __future__ import annotations

import http.client
import io
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from ledgerbridge.local.stack import (
    ApiServer,
    BoundRoute,
    Gateway,
    LocalFunction,
    Request,
    function_concurrency,
    import_handler,
    invoke,
    patch_powertools,
    proxy_event,
)
from ledgerbridge.local.template import Route

WAIT_SECONDS = 10  # a generous bound on each wait: a test that deadlocks fails instead of hanging

# A handler module and the sibling it imports by name. Each container has its own copy of
# the handler's module (its CONTAINER), while the sibling is one module for the process, so
# it sees every container: who is inside, and how many at once.
HANDLER = """
import concurrency_probe

CONTAINER = object()


def handler(event, context):
    with concurrency_probe.inside(CONTAINER):
        concurrency_probe.gate.wait(concurrency_probe.WAIT_SECONDS)
    return {"statusCode": 200, "body": str(id(CONTAINER))}
"""
# A Powertools API handler, as the template's functions are, that reads its event and context
# only after another invocation (at the gate, a Barrier) has set its own.
RESOLVER = """
import concurrency_probe
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

app = APIGatewayHttpResolver()


@app.get("/echo")
def echo():
    concurrency_probe.gate.wait(concurrency_probe.WAIT_SECONDS)
    return {"request": app.current_event.headers["x-request"], "context": app.lambda_context.aws_request_id}


def handler(event, context):
    return app.resolve(event, context)
"""
PROBE = """
import threading
from contextlib import contextmanager

WAIT_SECONDS = 10
changed = threading.Condition()
under_way = {}  # container -> events it has under way
most = {"events": 0, "per_container": 0}
gate = threading.Event()  # what each event waits for: a Barrier for events that must meet


@contextmanager
def inside(container):
    with changed:
        under_way[container] = under_way.get(container, 0) + 1
        most["events"] = max(most["events"], sum(under_way.values()))
        most["per_container"] = max(most["per_container"], under_way[container])
        changed.notify_all()
    try:
        yield
    finally:
        with changed:
            under_way[container] -= 1
            changed.notify_all()


def wait_for(events, timeout):
    with changed:
        return changed.wait_for(lambda: sum(under_way.values()) == events, timeout)
"""


@dataclass
class Probe:
    code_uri: Path
    module: ModuleType

    def function(self, concurrency: int, start: Callable[[int], Any] | None = None) -> LocalFunction:
        load = partial(import_handler, "ProbeFunction", self.code_uri, "app.handler")
        return LocalFunction(
            "ledgerbridge-ProbeFunction",
            "arn:local",
            load(),
            128,
            3,
            concurrency=concurrency,
            start=start or load,
        )


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Probe]:
    (tmp_path / "app.py").write_text(HANDLER)
    (tmp_path / "resolver.py").write_text(RESOLVER)
    (tmp_path / "concurrency_probe.py").write_text(PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [name for name in sys.modules if name.endswith("__ProbeFunction")]:
        monkeypatch.delitem(sys.modules, name)
    import concurrency_probe

    try:
        yield Probe(tmp_path, concurrency_probe)
    finally:  # nothing is left waiting, whatever failed
        gate = concurrency_probe.gate
        gate.abort() if isinstance(gate, threading.Barrier) else gate.set()
        for name in [name for name in sys.modules if "__ProbeFunction" in name]:
            del sys.modules[name]
        del sys.modules["concurrency_probe"]


def concurrently(call: Callable[[], Any], times: int) -> list[Any]:
    """``call()`` in ``times`` threads at once: their results, or the first exception raised."""
    results: list[Any] = [None] * times
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            results[n] = call()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS * 2)
    assert not any(thread.is_alive() for thread in threads), "an invocation never returned"
    if errors:
        raise errors[0]
    return results


def test_two_events_run_at_once_each_in_a_container_of_its_own(probe: Probe) -> None:
    function = probe.function(concurrency=2)
    probe.module.gate = threading.Barrier(2)  # passes only when both events are inside at once

    answers = concurrently(lambda: invoke(function, {}), 2)

    assert len({answer["body"] for answer in answers}) == 2
    assert function.containers.started == 2


def test_a_container_takes_one_event_at_a_time_and_the_rest_wait(probe: Probe) -> None:
    function = probe.function(concurrency=2)
    answers: list[Any] = []
    waiter = threading.Thread(target=lambda: answers.extend(concurrently(lambda: invoke(function, {}), 5)))
    waiter.start()
    assert probe.module.wait_for(events=2, timeout=WAIT_SECONDS)
    probe.module.gate.set()
    waiter.join(WAIT_SECONDS * 3)

    assert len(answers) == 5
    assert probe.module.most == {"events": 2, "per_container": 1}
    assert function.containers.started == 2
    assert len({answer["body"] for answer in answers}) == 2


def test_one_container_serves_its_events_one_after_another(probe: Probe) -> None:
    function = probe.function(concurrency=1)
    probe.module.gate.set()

    answers = concurrently(lambda: invoke(function, {}), 3)

    assert probe.module.most == {"events": 1, "per_container": 1}
    assert {answer["body"] for answer in answers} == {answers[0]["body"]}


def test_containers_have_their_own_module_and_share_what_it_imports(probe: Probe) -> None:
    first = import_handler("ProbeFunction", probe.code_uri, "app.handler")
    second = import_handler("ProbeFunction", probe.code_uri, "app.handler", container=2)

    assert first.__globals__ is not second.__globals__
    assert first.__globals__["CONTAINER"] is not second.__globals__["CONTAINER"]
    assert first.__globals__["concurrency_probe"] is second.__globals__["concurrency_probe"] is probe.module
    assert import_handler("ProbeFunction", probe.code_uri, "app.handler", container=2) is second


def test_a_container_that_fails_to_start_is_not_counted(probe: Probe) -> None:
    load = partial(import_handler, "ProbeFunction", probe.code_uri, "app.handler")
    starts: list[int] = []

    def start(number: int) -> Any:
        starts.append(number)
        if len(starts) == 1:
            raise ImportError("the module failed to import")
        return load(number)

    function = probe.function(concurrency=2, start=start)
    first = threading.Thread(target=invoke, args=(function, {}))
    first.start()  # the first container is busy until the gate opens
    assert probe.module.wait_for(events=1, timeout=WAIT_SECONDS)
    with pytest.raises(ImportError):
        invoke(function, {})
    assert function.containers.started == 1
    second = threading.Thread(target=invoke, args=(function, {}))
    second.start()
    assert probe.module.wait_for(events=2, timeout=WAIT_SECONDS)
    probe.module.gate.set()
    first.join(WAIT_SECONDS)
    second.join(WAIT_SECONDS)

    assert starts == [2, 2]  # the failed container's place was taken again
    assert function.containers.started == 2


def test_the_api_serves_two_requests_at_once(probe: Probe) -> None:
    function = probe.function(concurrency=2)
    probe.module.gate = threading.Barrier(2)
    route = Route("GET", "/slow", "ProbeFunction", "app.handler", probe.code_uri, "$default")
    server = ApiServer(("127.0.0.1", 0), Gateway([BoundRoute(route, function)]))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()

    def get() -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(*server.server_address[:2], timeout=WAIT_SECONDS * 2)
        try:
            connection.request("GET", "/slow")
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    try:
        answers = concurrently(get, 2)
    finally:
        server.shutdown()
        server.server_close()
    assert [status for status, _ in answers] == [200, 200]
    assert answers[0][1] != answers[1][1]


@pytest.mark.parametrize(("value", "expected"), [(None, 4), ("", 4), ("1", 1), ("16", 16)])
def test_concurrency_is_read_from_the_environment(
    value: str | None, expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv("LOCAL_CONCURRENCY", raising=False)
    else:
        monkeypatch.setenv("LOCAL_CONCURRENCY", value)
    assert function_concurrency() == expected


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_concurrency_that_is_not_a_count_of_containers_is_refused(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_CONCURRENCY", value)
    with pytest.raises(SystemExit, match="LOCAL_CONCURRENCY"):
        function_concurrency()


@pytest.fixture
def powertools_per_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """:func:`patch_powertools` for one test: Powertools as it was afterwards."""
    from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    metaclass = type(BaseRouter)
    kept = {name: BaseRouter.__dict__.get(name) for name in ("current_event", "lambda_context")}
    monkeypatch.setattr(LambdaPowertoolsFormatter, "log_format", None, raising=False)  # undone after
    patch_powertools()
    yield
    BaseRouter.__class__ = metaclass  # type: ignore[assignment]
    for name, attribute in kept.items():
        if attribute is not None:
            setattr(BaseRouter, name, attribute)
        elif name in BaseRouter.__dict__:
            delattr(BaseRouter, name)


def test_concurrent_invocations_each_see_their_own_event_and_context(
    probe: Probe, powertools_per_thread: None
) -> None:
    containers = [import_handler("ProbeFunction", probe.code_uri, "resolver.handler", n) for n in (1, 2)]
    route = Route("GET", "/echo", "ProbeFunction", "resolver.handler", probe.code_uri, "$default")
    probe.module.gate = threading.Barrier(2)  # both events set before either is read
    started = iter(range(2))

    def invocation() -> Any:
        n = next(started)
        event = proxy_event(route, {}, Request("GET", "/echo", [("x-request", f"{n}")], b"", "127.0.0.1"))
        return containers[n](event, SimpleNamespace(aws_request_id=f"context-{n}"))

    answers = concurrently(invocation, 2)

    assert sorted(json.loads(answer["body"])["request"] for answer in answers) == ["0", "1"]
    for answer in answers:
        body = json.loads(answer["body"])
        assert body["context"] == f"context-{body['request']}"


def test_concurrent_invocations_log_with_their_own_keys(powertools_per_thread: None) -> None:
    from aws_lambda_powertools import Logger

    stream = io.StringIO()
    logger = Logger(service="concurrency-probe", logger_handler=logging.StreamHandler(stream))
    both = threading.Barrier(2, timeout=WAIT_SECONDS)

    def invocation(request: str) -> None:
        logger.registered_formatter.clear_state()  # what inject_lambda_context(clear_state=True) does
        logger.append_keys(request=request)
        both.wait()  # both have their keys before either logs
        logger.info("working")
        both.wait()
        logger.append_keys(step="done")
        logger.info("done")

    concurrently(lambda: invocation(threading.current_thread().name), 2)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 4
    requests = {line["request"] for line in lines}
    assert len(requests) == 2
    for request in requests:
        own = [line for line in lines if line["request"] == request]
        assert [line["message"] for line in own] == ["working", "done"]
        assert [line.get("step") for line in own] == [None, "done"]
