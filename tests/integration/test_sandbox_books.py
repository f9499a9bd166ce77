"""The sandbox's books in DynamoDB: an invoice is one conditional write keyed by its number."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import boto3
import pytest

from benchmarks.aws_calls import counted
from ledgerbridge.config import settings
from ledgerbridge.provider_types import NumberTaken
from ledgerbridge.store.sandbox_ledger import DynamoSandboxLedger

CONNECTION = "01a23064-0000-7000-8000-00000000c0de"


def record(external_id: str, number: str = "INV-1", total: str = "10.10") -> dict[str, Any]:
    return {"id": "X1", "invoice_number": number, "external_id": external_id, "total": Decimal(total)}


def books() -> list[dict[str, Any]]:
    return boto3.client("dynamodb").query(
        TableName=settings().accounts_table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"SANDBOX#{CONNECTION}"}},
    )["Items"]


def test_a_new_invoice_is_one_conditional_put_and_nothing_else(aws: Any) -> None:
    with counted() as calls:
        stored = DynamoSandboxLedger().record(CONNECTION, record("invoice-a"))
    assert stored["total"] == Decimal("10.10")
    assert dict(calls.operations) == {"dynamodb.PutItem": 1}
    assert [item["sk"]["S"] for item in books()] == ["INVOICE#INV-1"]


def test_a_resend_gets_the_first_record_back_from_the_refused_write_without_a_read(aws: Any) -> None:
    ledger = DynamoSandboxLedger()
    first = ledger.record(CONNECTION, record("invoice-a", total="10.10"))
    with counted() as calls:
        again = ledger.record(CONNECTION, record("invoice-a", total="99.99"))
    assert again == first  # what the books hold, not what was sent again
    assert dict(calls.operations) == {"dynamodb.PutItem": 1}
    assert len(books()) == 1


def test_a_number_another_invoice_holds_is_taken(aws: Any) -> None:
    ledger = DynamoSandboxLedger()
    ledger.record(CONNECTION, record("invoice-a"))
    with pytest.raises(NumberTaken):
        ledger.record(CONNECTION, record("invoice-b"))
    assert ledger.find(CONNECTION, "INV-1")["external_id"] == "invoice-a"
