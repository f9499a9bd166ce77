"""The local stack's DynamoDB stream event sources against moto in-process: tables get the
stream the template declares, and the stream poller (Lambda's event source mapping for a
stream) sends every record, in order, in Lambda's event shape, again after a failure, and
removes what it consumed from moto's shard. A small template of its own keeps these tests
independent of which tables the real template streams."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest

from ledgerbridge.local.stack import (
    StreamPoller,
    Worker,
    deploy,
    event_sources,
    local_parameters,
    stream_record,
)
from ledgerbridge.local.template import Stack, create_tables, load_template, stream_events
from tests.integration.test_local_events import Recorder, fake

TEMPLATE = """\
Parameters:
  WebhookAllowLoopback:
    Type: String
    Default: "false"
Resources:
  ThingsTable:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - {AttributeName: pk, AttributeType: S}
        - {AttributeName: sk, AttributeType: S}
      KeySchema:
        - {AttributeName: pk, KeyType: HASH}
        - {AttributeName: sk, KeyType: RANGE}
      StreamSpecification:
        StreamViewType: NEW_AND_OLD_IMAGES
  QuietTable:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
  EventsFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: events/
      Handler: app.handler
      Runtime: python3.12
      Environment:
        Variables:
          THINGS_STREAM: !GetAtt ThingsTable.StreamArn
      Events:
        Things:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt ThingsTable.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: 3
            FunctionResponseTypes: [ReportBatchItemFailures]
            BisectBatchOnFunctionError: true
            MaximumRetryAttempts: 2
        Later:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt ThingsTable.StreamArn
            StartingPosition: LATEST
            Enabled: false
"""

HANDLER = """\
EVENTS = []


def handler(event, context):
    EVENTS.append(event)
"""

TABLE = "ledgerbridge-ThingsTable"  # the name CloudFormation would generate, as the local stack does


@pytest.fixture
def template_path(tmp_path: Path) -> Path:
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "app.py").write_text(HANDLER)
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    return path


@pytest.fixture
def stack(template_path: Path, moto_account: None) -> Stack:
    """A fresh moto account with the small template's tables."""
    created = Stack(load_template(template_path))
    create_tables(created, boto3.client("dynamodb"))
    return created


@pytest.fixture
def dynamodb(stack: Stack) -> Any:
    return boto3.client("dynamodb")


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Threads a test starts: stopped at the end even when the test fails."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop(timeout=3)


def stream_arn(stack: Stack) -> str:
    return str(stack.resolve({"Fn::GetAtt": ["ThingsTable", "StreamArn"]}))


def poller(stack: Stack, handler: Any, **options: Any) -> StreamPoller:
    options = {"batch_size": 100, "report_batch_item_failures": True, **options}
    return StreamPoller(fake(handler, "EventsFunction"), stream_arn(stack), region=stack.region, **options)


def put(dynamodb: Any, sk: str, **attributes: Any) -> None:
    item = {"pk": {"S": "thing"}, "sk": {"S": sk}, **attributes}
    dynamodb.put_item(TableName=TABLE, Item=item)


def put_many(dynamodb: Any, count: int, prefix: str = "item") -> list[str]:
    keys = [f"{prefix}-{n:04d}" for n in range(count)]
    for key in keys:
        put(dynamodb, key)
    return keys


def shard_length(source: StreamPoller) -> int:
    return len(source.shard().items)


def records(handler: Recorder) -> list[dict[str, Any]]:
    return [record for event in handler.events for record in event["Records"]]


def sort_keys(handler: Recorder) -> list[str]:
    return [record["dynamodb"]["Keys"]["sk"]["S"] for record in records(handler)]


# --- the table's stream ---------------------------------------------------------------------


def test_a_table_gets_the_stream_the_template_declares_and_its_arn_resolves(
    stack: Stack, dynamodb: Any
) -> None:
    table = dynamodb.describe_table(TableName=TABLE)["Table"]

    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert stream_arn(stack) == table["LatestStreamArn"]
    assert stack.resolve({"Fn::Sub": "${ThingsTable.StreamArn}"}) == table["LatestStreamArn"]
    assert "StreamSpecification" not in dynamodb.describe_table(TableName="ledgerbridge-QuietTable")["Table"]
    with pytest.raises(ValueError, match=r"QuietTable\.StreamArn"):
        stack.resolve({"Fn::GetAtt": ["QuietTable", "StreamArn"]})


def test_stream_events_are_read_from_the_template(stack: Stack) -> None:
    [event] = stream_events(stack.template)  # Later is disabled

    assert (event.name, event.function, event.handler) == ("Things", "EventsFunction", "app.handler")
    assert event.code_uri == stack.template.root / "events"
    assert event.stream == {"Fn::GetAtt": ["ThingsTable", "StreamArn"]}
    assert (event.batch_size, event.starting_position, event.maximum_retry_attempts) == (3, "TRIM_HORIZON", 2)
    assert event.report_batch_item_failures and event.bisect_batch_on_function_error


def test_stream_event_defaults_and_refusals(stack: Stack) -> None:
    body = stack.template.body
    events = body["Resources"]["EventsFunction"]["Properties"]["Events"]
    events["Things"]["Properties"] = {"Stream": "arn", "StartingPosition": "LATEST"}
    [event] = stream_events(stack.template)
    assert (event.batch_size, event.maximum_retry_attempts) == (100, -1), "Lambda's defaults"
    assert not (event.report_batch_item_failures or event.bisect_batch_on_function_error)

    for unsupported in ({"FilterCriteria": {}}, {"TumblingWindowInSeconds": 60}):
        events["Things"]["Properties"] = {"Stream": "arn", "StartingPosition": "LATEST", **unsupported}
        with pytest.raises(ValueError, match=f"EventsFunction.Things: {next(iter(unsupported))} is not"):
            stream_events(stack.template)
    events["Things"]["Properties"] = {"Stream": "arn", "StartingPosition": "AT_TIMESTAMP"}
    with pytest.raises(ValueError, match="StartingPosition 'AT_TIMESTAMP'"):
        stream_events(stack.template)


# --- the event -------------------------------------------------------------------------------


def test_puts_updates_and_deletes_arrive_in_order_in_lambdas_event_shape(stack: Stack, dynamodb: Any) -> None:
    before = int(datetime.now(UTC).timestamp())
    put(dynamodb, "a", status={"S": "pending"}, total={"N": "10.50"}, tags={"M": {"n": {"N": "1"}}})
    dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "thing"}, "sk": {"S": "a"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "synced"}},
    )
    dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": "thing"}, "sk": {"S": "a"}})
    handler = Recorder()

    assert poller(stack, handler).poll() == 3

    [event] = handler.events
    assert list(event) == ["Records"]
    inserted, modified, removed = event["Records"]
    assert list(inserted) == [
        "eventID",
        "eventName",
        "eventVersion",
        "eventSource",
        "awsRegion",
        "dynamodb",
        "eventSourceARN",
    ]
    assert [r["eventName"] for r in event["Records"]] == ["INSERT", "MODIFY", "REMOVE"]
    for record in event["Records"]:
        assert (record["eventSource"], record["eventVersion"]) == ("aws:dynamodb", "1.1")
        assert (record["awsRegion"], record["eventSourceARN"]) == ("us-east-1", stream_arn(stack))
        assert record["dynamodb"]["Keys"] == {"pk": {"S": "thing"}, "sk": {"S": "a"}}
        assert record["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert isinstance(record["dynamodb"]["SizeBytes"], int) and record["dynamodb"]["SizeBytes"] > 0
        created = record["dynamodb"]["ApproximateCreationDateTime"]
        assert isinstance(created, int) and before <= created <= time.time(), "epoch seconds"
    assert len({r["eventID"] for r in event["Records"]}) == 3
    numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in event["Records"]]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    first_image = {
        "pk": {"S": "thing"},
        "sk": {"S": "a"},
        "status": {"S": "pending"},
        "total": {"N": "10.50"},
        "tags": {"M": {"n": {"N": "1"}}},
    }
    assert inserted["dynamodb"]["NewImage"] == first_image and "OldImage" not in inserted["dynamodb"]
    assert modified["dynamodb"]["OldImage"] == first_image
    assert modified["dynamodb"]["NewImage"] == {**first_image, "status": {"S": "synced"}}
    assert removed["dynamodb"]["OldImage"] == {**first_image, "status": {"S": "synced"}}
    assert "NewImage" not in removed["dynamodb"]


def test_the_event_is_a_copy_of_moto_s_record(stack: Stack, dynamodb: Any) -> None:
    put(dynamodb, "a", status={"S": "pending"})
    source = poller(stack, Recorder())
    [kept] = source.shard().items

    record = stream_record(kept.to_json(), "arn", "eu-west-1")
    record["dynamodb"]["NewImage"]["status"]["S"] = "changed by a handler"

    assert kept.to_json()["dynamodb"]["NewImage"]["status"] == {"S": "pending"}
    assert (record["awsRegion"], record["eventSourceARN"]) == ("eu-west-1", "arn")


def test_a_write_that_changes_nothing_sends_no_record(stack: Stack, dynamodb: Any) -> None:
    put(dynamodb, "a", status={"S": "pending"})
    put(dynamodb, "a", status={"S": "pending"})  # moto records it; DynamoDB would not
    put(dynamodb, "a", status={"S": "synced"})
    handler = Recorder()
    source = poller(stack, handler)

    assert source.poll() == 3

    assert [r["eventName"] for r in records(handler)] == ["INSERT", "MODIFY"]
    assert records(handler)[1]["dynamodb"]["NewImage"]["status"] == {"S": "synced"}
    assert shard_length(source) == 0


# --- batches, failures and retries --------------------------------------------------------------


def test_batches_take_up_to_batch_size_records_in_order(stack: Stack, dynamodb: Any) -> None:
    keys = put_many(dynamodb, 7)
    handler = Recorder()
    source = poller(stack, handler, batch_size=3)

    assert [source.poll() for _ in range(4)] == [3, 3, 1, 0]

    assert [len(event["Records"]) for event in handler.events] == [3, 3, 1]
    assert sort_keys(handler) == keys


def test_a_raising_handler_gets_the_same_records_again_and_nothing_is_lost(
    stack: Stack, dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = put_many(dynamodb, 5)
    calls = Recorder()

    def flaky(event: dict[str, Any], context: Any) -> Any:
        calls(event, context)
        if len(calls.events) == 1:
            raise RuntimeError("ledger unavailable")

    source = poller(stack, flaky, batch_size=3)

    assert source.poll() == 0
    assert (source.failures, shard_length(source)) == (1, 5), "nothing consumed"
    assert source.poll() == 3
    assert source.poll() == 2

    first, again, rest = calls.events
    assert again == first, "the same records, the same event"
    assert [r["dynamodb"]["Keys"]["sk"]["S"] for r in again["Records"] + rest["Records"]] == keys
    assert (source.failures, shard_length(source)) == (0, 0)
    error = capsys.readouterr().err
    assert "RuntimeError: ledger unavailable" in error and "3 record(s) will be sent again" in error


def test_a_partial_failure_resumes_at_the_lowest_failed_record(stack: Stack, dynamodb: Any) -> None:
    keys = put_many(dynamodb, 5)

    def fail_the_second_and_third(event: dict[str, Any]) -> Any:
        if len(handler.events) > 1:
            return {"batchItemFailures": []}
        numbers = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
        return {"batchItemFailures": [{"itemIdentifier": numbers[2]}, {"itemIdentifier": numbers[1]}]}

    handler = Recorder(fail_the_second_and_third)
    source = poller(stack, handler, batch_size=4)

    assert source.poll() == 1, "only the record before the lowest failure is consumed"
    assert (source.failures, shard_length(source)) == (1, 4)
    assert source.poll() == 4

    first, second = ([r["dynamodb"]["Keys"]["sk"]["S"] for r in e["Records"]] for e in handler.events)
    assert (first, second) == (keys[:4], keys[1:])
    assert (source.failures, shard_length(source)) == (0, 0)


def test_without_report_batch_item_failures_a_return_consumes_the_batch(stack: Stack, dynamodb: Any) -> None:
    put_many(dynamodb, 2)
    handler = Recorder(
        lambda event: {
            "batchItemFailures": [{"itemIdentifier": event["Records"][0]["dynamodb"]["SequenceNumber"]}]
        }
    )
    source = poller(stack, handler, report_batch_item_failures=False)

    assert source.poll() == 2
    assert shard_length(source) == 0


def test_a_malformed_batch_response_fails_the_whole_batch(
    stack: Stack, dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    put_many(dynamodb, 2)
    source = poller(stack, Recorder(lambda event: {"batchItemFailures": [{"itemIdentifier": "nope"}]}))

    assert source.poll() == 0

    assert (source.failures, shard_length(source)) == (1, 2)
    assert "malformed batch response" in capsys.readouterr().err


def test_bisect_on_function_error_halves_the_failing_batch_down_to_one_record(
    stack: Stack, dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = put_many(dynamodb, 4)
    handler = Recorder()

    def poisoned(event: dict[str, Any], context: Any) -> Any:
        handler(event, context)
        if (
            any(r["dynamodb"]["Keys"]["sk"]["S"] == keys[0] for r in event["Records"])
            and len(handler.events) < 4
        ):
            raise RuntimeError("poisoned record")

    source = poller(stack, poisoned, bisect_batch_on_function_error=True, maximum_retry_attempts=1)

    assert [source.poll() for _ in range(5)] == [0, 0, 0, 1, 3]

    assert [len(event["Records"]) for event in handler.events] == [4, 2, 1, 1, 3]
    assert sort_keys(handler)[-4:] == keys, "the poisoned record was retried, not skipped"
    assert "Lambda would skip its batch now (MaximumRetryAttempts 1)" in capsys.readouterr().err


def test_latest_skips_the_records_already_in_the_stream(stack: Stack, dynamodb: Any) -> None:
    put_many(dynamodb, 3)
    handler = Recorder()
    source = poller(stack, handler, starting_position="LATEST")
    put(dynamodb, "later")

    assert source.poll() == 1

    assert sort_keys(handler) == ["later"]
    with pytest.raises(ValueError, match="AT_TIMESTAMP"):
        poller(stack, handler, starting_position="AT_TIMESTAMP")


# --- moto's shard stays small ---------------------------------------------------------------------


def test_consumed_records_are_removed_from_moto_s_shard(stack: Stack, dynamodb: Any) -> None:
    put_many(dynamodb, 250)
    handler = Recorder()
    source = poller(stack, handler)
    shard = source.shard()
    first_number = shard.starting_sequence_number
    assert shard_length(source) == 250

    while source.poll():
        pass

    assert shard_length(source) == 0
    assert [len(event["Records"]) for event in handler.events] == [100, 100, 50]
    assert shard.starting_sequence_number == first_number + 250
    last_seen = int(records(handler)[-1]["dynamodb"]["SequenceNumber"])
    put(dynamodb, "after")
    source.poll()
    assert int(records(handler)[-1]["dynamodb"]["SequenceNumber"]) == last_seen + 1, "numbering goes on"


def test_the_streams_api_still_reads_what_is_left(stack: Stack, dynamodb: Any) -> None:
    put_many(dynamodb, 3)
    source = poller(stack, Recorder())
    source.poll()
    put(dynamodb, "left")
    streams = boto3.client("dynamodbstreams")
    shard_id = streams.describe_stream(StreamArn=stream_arn(stack))["StreamDescription"]["Shards"][0][
        "ShardId"
    ]

    iterator = streams.get_shard_iterator(
        StreamArn=stream_arn(stack), ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]

    [record] = streams.get_records(ShardIterator=iterator)["Records"]
    assert record["dynamodb"]["Keys"]["sk"] == {"S": "left"}


# --- the poller's thread and the template's event sources --------------------------------------------


def test_a_running_poller_retries_after_a_wait_and_loses_nothing(
    stack: Stack, dynamodb: Any, workers: list[Worker]
) -> None:
    keys = put_many(dynamodb, 4)
    handler = Recorder()

    def every_other_call_fails(event: dict[str, Any], context: Any) -> Any:
        handler(event, context)
        if len(handler.events) % 2:
            raise RuntimeError("try again")

    source = poller(
        stack, every_other_call_fails, batch_size=2, retry_seconds=(0.01, 0.02), idle_seconds=0.01
    )
    workers.append(source)
    source.start()
    keys += put_many(dynamodb, 4, prefix="later")  # while it runs
    handler.wait_for(8)
    deadline = time.monotonic() + 4
    while shard_length(source) and time.monotonic() < deadline:
        time.sleep(0.01)

    assert shard_length(source) == 0
    delivered = [event for n, event in enumerate(handler.events) if n % 2]  # the calls that succeeded
    assert [r["dynamodb"]["Keys"]["sk"]["S"] for e in delivered for r in e["Records"]] == keys


def test_a_poller_with_nothing_to_read_stops_promptly(stack: Stack) -> None:
    source = poller(stack, Recorder())
    source.start()
    time.sleep(0.05)
    assert source.stop(timeout=1)
    assert not source.alive


def test_event_sources_give_each_stream_event_a_poller(stack: Stack) -> None:
    functions = {"EventsFunction": fake(Recorder(), "EventsFunction")}

    [source] = event_sources(stack, functions, sqs=None, period=0)

    assert isinstance(source, StreamPoller)
    assert (source.name, source.stream_arn, source.batch_size) == (
        "EventsFunction.Things",
        stream_arn(stack),
        3,
    )
    assert source.report_batch_item_failures and source.bisect_batch_on_function_error
    assert source.maximum_retry_attempts == 2


def test_two_events_reading_one_stream_are_refused(stack: Stack) -> None:
    events = stack.template.body["Resources"]["EventsFunction"]["Properties"]["Events"]
    events["Later"]["Properties"]["Enabled"] = True
    functions = {"EventsFunction": fake(Recorder(), "EventsFunction")}

    with pytest.raises(ValueError, match=r"EventsFunction\.Later and EventsFunction\.Things read one stream"):
        event_sources(stack, functions, sqs=None, period=0)


def test_deploy_loads_the_stream_function_and_runs_it_on_records_written_before_the_start(
    template_path: Path, moto_account: None, monkeypatch: pytest.MonkeyPatch, workers: list[Worker]
) -> None:
    """The template's own handler module (events/app.py) gets the records, in its environment."""
    monkeypatch.setattr(sys, "path", [*sys.path])  # import_handler puts each CodeUri on it
    monkeypatch.setattr(sys, "modules", {**sys.modules})
    with mock.patch.dict(os.environ):  # deploy gives this process the functions' environment
        stack = Stack(load_template(template_path))
        deployment = deploy(stack, period=0)
        [source] = deployment.sources.sources
        workers.append(source)
        assert os.environ["THINGS_STREAM"] == stream_arn(stack)
        keys = put_many(boto3.client("dynamodb"), 4)  # before the start: TRIM_HORIZON reads them

        deployment.sources.start()
        recorded = sys.modules["app__EventsFunction"].EVENTS
        deadline = time.monotonic() + 4
        while len([r for e in recorded for r in e["Records"]]) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        deployment.sources.stop()

    assert [r["dynamodb"]["Keys"]["sk"]["S"] for e in recorded for r in e["Records"]] == keys
    assert [len(e["Records"]) for e in recorded] == [3, 1]


# --- main's template parameters --------------------------------------------------------------------


def test_the_local_stack_passes_the_parameters_the_template_declares(stack: Stack) -> None:
    template = stack.template
    template.body["Parameters"]["PublicUrl"] = {"Type": "String", "Default": ""}

    assert local_parameters(template, "http://127.0.0.1:3000", log_level="DEBUG") == {
        "PublicUrl": "http://127.0.0.1:3000",
        "WebhookAllowLoopback": "true",
    }, "webhook receivers on this machine are allowed; LogLevel is not declared here"
    del template.body["Parameters"]["WebhookAllowLoopback"]
    template.body["Parameters"]["LogLevel"] = {"Type": "String", "Default": "INFO"}
    assert local_parameters(template, "http://127.0.0.1:3000", log_level="DEBUG") == {
        "PublicUrl": "http://127.0.0.1:3000",
        "LogLevel": "DEBUG",
    }
    assert "LogLevel" not in local_parameters(template, "http://127.0.0.1:3000", log_level="")
