"""The local stack's fixes to moto's DynamoDB: transactions copy no table, a Query reads one partition."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models.table import Table

from ledgerbridge.local.stack import patch_moto_dynamodb

TABLE = "books"


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    patch_moto_dynamodb()
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
