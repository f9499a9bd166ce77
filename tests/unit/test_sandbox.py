"""The sandbox ledger's accounting rules, with its books in memory."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from ledgerbridge import jsonutil
from ledgerbridge.ids import uuid7
from ledgerbridge.models import InvoiceInput
from ledgerbridge.providers.base import ConnectionContext, OutboundInvoice, ProviderRejected, RemoteReference
from ledgerbridge.providers.sandbox import NumberTaken, SandboxProvider, ledger_code


class MemoryLedger:
    """SandboxLedger with the same contract as the DynamoDB one, in dicts."""

    def __init__(self) -> None:
        self.invoices: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes = 0

    def find(self, connection_id: str, number: str) -> dict[str, Any] | None:
        return self.invoices.get((connection_id, number))

    def record(self, connection_id: str, record: dict[str, Any]) -> dict[str, Any]:
        existing = self.invoices.get((connection_id, record["invoice_number"]))
        if existing is not None:
            if existing["external_id"] != record["external_id"]:
                raise NumberTaken(record["invoice_number"])
            return existing
        self.writes += 1
        self.invoices[(connection_id, record["invoice_number"])] = record
        return record


CONNECTION = ConnectionContext("conn-1", "sandbox")


@pytest.fixture
def ledger() -> MemoryLedger:
    return MemoryLedger()


INVOICE_ID = "019a2f3c-5d10-7a2b-9c4d-5e6f708192a3"
OTHER_ID = "019a2f3c-5d11-7000-8000-000000000001"


def create(ledger: MemoryLedger, body: str, key: str = INVOICE_ID, references: dict | None = None):
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
    assert remote.line_remote_ids == [f"{remote.remote_id}-{n}" for n in (1, 2, 3)]


def test_numbers_and_remote_ids_are_derived_from_the_invoice_id() -> None:
    """The code is the id's millisecond, sequence and 40 random bits in Crockford base32."""
    code = ledger_code(INVOICE_ID)
    value = UUID(INVOICE_ID).int
    expected = ((value >> 80) << 52) | (((value >> 64) & 0xFFF) << 40) | ((value >> 22) & (2**40 - 1))
    assert len(code) == 20 and set(code) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    assert (
        int(code.translate(str.maketrans("ABCDEFGHJKMNPQRSTVWXYZ", "abcdefghijklmnopqrstuv")), 32) == expected
    )
    assert ledger_code(INVOICE_ID) == code  # a resend computes the same one


def test_invoices_get_numbers_and_remote_ids_of_their_own(ledger: MemoryLedger) -> None:
    first = create(ledger, '{"total_amount": 5}', key=INVOICE_ID)
    bill = create(ledger, '{"type": "Bill", "total_amount": 5}', key=OTHER_ID)
    assert (first.remote_id, first.fields["number"]) == (
        ledger_code(INVOICE_ID),
        f"INV-{ledger_code(INVOICE_ID)}",
    )
    assert (bill.remote_id, bill.fields["number"], bill.remote_data["kind"]) == (
        ledger_code(OTHER_ID),
        f"BILL-{ledger_code(OTHER_ID)}",
        "bill",
    )


def test_codes_follow_creation_order_and_ids_of_one_millisecond_get_different_codes() -> None:
    ids = [str(uuid7()) for _ in range(2000)]  # many share a millisecond: the sequence tells them apart
    codes = [ledger_code(invoice_id) for invoice_id in ids]
    assert codes == sorted(codes)
    assert len(set(codes)) == len(ids)


def test_a_resend_with_the_same_key_returns_the_first_invoice(ledger: MemoryLedger) -> None:
    first = create(ledger, '{"total_amount": 5}', key=INVOICE_ID)
    again = create(ledger, '{"total_amount": 5}', key=INVOICE_ID)
    assert again.remote_id == first.remote_id
    assert again.remote_data["created_at"] == first.remote_data["created_at"]
    assert ledger.writes == 1


def test_a_resend_finds_the_first_invoice_by_its_number(ledger: MemoryLedger) -> None:
    first = create(ledger, '{"total_amount": 5}', key=INVOICE_ID)
    invoice = InvoiceInput.model_validate({"total_amount": 5})
    found = SandboxProvider(ledger).find_invoice(CONNECTION, OutboundInvoice(INVOICE_ID, invoice, {}))
    assert found is not None and found.remote_id == first.remote_id
    numbered = InvoiceInput.model_validate({"total_amount": 5, "number": first.fields["number"]})
    assert SandboxProvider(ledger).find_invoice(CONNECTION, OutboundInvoice(OTHER_ID, numbered, {})) is None


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
    assert ledger.invoices == {}


def test_invoice_numbers_are_unique_per_connection(ledger: MemoryLedger) -> None:
    create(ledger, '{"number": "A-1", "total_amount": 1}', key=INVOICE_ID)
    with pytest.raises(ProviderRejected, match="A-1 is already used"):
        create(ledger, '{"number": "A-1", "total_amount": 1}', key=OTHER_ID)


def test_a_number_the_sandbox_assigned_cannot_be_given_to_another_invoice(ledger: MemoryLedger) -> None:
    first = create(ledger, '{"total_amount": 1}', key=INVOICE_ID)
    taken = first.fields["number"]
    with pytest.raises(ProviderRejected, match=f"{taken} is already used"):
        create(ledger, f'{{"number": "{taken}", "total_amount": 1}}', key=OTHER_ID)
