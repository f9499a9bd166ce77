"""AWS calls, DynamoDB write units and botocore's CPU per call, for ``make bench`` and its tests.

Counted with a botocore ``before-parameter-build`` hook on every client the handler creates
(``ledgerbridge.aws.client`` is the only place it creates them). Write units follow DynamoDB's
pricing: one per KB written by a PutItem/UpdateItem/DeleteItem, twice that per item of a
TransactWriteItems (an UpdateItem is sized by the key and values it sends, a lower bound of
the item it leaves).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.client import BaseClient

from ledgerbridge import aws

SERVICES = ("dynamodb", "kms", "secretsmanager", "sqs", "s3")
SINGLE_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


def attribute_size(value: dict[str, Any]) -> int:
    """DynamoDB's size of one attribute value in wire form (bytes, upper bound for numbers)."""
    [(kind, inner)] = value.items()
    if kind in ("S", "N", "B"):
        return len(inner if isinstance(inner, bytes) else str(inner).encode())
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in inner)
    if kind in ("SS", "NS"):
        return sum(len(str(v).encode()) for v in inner)
    return 1


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


class Calls:
    """AWS operations by name (``service.Operation``) and the DynamoDB write units they cost."""

    def __init__(self) -> None:
        self.operations: Counter[str] = Counter()
        self.write_units = 0

    def record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.operations[f"{model.service_model.service_name}.{model.name}"] += 1
        if model.name in SINGLE_WRITES:
            self.write_units += units(params)
        elif model.name == "TransactWriteItems":
            self.write_units += sum(2 * units(next(iter(a.values()))) for a in params["TransactItems"])


def units(request: dict[str, Any]) -> int:
    """Write units of one write: 1 per KB of what it writes (key and values; at least 1)."""
    written = {
        **request.get("Key", {}),
        **request.get("Item", {}),
        **request.get("ExpressionAttributeValues", {}),
    }
    return max(1, math.ceil(item_size(written) / 1024))


@contextmanager
def counted() -> Iterator[Calls]:
    """Count the calls made in the block by the handler's cached clients (``aws.client``)."""
    calls = Calls()
    clients = [aws.client(service) for service in SERVICES]
    for client in clients:
        client.meta.events.register("before-parameter-build", calls.record)
    try:
        yield calls
    finally:
        for client in clients:
            client.meta.events.unregister("before-parameter-build", calls.record)


class BotocoreClock:
    """CPU spent inside botocore's API calls while installed, summed (``ms``): every client's
    ``_make_api_call``, the one place each call goes through, serialising, signing, sending
    (to the stub) and parsing. Two clock reads per call, both sides alike."""

    def __init__(self) -> None:
        self.ms = 0.0

    @contextmanager
    def installed(self) -> Iterator[BotocoreClock]:
        make_api_call = BaseClient._make_api_call

        def timed(client: Any, *args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return make_api_call(client, *args, **kwargs)
            finally:
                self.ms += (time.process_time() - start) * 1000

        BaseClient._make_api_call = timed  # type: ignore[method-assign]
        try:
            yield self
        finally:
            BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
