"""Route parameters declared once, in the route function's signature, for the request and for
the OpenAPI document, without Powertools' OpenAPI machinery on the request path.

A route declares its parameters as with Powertools' own classes of the same names
(``limit: Annotated[int, Query(ge=1, le=100, description="page size, 1-100")] = 50``), using
the stand-ins below, which only keep their arguments. Why: Powertools' ``Query``, ``Header``,
``Path`` and ``Body``, and the resolver's ``enable_validation`` that reads them, import
``event_handler.openapi.models`` and its neighbours: ~120 ms of CPU in every cold start (Lambda's
Python 3.12, .pyc shipped), building pydantic models that only the OpenAPI document needs.

- ``validated(resolver)`` wraps a route whose path, query and header parameters are passed
  in validated, with what the resolver's validation answers for an HTTP API event (payload
  format 2.0): each value read from the event the same way, checked by pydantic against the
  declared type and constraints (so the same messages), defaults as declared, errors in the
  same order (path, query, header; then the signature's). A query parameter given twice is a
  list, which a scalar type refuses; 2.0 joins its values with commas, so ``rawQueryString``
  tells it from one value holding commas, which stays the string. A repeated header cannot be
  told from one value holding commas (2.0 keeps no trace of it): it is that one string. A
  failure raises :class:`InvalidParameters` before the route runs: the resolver's handler
  for it decides what is checked first (the API function authenticates).
- ``documented`` wraps a route whose parameters are only documented: it reads its own, in
  its own order (a route with a body authenticates before it reads anything).
- Both convert the stand-ins to Powertools' own classes the first time the OpenAPI generator
  asks for the route's signature (``inspect.signature`` reads ``__signature__``), so the
  document is still Powertools' output from the same declarations, and only a request for
  the document pays for the machinery. Nothing on the request path reads ``__signature__``
  (Powertools' request path uses ``typing.get_type_hints``, which reads ``__annotations__``).
"""

from __future__ import annotations

import inspect
import typing
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import cached_property, update_wrapper
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qsl

from pydantic_core import ValidationError

from ledgerbridge.errors import FieldError

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
    from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
    from pydantic import TypeAdapter

# The arguments that constrain a value (passed on to pydantic); the others only describe it.
_CONSTRAINTS = ("gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length", "pattern", "strict")


class Param:
    """A parameter's declaration: the keyword arguments of Powertools' class of the same name."""

    where = ""  # where a request carries it, as in the error's location

    def __init__(self, **arguments: Any) -> None:
        self.arguments = arguments

    def key(self, name: str) -> str:
        """The parameter's name in the request (and in error details)."""
        return self.arguments.get("alias") or name

    @cached_property
    def powertools(self) -> Any:
        """Powertools' own declaration, made once per stand-in (as one declaration was shared)."""
        from aws_lambda_powertools.event_handler.openapi import params

        return getattr(params, type(self).__name__)(**self.arguments)


class Query(Param):
    where = "query"


class Path(Param):
    where = "path"


class Header(Param):
    where = "header"

    def key(self, name: str) -> str:
        """Lower case, as Powertools names headers; an underscore is a hyphen unless told otherwise."""
        alias = self.arguments.get("alias")
        if not alias and self.arguments.get("convert_underscores", True):
            alias = name.replace("_", "-")
        return (alias or name).lower()


class Body(Param):
    where = "body"


class InvalidParameters(Exception):
    """Path, query or header parameters a validated route refused, each named in ``details``."""

    def __init__(self, details: list[FieldError]) -> None:
        super().__init__(", ".join(detail.field for detail in details))
        self.details = details


def validated(resolver: ApiGatewayResolver) -> Callable[[Callable[..., Any]], DeclaredRoute]:
    """Wrap a route of ``resolver`` whose path, query and header parameters are passed in validated."""
    return lambda func: DeclaredRoute(func, resolver)


def documented(func: Callable[..., Any]) -> DeclaredRoute:
    """Wrap a route whose parameters are only documented: it reads its own."""
    return DeclaredRoute(func, None)


@dataclass(frozen=True)
class _Bound:
    """One validated parameter: where the request carries it and what it must be."""

    name: str  # in the signature
    where: str
    key: str  # in the request
    adapter: TypeAdapter[Any]
    default: Any  # inspect.Parameter.empty: required

    def read(self, event: BaseProxyEvent, route_args: Mapping[str, Any]) -> Any:
        if self.where == "path":
            return route_args.get(self.key)
        if self.where == "query":
            value = event.resolved_query_string_parameters.get(self.key)
            split = isinstance(value, list) and len(value) > 1
            return _one(value, self.key, _repeated_names(event.get("rawQueryString") or "") if split else ())
        return _one(event.resolved_headers_field.get(self.key), self.key, ())

    def check(self, value: Any) -> tuple[Any, list[FieldError]]:
        try:
            return self.adapter.validate_python(value, from_attributes=True), []
        except ValidationError as exc:
            return None, [
                FieldError(".".join(str(part) for part in (self.key, *error["loc"]))[:200], str(error["msg"]))
                for error in exc.errors()
            ]


def _repeated_names(raw_query: str) -> set[str]:
    """The query parameters a query string gives more than once (decoded, as the event names them)."""
    counts = Counter(name for name, _ in parse_qsl(raw_query, keep_blank_values=True))
    return {name for name, count in counts.items() if count > 1}


def _one(value: Any, key: str, given_more_than_once: Collection[str]) -> Any:
    """The event's value as Powertools hands it to validation: a list only when the parameter was
    really repeated (a single value the event split at its commas is joined back)."""
    if (
        isinstance(value, list)
        and len(value) > 1
        and key not in given_more_than_once
        and all(isinstance(item, str) for item in value)
    ):
        value = ",".join(value)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


class DeclaredRoute:
    """A route function and its declared parameters; see the module docstring."""

    def __init__(self, func: Callable[..., Any], resolver: ApiGatewayResolver | None) -> None:
        update_wrapper(self, func)  # __name__, __annotations__, __wrapped__ ... for Powertools
        self._func, self._resolver = func, resolver

    def __call__(self, **route_args: Any) -> Any:
        if self._resolver is None:
            return self._func(**route_args)
        event = self._resolver.current_event
        values: dict[str, Any] = {}
        problems: list[FieldError] = []
        for parameter in self._bound:
            value = parameter.read(event, route_args)
            if value is None:
                if parameter.default is inspect.Parameter.empty:
                    problems.append(FieldError(parameter.key, "Field required"))
                else:
                    values[parameter.name] = parameter.default
                continue
            values[parameter.name], refused = parameter.check(value)
            problems += refused
        if problems:
            raise InvalidParameters(problems)
        return self._func(**values)

    @cached_property
    def _declared(self) -> list[tuple[inspect.Parameter, Any, Param | None]]:
        """Each parameter of the function with its evaluated annotation and its stand-in, if any."""
        hints = typing.get_type_hints(self._func, include_extras=True)
        declared = []
        for parameter in inspect.signature(self._func).parameters.values():
            annotation = hints.get(parameter.name, parameter.annotation)
            stand_ins = [m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, Param)]
            declared.append((parameter, annotation, stand_ins[0] if stand_ins else None))
        return declared

    @cached_property
    def _bound(self) -> list[_Bound]:
        from pydantic import Field, TypeAdapter

        bound = []
        for parameter, annotation, stand_in in self._declared:
            if stand_in is None or stand_in.where == "body":
                raise TypeError(f"{self.__name__}: {parameter.name} must be a Path, Query or Header")
            constraints = {k: v for k, v in stand_in.arguments.items() if k in _CONSTRAINTS}
            adapter = TypeAdapter(Annotated[annotation.__origin__, Field(**constraints)])
            key = stand_in.key(parameter.name)
            bound.append(_Bound(parameter.name, stand_in.where, key, adapter, parameter.default))
        order = ("path", "query", "header")
        return sorted(bound, key=lambda parameter: order.index(parameter.where))

    @cached_property
    def __signature__(self) -> inspect.Signature:
        """The signature with Powertools' own classes in place of the stand-ins: what the OpenAPI
        generator reads (and only it: this imports Powertools' OpenAPI machinery)."""
        signature = inspect.signature(self._func)
        parameters = []
        for parameter, annotation, stand_in in self._declared:
            if stand_in is not None:
                extras = tuple(stand_in.powertools if m is stand_in else m for m in annotation.__metadata__)
                annotation = Annotated[(annotation.__origin__, *extras)]
            parameters.append(parameter.replace(annotation=annotation))
        return signature.replace(parameters=parameters)
