"""Check request bodies against a schema of an OpenAPI 3.0 document kept under tests/fixtures/specs.

The documents are large (Xero's is ~900 KB of YAML), so each is parsed once per process and
its validators are cached. Bodies are checked as they travel: the JSON text is parsed with
the standard library (floats are fine for a shape check; money exactness is tested elsewhere),
and validated with the OpenAPI *write* rules, so a request carrying a read-only property such
as ``SubTotal`` fails too. Free of pytest so the fakes can use it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema.protocols import Validator
from openapi_schema_validator import OAS30WriteValidator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from ledgerbridge import jsonutil

SPECS = Path(__file__).resolve().parents[1] / "fixtures" / "specs"


@cache
def _document(spec: str) -> tuple[Registry, str]:
    """The registry holding ``spec`` (file stem under SPECS) and the URI it is registered at."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with (SPECS / f"{spec}.yaml").open(encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=loader)
    uri = f"urn:ledgerbridge-tests:openapi:{spec}"
    resource = Resource.from_contents(document, default_specification=DRAFT4)
    return Registry().with_resource(uri, resource), uri


@cache
def validator(spec: str, schema: str) -> Validator:
    """A validator for ``components/schemas/<schema>`` of the document ``spec``."""
    registry, uri = _document(spec)
    return OAS30WriteValidator(
        {"$ref": f"{uri}#/components/schemas/{schema}"},
        registry=registry,
        format_checker=oas30_format_checker,
    )


def _wire(body: Any) -> Any:
    if isinstance(body, bytes | str):
        return json.loads(body)
    return json.loads(jsonutil.dumps(body))


def schema_errors(body: Any, schema: str, spec: str = "xero_accounting") -> list[str]:
    """Every way ``body`` (JSON text, or a value with Decimals) breaks the schema, as 'path: message'."""
    errors = validator(spec, schema).iter_errors(_wire(body))
    return sorted(
        f"/{'/'.join(str(part) for part in error.absolute_path)}: {error.message}" for error in errors
    )


def assert_valid(body: Any, schema: str, spec: str = "xero_accounting") -> None:
    """Raise AssertionError listing the problems when ``body`` does not match the schema."""
    problems = schema_errors(body, schema, spec)
    if problems:
        raise AssertionError(f"body does not match {spec} {schema}:\n" + "\n".join(problems))
