"""GET /accounting/contacts, /items, /trackingcategories: finding the ids to put in an invoice."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ledgerbridge import admin
from ledgerbridge.ids import reference_id
from tests.integration.conftest import Api


@pytest.mark.parametrize(
    ("path", "kind", "remote_ids"),
    [
        ("/accounting/contacts", "contact", {"C-1001", "C-1002", "V-2001"}),
        ("/accounting/items", "item", {"I-1", "I-2"}),
        ("/accounting/trackingcategories", "tracking_category", {"T-1", "T-2"}),
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
    assert (page["next_cursor"], page["previous_cursor"]) == (None, None)


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
