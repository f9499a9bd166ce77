"""Every field of Panora's accounting schemas exists in ours with a compatible type.

Panora's SDKs and clients generated from Panora's spec must work against Ledgerbridge
unchanged, so each Panora invoice, contact, item, tracking-category and account field (and
the list envelope) must be in the OpenAPI document we serve, typed so that what Panora's
client sends is accepted and what we answer parses as Panora's type. The Panora side is
tests/fixtures/specs/panora_accounting_fields.json (facts extracted from Panora's spec).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import Api

PANORA = json.loads((ROOT / "tests/fixtures/specs/panora_accounting_fields.json").read_text())["schemas"]
OURS_FOR = {
    "UnifiedAccountingInvoiceInput": "InvoiceInput",
    "UnifiedAccountingInvoiceOutput": "Invoice",
    "UnifiedAccountingContactInput": "ContactInput",
    "UnifiedAccountingContactOutput": "Contact",
    "UnifiedAccountingItemOutput": "Item",
    "UnifiedAccountingTrackingcategoryOutput": "TrackingCategory",
    "UnifiedAccountingAccountOutput": "Account",
}
PAGES = ["InvoicePage", "ContactPage", "ItemPage", "TrackingCategoryPage", "AccountPage"]


@pytest.fixture(scope="module")
def schemas(api_module: Any) -> dict[str, Any]:
    return json.loads(api_module._openapi_json())["components"]["schemas"]


def json_types(schema: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    """Every JSON type a schema admits, through $ref, anyOf/oneOf/allOf and enums."""
    if "$ref" in schema:
        return json_types(schemas[schema["$ref"].rsplit("/", 1)[1]], schemas)
    found: set[str] = set()
    for key in ("anyOf", "oneOf", "allOf"):
        for part in schema.get(key, []):
            found |= json_types(part, schemas)
    if "type" in schema:
        found |= set(schema["type"]) if isinstance(schema["type"], list) else {schema["type"]}
    elif "enum" in schema:
        found |= {"string" if isinstance(value, str) else "number" for value in schema["enum"]}
    elif not found and "properties" in schema:
        found.add("object")
    return found


def compatible(panora_type: str, ours: set[str]) -> bool:
    wanted = panora_type.split("<", 1)[0].split("/", 1)[0]  # array<string> -> array; string/date-time
    return wanted in ours or (wanted == "number" and "integer" in ours)


@pytest.mark.parametrize("panora_name", OURS_FOR)
def test_every_panora_field_is_ours_with_a_compatible_type(schemas: dict[str, Any], panora_name: str) -> None:
    ours = schemas[OURS_FOR[panora_name]]["properties"]
    problems = []
    for field, spec in PANORA[panora_name].items():
        if field.startswith("__"):
            continue
        if field not in ours:
            problems.append(f"{field}: missing")
        elif not compatible(spec["type"], types := json_types(ours[field], schemas)):
            problems.append(f"{field}: Panora {spec['type']}, ours {sorted(types)}")
    assert problems == [], f"{panora_name} vs {OURS_FOR[panora_name]}"


@pytest.mark.parametrize("page", PAGES)
def test_every_list_has_panoras_envelope(schemas: dict[str, Any], page: str) -> None:
    envelope = PANORA["PaginatedDto"]
    ours = schemas[page]["properties"]
    assert set(envelope["__required__"]) <= set(ours)
    assert "array" in json_types(ours["data"], schemas)
    assert {"string", "null"} <= json_types(ours["prev_cursor"], schemas)


def test_an_answered_list_carries_the_whole_envelope(api: Api) -> None:
    for path in ("/accounting/invoices", "/accounting/contacts", "/accounting/accounts"):
        page = api.call("GET", path).json
        assert set(PANORA["PaginatedDto"]["__required__"]) <= set(page), path
