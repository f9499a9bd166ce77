"""The local stack's event sources against moto in-process: the SQS poller (Lambda's event
source mapping) and the schedules, with small fake handlers instead of the template's."""

from __future__ import annotations

import hashlib
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from ledgerbridge.local.stack import (
    LocalFunction,
    QueuePoller,
    Scheduler,
    Worker,
    banner,
    banner_fields,
    event_sources,
    failed_message_ids,
    import_handler,
    schedule_seconds,
    scheduled_event,
)
from ledgerbridge.local.template import Stack, Template, create_queues, queue_events, schedule_events

FIELD = re.compile(r"^\s+([a-z][a-z-]*): (\S+)$")  # how tests/e2e/conftest.py reads the banner


class Recorder:
    """A fake handler: records each event, then answers with ``answer(event)``."""

    def __init__(self, answer: Callable[[dict[str, Any]], Any] = lambda event: None) -> None:
        self.events: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.contexts: list[Any] = []
        self.answer = answer
        self.called = threading.Condition()

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        with self.called:
            self.events.append(event)
            self.times.append(time.monotonic())
            self.contexts.append(context)
            self.called.notify_all()
        return self.answer(event)

    def wait_for(self, count: int, timeout: float = 4.0) -> None:
        with self.called:
            assert self.called.wait_for(lambda: len(self.events) >= count, timeout), self.events

    @property
    def bodies(self) -> list[str]:
        return [record["body"] for event in self.events for record in event["Records"]]


def fake(handler: Callable[[dict[str, Any], Any], Any], name: str = "RetryFunction") -> LocalFunction:
    return LocalFunction(
        name=f"ledgerbridge-{name}",
        arn=f"arn:aws:lambda:us-east-1:123456789012:function:ledgerbridge-{name}",
        handler=handler,
        memory_mb=128,
        timeout_seconds=3,
    )


def every_function(stack: Stack, **handlers: Any) -> dict[str, LocalFunction]:
    """A fake of every function of the template: ``handlers`` by logical id, the rest recording."""
    return {
        name: fake(handlers.get(name) or Recorder(), name)
        for name in stack.template.resources("AWS::Serverless::Function")
    }


def raising(event: dict[str, Any], context: Any) -> Any:
    raise RuntimeError("provider unavailable")


@pytest.fixture
def sqs(aws: Stack) -> Any:
    return boto3.client("sqs")


@pytest.fixture
def retry_queue(aws: Stack) -> tuple[str, str]:
    """The template's RetryQueue: (URL, ARN)."""
    return aws.refs["RetryQueue"], aws.attributes[("RetryQueue", "Arn")]


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Threads a test starts: stopped at the end even when the test fails."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop(timeout=3)


def send(sqs: Any, url: str, body: str, group: str = "connection-1", **extra: Any) -> str:
    response = sqs.send_message(
        QueueUrl=url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=body, **extra
    )
    return str(response["MessageId"])


def counts(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(attributes[names[0]]), int(attributes[names[1]])


def poller(sqs: Any, queue: tuple[str, str], handler: Any, **options: Any) -> QueuePoller:
    options = {"report_batch_item_failures": True, **options}
    return QueuePoller(fake(handler), sqs, queue[1], region="us-east-1", **options)


# --- the SQS event -----------------------------------------------------------------------


def test_the_handler_gets_the_event_lambda_sends(sqs: Any, retry_queue: tuple[str, str]) -> None:
    url, arn = retry_queue
    sent = send(
        sqs,
        url,
        '{"invoice_id": "i1"}',
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "retry"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
        },
    )
    handler = Recorder()

    assert poller(sqs, retry_queue, handler).poll(wait_seconds=0) == 1

    [event] = handler.events
    [record] = event["Records"]
    assert list(record) == [
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "md5OfMessageAttributes",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    ]
    assert record["messageId"] == sent
    assert record["body"] == '{"invoice_id": "i1"}'
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == (
        "aws:sqs",
        arn,
        "us-east-1",
    )
    attributes = record["attributes"]
    assert attributes["ApproximateReceiveCount"] == "1"
    assert attributes["MessageGroupId"] == "connection-1"
    assert attributes["MessageDeduplicationId"] == '{"invoice_id": "i1"}'
    for name in ("SentTimestamp", "ApproximateFirstReceiveTimestamp", "SenderId", "SequenceNumber"):
        assert attributes[name], name
    assert record["messageAttributes"] == {
        "kind": {
            "stringValue": "retry",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        },
        "blob": {"binaryValue": "AP8=", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
    }
    assert handler.contexts[0].function_name == "ledgerbridge-RetryFunction"
    assert handler.contexts[0].get_remaining_time_in_millis() > 0
    assert counts(sqs, url) == (0, 0), "the message that succeeded is deleted"


def test_a_reported_failure_stays_on_the_queue_and_the_rest_are_deleted(
    sqs: Any, retry_queue: tuple[str, str]
) -> None:
    url, _ = retry_queue
    ids = [send(sqs, url, f"invoice-{n}", group=f"connection-{n}") for n in range(3)]
    handler = Recorder(lambda event: {"batchItemFailures": [{"itemIdentifier": ids[1]}]})

    assert poller(sqs, retry_queue, handler).poll(wait_seconds=0) == 3

    assert sorted(handler.bodies) == ["invoice-0", "invoice-1", "invoice-2"]
    assert counts(sqs, url) == (0, 1)
    [failed] = [r for r in handler.events[0]["Records"] if r["messageId"] == ids[1]]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=failed["receiptHandle"], VisibilityTimeout=0)
    [again] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"])[
        "Messages"
    ]
    assert (again["Body"], again["Attributes"]["ApproximateReceiveCount"]) == ("invoice-1", "2")


def test_a_raising_handler_deletes_nothing(
    sqs: Any, retry_queue: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = retry_queue
    for n in range(3):
        send(sqs, url, f"invoice-{n}")

    assert poller(sqs, retry_queue, raising).poll(wait_seconds=0) == 3

    assert counts(sqs, url) == (0, 3), "back after the visibility timeout"
    error = capsys.readouterr().err
    assert "RuntimeError: provider unavailable" in error and "3 message(s) stay on the queue" in error


def test_a_malformed_batch_response_fails_the_whole_batch(
    sqs: Any, retry_queue: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = retry_queue
    for n in range(2):
        send(sqs, url, f"invoice-{n}", group=f"connection-{n}")
    handler = Recorder(lambda event: {"batchItemFailures": [{"itemIdentifier": "not-in-the-batch"}]})

    poller(sqs, retry_queue, handler).poll(wait_seconds=0)

    assert counts(sqs, url) == (0, 2)
    assert "malformed batch response" in capsys.readouterr().err


def test_without_report_batch_item_failures_a_return_deletes_the_batch(
    sqs: Any, retry_queue: tuple[str, str]
) -> None:
    url, _ = retry_queue
    ids = [send(sqs, url, f"invoice-{n}", group=f"connection-{n}") for n in range(2)]
    handler = Recorder(lambda event: {"batchItemFailures": [{"itemIdentifier": ids[0]}]})

    poller(sqs, retry_queue, handler, report_batch_item_failures=False).poll(wait_seconds=0)

    assert counts(sqs, url) == (0, 0)


@pytest.mark.parametrize(
    ("result", "failed"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": None}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "c"}]}, {"b", "c"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b", "c"}),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, {"a", "b", "c"}),
        ({"batchItemFailures": [{"id": "b"}]}, {"a", "b", "c"}),
        ({"batchItemFailures": "b"}, {"a", "b", "c"}),
        ("not an object", {"a", "b", "c"}),
    ],
)
def test_batch_responses_are_read_as_lambda_documents(result: Any, failed: set[str]) -> None:
    assert failed_message_ids(result, ["a", "b", "c"], report_batch_item_failures=True) == failed


def test_messages_redrive_to_the_dead_letter_queue_after_max_receive_count(
    aws: Stack, sqs: Any, workers: list[Worker]
) -> None:
    """A queue declared like RetryQueue, but visible again at once, so it redrives quickly."""
    redrive = {"deadLetterTargetArn": {"Fn::GetAtt": ["Dead", "Arn"]}, "maxReceiveCount": 2}
    fifo = {"FifoQueue": True, "ContentBasedDeduplication": True}
    resources = {
        "Fast": {
            "Type": "AWS::SQS::Queue",
            "Properties": {**fifo, "VisibilityTimeout": 0, "RedrivePolicy": redrive},
        },
        "Dead": {"Type": "AWS::SQS::Queue", "Properties": fifo},
    }
    stack = Stack(Template(path=aws.template.path, body={"Resources": resources}), name="redrive")
    create_queues(stack, sqs)
    sqs.send_message(QueueUrl=stack.refs["Fast"], MessageBody="invoice-1", MessageGroupId="connection-1")
    handler = Recorder(lambda event: raising(event, None))
    source = poller(sqs, (stack.refs["Fast"], stack.attributes[("Fast", "Arn")]), handler)
    workers.append(source)

    source.start()
    deadline = time.monotonic() + 4
    while counts(sqs, stack.refs["Dead"])[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)

    assert counts(sqs, stack.refs["Dead"])[0] == 1
    assert counts(sqs, stack.refs["Fast"]) == (0, 0)
    assert [e["Records"][0]["attributes"]["ApproximateReceiveCount"] for e in handler.events] == ["1", "2"]


# --- the pollers of the template ----------------------------------------------------------


def test_the_template_poller_keeps_each_message_group_in_order(
    aws: Stack, sqs: Any, retry_queue: tuple[str, str]
) -> None:
    url, _ = retry_queue
    sent = {"a": [f"a{n}" for n in range(8)], "b": [f"b{n}" for n in range(7)]}
    for n in range(8):
        for group, bodies in sent.items():
            if n < len(bodies):
                send(sqs, url, bodies[n], group=group)
    handler = Recorder()
    sources = event_sources(aws, every_function(aws, RetryFunction=handler), sqs, period=0)
    [source] = [s for s in sources if isinstance(s, QueuePoller) and s.queue_url == url]
    [declared] = [event for event in queue_events(aws.template) if event.function == "RetryFunction"]
    assert source.batch_size == declared.batch_size

    source.start()
    try:
        handler.wait_for(2)  # 15 messages: a full batch of 10, then the other 5
    finally:
        started = time.monotonic()
        assert source.stop(timeout=3)
    assert time.monotonic() - started < 2.5, "a poller stops within its long poll"

    assert [len(event["Records"]) for event in handler.events] == [10, 5]
    for group, bodies in sent.items():
        assert [body for body in handler.bodies if body.startswith(group)] == bodies
    assert counts(sqs, url) == (0, 0)


def test_a_group_held_back_by_its_failures_waits_without_keeping_a_cpu_busy(
    sqs: Any, retry_queue: tuple[str, str], workers: list[Worker]
) -> None:
    url, _ = retry_queue
    for n in range(12):  # one message group: a batch of 10, and 2 behind it
        send(sqs, url, f"invoice-{n}")
    handler = Recorder(
        lambda event: {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}
    )
    source = poller(sqs, retry_queue, handler)
    workers.append(source)

    source.start()
    handler.wait_for(1)
    cpu = time.process_time()
    time.sleep(1.5)
    used = time.process_time() - cpu

    assert len(handler.events) == 1, "the rest of the group waits for its failed messages"
    assert counts(sqs, url) == (2, 10)
    assert used < 0.6, f"{used:.2f} s of CPU in 1.5 s: a long poll on a blocked FIFO queue spins in moto"


def test_a_poller_with_nothing_to_do_stops_promptly(sqs: Any, retry_queue: tuple[str, str]) -> None:
    source = poller(sqs, retry_queue, Recorder())
    source.start()
    time.sleep(0.2)  # inside its long poll
    started = time.monotonic()
    assert source.stop(timeout=3)
    assert time.monotonic() - started < 2.0
    assert not source.alive


# --- schedules --------------------------------------------------------------------------------


def test_a_schedule_invokes_every_period_and_not_at_start(
    aws: Stack, monkeypatch: pytest.MonkeyPatch, workers: list[Worker]
) -> None:
    monkeypatch.setenv("LOCAL_SCHEDULE_SECONDS", "0.1")
    period = schedule_seconds()
    handler = Recorder()
    source = Scheduler(fake(handler, "SweeperFunction"), dict, period)
    workers.append(source)

    started = time.monotonic()
    source.start()
    time.sleep(0.55)
    assert source.stop(timeout=2)

    assert 3 <= len(handler.events) <= 6, handler.times
    assert handler.times[0] - started >= 0.09, "not at startup"
    gaps = [later - earlier for earlier, later in zip(handler.times, handler.times[1:], strict=False)]
    assert all(0.05 < gap < 0.35 for gap in gaps), gaps  # no burst to catch up


def test_a_schedule_goes_on_after_the_handler_raises(
    workers: list[Worker], capsys: pytest.CaptureFixture[str]
) -> None:
    handler = Recorder()

    def flaky(event: dict[str, Any], context: Any) -> Any:
        handler(event, context)
        raise RuntimeError(f"sweep {len(handler.events)} failed")

    source = Scheduler(fake(flaky, "SweeperFunction"), dict, 0.05)
    workers.append(source)
    source.start()
    handler.wait_for(3, timeout=2)
    assert source.stop(timeout=2)

    error = capsys.readouterr().err
    assert "RuntimeError: sweep 1 failed" in error and "RuntimeError: sweep 3 failed" in error
    assert "Traceback" in error


def test_the_template_schedules_send_eventbridge_scheduler_events(
    aws: Stack, sqs: Any, workers: list[Worker]
) -> None:
    declared = schedule_events(aws.template)
    handlers = {schedule.function: Recorder() for schedule in declared}
    sources = event_sources(aws, every_function(aws, **handlers), sqs, period=0.1)
    schedules = [source for source in sources if isinstance(source, Scheduler)]
    workers.extend(sources)
    assert [s.name for s in schedules] == [f"{s.function}.{s.name}" for s in declared]
    assert [round(s.first, 3) for s in schedules] == [
        round(0.1 * (1 + n / len(declared)), 3) for n in range(len(declared))
    ], "staggered over the first period"

    for source in schedules:
        source.start()
    for handler in handlers.values():
        handler.wait_for(1, timeout=2)

    event = handlers["SweeperFunction"].events[0]
    assert set(event) == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }
    assert (event["source"], event["detail-type"], event["detail"]) == (
        "aws.scheduler",
        "Scheduled Event",
        "{}",
    )
    assert (event["account"], event["region"]) == (aws.account_id, aws.region)
    assert event["resources"] == [
        f"arn:aws:scheduler:{aws.region}:{aws.account_id}:schedule/default/SweeperFunctionSchedule"
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])


def test_a_schedule_input_is_the_event(aws: Stack) -> None:
    [schedule, *_] = schedule_events(aws.template)
    with_input = type(schedule)(
        **{**schedule.__dict__, "input": {"Fn::Sub": '{"stack": "${AWS::StackName}"}'}}
    )
    assert scheduled_event(with_input, aws) == {"stack": aws.name}
    rule = type(schedule)(**{**schedule.__dict__, "kind": "Schedule"})
    event = scheduled_event(rule, aws)
    assert (event["source"], event["detail"]) == ("aws.events", {})
    assert event["resources"] == [
        f"arn:aws:events:{aws.region}:{aws.account_id}:rule/{schedule.schedule_name}"
    ]


def test_schedule_seconds_is_read_from_the_environment(
    aws: Stack, sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOCAL_SCHEDULE_SECONDS", raising=False)
    assert schedule_seconds() == 60
    monkeypatch.setenv("LOCAL_SCHEDULE_SECONDS", "0")
    assert schedule_seconds() == 0
    assert not [s for s in event_sources(aws, every_function(aws), sqs, period=0) if isinstance(s, Scheduler)]
    for wrong in ("-1", "soon", "inf"):
        monkeypatch.setenv("LOCAL_SCHEDULE_SECONDS", wrong)
        with pytest.raises(SystemExit, match="LOCAL_SCHEDULE_SECONDS"):
            schedule_seconds()


# --- the banner and the handlers' modules ----------------------------------------------------


def test_the_banner_names_the_polled_queue_and_the_schedule_period(aws: Stack, sqs: Any) -> None:
    fields = banner_fields(aws, event_sources(aws, every_function(aws), sqs, period=60), period=60)
    demo = {"project_id": "p", "connection_id": "c", "api_key": "k", "connection_token": "t"}
    aws_env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_REGION": "us-east-1"}

    lines = banner(demo, "http://127.0.0.1:3000", aws_env, fields).splitlines()

    parsed = dict(match.groups() for line in lines if (match := FIELD.match(line)))
    assert parsed["retry-queue"] == aws.refs["RetryQueue"]
    assert parsed["schedule-seconds"] == "60"
    assert parsed["api-url"] == "http://127.0.0.1:3000" and parsed["x-api-key"] == "k"


def test_functions_with_the_same_module_name_stay_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", [*sys.path])  # import_handler puts each CodeUri on it
    monkeypatch.setattr(sys, "modules", {**sys.modules})
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "app.py").write_text(f"def handler(event, context):\n    return {name!r}\n")

    first = import_handler("OneFunction", tmp_path / "one", "app.handler")
    second = import_handler("TwoFunction", tmp_path / "two", "app.handler")

    assert (first({}, None), second({}, None)) == ("one", "two")
    assert import_handler("OneFunction", tmp_path / "one", "app.handler") is first
