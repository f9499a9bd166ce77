"""Plain-dict <-> DynamoDB attribute values, with the low-level client.

The client API (not boto3's resource layer) keeps cold start short; TypeSerializer
refuses floats, so a float can never sneak into a stored amount.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from ledgerbridge.aws import client
from ledgerbridge.errors import ApiError

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(record: dict[str, Any]) -> dict[str, Any]:
    """Serialise, leaving out None values (absent reads back as None)."""
    return {key: _serializer.serialize(value) for key, value in record.items() if value is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def to_values(values: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in values.items()}


def dynamodb() -> Any:
    return client("dynamodb")


def put_new_items(table: str, records: list[dict[str, Any]]) -> None:
    """Write several new items in one transaction; fails whole if any of them exists.

    A ConditionalCheckFailed reason in the ClientError's CancellationReasons tells which.
    """
    dynamodb().transact_write_items(
        TransactItems=[
            {
                "Put": {
                    "TableName": table,
                    "Item": to_item(record),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for record in records
        ]
    )


def is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def storage_unavailable() -> ApiError:
    return ApiError(503, "storage_unavailable", "Ledgerbridge could not store the request; retry later.")


STORAGE_ERRORS = (ClientError, BotoCoreError)
