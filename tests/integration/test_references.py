"""GET /accounting/contacts, /items, /trackingcategories: finding the ids to put in an invoice."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import boto3
import pytest

from benchmarks.aws_calls import counted
from ledgerbridge import admin, connections, expiring
from ledgerbridge.config import settings
from ledgerbridge.ids import reference_id
from tests.integration.conftest import Api


@pytest.mark.parametrize(
    ("path", "kind", "remote_ids"),
    [
        ("/accounting/contacts", "contact", {"C-1001", "C-1002", "V-2001"}),
        ("/accounting/items", "item", {"I-1", "I-2"}),
        ("/accounting/trackingcategories", "tracking_category", {"T-1", "T-2"}),
        ("/accounting/accounts", "account", {"A-4000", "A-5000"}),
    ],
)
def test_synced_references_are_listed_with_their_stable_ids(
    api: Api, demo: dict[str, Any], path: str, kind: str, remote_ids: set[str]
) -> None:
    answer = api.call("GET", path)
    assert answer.status == 200, answer.text
    page = answer.json
    assert {record["remote_id"] for record in page["data"]} == remote_ids
    for record in page["data"]:
        assert record["id"] == reference_id(demo["connection_id"], kind, record["remote_id"])
        assert record["remote_data"] is None
    assert (page["next_cursor"], page["prev_cursor"], page["previous_cursor"]) == (None, None, None)


REFERENCE_PATHS = ["/accounting/contacts", "/accounting/items", "/accounting/trackingcategories",
                   "/accounting/accounts"]  # fmt: skip


@pytest.mark.parametrize("path", REFERENCE_PATHS)
def test_each_reference_is_retrieved_by_id_with_remote_data_on_request(api: Api, path: str) -> None:
    listed = api.call("GET", path).json["data"]
    assert listed
    for record in listed:
        one = api.call("GET", f"{path}/{record['id']}")
        assert (one.status, one.json) == (200, record)
        with_data = api.call("GET", f"{path}/{record['id']}", query={"remote_data": "true"}).json
        assert with_data["remote_data"]["id"] == record["remote_id"]


@pytest.mark.parametrize("path", ["/accounting/contacts", "/accounting/accounts"])
def test_a_reference_of_another_kind_or_connection_or_garbage_is_404(
    api: Api, demo: dict[str, Any], path: str
) -> None:
    item = api.call("GET", "/accounting/items").json["data"][0]["id"]
    for wrong in (item, "not-a-uuid", reference_id("another-connection", "contact", "C-1001")):
        answer = api.call("GET", f"{path}/{wrong}")
        assert (answer.status, answer.json["error"]) == (404, "not_found")
    assert api.call("GET", f"{path}/{item}", auth=False).status == 401


def test_contacts_carry_panoras_fields(api: Api) -> None:
    contacts = {c["remote_id"]: c for c in api.call("GET", "/accounting/contacts").json["data"]}
    assert contacts["C-1001"]["name"] == "Acme Corporation"
    assert (contacts["C-1001"]["is_customer"], contacts["C-1001"]["is_supplier"]) == (True, False)
    assert (contacts["V-2001"]["is_customer"], contacts["V-2001"]["is_supplier"]) == (False, True)
    items = {i["remote_id"]: i for i in api.call("GET", "/accounting/items").json["data"]}
    assert items["I-1"]["unit_price"] == Decimal("150.25")


def test_reference_lists_page_and_honour_remote_data(api: Api) -> None:
    first = api.call("GET", "/accounting/contacts", query={"limit": "2", "remote_data": "true"}).json
    assert len(first["data"]) == 2
    assert all(c["remote_data"]["id"] == c["remote_id"] for c in first["data"])
    rest = api.call("GET", "/accounting/contacts", query={"limit": "2", "cursor": first["next_cursor"]}).json
    assert len(rest["data"]) == 1
    assert rest["next_cursor"] is None
    seen = [c["id"] for c in first["data"] + rest["data"]]
    assert len(set(seen)) == 3


def test_a_resync_keeps_ids_and_created_at(api: Api, demo: dict[str, Any]) -> None:
    before = {c["id"]: c["created_at"] for c in api.call("GET", "/accounting/contacts").json["data"]}
    admin.sync_references(connection_id=demo["connection_id"])
    after = {c["id"]: c["created_at"] for c in api.call("GET", "/accounting/contacts").json["data"]}
    assert after == before


def test_reference_lists_need_auth_and_are_per_connection(api: Api, demo: dict[str, Any]) -> None:
    assert api.call("GET", "/accounting/items", auth=False).status == 401
    unsynced = admin.create_connection(demo["project_id"], "sandbox")
    answer = api.call(
        "GET", "/accounting/items", headers={"x-connection-token": unsynced["connection_token"]}
    )
    assert answer.json["data"] == []


# --- resolving references for an invoice (connections.resolve_references) -----------------


def _reference_reads(api: Api, body: dict[str, Any]) -> int:
    with counted() as calls:
        answer = api.create(body)
    assert answer.status == 201, answer.text
    return calls.operations["dynamodb.BatchGetItem"]


def test_a_warm_container_reads_a_synced_reference_once_a_minute(
    api: Api, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    item = reference_id(demo["connection_id"], "item", "I-1")
    body = {"contact_id": demo["contact_id"], "line_items": [{"item_id": item, "total_amount": Decimal("1")}]}
    assert _reference_reads(api, body) == 1  # both references, one BatchGetItem
    assert _reference_reads(api, body) == 0
    later = time.monotonic() + connections.RESOLVED_SECONDS + 1
    monkeypatch.setattr(expiring.time, "monotonic", lambda: later)
    assert _reference_reads(api, body) == 1


def test_a_remembered_reference_belongs_to_its_connection_only(api: Api, demo: dict[str, Any]) -> None:
    item = reference_id(demo["connection_id"], "item", "I-1")
    assert _reference_reads(api, {"line_items": [{"item_id": item, "total_amount": Decimal("1")}]}) == 1
    other = admin.create_connection(demo["project_id"], "sandbox")
    answer = api.create(
        {"line_items": [{"item_id": item, "total_amount": Decimal("1")}]},
        headers={"x-connection-token": other["connection_token"]},
    )
    assert answer.status == 422
    assert answer.json["details"] == [
        {"field": "line_items.0.item_id", "reason": "unknown item for this connection"}
    ]


def _stored_reference(connection_id: str, kind: str, reference_id_: str) -> dict[str, Any]:
    key = {"pk": {"S": f"CONNECTION#{connection_id}"}, "sk": {"S": f"REF#{kind}#{reference_id_}"}}
    return boto3.client("dynamodb").get_item(TableName=settings().accounts_table, Key=key)["Item"]


def test_reference_fields_keep_their_digits_stored_as_json(api: Api, demo: dict[str, Any]) -> None:
    """DynamoDB trims a Number's trailing zeros (99.00 read back as 99; moto keeps them), so a
    record's fields are one JSON string."""
    licence_id = reference_id(demo["connection_id"], "item", "I-2")
    stored = _stored_reference(demo["connection_id"], "item", licence_id)
    assert "fields" not in stored
    assert '"unit_price":99.00' in stored["fields_json"]["S"]
    answer = api.call("GET", f"/accounting/items/{licence_id}")
    assert '"unit_price":99.00' in answer.text.replace(" ", "")


def test_a_reference_stored_with_a_fields_map_still_reads(api: Api, demo: dict[str, Any]) -> None:
    connection_id = demo["connection_id"]
    licence_id = reference_id(connection_id, "item", "I-2")
    stored = _stored_reference(connection_id, "item", licence_id)
    del stored["fields_json"]
    stored["fields"] = {"M": {"status": {"S": "ACTIVE"}, "unit_price": {"N": "98.5"}}}
    boto3.client("dynamodb").put_item(TableName=settings().accounts_table, Item=stored)
    item = api.call("GET", f"/accounting/items/{licence_id}").json
    assert (item["status"], item["unit_price"]) == ("ACTIVE", Decimal("98.5"))
