"""The sandbox ledger's accounting rules, with its books in memory."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ledgerbridge import jsonutil
from ledgerbridge.models import InvoiceInput
from ledgerbridge.providers.base import ConnectionContext, OutboundInvoice, ProviderRejected, RemoteReference
from ledgerbridge.providers.sandbox import NumberTaken, SandboxProvider


class MemoryLedger:
    """SandboxLedger with the same contract as the DynamoDB one, in dicts."""

    def __init__(self) -> None:
        self.sequence = 0
        self.requests: dict[tuple[str, str], dict[str, Any]] = {}
        self.numbers: set[tuple[str, str]] = set()

    def find(self, connection_id: str, request_key: str) -> dict[str, Any] | None:
        return self.requests.get((connection_id, request_key))

    def next_sequence(self, connection_id: str) -> int:
        self.sequence += 1
        return self.sequence

    def record(self, connection_id: str, request_key: str, record: dict[str, Any]) -> dict[str, Any]:
        if (connection_id, request_key) in self.requests:
            return self.requests[(connection_id, request_key)]
        if (connection_id, record["invoice_number"]) in self.numbers:
            raise NumberTaken(record["invoice_number"])
        self.numbers.add((connection_id, record["invoice_number"]))
        self.requests[(connection_id, request_key)] = record
        return record


CONNECTION = ConnectionContext("conn-1", "sandbox")


@pytest.fixture
def ledger() -> MemoryLedger:
    return MemoryLedger()


def create(ledger: MemoryLedger, body: str, key: str = "inv-1", references: dict | None = None):
    invoice = InvoiceInput.model_validate(jsonutil.loads(body))
    outbound = OutboundInvoice(key, invoice, references or {})
    sandbox = SandboxProvider(ledger)
    return sandbox.send_invoice(CONNECTION, outbound, sandbox.map_invoice(CONNECTION, outbound))


def test_totals_are_computed_exactly_from_the_lines(ledger: MemoryLedger) -> None:
    remote = create(
        ledger,
        '{"total_tax_amount": 0.03, "total_discount": 0.01, "line_items": ['
        '{"quantity": 3, "unit_price": 0.1}, {"total_amount": 0.2}, {"unit_price": 19.99}]}',
    )
    assert remote.fields["sub_total"] == Decimal("20.49")
    assert remote.fields["total_amount"] == Decimal("20.51")
    assert remote.fields["balance"] == Decimal("20.51")
    assert [line["amount"] for line in remote.remote_data["lines"]] == [
        Decimal("0.3"),
        Decimal("0.2"),
        Decimal("19.99"),
    ]
    assert remote.line_remote_ids == ["1-1", "1-2", "1-3"]


def test_numbers_and_remote_ids_are_assigned_in_sequence(ledger: MemoryLedger) -> None:
    first = create(ledger, '{"total_amount": 5}', key="a")
    bill = create(ledger, '{"type": "Bill", "total_amount": 5}', key="b")
    assert (first.remote_id, first.fields["number"]) == ("1", "INV-00001")
    assert (bill.remote_id, bill.fields["number"], bill.remote_data["kind"]) == ("2", "BILL-00002", "bill")


def test_a_resend_with_the_same_key_returns_the_first_invoice(ledger: MemoryLedger) -> None:
    first = create(ledger, '{"total_amount": 5}', key="same")
    again = create(ledger, '{"total_amount": 5}', key="same")
    assert again.remote_id == first.remote_id
    assert ledger.sequence == 1


def test_paid_invoices_have_no_balance(ledger: MemoryLedger) -> None:
    assert create(ledger, '{"status": "paid", "total_amount": 5}').fields["balance"] == 0


def test_references_reach_the_ledger_as_remote_ids(ledger: MemoryLedger) -> None:
    remote = create(
        ledger,
        '{"line_items": [{"total_amount": 1}]}',
        references={
            "contact_id": RemoteReference("contact", "C-1001", "Acme"),
            "line_items.0.item_id": RemoteReference("item", "I-1", "Consulting hour"),
        },
    )
    assert remote.remote_data["contact"] == "C-1001"
    assert remote.remote_data["lines"][0]["item"] == "I-1"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{}", "at least one line item or a total_amount"),
        ('{"line_items": [{"description": "free?"}]}', "Line 1 has neither a unit price nor an amount"),
        (
            '{"line_items": [{"quantity": 2, "unit_price": 5, "total_amount": 11}]}',
            "is not quantity x unit price",
        ),
        ('{"total_amount": 9, "line_items": [{"total_amount": 10}]}', "does not match the lines"),
        ('{"sub_total": 9, "line_items": [{"total_amount": 10}]}', "does not match the lines"),
    ],
)
def test_what_a_real_ledger_refuses_is_refused(ledger: MemoryLedger, body: str, message: str) -> None:
    with pytest.raises(ProviderRejected) as caught:
        create(ledger, body)
    assert message in str(caught.value)
    assert ledger.requests == {}


def test_invoice_numbers_are_unique_per_connection(ledger: MemoryLedger) -> None:
    create(ledger, '{"number": "A-1", "total_amount": 1}', key="a")
    with pytest.raises(ProviderRejected, match="A-1 is already used"):
        create(ledger, '{"number": "A-1", "total_amount": 1}', key="b")
