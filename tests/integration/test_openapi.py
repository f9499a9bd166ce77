"""The generated OpenAPI document and Swagger UI, served without auth."""

from __future__ import annotations

import json

from ledgerbridge.local.template import api_routes, load_template
from tests.integration.conftest import Api


def test_openapi_document_describes_the_invoice_routes(api: Api) -> None:
    answer = api.call("GET", "/openapi.json", auth=False)
    assert answer.status == 200
    document = answer.json
    api_function = [route for route in api_routes(load_template()) if route.function == "ApiFunction"]
    routed = {route.path for route in api_function} - {"/openapi.json", "/swagger"}
    assert set(document["paths"]) == routed  # every route of the API function is served and documented
    assert "/accounting/contacts" in routed
    create = document["paths"]["/accounting/invoices"]["post"]
    assert {"201", "400", "401", "413", "422"} <= set(create["responses"])
    assert create["security"] == [{"apiKey": [], "connectionToken": []}]
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "x-api-key",
                                 "description": "identifies the project"}  # fmt: skip
    assert "line_items" in document["components"]["schemas"]["InvoiceInput"]["properties"]
    parameters = {p["name"] for p in document["paths"]["/accounting/invoices"]["get"]["parameters"]}
    assert parameters == {"limit", "cursor", "remote_data", "x-connection-token"}
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


def operations(document: dict) -> dict[str, dict]:
    return {op["operationId"]: op for item in document["paths"].values() for op in item.values()}


def test_every_accounting_operation_names_itself_and_takes_the_connection_token(api: Api) -> None:
    document = api.call("GET", "/openapi.json", auth=False).json
    by_id = operations(document)
    assert set(by_id) == {
        "createInvoice", "listInvoices", "retrieveInvoice", "createContact", "listContacts",
        "retrieveContact", "listItems", "retrieveItem", "listTrackingCategories",
        "retrieveTrackingCategory", "listAccounts", "retrieveAccount",
    }  # fmt: skip
    for name, operation in by_id.items():
        [token] = [p for p in operation["parameters"] if p["name"] == "x-connection-token"]
        assert (token["in"], token["required"], token["schema"]["type"]) == ("header", True, "string"), name
        assert "default" not in token["schema"], name
        assert len(operation["tags"]) == 1 and operation["summary"], name


def test_each_operation_documents_only_the_status_codes_it_answers(api: Api) -> None:
    by_id = operations(api.call("GET", "/openapi.json", auth=False).json)
    create = {"400", "401", "409", "413", "415", "422", "503"}
    expected = {"createInvoice": create | {"201", "202"}, "createContact": create | {"201"}}
    for name, operation in by_id.items():
        if name.startswith("list"):
            assert set(operation["responses"]) == {"200", "400", "401", "503"}, name
        elif name.startswith("retrieve"):
            assert set(operation["responses"]) == {"200", "400", "401", "404", "503"}, name
        else:
            assert set(operation["responses"]) == expected[name], name
            assert "Retry-After" in operation["responses"]["409"]["headers"], name


def test_every_field_of_every_schema_is_described(api: Api) -> None:
    schemas = api.call("GET", "/openapi.json", auth=False).json["components"]["schemas"]
    undescribed = [
        f"{model}.{field}"
        for model, schema in schemas.items()
        for field, definition in (schema.get("properties") or {}).items()
        if not definition.get("description")
    ]
    assert undescribed == []
    assert "HTTPValidationError" not in schemas  # Powertools' own, answered by nothing here
    money = schemas["LineItemInput"]["properties"]["unit_price"]["description"]
    assert "major units" in money and "not cents" in money


def test_decimal_inputs_use_json_schema_keywords_not_pydantics(api: Api) -> None:
    schemas = api.call("GET", "/openapi.json", auth=False).json["components"]["schemas"]
    text = json.dumps(schemas, default=str)
    assert '"max_digits"' not in text and '"decimal_places"' not in text and '"gt"' not in text
    [rate, _null] = schemas["InvoiceInput"]["properties"]["exchange_rate"]["anyOf"]
    number, string = rate["anyOf"]
    assert number == {"type": "number", "exclusiveMinimum": 0} and string["type"] == "string"
    assert (rate["x-max-digits"], rate["x-decimal-places"]) == (28, 12)


def test_swagger_ui_is_served(api: Api) -> None:
    answer = api.call("GET", "/swagger", auth=False)
    assert answer.status == 200
    assert "swagger" in answer.text.lower()
