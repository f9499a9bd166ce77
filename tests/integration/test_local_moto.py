"""The local stack's fixes to moto: it keeps no object per request, items at rest are packed,
transactions copy no table, and a Query reads only its page (of an index, only the items in
the index), answering as moto would."""

from __future__ import annotations

import marshal
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

from ledgerbridge.local.stack import _plain, patch_moto

TABLE = "books"


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    patch_moto()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        yield client


def _put(pk: str, sk: str, **values: str) -> dict[str, Any]:
    item = {"pk": {"S": pk}, "sk": {"S": sk}, **{k: {"S": v} for k, v in values.items()}}
    return {"Put": {"TableName": TABLE, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}


def _keys(client: Any, pk: str) -> list[str]:
    items = client.query(
        TableName=TABLE, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": pk}}
    )["Items"]
    return [item["sk"]["S"] for item in items]


def test_a_transaction_never_copies_a_table(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(table: Table, memo: Any) -> Table:
        raise AssertionError(f"table {table.name} deep-copied")

    monkeypatch.setattr(Table, "__deepcopy__", refuse, raising=False)
    dynamodb.transact_write_items(TransactItems=[_put("A", "1"), _put("A", "2")])
    assert _keys(dynamodb, "A") == ["1", "2"]


def test_a_cancelled_transaction_puts_back_exactly_what_it_touched(dynamodb: Any) -> None:
    dynamodb.transact_write_items(TransactItems=[_put("A", "taken", v="first")])
    update = {
        "Update": {
            "TableName": TABLE,
            "Key": {"pk": {"S": "A"}, "sk": {"S": "counter"}},
            "UpdateExpression": "SET v = :v",
            "ExpressionAttributeValues": {":v": {"S": "changed"}},
        }
    }
    with pytest.raises(ClientError) as refused:
        dynamodb.transact_write_items(
            TransactItems=[_put("A", "new"), update, _put("A", "taken", v="second")]
        )
    reasons = [reason["Code"] for reason in refused.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed"]
    assert _keys(dynamodb, "A") == ["taken"]
    kept = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "A"}, "sk": {"S": "taken"}})["Item"]
    assert kept["v"] == {"S": "first"}


def test_a_query_reads_its_partition_in_order_and_pages_through_it(dynamodb: Any) -> None:
    for pk in ("A", "B"):
        for n in range(5):
            dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": pk}, "sk": {"S": f"{n}"}})
    request = {
        "TableName": TABLE,
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "B"}},
        "Limit": 3,
    }
    first = dynamodb.query(**request)
    rest = dynamodb.query(**request, ExclusiveStartKey=first["LastEvaluatedKey"])
    assert [item["sk"]["S"] for item in first["Items"] + rest["Items"]] == ["0", "1", "2", "3", "4"]
    assert {item["pk"]["S"] for item in first["Items"] + rest["Items"]} == {"B"}
    backwards = dynamodb.query(**{**request, "ScanIndexForward": False, "Limit": 2})["Items"]
    assert [item["sk"]["S"] for item in backwards] == ["4", "3"]
    assert _keys(dynamodb, "C") == []


def _table(name: str = TABLE) -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends["123456789012"]["us-east-1"].tables[name]


def _stored(pk: str, sk: str) -> Any:
    """moto's item, as it rests in the table between requests."""
    return dict.__getitem__(_table().items, DynamoType({"S": pk}))[DynamoType({"S": sk})]


EVERY_TYPE = {
    "s": {"S": "text"},
    "empty": {"S": ""},
    "n": {"N": "-12.50"},
    "b": {"B": b"\x00\xff"},
    "yes": {"BOOL": True},
    "nothing": {"NULL": True},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": [b"x", b"y"]},
    "l": {"L": [{"S": "x"}, {"N": "2"}, {"M": {"k": {"S": "v"}}}, {"L": []}]},
    "m": {"M": {"nested": {"M": {"deep": {"L": [{"BOOL": False}]}}}, "e": {"M": {}}}},
}


def test_moto_keeps_no_object_of_a_request(dynamodb: Any) -> None:
    """moto recorded every model object it made (items, each copy an update makes, stream
    records) for its /moto-api/data.json page, for the life of the process."""
    from moto.core.model_instances import model_data

    def recorded() -> int:
        return sum(
            len(model.instances_tracked) for models in model_data.values() for model in models.values()
        )

    before = recorded()
    for n in range(20):
        dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "A"}, "sk": {"S": f"{n}"}, "v": {"N": "1"}})
        dynamodb.update_item(
            TableName=TABLE,
            Key={"pk": {"S": "A"}, "sk": {"S": f"{n}"}},
            UpdateExpression="SET v = v + :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )
    dynamodb.transact_write_items(TransactItems=[_put("B", "1"), _put("B", "2")])
    _keys(dynamodb, "A")
    assert len(_table().stream_shard.items) == 42  # what the stream poller reads and trims
    assert recorded() == before


@pytest.mark.parametrize("filler", ["", "long text " * 300])  # a large item rests compressed
def test_items_rest_packed_and_read_back_as_written(dynamodb: Any, filler: str) -> None:
    items = [
        {"pk": {"S": "A"}, "sk": {"S": f"{n}"}, **EVERY_TYPE, "n": {"N": f"{n}"}, "filler": {"S": filler}}
        for n in range(3)  # the first of its names, and two packed against it
    ]
    for item in items:
        dynamodb.put_item(TableName=TABLE, Item=item)

    stored = [_stored("A", f"{n}") for n in range(3)]
    assert all(item._attrs is None and isinstance(item._packed, bytes) for item in stored)
    assert max(len(item._packed) for item in stored) < 1000
    for item in items:
        assert dynamodb.get_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})["Item"] == item
    assert _keys(dynamodb, "A") == ["0", "1", "2"]
    assert dynamodb.scan(TableName=TABLE)["Items"] == items
    assert all(item._attrs is None for item in stored)  # reading unpacked them for the request only


def test_items_with_the_same_names_pack_against_the_first_of_them(dynamodb: Any) -> None:
    names_never_packed = f"a{uuid.uuid4().hex}"  # the process keeps the first item of its names
    items = [
        {"pk": {"S": "A"}, "sk": {"S": f"{n}"}, **EVERY_TYPE, names_never_packed: {"N": f"{n}"}}
        for n in range(3)
    ]
    for item in items:
        dynamodb.put_item(TableName=TABLE, Item=item)

    for item in items:
        plain = {name: _plain(DynamoType(value)) for name, value in item.items()}
        assert len(_stored("A", item["sk"]["S"])._packed) < len(zlib.compress(marshal.dumps(plain))) / 2
        assert dynamodb.get_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})["Item"] == item


def test_an_update_in_place_is_kept_and_a_refused_one_changes_nothing(dynamodb: Any) -> None:
    key = {"pk": {"S": "A"}, "sk": {"S": "1"}}
    dynamodb.put_item(TableName=TABLE, Item={**key, **EVERY_TYPE})
    dynamodb.update_item(
        TableName=TABLE,
        Key=key,
        UpdateExpression="SET m.nested.deep[0] = :t, n = n + :one REMOVE s",
        ExpressionAttributeValues={":t": {"BOOL": True}, ":one": {"N": "1"}},
    )
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        dynamodb.update_item(
            TableName=TABLE,
            Key=key,
            UpdateExpression="SET n = :zero",
            ConditionExpression="attribute_exists(s)",
            ExpressionAttributeValues={":zero": {"N": "0"}},
        )

    item = dynamodb.get_item(TableName=TABLE, Key=key)["Item"]
    assert item["m"] == {"M": {"nested": {"M": {"deep": {"L": [{"BOOL": True}]}}}, "e": {"M": {}}}}
    assert item["n"] == {"N": "-11.50"}
    assert "s" not in item
    assert _stored("A", "1")._attrs is None


def test_the_items_of_a_partition_share_its_key(dynamodb: Any) -> None:
    for n in range(3):
        dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "A"}, "sk": {"S": f"{n}"}})
    assert len({id(_stored("A", f"{n}").hash_key) for n in range(3)}) == 1


def _condition(comparison: str | None) -> tuple[str, dict[str, Any]]:
    """A key condition on partition P and its values: ``comparison`` names the sort key's."""
    values: dict[str, Any] = {":p": {"S": "P"}}
    if comparison is None:
        return "pk = :p", values
    name, *operands = comparison.split(" ")
    values.update({f":v{n}": {"S": operand} for n, operand in enumerate(operands)})
    if name == "BETWEEN":
        return "pk = :p AND sk BETWEEN :v0 AND :v1", values
    if name == "begins_with":
        return "pk = :p AND begins_with(sk, :v0)", values
    return f"pk = :p AND sk {name} :v0", values


COMPARISONS = [
    None,
    "= b#010",
    "= b#999",
    "< b#010",
    "<= b#010",
    "> b#010",
    ">= b#010",
    "> c#999",
    "BETWEEN a#030 b#005",
    "BETWEEN b#005 a#030",
    "begins_with b",
    "begins_with a#03",
    "begins_with zz",
    "begins_with 0",
]


def _every_page(dynamodb: Any, request: dict[str, Any]) -> list[dict[str, Any]]:
    pages = []
    while True:
        page = dynamodb.query(**request)
        page.pop("ResponseMetadata")
        pages.append(page)
        if "LastEvaluatedKey" not in page:
            return pages
        request = {**request, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def test_a_query_reads_only_its_page_and_answers_as_moto_does(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledgerbridge.local import stack

    for prefix in "abc":
        for n in range(40):
            dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "P"}, "sk": {"S": f"{prefix}#{n:03d}"}})
    for n in range(5):
        dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "Q"}, "sk": {"S": f"b#{n:03d}"}})
    for n in range(0, 40, 3):  # a gap every third key, and an overwritten key
        dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": "P"}, "sk": {"S": f"b#{n:03d}"}})
    dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "P"}, "sk": {"S": "b#010"}, "v": {"S": "again"}})
    requests = [
        {
            "TableName": TABLE,
            "KeyConditionExpression": expression,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": forward,
            **({"Limit": limit} if limit else {}),
        }
        for comparison in COMPARISONS
        for expression, values in [_condition(comparison)]
        for forward in (True, False)
        for limit in (None, 1, 7)
    ]
    windows: list[int] = []
    all_items = Table.all_items

    def counted(table: Table) -> list[Any]:
        items = all_items(table)
        windows.append(len(items))
        return items

    monkeypatch.setattr(Table, "all_items", counted)
    answers, largest = [], []
    for request in requests:
        windows.clear()
        answers.append(_every_page(dynamodb, request))
        largest.append(max(windows))
    monkeypatch.setattr(stack, "_query_window", lambda *args: None)  # moto's own query, every item
    assert answers == [_every_page(dynamodb, request) for request in requests]
    assert sum(1 for pages in answers for page in pages if page["Items"]) > 100
    for request, pages, window in zip(requests, answers, largest, strict=True):
        limit = request.get("Limit")
        # at most: a skipped key equal to the bound, the page, and the item after it
        assert window <= (limit + 2 if limit else max(len(page["Items"]) for page in pages) + 2)
        assert not limit or max(len(page["Items"]) for page in pages) <= limit


def test_a_limited_query_is_given_its_page_and_one_more_item(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(500):
        dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "P"}, "sk": {"S": f"{n:04d}"}})
    windows: list[int] = []
    all_items = Table.all_items
    monkeypatch.setattr(
        Table, "all_items", lambda table: windows.append(len(items := all_items(table))) or items
    )
    request = {
        "TableName": TABLE,
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "P"}},
        "Limit": 10,
    }
    first = dynamodb.query(**request)
    middle = dynamodb.query(**request, ExclusiveStartKey={"pk": {"S": "P"}, "sk": {"S": "0250"}})
    last = dynamodb.query(**request, ScanIndexForward=False)

    assert [item["sk"]["S"] for item in middle["Items"]] == [f"{n:04d}" for n in range(251, 261)]
    assert first["LastEvaluatedKey"] == {"pk": {"S": "P"}, "sk": {"S": "0009"}}
    assert last["Items"][0]["sk"] == {"S": "0499"}
    assert windows == [11, 11, 11]


def test_a_restored_backup_queries_as_its_table(dynamodb: Any) -> None:
    for n in (3, 1, 2):
        dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": "A"}, "sk": {"S": f"{n}"}})
    arn = dynamodb.create_backup(TableName=TABLE, BackupName="backup")["BackupDetails"]["BackupArn"]
    dynamodb.restore_table_from_backup(TargetTableName="restored", BackupArn=arn)
    dynamodb.put_item(TableName="restored", Item={"pk": {"S": "A"}, "sk": {"S": "0"}})

    items = dynamodb.query(
        TableName="restored", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "A"}}
    )["Items"]
    assert [item["sk"]["S"] for item in items] == ["0", "1", "2", "3"]
    assert _keys(dynamodb, "A") == ["1", "2", "3"]


def test_number_sort_keys_page_in_numeric_order(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName="numbers",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "n", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "n", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for n in ("10", "9", "-1", "2.5", "100"):
        dynamodb.put_item(TableName="numbers", Item={"pk": {"S": "A"}, "n": {"N": n}})
    request = {
        "TableName": "numbers",
        "KeyConditionExpression": "pk = :p AND n > :low",
        "ExpressionAttributeValues": {":p": {"S": "A"}, ":low": {"N": "2.5"}},
        "Limit": 2,
    }
    first = dynamodb.query(**request)
    rest = dynamodb.query(**request, ExclusiveStartKey=first["LastEvaluatedKey"])
    assert [item["n"]["N"] for item in first["Items"] + rest["Items"]] == ["9", "10", "100"]


def test_an_index_query_reads_only_the_items_in_the_index_and_answers_as_moto_does(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledgerbridge.local import stack

    dynamodb.create_table(
        TableName="sparse",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "flag", "at")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "Flagged",
                "KeySchema": [
                    {"AttributeName": "flag", "KeyType": "HASH"},
                    {"AttributeName": "at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["note"]},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for n in range(200):
        item = {
            "pk": {"S": f"P{n % 3}"},
            "sk": {"S": f"{n:03d}"},
            "at": {"S": f"{n % 7}"},
            "note": {"S": "x"},
        }
        if n % 10 == 0:
            item["flag"] = {"S": "F" if n % 20 else "G"}
        dynamodb.put_item(TableName="sparse", Item=item)
    dynamodb.update_item(  # flagged by an update: its packed names change with it
        TableName="sparse",
        Key={"pk": {"S": "P1"}, "sk": {"S": "001"}},
        UpdateExpression="SET flag = :f",
        ExpressionAttributeValues={":f": {"S": "F"}},
    )
    dynamodb.update_item(  # and one no longer flagged
        TableName="sparse", Key={"pk": {"S": "P1"}, "sk": {"S": "010"}}, UpdateExpression="REMOVE flag"
    )
    requests = [
        {
            "TableName": "sparse",
            "IndexName": "Flagged",
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            **extra,
        }
        for condition, values in [
            ("flag = :f", {":f": {"S": "F"}}),
            ("flag = :f AND at < :a", {":f": {"S": "G"}, ":a": {"S": "4"}}),
            ("flag = :f", {":f": {"S": "none"}}),
        ]
        for extra in ({}, {"Limit": 3}, {"ScanIndexForward": False, "Limit": 4})
    ]
    given: list[int] = []
    all_items = Table.all_items
    monkeypatch.setattr(
        Table, "all_items", lambda table: given.append(len(items := all_items(table))) or items
    )

    answers = [_every_page(dynamodb, request) for request in requests]
    narrowed = list(given)
    monkeypatch.setattr(stack, "_index_candidates", lambda *args: None)  # moto's own query, every item

    assert answers == [_every_page(dynamodb, request) for request in requests]
    # 10 put "F", one flagged by an update, one no longer
    assert sum(len(page["Items"]) for page in answers[0]) == 10
    assert max(narrowed) == 20  # the flagged items only, of 200
