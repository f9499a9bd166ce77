"""The generated OpenAPI document and Swagger UI, served without auth."""

from __future__ import annotations

import json

from ledgerbridge.local.template import api_routes, load_template
from tests.integration.conftest import Api


def test_openapi_document_describes_the_invoice_routes(api: Api) -> None:
    answer = api.call("GET", "/openapi.json", auth=False)
    assert answer.status == 200
    document = answer.json
    routed = {route.path for route in api_routes(load_template())} - {"/openapi.json", "/swagger"}
    assert set(document["paths"]) == routed  # every API route in template.yaml is served and documented
    assert "/accounting/contacts" in routed
    create = document["paths"]["/accounting/invoices"]["post"]
    assert {"201", "400", "401", "413", "422"} <= set(create["responses"])
    assert create["security"] == [{"apiKey": [], "connectionToken": []}]
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "x-api-key",
                                 "description": "identifies the project"}  # fmt: skip
    assert "line_items" in document["components"]["schemas"]["InvoiceInput"]["properties"]
    parameters = {p["name"] for p in document["paths"]["/accounting/invoices"]["get"]["parameters"]}
    assert parameters == {"limit", "cursor", "remote_data"}
    assert create["requestBody"]["required"] is True
    assert {"Location", "Idempotent-Replayed"} <= set(create["responses"]["201"]["headers"])
    assert "Preference-Applied" in create["responses"]["202"]["headers"]
    assert "502" not in create["responses"]  # only what the handler really answers
    headers = {p["name"] for p in create["parameters"] if p["in"] == "header"}
    assert {"idempotency-key", "prefer"} <= headers  # header names are case-insensitive
    envelope = document["components"]["schemas"]["InvoicePage"]["properties"]
    assert {"data", "next_cursor", "prev_cursor", "previous_cursor"} <= set(envelope)


def test_the_document_says_what_an_exchange_rate_means_and_that_money_is_a_number(api: Api) -> None:
    schemas = api.call("GET", "/openapi.json", auth=False).json["components"]["schemas"]
    for model in ("InvoiceInput", "LineItemInput", "Invoice", "LineItem"):
        rate = json.dumps(schemas[model]["properties"]["exchange_rate"], default=str)
        assert "home currency per one unit of the invoice's currency" in rate, model
    for field in ("total_amount", "sub_total", "balance"):
        assert {"type": "number"} in schemas["Invoice"]["properties"][field]["anyOf"]


def test_swagger_ui_is_served(api: Api) -> None:
    answer = api.call("GET", "/swagger", auth=False)
    assert answer.status == 200
    assert "swagger" in answer.text.lower()
