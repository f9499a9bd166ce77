"""The generated OpenAPI document and Swagger UI, served without auth.

The document is built on the first request for it: serving anything else never imports
Powertools' OpenAPI machinery (checked in a fresh interpreter, since this one has it loaded).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ledgerbridge.local.template import api_routes, load_template
from tests.integration.conftest import Api

ROOT = Path(__file__).resolve().parents[2]
SAVED_DOCUMENT = ROOT / "tests" / "fixtures" / "openapi" / "api.json"


def test_the_served_document_is_the_saved_one_byte_for_byte(api: Api) -> None:
    """Any change to the served document, meant or not, shows up here and in the diff of
    tests/fixtures/openapi/api.json (the body as served, plus one final newline). To accept an
    intended change, regenerate it and review that diff:
    ``LEDGERBRIDGE_UPDATE_OPENAPI=1 .venv/bin/pytest -p no:cacheprovider tests/integration/test_openapi.py``.
    """
    answer = api.call("GET", "/openapi.json", auth=False)
    assert (answer.status, answer.headers["Content-Type"]) == (200, "application/json")
    if os.environ.get("LEDGERBRIDGE_UPDATE_OPENAPI") == "1":
        SAVED_DOCUMENT.parent.mkdir(parents=True, exist_ok=True)
        SAVED_DOCUMENT.write_text(answer.text + "\n", encoding="utf-8")
    assert answer.text + "\n" == SAVED_DOCUMENT.read_text(encoding="utf-8")


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


def test_swagger_ui_shows_the_served_document_with_the_stage_as_server(api: Api) -> None:
    served = api.call("GET", "/openapi.json", auth=False).json
    shown = api.call("GET", "/swagger", query={"format": "json"}, auth=False)
    assert shown.status == 200
    assert shown.json == {**served, "servers": [{"url": "/v1"}]}  # the test events come through stage v1
    page = api.call("GET", "/swagger", auth=False).text
    assert '"operationId": "createInvoice"' in page and "</script" not in shown.text


def test_what_the_document_says_of_a_limit_is_what_the_handler_enforces(api: Api) -> None:
    document = api.call("GET", "/openapi.json", auth=False).json
    for path, item in document["paths"].items():
        for parameter in item.get("get", {}).get("parameters", []):
            if parameter["name"] != "limit":
                continue
            low, high = parameter["schema"]["minimum"], parameter["schema"]["maximum"]
            assert api.call("GET", path, query={"limit": str(low)}).status == 200, path
            assert api.call("GET", path, query={"limit": str(high)}).status == 200, path
            for refused in (low - 1, high + 1):
                answer = api.call("GET", path, query={"limit": str(refused)})
                assert answer.status == 400, (path, refused)
                assert [d["field"] for d in answer.json["details"]] == ["limit"], path


# Run in a fresh interpreter: imports the API function as Lambda does, serves a create, a list
# and a refused list, and prints which OpenAPI modules beyond the resolver's own it imported;
# then the same after a request for the document.
_FRESH_PROCESS = """
import json, os, sys
import aws_lambda_powertools.event_handler  # the resolver itself imports a few light openapi modules
def openapi_modules():
    return {name for name in sys.modules if ".openapi" in name}
resolver_own = openapi_modules()
from tests.conftest import FakeLambdaContext, load_handler_module
from tests.integration.conftest import Api, demo_credentials, seeded_stack
with seeded_stack() as demo:
    api = Api(load_handler_module(), FakeLambdaContext(), demo_credentials(demo))
    served = [
        api.create({"currency": "EUR", "line_items": [{"quantity": 1, "unit_price": 2}]}).status,
        api.call("GET", "/accounting/invoices", query={"limit": "1"}).status,
        api.call("GET", "/accounting/contacts", query={"limit": "0"}).status,
    ]
    before_document = sorted(openapi_modules() - resolver_own)
    served.append(api.call("GET", "/openapi.json", auth=False).status)
    after_document = sorted(openapi_modules() - resolver_own)
print(json.dumps([served, before_document, after_document]))
"""


def test_only_a_request_for_the_document_imports_the_openapi_machinery() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served, before_document, after_document = json.loads(result.stdout.strip().splitlines()[-1])
    assert served == [201, 200, 400, 200]
    assert before_document == []
    assert "aws_lambda_powertools.event_handler.openapi.models" in after_document  # what the check looks for
