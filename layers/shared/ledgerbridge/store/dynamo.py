"""Plain-dict <-> DynamoDB attribute values, with the low-level client.

The client API (not boto3's resource layer) keeps cold start short; TypeSerializer
refuses floats, so a float can never sneak into a stored amount.

A conditional write whose condition fails is an answer, not an outage (the item is gone, the
state was settled by another writer, the key is taken): ``conditional_write`` hands it back as
None for the caller to name, and turns every other DynamoDB failure into the 503
``storage_unavailable``, so each store says only what its condition means.
"""

from __future__ import annotations

import zlib
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from ledgerbridge import jsonutil
from ledgerbridge.aws import client
from ledgerbridge.errors import ApiError

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def attribute_value(value: Any) -> dict[str, Any]:
    """``TypeSerializer().serialize(value)``, the exact types we store most first.

    A stored invoice is mostly strings (its amounts too, see store/invoices.py), and
    TypeSerializer tries null, boolean, number and its decimal context before it finds a
    string: a two-line invoice's item took ~22 µs to serialise, ~4 µs this way, and a create
    serialises three or four items and key sets (``make bench``). Everything else, floats
    refused, goes through TypeSerializer as before; tests/unit/test_attribute_values.py holds
    the two to the same answer."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is dict:
        return {"M": {key: attribute_value(item) for key, item in value.items()}}
    if kind is list:
        return {"L": [attribute_value(item) for item in value]}
    return _serializer.serialize(value)


def to_item(record: dict[str, Any]) -> dict[str, Any]:
    """Serialise, leaving out None values (absent reads back as None)."""
    return {key: attribute_value(value) for key, value in record.items() if value is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


_MIN_WINDOW_BITS = 10  # 1 KB: smaller windows were no faster to set up, and compress worse


def pack_json(value: Any) -> bytes:
    """A provider's own record, compressed: opaque to us, often large, compresses tenfold.

    The window is sized to the document: zlib's default (a 32 KB window, a 128 KB hash table)
    took ~65 µs to set up for each call whatever the size, so packing the sandbox's ~1 KB
    records cost more than writing them; a window that covers the whole document finds every
    match the default one finds (as small, within a byte or two), in ~11-17 µs below 2 KB. Any
    window inflates with zlib's default, so what was packed before reads as it did.
    """
    data = jsonutil.dumps(value).encode()
    window_bits = min(zlib.MAX_WBITS, max(_MIN_WINDOW_BITS, (len(data) - 1).bit_length()))
    packer = zlib.compressobj(6, zlib.DEFLATED, window_bits, max(1, window_bits - 7))
    return packer.compress(data) + packer.flush()


def unpack_json(packed: Any) -> Any:
    """Inverse of pack_json for a Binary attribute as the deserializer returns it."""
    return jsonutil.loads(zlib.decompress(packed.value))


def to_values(values: dict[str, Any]) -> dict[str, Any]:
    return {key: attribute_value(value) for key, value in values.items()}


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


def query_page(request: dict[str, Any], limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` decoded items of a Query, and whether more follow.

    Asks for one item more than needed to know if there is a next page, and follows
    LastEvaluatedKey because a Query page stops at 1 MB whatever the Limit.
    """
    request = {**request, "Limit": limit + 1}
    items: list[dict] = []
    while len(items) <= limit:
        response = dynamodb().query(**request)
        items.extend(response["Items"])
        if "LastEvaluatedKey" not in response:
            break
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        request["Limit"] = limit + 1 - len(items)
    return [from_item(item) for item in items[:limit]], len(items) > limit


def is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def storage_unavailable() -> ApiError:
    return ApiError(503, "storage_unavailable", "Ledgerbridge could not store the request; retry later.")


STORAGE_ERRORS = (ClientError, BotoCoreError)


def conditional_write(operation: str, **request: Any) -> dict[str, Any] | None:
    """The response of the client's ``operation`` (``"put_item"``, ``"update_item"``,
    ``"delete_item"``) called with ``request``, or None when its ConditionExpression failed; any
    other failure, creating the client included, raises ``storage_unavailable``."""
    try:
        return getattr(dynamodb(), operation)(**request)
    except STORAGE_ERRORS as exc:
        if isinstance(exc, ClientError) and is_condition_failure(exc):
            return None
        raise storage_unavailable() from exc


# The sparse PendingIndex (pending, created_at) of the invoices and accounts tables: an item
# is in it only while it carries ``pending``; the value says what kind of wait it is.
PENDING_KEY, PENDING_VALUE = "pending", "P"


def query_pending_index(
    table: str, cutoff: str, limit: int, value: str = PENDING_VALUE
) -> list[dict[str, Any]]:
    """Items of ``table``'s sparse PendingIndex (``pending`` = ``value``, created_at) created before
    ``cutoff``.

    The invoices table and the accounts table (pending contacts; with ``value`` T, connect
    sessions still holding a connection token) index such items the same way, so the sweeper
    finds each kind without scanning either table.
    """
    request: dict[str, Any] = {
        "TableName": table,
        "IndexName": "PendingIndex",
        "KeyConditionExpression": "#pending = :p AND created_at < :cutoff",
        "ExpressionAttributeNames": {"#pending": PENDING_KEY},
        "ExpressionAttributeValues": to_values({":p": value, ":cutoff": cutoff}),
    }
    try:
        records, _ = query_page(request, limit)
    except STORAGE_ERRORS as exc:
        raise storage_unavailable() from exc
    return records
