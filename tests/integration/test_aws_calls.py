"""AWS calls and DynamoDB write units of one warm invoice create, counted, never timed.

Counted by ``benchmarks.aws_calls`` (what ``make bench`` prints beside its timings), so a new
call on the create path changes these figures and the test says which.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from benchmarks.aws_calls import Calls, counted
from tests.integration.conftest import Api

INVOICE = {
    "currency": "EUR",
    "issue_date": "2026-11-24",
    "due_date": "2026-12-24",
    "line_items": [
        {"description": "Consulting (hours)", "quantity": Decimal("2"), "unit_price": Decimal("150.25")}
    ],
}


def warm_create(api: Api, headers: dict[str, str] | None = None) -> Calls:
    assert api.create(INVOICE, headers=headers).status == 201  # warm-up: caches, provider, clients
    with counted() as calls:
        answer = api.create(INVOICE, headers=headers)
    assert answer.status == 201, answer.text
    return calls


def test_a_warm_sandbox_create_makes_these_dynamodb_calls_and_writes(api: Api) -> None:
    calls = warm_create(api)
    assert calls.operations == Counter(
        {
            "dynamodb.GetItem": 1,
            "dynamodb.PutItem": 1,
            "dynamodb.TransactWriteItems": 1,
            "dynamodb.UpdateItem": 2,
        }
    )
    assert calls.write_units == 7


def test_an_idempotency_key_adds_one_put_and_one_update_of_its_record(api: Api) -> None:
    plain = warm_create(api)
    assert api.create(INVOICE, headers={"Idempotency-Key": "warm-up"}).status == 201
    with counted() as keyed:
        assert api.create(INVOICE, headers={"Idempotency-Key": "counted"}).status == 201
    # Powertools' idempotency record: PutItem (in progress), UpdateItem (the stored response,
    # over 1 KB for this invoice, so two units).
    assert keyed.operations - plain.operations == Counter({"dynamodb.PutItem": 1, "dynamodb.UpdateItem": 1})
    assert keyed.write_units - plain.write_units == 3
