"""Check QuickBooks Online JSON bodies against Intuit's own XSDs (tests/fixtures/specs/quickbooks).

QuickBooks' JSON is its v3 XML schema written as JSON: each key is an element of the entity's
XSD type, an element that may repeat is an array, and an element with simple content and
attributes (``ReferenceType``: ``{"value": "1", "name": "Amy"}``) is an object whose
``value`` is the text and whose other keys are the attributes. So the checker turns a body
back into the XML document the schema describes and lets ``xmlschema`` validate that
document: every element name and its place (sequence, choice, how often it may occur), and
every leaf's type (decimal, integer, date, boolean, enumerations, any facet).

Two things XML validation alone cannot see are checked while the document is built:

- JSON kinds: a decimal or integer leaf must be a JSON number, a boolean leaf a JSON
  boolean, any other leaf a string. (``"12.50"`` as a string would be valid XML text but is
  not what we mean to send.) Keys that are no element or attribute of their XSD type are
  reported by name, as are arrays where the schema allows one element.
- Limits Intuit documents in the schema's annotations rather than as facets: a
  ``ValidRange: QBO: max=21`` (or ``ALL``) line caps a string's length, or a number's value.

JSON has no order; children are put in the order of the type's content model before
validation, so only a wrong *name* or *count* can fail, never key order. Not checked: the
annotations' "Required: ALL" (they are written for updates too: ``Id`` and ``SyncToken`` carry
it), and that a line's ``DetailType`` names the detail it carries (FakeQuickBooks checks that,
as QuickBooks does). QuickBooks' own recorded answers pass this checker, but for the lines'
``CustomExtensions``, newer than these schemas (tests/unit/test_quickbooks_xsd.py). Free of
pytest so the fake can use it.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ElementTree

import xmlschema
from xmlschema.validators import XsdElement, XsdType

from ledgerbridge import jsonutil

SPECS = Path(__file__).resolve().parents[1] / "fixtures" / "specs" / "quickbooks"
# The schema that declares the entity elements (Invoice, Bill, Customer, Vendor, ...).
ROOT_XSD = SPECS / "IntuitRestServiceDef.xsd"
NUMERIC = ("decimal", "double", "float")  # XSD primitives; integers are restrictions of decimal
_VALID_RANGE = re.compile(
    r"ValidRange:\s*(?:QBO|ALL):\s*(?:Min=(?P<min>\d+),?\s*)?Max=(?P<max>\d+)", re.IGNORECASE
)


@cache
def schema() -> xmlschema.XMLSchema:
    """Intuit's schemas, parsed once per process (about a second)."""
    return xmlschema.XMLSchema(str(ROOT_XSD))


def _primitive(xsd_type: XsdType) -> str:
    """The XSD primitive behind a leaf: ``number`` (decimal and its integers), ``boolean``, ``date``..."""
    simple = xsd_type if xsd_type.is_simple() else xsd_type.content
    primitive = getattr(simple, "primitive_type", None)
    name = primitive.local_name if primitive is not None else "string"
    return "number" if name in NUMERIC else name


@cache
def _limits(decl: XsdElement) -> tuple[int | None, int | None]:
    """(min, max) from Intuit's ``ValidRange: QBO|ALL: [Min=m] Max=n`` annotation, if any."""
    annotation = decl.annotation
    text = " ".join(
        "".join(item.itertext()) for item in (annotation.documentation if annotation is not None else [])
    )
    match = _VALID_RANGE.search(text)
    if match is None:
        return None, None
    low = match["min"]
    return (int(low) if low is not None else None), int(match["max"])


class _Builder:
    """Builds the XML element for a JSON value, collecting every mismatch with its JSON path."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.paths: dict[Element, str] = {}  # each built element's JSON path, to name validation errors

    def element(self, decl: XsdElement, value: Any, path: str) -> Element:
        element = Element(decl.name)
        self.paths[element] = path
        xsd_type = decl.type
        if xsd_type.is_simple() or xsd_type.has_simple_content():
            self._simple(element, decl, value, path)
        elif isinstance(value, dict):
            self._complex(element, xsd_type, value, path)
        else:
            self.errors.append(f"{path}: {decl.local_name} is a {xsd_type.local_name} object, not {value!r}")
        return element

    def _simple(self, element: Element, decl: XsdElement, value: Any, path: str) -> None:
        attributes = getattr(decl.type, "attributes", None) or {}
        if isinstance(value, dict) and attributes:
            for key, item in value.items():
                if key == "value":
                    continue
                if key in attributes:
                    element.set(key, self._text(item, "string", f"{path}.{key}"))
                else:
                    self.errors.append(f"{path}.{key}: {decl.type.local_name} has no attribute {key}")
            value = value.get("value")
        kind = _primitive(decl.type)
        text = self._text(value, kind, path)
        element.text = text
        self._check_range(decl, kind, text, path)

    def _complex(self, element: Element, xsd_type: XsdType, value: dict[str, Any], path: str) -> None:
        children: dict[str, tuple[int, XsdElement]] = {}
        for index, child in enumerate(xsd_type.content.iter_elements()):
            children.setdefault(child.local_name, (index, child))
        built: list[tuple[int, Element]] = []
        for key, item in value.items():
            child_path = f"{path}.{key}"
            if key in xsd_type.attributes:
                element.set(key, self._text(item, _primitive(xsd_type.attributes[key].type), child_path))
                continue
            if key not in children:
                self.errors.append(f"{child_path}: {xsd_type.local_name} has no element {key}")
                continue
            index, child = children[key]
            items = item if isinstance(item, list) else [item]
            if isinstance(item, list) and child.max_occurs == 1:
                self.errors.append(f"{child_path}: an array, but {key} occurs at most once")
            suffixes = [f"[{n}]" for n in range(len(items))] if isinstance(item, list) else [""]
            built.extend(
                (index, self.element(child, one, child_path + suffix))
                for one, suffix in zip(items, suffixes, strict=True)
            )
        element.extend(child for _, child in sorted(built, key=lambda pair: pair[0]))

    def _text(self, value: Any, kind: str, path: str) -> str:
        """The XML text of a JSON scalar, after checking its JSON kind against the XSD type."""
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | Decimal):
                self.errors.append(f"{path}: the XSD type is numeric; {value!r} is not a JSON number")
                return str(value)
            return format(value, "f") if isinstance(value, Decimal) else str(value)
        if kind == "boolean":
            if not isinstance(value, bool):
                self.errors.append(f"{path}: the XSD type is boolean; {value!r} is not true or false")
                return str(value)
            return "true" if value else "false"
        if not isinstance(value, str):
            self.errors.append(f"{path}: the XSD type is {kind}; {value!r} is not a JSON string")
            return str(value)
        return value

    def _check_range(self, decl: XsdElement, kind: str, text: str, path: str) -> None:
        low, high = _limits(decl)
        if high is None:
            return
        if kind == "number":
            number = Decimal(text)
            if number > high or (low is not None and number < low):
                self.errors.append(f"{path}: {text} is outside Intuit's documented range {low or 0}..{high}")
        elif len(text) > high:
            self.errors.append(f"{path}: {len(text)} characters; Intuit documents at most {high}")


def _parsed(body: Any) -> Any:
    """The body as QuickBooks would parse it: JSON text, or a value with Decimals sent as JSON."""
    if isinstance(body, bytes | str):
        return jsonutil.loads(body)
    return jsonutil.loads(jsonutil.dumps(body))


def xsd_errors(body: Any, entity: str) -> list[str]:
    """Every way ``body`` (JSON text or value) breaks the XSD of ``entity`` (``Invoice``, ``Bill``, ...)."""
    decl = schema().elements.get(entity)
    if decl is None:
        raise KeyError(f"no {entity} element in Intuit's schema")
    builder = _Builder()
    root = builder.element(decl, _parsed(body), entity)
    invalid = [
        f"{builder.paths.get(error.elem, error.path)}: {error.reason or error.message}"
        for error in schema().iter_errors(ElementTree(root))
    ]
    return builder.errors + invalid


def assert_valid(body: Any, entity: str) -> None:
    """Raise AssertionError listing the problems when ``body`` is not a valid ``entity``."""
    problems = xsd_errors(body, entity)
    if problems:
        raise AssertionError(f"body is not a valid QuickBooks {entity}:\n" + "\n".join(problems))
