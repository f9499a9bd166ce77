"""Create, list and get through the real handler, with DynamoDB in moto."""

from __future__ import annotations

import dataclasses
import io
import json
import os
from decimal import Decimal
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ledgerbridge import admin, connections, jsonutil
from ledgerbridge.config import settings
from ledgerbridge.ids import reference_id, uuid7
from ledgerbridge.providers.base import ProviderUnavailable
from ledgerbridge.providers.sandbox import ledger_code
from ledgerbridge.store import invoices
from tests.fuzz.harness import References
from tests.fuzz.strategies import valid_invoice
from tests.integration.conftest import Api

FULL_INVOICE = (
    '{"type": "ACCREC", "number": "LB-1001", "issue_date": "2026-11-24",'
    ' "due_date": "2026-12-24T17:00:00+01:00",'
    ' "memo": "November retainer", "currency": "eur", "exchange_rate": "1.0825", "total_discount": 0.00,'
    ' "total_tax_amount": 0.03, "status": "open",'
    ' "line_items": [{"description": "Consulting", "quantity": 2, "unit_price": 150.25},'
    ' {"description": "Rounding test", "quantity": 3, "unit_price": 0.1, "total_amount": 0.3}],'
    ' "field_mappings": {"po_number": "PO-7"}}'
)
OUTPUT_FIELDS = {
    "id",
    "type",
    "number",
    "issue_date",
    "due_date",
    "paid_on_date",
    "memo",
    "currency",
    "exchange_rate",
    "total_discount",
    "sub_total",
    "status",
    "total_tax_amount",
    "total_amount",
    "balance",
    "contact_id",
    "accounting_period_id",
    "tracking_categories",
    "line_items",
    "field_mappings",
    "remote_id",
    "remote_data",
    "remote_updated_at",
    "created_at",
    "modified_at",
}
LINE_FIELDS = {
    "id",
    "remote_id",
    "description",
    "unit_price",
    "quantity",
    "total_amount",
    "currency",
    "exchange_rate",
    "item_id",
    "tracking_categories",
    "created_at",
    "modified_at",
}


def stored_items(connection_id: str) -> list[dict[str, Any]]:
    """Raw DynamoDB items (attribute-value form), to check types as well as values."""
    response = boto3.client("dynamodb").query(
        TableName=settings().invoices_table,
        KeyConditionExpression="connection_id = :c",
        ExpressionAttributeValues={":c": {"S": connection_id}},
    )
    return response["Items"]


# --- create -------------------------------------------------------------------------------


def test_create_answers_201_with_every_field(api: Api, demo: dict[str, Any]) -> None:
    answer = api.create(None, raw=FULL_INVOICE)
    assert answer.status == 201, answer.text
    invoice = answer.json
    assert set(invoice) >= OUTPUT_FIELDS
    assert all(set(line) >= LINE_FIELDS for line in invoice["line_items"])
    assert answer.headers["Location"] == f"/accounting/invoices/{invoice['id']}"
    assert invoice["sync_status"] == "synced"
    assert invoice["remote_id"] == ledger_code(invoice["id"])  # the sandbox's own id for it
    assert invoice["number"] == "LB-1001"
    assert invoice["type"] == "ACCOUNTS_RECEIVABLE"
    assert invoice["currency"] == "EUR"
    assert invoice["status"] == "OPEN"
    assert invoice["issue_date"] == "2026-11-24T00:00:00Z"
    assert invoice["due_date"] == "2026-12-24T17:00:00+01:00"
    assert invoice["exchange_rate"] == "1.0825"
    assert invoice["remote_data"] is None  # not asked for
    assert invoice["remote_updated_at"].endswith("Z")
    assert [line["remote_id"] for line in invoice["line_items"]] == [
        f"{invoice['remote_id']}-{n}" for n in (1, 2)
    ]


def test_amounts_come_back_exactly_as_sent(api: Api) -> None:
    answer = api.create(None, raw=FULL_INVOICE)
    assert '"unit_price":0.1,' in answer.text
    assert '"unit_price":150.25,' in answer.text
    assert '"total_amount":0.3,' in answer.text
    invoice = answer.json
    assert invoice["sub_total"] == Decimal("300.80")  # computed by the ledger, exactly
    assert invoice["total_amount"] == Decimal("300.83")


def test_create_stores_exactly_one_item_with_amounts_kept_digit_for_digit(
    api: Api, demo: dict[str, Any]
) -> None:
    """Strings, not DynamoDB Numbers, which lose trailing zeros on AWS (10.50 reads back 10.5)."""
    invoice = api.create(None, raw=FULL_INVOICE).json
    [item] = stored_items(demo["connection_id"])
    assert item["id"] == {"S": invoice["id"]}
    assert item["sync_status"] == {"S": "synced"}
    assert item["total_tax_amount"] == {"S": "0.03"}
    assert item["exchange_rate"] == {"S": "1.0825"}
    assert item["sub_total"] == {"S": "300.80"}  # computed by the ledger: its trailing zero kept
    assert "field_mappings" not in item
    assert item["field_mappings_json"] == {"S": '{"po_number":"PO-7"}'}
    assert "line_items" not in item  # one JSON string, its numbers exact literals:
    text = item["line_items_json"]["S"]
    assert '"unit_price":150.25,' in text and '"unit_price":0.1,' in text and '"total_amount":0.3' in text
    first, second = jsonutil.loads(text)
    assert second["unit_price"] == Decimal("0.1") and first["remote_id"] == f"{invoice['remote_id']}-1"
    assert item["remote_id"] == {"S": ledger_code(invoice["id"])}


def test_the_invoice_is_stored_pending_before_the_provider_is_called(
    api: Api, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = connections.provider_for("sandbox")
    seen: list[list[dict]] = []

    def send_invoice(connection, outbound, request):
        seen.append(stored_items(connection.connection_id))
        return type(sandbox).send_invoice(sandbox, connection, outbound, request)

    monkeypatch.setattr(sandbox, "send_invoice", send_invoice)
    invoice = api.create({"total_amount": Decimal("5")}).json
    [[item]] = seen
    assert item["id"] == {"S": invoice["id"]}
    assert item["sync_status"] == {"S": "pending"}


def test_a_provider_rejection_answers_422_and_leaves_a_failed_record(api: Api) -> None:
    answer = api.create({"memo": "nothing to bill"})
    assert answer.status == 422
    body = answer.json
    assert body["error"] == "provider_rejected"
    assert "at least one line item or a total_amount" in body["message"]
    stored = api.call("GET", f"/accounting/invoices/{body['invoice_id']}").json
    assert stored["sync_status"] == "failed"
    assert "at least one line item" in stored["sync_error"]
    assert stored["memo"] == "nothing to bill"
    assert stored["remote_id"] is None


def test_provider_unreachable_answers_201_pending_and_keeps_the_invoice_pending(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(connection, outbound, request):
        raise ProviderUnavailable("connection reset by peer")

    monkeypatch.setattr(connections.provider_for("sandbox"), "send_invoice", unreachable)
    lines = [{"description": "Audit", "quantity": Decimal("1.50"), "unit_price": Decimal("80.00")}]
    body = {"currency": "EUR", "exchange_rate": Decimal("1.0800"), "line_items": lines}
    answer = api.create(body)
    assert answer.status == 201  # stored: Panora's clients know only 201; sync_status says the rest
    fetched = api.call("GET", f"/accounting/invoices/{answer.json['id']}")
    stored = fetched.json
    assert (stored["sync_status"], stored["sync_error"]) == ("pending", "connection reset by peer")
    assert answer.text == fetched.text  # the same rendering, byte for byte


def test_storage_failure_answers_503_and_never_calls_the_provider(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(connections.provider_for("sandbox"), "send_invoice", lambda *a: calls.append(a))
    boto3.client("dynamodb").delete_table(TableName=settings().invoices_table)
    answer = api.create({"total_amount": Decimal("5")})
    assert answer.status == 503
    assert answer.json["error"] == "storage_unavailable"
    assert calls == []


def test_remote_data_is_returned_only_when_asked(api: Api) -> None:
    for flag in ("true", "1", "TRUE"):
        invoice = api.create({"total_amount": Decimal("5")}, query={"remote_data": flag}).json
        assert invoice["remote_data"]["id"] == invoice["remote_id"]
        assert invoice["remote_data"]["total"] == Decimal("5")
    for flag in ("false", "0"):
        assert (
            api.create({"total_amount": Decimal("5")}, query={"remote_data": flag}).json["remote_data"]
            is None
        )


@pytest.mark.parametrize("flag", ["yes", "2", "", "truee"])
def test_other_remote_data_values_are_400(api: Api, flag: str) -> None:
    answer = api.create({"total_amount": Decimal("5")}, query={"remote_data": flag})
    assert answer.status == 400
    assert answer.json["details"] == [{"field": "remote_data", "reason": "must be true, false, 1 or 0"}]


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "fields"),
    [
        ("{not json", 400, []),
        ("[1, 2]", 400, []),
        ('"text"', 400, []),
        ("", 400, []),
        ('{"total_amount": NaN}', 422, ["total_amount"]),
        ('{"line_items": [{"unit_price": Infinity}]}', 422, ["line_items.0.unit_price"]),
        ('{"issue_date": "2026-02-30"}', 422, ["issue_date"]),
        ('{"issue_date": "2026-03-02", "due_date": "2026-03-01"}', 422, ["due_date"]),
        ('{"currency": "EURO"}', 422, ["currency"]),
        ('{"exchange_rate": "-1"}', 422, ["exchange_rate"]),
        ('{"contact_id": "acme"}', 422, ["contact_id"]),
        ('{"type": "refund"}', 422, ["type"]),
        ('{"status": "sent"}', 422, ["status"]),
        ('{"totl_amount": 5}', 422, ["totl_amount"]),
        ('{"line_items": [{"qty": 1}]}', 422, ["line_items.0.qty"]),
    ],
)
def test_bad_input_gets_a_json_error_naming_the_field(
    api: Api, raw: str, status: int, fields: list[str]
) -> None:
    answer = api.call("POST", "/accounting/invoices", raw=raw)
    assert answer.status == status, answer.text
    body = answer.json
    assert set(body) == {"statusCode", "error", "message", "details"}
    assert body["statusCode"] == status
    assert [detail["field"] for detail in body["details"]] == fields
    assert "Traceback" not in answer.text


def test_over_1000_line_items_is_422(api: Api) -> None:
    lines = [{"total_amount": Decimal("1")}] * 1001
    answer = api.create({"line_items": lines})
    assert answer.status == 422
    assert answer.json["details"][0]["field"] == "line_items"


def test_a_body_over_1_mb_is_413(api: Api) -> None:
    answer = api.create({"memo": "x", "field_mappings": {"blob": "y" * 1_000_001}})
    assert answer.status == 413
    assert answer.json["error"] == "payload_too_large"


def test_a_full_1000_line_invoice_is_created(api: Api) -> None:
    lines = [{"description": "d" * 120, "quantity": Decimal("1"), "unit_price": Decimal("0.01")}] * 1000
    answer = api.create({"line_items": lines})
    assert answer.status == 201
    assert answer.json["total_amount"] == Decimal("10.00")
    assert len(api.call("GET", f"/accounting/invoices/{answer.json['id']}").json["line_items"]) == 1000


# --- references ---------------------------------------------------------------------------


def test_a_big_invoice_and_a_1_mb_provider_record_store_and_read_back_whole(
    api: Api, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = connections.provider_for("sandbox")
    original = type(sandbox).send_invoice
    blob = os.urandom(500_000).hex()  # 1 MB that does not compress away

    def bulky(connection, outbound, request):
        remote = original(sandbox, connection, outbound, request)
        return dataclasses.replace(remote, remote_data={**remote.remote_data, "attachment": blob})

    monkeypatch.setattr(sandbox, "send_invoice", bulky)
    lines = [
        {
            "description": f"{n:04d}" + " long description" * 45,
            "quantity": Decimal("1"),
            "unit_price": Decimal("0.01"),
        }
        for n in range(1000)
    ]
    answer = api.create({"line_items": lines})
    assert answer.status == 201, answer.text
    [item] = stored_items(demo["connection_id"])
    assert "line_items_s3" in item and "remote_data_s3" in item  # the DynamoDB item stayed small
    fetched = api.call("GET", f"/accounting/invoices/{answer.json['id']}", query={"remote_data": "true"}).json
    assert [line["description"] for line in fetched["line_items"]] == [line["description"] for line in lines]
    assert all(line["remote_id"] for line in fetched["line_items"])
    assert fetched["remote_data"]["attachment"] == blob
    assert fetched["total_amount"] == Decimal("10.00")


def test_known_references_are_sent_as_the_providers_ids(api: Api, demo: dict[str, Any]) -> None:
    item = reference_id(demo["connection_id"], "item", "I-1")
    tracking = reference_id(demo["connection_id"], "tracking_category", "T-1")
    body = {
        "contact_id": demo["contact_id"],
        "tracking_categories": [tracking],
        "line_items": [{"item_id": item, "total_amount": Decimal("1"), "tracking_categories": [tracking]}],
    }
    answer = api.create(body, query={"remote_data": "true"})
    assert answer.status == 201, answer.text
    assert answer.json["contact_id"] == demo["contact_id"]
    assert answer.json["remote_data"]["contact"] == "C-1001"
    assert answer.json["remote_data"]["lines"][0]["item"] == "I-1"


def test_unknown_references_are_422_naming_each_field(api: Api, demo: dict[str, Any]) -> None:
    stranger = "0b9a4f4e-7f1d-4d4b-9a0e-1c2d3e4f5a6b"
    other_connection = admin.create_connection(demo["project_id"], "sandbox")["connection_id"]
    foreign_item = reference_id(other_connection, "item", "I-1")  # exists, but not on this connection
    body = {
        "contact_id": stranger,
        "line_items": [{"total_amount": Decimal("1"), "item_id": foreign_item}],
    }
    answer = api.create(body)
    assert answer.status == 422
    assert answer.json["details"] == [
        {"field": "contact_id", "reason": "unknown contact for this connection"},
        {"field": "line_items.0.item_id", "reason": "unknown item for this connection"},
    ]
    assert stored_items(demo["connection_id"]) == []  # refused before anything was stored


# --- reads --------------------------------------------------------------------------------


def test_get_returns_the_stored_invoice(api: Api) -> None:
    created = api.create(None, raw=FULL_INVOICE).json
    fetched = api.call("GET", f"/accounting/invoices/{created['id']}")
    assert fetched.status == 200
    assert fetched.json == created


def test_get_is_404_for_another_connections_invoice_and_for_garbage(api: Api, demo: dict[str, Any]) -> None:
    invoice_id = api.create({"total_amount": Decimal("5")}).json["id"]
    sibling = admin.create_connection(demo["project_id"], "sandbox")
    headers = {"x-connection-token": sibling["connection_token"]}
    for path in (f"/accounting/invoices/{invoice_id}", "/accounting/invoices/not-a-uuid"):
        answer = api.call("GET", path, headers=headers)
        assert answer.status == 404
        assert answer.json["error"] == "not_found"
    assert api.call("GET", f"/accounting/invoices/{invoice_id}", headers=headers | {}).status == 404


def test_list_pages_in_creation_order_both_ways(api: Api) -> None:
    ids = [api.create({"total_amount": Decimal(n)}).json["id"] for n in range(1, 8)]
    pages, cursor = [], None
    while True:
        page = api.call(
            "GET", "/accounting/invoices", query={"limit": "3", **({"cursor": cursor} if cursor else {})}
        )
        assert page.status == 200
        pages.append(page.json)
        cursor = page.json["next_cursor"]
        if cursor is None:
            break
    assert [[i["id"] for i in p["data"]] for p in pages] == [ids[0:3], ids[3:6], ids[6:7]]
    assert pages[0]["prev_cursor"] is None and pages[0]["previous_cursor"] is None
    assert all(page["prev_cursor"] == page["previous_cursor"] for page in pages)  # Panora's name + alias
    back = api.call(
        "GET", "/accounting/invoices", query={"limit": "3", "cursor": pages[2]["prev_cursor"]}
    ).json
    assert [i["id"] for i in back["data"]] == ids[3:6]
    first = api.call(
        "GET", "/accounting/invoices", query={"limit": "3", "cursor": back["previous_cursor"]}
    ).json
    assert [i["id"] for i in first["data"]] == ids[0:3]
    assert first["previous_cursor"] is None
    assert first["next_cursor"] is not None


def test_list_defaults_to_50_and_honours_remote_data(api: Api) -> None:
    for n in range(3):
        api.create({"total_amount": Decimal(n + 1)})
    page = api.call("GET", "/accounting/invoices").json
    assert len(page["data"]) == 3
    assert (page["next_cursor"], page["previous_cursor"]) == (None, None)
    assert all(invoice["remote_data"] is None for invoice in page["data"])
    page = api.call("GET", "/accounting/invoices", query={"remote_data": "1"}).json
    assert all(invoice["remote_data"]["id"] == invoice["remote_id"] for invoice in page["data"])


def test_list_shows_only_this_connections_invoices(api: Api, demo: dict[str, Any]) -> None:
    api.create({"total_amount": Decimal("5")})
    sibling = admin.create_connection(demo["project_id"], "sandbox")
    page = api.call(
        "GET", "/accounting/invoices", headers={"x-connection-token": sibling["connection_token"]}
    )
    assert page.json["data"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "bm9wZQ"}, "cursor"),
        ({"cursor": "%%%"}, "cursor"),
        ({"remote_data": "y"}, "remote_data"),
    ],
)
def test_bad_list_parameters_are_400(api: Api, query: dict[str, str], field: str) -> None:
    answer = api.call("GET", "/accounting/invoices", query=query)
    assert answer.status == 400
    assert [d["field"] for d in answer.json["details"]] == [field]


def test_unknown_routes_are_json_404(api: Api) -> None:
    answer = api.call("GET", "/accounting/journalentries")
    assert answer.status == 404
    assert answer.json["error"] == "not_found"


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
def test_a_body_that_is_not_sent_as_json_is_415(api: Api, content_type: str) -> None:
    answer = api.call(
        "POST", "/accounting/invoices", raw='{"total_amount": 5}', headers={"content-type": content_type}
    )
    assert answer.status == 415
    assert answer.json["error"] == "unsupported_media_type"


def test_json_with_a_charset_or_no_content_type_is_accepted(api: Api) -> None:
    for content_type in ("application/json; charset=utf-8", None):
        answer = api.call(
            "POST", "/accounting/invoices", raw='{"total_amount": 5}', headers={"content-type": content_type}
        )
        assert answer.status == 201


def test_an_item_stored_with_numbers_and_a_list_of_lines_still_reads(api: Api, demo: dict[str, Any]) -> None:
    """As items were written before amounts were strings and lines one JSON string."""
    invoice_id = str(uuid7())
    boto3.client("dynamodb").put_item(
        TableName=settings().invoices_table,
        Item={
            "connection_id": {"S": demo["connection_id"]},
            "id": {"S": invoice_id},
            "project_id": {"S": demo["project_id"]},
            "provider": {"S": "sandbox"},
            "sync_status": {"S": "synced"},
            "created_at": {"S": "2026-11-01T00:00:00Z"},
            "modified_at": {"S": "2026-11-01T00:00:00Z"},
            "total_amount": {"N": "12.5"},
            "field_mappings": {"M": {"po": {"S": "7731"}}},
            "line_items": {"L": [{"M": {"id": {"S": str(uuid7())}, "total_amount": {"N": "12.5"}}}]},
        },
    )
    answer = api.call("GET", f"/accounting/invoices/{invoice_id}")
    assert answer.status == 200, answer.text
    assert answer.json["total_amount"] == Decimal("12.5")
    assert answer.json["line_items"][0]["total_amount"] == Decimal("12.5")
    assert answer.json["field_mappings"] == {"po": "7731"}


# --- settle answers what it stored ----------------------------------------------------------


def test_a_create_answers_exactly_what_a_get_reads_back(api: Api) -> None:
    """The settle's answer is computed, not read back (store/invoices.settle): it must match."""
    created = api.create(None, raw=FULL_INVOICE, query={"remote_data": "true"})
    fetched = api.call("GET", f"/accounting/invoices/{created.json['id']}", query={"remote_data": "true"})
    assert created.status == 201 and fetched.status == 200
    assert created.text == fetched.text


@pytest.mark.parametrize("size", ["small", "offloaded"])
def test_settling_a_retried_invoice_answers_the_item_as_stored(demo: dict[str, Any], size: str) -> None:
    """A retry settles a record it read, after attempts noted an error and a queued retry."""
    lines = 1 if size == "small" else 2000  # 2,000 long lines: over the item's inline limit
    line = {"description": "x" * 60, "total_amount": Decimal("1.10")}
    record = {
        "connection_id": demo["connection_id"],
        "project_id": demo["project_id"],
        "id": str(uuid7()),
        "pending": "P",
        "provider": "sandbox",
        "sync_status": "pending",
        "created_at": "2026-11-30T10:00:00Z",
        "modified_at": "2026-11-30T10:00:00Z",
        "total_amount": Decimal(lines) * Decimal("1.10"),
        "line_items": [{"id": str(uuid7()), **line} for _ in range(lines)],
    }
    connection_id, invoice_id = record["connection_id"], record["id"]
    invoices.create_pending(record)
    invoices.record_attempt_error(connection_id, invoice_id, "sandbox timed out", "2026-11-30T10:00:05Z")
    invoices.note_retry_queued(connection_id, invoice_id, "2026-11-30T10:00:05Z")
    pending = invoices.get(connection_id, invoice_id)
    changes = {
        "line_items": [{**line, "remote_id": f"R-{n}"} for n, line in enumerate(pending["line_items"])],
        "remote_id": "R",
        "modified_at": "2026-11-30T10:01:00Z",
        "sync_error": None,
    }
    remote_data = {"id": "R", "lines": [{"id": f"R-{n}", "note": "y" * 60} for n in range(lines)]}
    settled = invoices.settle(pending, changes, remote_data)
    assert settled == invoices.get(connection_id, invoice_id)
    assert settled["sync_status"] == "synced" and "sync_error" not in settled and "pending" not in settled


def _printed_documents(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The JSON lines printed on stdout (EMF counts) since the last call."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def _counted(capsys: pytest.CaptureFixture[str]) -> list[tuple[str, str]]:
    """The InvoiceCreates counts printed since the last call."""
    counts = [line for line in _printed_documents(capsys) if "InvoiceCreates" in line]
    return [(line["provider"], line["outcome"]) for line in counts]


def test_a_delivered_create_writes_one_line_its_count_naming_the_invoice(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    """The outcome line is the create's log: no second line says the same, and it names the
    invoice and the ledger's id for it. A refused create's line names its invoice too."""
    from ledgerbridge.observability import logger

    logged = io.StringIO()
    handler = logger.registered_handler
    saved, handler.stream = handler.stream, logged
    try:
        capsys.readouterr()
        created = api.create({"total_amount": Decimal("5")})
        [line] = _printed_documents(capsys)
        rejected = api.create({"memo": "nothing to bill"})
        [refused] = _printed_documents(capsys)
    finally:
        handler.stream = saved
    assert created.status == 201 and logged.getvalue().count("\n") == 1  # the rejection's own line only
    assert (line["outcome"], line["InvoiceCreates"]) == ("created", [1.0])
    assert (line["invoice_id"], line["remote_id"]) == (created.json["id"], created.json["remote_id"])
    assert rejected.status == 422 and refused["outcome"] == "rejected"
    assert refused["invoice_id"] == rejected.json["invoice_id"] and "remote_id" not in refused


def test_every_create_counts_its_outcome_once(
    api: Api, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _counted(capsys)
    assert api.create({"total_amount": Decimal("5")}).status == 201
    assert _counted(capsys) == [("sandbox", "created")]
    assert api.create({"memo": "nothing to bill"}).status == 422
    assert _counted(capsys) == [("sandbox", "rejected")]
    assert api.create({"total_amount": "not money"}).status == 422  # refused before anything is stored
    assert _counted(capsys) == []

    def unreachable(connection, outbound, request):
        raise ProviderUnavailable("connection reset by peer")

    monkeypatch.setattr(connections.provider_for("sandbox"), "send_invoice", unreachable)
    assert api.create({"total_amount": Decimal("5")}).status == 201
    assert _counted(capsys) == [("sandbox", "queued")]


def _sandbox_references(api: Api, connection_id: str) -> References:
    """The sandbox directory's ids, as generated invoices point at them."""

    def data(path: str) -> list[dict[str, Any]]:
        return api.call("GET", path, query={"limit": "100"}).json["data"]

    contacts = data("/accounting/contacts")
    return References(
        customers=tuple(c["id"] for c in contacts if c.get("is_customer")),
        vendors=tuple(c["id"] for c in contacts if c.get("is_supplier")),
        items=tuple(item["id"] for item in data("/accounting/items")),
        tracking=tuple(category["id"] for category in data("/accounting/trackingcategories")),
        period=reference_id(connection_id, "accounting_period", "P-2026"),
    )


def test_a_create_answers_byte_for_byte_what_the_invoice_model_renders(
    api: Api, demo: dict[str, Any]
) -> None:
    """A create renders its answer from the record it stored without the Invoice model
    (``service.fresh_invoice_document``); a GET renders the stored invoice through the model.
    Over generated invoices (every field, both types, stated totals, exchange rates, custom
    fields), with and without remote_data and with an Idempotency-Key's replay, the texts are
    the same."""
    references = _sandbox_references(api, demo["connection_id"])

    @hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(invoice=valid_invoice(references), remote_data=st.sampled_from(["true", "false"]))
    def check(invoice: dict[str, Any], remote_data: str) -> None:
        key = {"Idempotency-Key": str(uuid7())}
        created = api.create(invoice, query={"remote_data": remote_data}, headers=key)
        assert created.status == 201, created.text
        path = f"/accounting/invoices/{created.json['id']}"
        fetched = api.call("GET", path, query={"remote_data": remote_data})
        assert created.text == fetched.text
        replayed = api.create(invoice, query={"remote_data": remote_data}, headers=key)
        assert replayed.headers.get("Idempotent-Replayed") == "true" and replayed.text == created.text

    check()
