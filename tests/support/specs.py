"""Check request bodies against JSON Schemas copied from a ledger's own SDK or OpenAPI document.

Each document is a JSON file under tests/fixtures/specs/<provider>/ (with the licence it came
under) holding its schemas under ``schemas`` and, for an OpenAPI excerpt, the ``endpoints``
registry with each operation's documented query parameters. Bodies are checked as they travel:
the JSON text is parsed with the standard library (floats are fine for a shape check; money
exactness is tested elsewhere). ``tests/support/openapi.py`` does the same for Xero's YAML
OpenAPI 3.0 document. Free of pytest so the fakes can use it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.protocols import Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ledgerbridge import jsonutil

SPECS = Path(__file__).resolve().parents[1] / "fixtures" / "specs"


@cache
def document(spec: str) -> dict[str, Any]:
    """The JSON document ``tests/fixtures/specs/<spec>.json`` (e.g. ``freshbooks/invoices``)."""
    with (SPECS / f"{spec}.json").open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


@cache
def validator(spec: str, schema: str) -> Validator:
    """A validator (formats checked) for ``schemas/<schema>`` of the document ``spec``."""
    uri = f"urn:ledgerbridge-tests:spec:{spec}"
    resource = Resource.from_contents(document(spec), default_specification=DRAFT202012)
    return Draft202012Validator(
        {"$ref": f"{uri}#/schemas/{schema}"},
        registry=Registry().with_resource(uri, resource),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def _wire(body: Any) -> Any:
    if isinstance(body, bytes | str):
        return json.loads(body)
    return json.loads(jsonutil.dumps(body))


def _leaves(error: ValidationError) -> list[str]:
    """The error itself, then (for a failed oneOf/anyOf) every branch's own reasons, recursively."""
    where = "/" + "/".join(str(part) for part in error.absolute_path)
    found = [f"{where}: {error.message}"]
    for cause in error.context or []:
        found.extend(_leaves(cause))
    return found


def schema_errors(body: Any, spec: str, schema: str) -> list[str]:
    """Every way ``body`` (JSON text, or a value with Decimals) breaks the schema, as 'path: message'.

    A failed ``oneOf``/``anyOf`` also lists why each branch failed, so a Pennylane line that fits
    neither of its two line shapes says what is wrong with it.
    """
    errors = validator(spec, schema).iter_errors(_wire(body))
    return sorted({leaf for error in errors for leaf in _leaves(error)})


def assert_valid(body: Any, spec: str, schema: str) -> None:
    """Raise AssertionError listing the problems when ``body`` does not match the schema."""
    problems = schema_errors(body, spec, schema)
    if problems:
        raise AssertionError(f"body does not match {spec} {schema}:\n" + "\n".join(problems))


def _operation(spec: str, operation_id: str) -> dict[str, Any]:
    for endpoint in document(spec).get("endpoints", []):
        for method in endpoint["methods"].values():
            if method["operation_id"] == operation_id:
                return dict(method)
    raise KeyError(f"{operation_id} is not in {spec}")


def query_errors(params: dict[str, str], spec: str, operation_id: str) -> list[str]:
    """Query parameters the operation does not document, or integers that are not integers."""
    documented = {p["name"]: p for p in _operation(spec, operation_id)["params"] if p["in"] == "query"}
    problems = [f"?{name}: not a documented query parameter" for name in params if name not in documented]
    for name, value in params.items():
        if name in documented and documented[name]["type"] == "integer" and not value.lstrip("-").isdigit():
            problems.append(f"?{name}: {value!r} is not an integer")
    return problems
