"""The QuickBooks XSD checker (tests/support/quickbooks_xsd.py) against Intuit's schemas.

It must pass what QuickBooks itself sends and accepts (the recorded exchanges), catch every
kind of mismatch it claims to, and stand in front of FakeQuickBooks' create endpoint.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from ledgerbridge import jsonutil
from tests.fakes.quickbooks import REALM_ID, FakeQuickBooks, load_fixture
from tests.support.quickbooks_xsd import assert_valid, xsd_errors

VALID = {
    "CustomerRef": {"value": "1", "name": "Amy's Bird Sanctuary"},
    "TxnDate": "2026-05-04",
    "CurrencyRef": {"value": "EUR"},
    "ExchangeRate": Decimal("1.08"),
    "PrivateNote": "internal",
    "Line": [
        {
            "DetailType": "SalesItemLineDetail",
            "Amount": Decimal("275.0"),
            "SalesItemLineDetail": {"ItemRef": {"value": "5"}, "Qty": 2, "UnitPrice": Decimal("137.5")},
        },
        {"DetailType": "DiscountLineDetail", "Amount": 5, "DiscountLineDetail": {"PercentBased": False}},
    ],
    "CustomField": [{"DefinitionId": "1", "Name": "crew", "Type": "StringType", "StringValue": "7"}],
}


@pytest.mark.parametrize("name", ["create-invoice.json", "create-bill.json"])
def test_recorded_requests_are_valid(name: str) -> None:
    entity = "Bill" if "bill" in name else "Invoice"
    for exchange in load_fixture(name)["exchanges"]:
        assert_valid(exchange["request"]["body"], entity)


@pytest.mark.parametrize("name", ["create-invoice.json", "create-bill.json", "get-invoice.json"])
def test_recorded_responses_are_valid_but_for_one_field_newer_than_the_schema(name: str) -> None:
    """QuickBooks' own JSON maps onto the XSD (attributes, arrays, read-only fields, dates)."""
    entity = "Bill" if "bill" in name else "Invoice"
    record = load_fixture(name)["exchanges"][0]["response"]["body"][entity]
    problems = xsd_errors(record, entity)
    assert problems == [
        f"{entity}.Line[{n}].CustomExtensions: Line has no element CustomExtensions"
        for n, line in enumerate(record["Line"])
        if "CustomExtensions" in line
    ]


def test_a_valid_body_in_any_key_order_is_valid() -> None:
    assert xsd_errors(VALID, "Invoice") == []
    assert xsd_errors(dict(reversed(list(VALID.items()))), "Invoice") == []
    assert xsd_errors(jsonutil.dumps(VALID), "Invoice") == []


def changed(path: list[Any], value: Any, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """VALID with the value at ``path`` replaced (or deleted when ``value`` is ...)."""
    copy = jsonutil.loads(jsonutil.dumps(body or VALID))
    holder = copy
    for key in path[:-1]:
        holder = holder[key]
    if value is ...:
        del holder[path[-1]]
    else:
        holder[path[-1]] = value
    return copy


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (["Memo"], "x", "Invoice.Memo: Invoice has no element Memo"),
        (["CustomerRef", "label"], "x", "Invoice.CustomerRef.label: ReferenceType has no attribute label"),
        (
            ["CurrencyRef"],
            [{"value": "EUR"}],
            "Invoice.CurrencyRef: an array, but CurrencyRef occurs at most once",
        ),
        (
            ["ExchangeRate"],
            "1.08",
            "Invoice.ExchangeRate: the XSD type is numeric; '1.08' is not a JSON number",
        ),
        (["PrivateNote"], 7, "Invoice.PrivateNote: the XSD type is string; 7 is not a JSON string"),
        (
            ["Line", 1, "DiscountLineDetail", "PercentBased"],
            "false",
            "Invoice.Line[1].DiscountLineDetail.PercentBased: the XSD type is boolean; "
            "'false' is not true or false",
        ),
        (["DocNumber"], "N" * 22, "Invoice.DocNumber: 22 characters; Intuit documents at most 21"),
        (["TxnDate"], "2026-5-4", "Invoice.TxnDate: Invalid datetime string '2026-5-4'"),
        (["Line", 0, "DetailType"], "SalesLine", "Invoice.Line[0].DetailType: value must be one of"),
        (["CustomField", 0, "Type"], "Text", "Invoice.CustomField[0].Type: value must be one of"),
        (["Line", 0, "SalesItemLineDetail", "Qty"], {"value": 2}, "Invoice.Line[0].SalesItemLineDetail.Qty"),
        (["Line", 0, "SalesItemLineDetail"], "5", "Invoice.Line[0].SalesItemLineDetail: SalesItemLineDetail"),
        (["CustomField", 0, "StringValue"], ..., "Invoice.CustomField[0]"),
    ],
)
def test_each_kind_of_mismatch_is_named_by_its_json_path(path: list[Any], value: Any, problem: str) -> None:
    problems = xsd_errors(changed(path, value), "Invoice")
    assert any(found.startswith(problem) for found in problems), problems


def test_two_line_details_break_the_lines_choice() -> None:
    body = changed(["Line", 0, "DescriptionLineDetail"], {})
    [problem] = xsd_errors(body, "Invoice")
    assert problem.startswith("Invoice.Line[0]: Unexpected child")


def test_a_bill_is_checked_as_a_bill() -> None:
    bill = {
        "VendorRef": {"value": "56"},
        "Line": [
            {
                "DetailType": "AccountBasedExpenseLineDetail",
                "Amount": 150,
                "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "7"}},
            }
        ],
    }
    assert xsd_errors(bill, "Bill") == []
    assert xsd_errors({**bill, "CustomerRef": {"value": "1"}}, "Bill") == [
        "Bill.CustomerRef: Bill has no element CustomerRef"
    ]


def test_the_fake_refuses_a_body_the_xsd_refuses_and_creates_nothing() -> None:
    fake = FakeQuickBooks()
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
        response = client.post(
            f"https://quickbooks.api.intuit.com/v3/company/{REALM_ID}/invoice",
            params={"requestid": "r-1"},
            headers={"authorization": "Bearer qb-access-0"},
            content=jsonutil.dumps({**VALID, "Memo": "x"}),
        )
    assert response.status_code == 400
    fault = response.json()["Fault"]
    assert fault["type"] == "ValidationFault"
    assert fault["Error"] == [
        {
            "Message": "Request has invalid or unsupported property",
            "Detail": "Invoice.Memo: Invoice has no element Memo",
            "code": "2010",
        }
    ]
    assert fake.created() == []
