"""Replay every committed events/*.json through the real handler, against moto.

The events are what ``sam local invoke`` is given, so they must keep working: a change to
the handler or the template that breaks one of them fails here, not on a developer's
machine. Credentials cannot be committed, so the files hold ``{{placeholders}}`` that are
filled in here with keys and tokens created through ``ledgerbridge.admin``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import pytest

from ledgerbridge import admin, jsonutil
from ledgerbridge.local.stack import path_pattern
from ledgerbridge.local.template import api_routes, load_template

EVENTS = Path(__file__).resolve().parents[2] / "events"
EXPECTED: dict[str, int] = json.loads((EVENTS / "expected.json").read_text())
EVENT_FILES = sorted(path.name for path in EVENTS.glob("*.json") if path.name != "expected.json")
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
ERROR_KEYS = {"statusCode", "error", "message", "details"}


def fill(value: Any, values: dict[str, str]) -> Any:
    """Replace every ``{{name}}`` in the event's strings; an unknown name is a KeyError.

    Walks the parsed event rather than the raw text, so a value can never break the JSON.
    """
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda match: values[match.group(1)], value)
    if isinstance(value, list):
        return [fill(item, values) for item in value]
    if isinstance(value, dict):
        return {key: fill(item, values) for key, item in value.items()}
    return value


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def invoke(module: ModuleType, context: Any, event: dict[str, Any]) -> tuple[int, Any]:
    result = module.handler(event, context)
    return result["statusCode"], jsonutil.loads(result["body"])


@pytest.fixture
def placeholders(demo: dict[str, Any], api_module: ModuleType, lambda_context: Any) -> dict[str, str]:
    """Demo credentials, another project's connection token, and one invoice to GET."""
    other = admin.create_project("Another project")
    foreign = admin.create_connection(other["project_id"], "sandbox")
    values = {
        "api_key": demo["api_key"],
        "connection_token": demo["connection_token"],
        "foreign_connection_token": foreign["connection_token"],
    }
    status, body = invoke(api_module, lambda_context, fill(load_event("create-invoice.json"), values))
    assert status == 201, body
    return {**values, "invoice_id": body["id"]}


def test_every_event_has_an_expected_status_and_vice_versa() -> None:
    assert EVENT_FILES, f"no events in {EVENTS}"
    assert set(EVENT_FILES) == set(EXPECTED)
    assert all(isinstance(status, int) for status in EXPECTED.values())


@pytest.mark.parametrize("name", EVENT_FILES)
def test_event_is_a_route_of_the_template(name: str) -> None:
    """Each event is one that the HTTP API could send (payload format 2.0) for a route
    template.yaml declares, to the stage's own URL: its path carries the stage."""
    event = load_event(name)
    routes = {f"{route.method} {route.path}": route for route in api_routes(load_template())}
    context = event["requestContext"]
    route = routes[event["routeKey"]]
    assert event["version"] == "2.0"
    assert (context["routeKey"], context["stage"], context["http"]["method"]) == (
        event["routeKey"],
        route.stage,
        route.method,
    )
    assert context["http"]["path"] == event["rawPath"]
    stage_prefix = f"/{route.stage}"
    assert event["rawPath"].startswith(f"{stage_prefix}/")
    found = path_pattern(route.path).match(event["rawPath"].removeprefix(stage_prefix))
    assert found and found.groupdict() == (event.get("pathParameters") or {})
    assert event["rawQueryString"] == urlencode(event.get("queryStringParameters") or {})
    assert all(header == header.lower() for header in event["headers"])
    assert "multiValueHeaders" not in event and "multiValueQueryStringParameters" not in event


@pytest.mark.parametrize("name", EVENT_FILES)
def test_event_replays_with_its_expected_status(
    name: str, placeholders: dict[str, str], api_module: ModuleType, lambda_context: Any
) -> None:
    status, body = invoke(api_module, lambda_context, fill(load_event(name), placeholders))
    assert status == EXPECTED[name], body
    if status >= 400:
        assert set(body) >= ERROR_KEYS, body
        assert body["statusCode"] == status
        assert all(set(detail) == {"field", "reason"} for detail in body["details"])


def test_invalid_fields_event_names_every_bad_field(
    placeholders: dict[str, str], api_module: ModuleType, lambda_context: Any
) -> None:
    event = fill(load_event("create-invoice-invalid-fields.json"), placeholders)
    _, body = invoke(api_module, lambda_context, event)
    fields = {detail["field"] for detail in body["details"]}
    assert {"currency", "due_date", "line_items.0.unit_price", "discount_code"} <= fields, body


def test_created_invoice_keeps_exact_decimals(
    placeholders: dict[str, str], api_module: ModuleType, lambda_context: Any
) -> None:
    event = fill(load_event("get-invoice.json"), placeholders)
    _, body = invoke(api_module, lambda_context, event)
    assert [str(line["unit_price"]) for line in body["line_items"]] == ["150.25", "0.1"]


def test_fill_refuses_an_unknown_placeholder() -> None:
    with pytest.raises(KeyError):
        fill({"headers": {"x-api-key": "{{nope}}"}}, {})
