"""The API function: HTTP API events (payload format 2.0) in, Panora-shaped JSON out.

Thin on purpose: Powertools routes and writes the OpenAPI document; ``ledgerbridge.service``
does the work; this module only reads headers and query values and shapes responses.

Each route declares its parameters once, in its signature, with ``ledgerbridge.route_params``'
stand-ins for Powertools' ``Query``/``Header``/``Path``/``Body``. Not Powertools' own classes,
nor the resolver's ``enable_validation``: they import Powertools' OpenAPI machinery (~120 ms of
CPU in every cold start on Lambda's Python 3.12 with the shipped .pyc, for pydantic models only
the document needs). Read routes are ``@validated(app)``: their path, query and header
parameters arrive validated as the resolver's validation passed them, and a refusal is the 400
naming each parameter, after authentication (``on_invalid_parameters``). The OpenAPI document
is built from the same declarations and route table by Powertools' generator on the first
request for it (``/openapi.json`` or ``/swagger``), and only that request imports the
machinery (``_openapi_json``). tests/fixtures/openapi/api.json holds the document as served.

Order, for every route but the documents: authenticate (one 401 for every credential
failure, whatever else the request holds), then read the body, then validate. Routes that
take a body are ``@documented`` only: they hand the raw event body to
``ledgerbridge.request_body`` (size, media type, UTF-8, JSON, depth, object) after
``_principal()``; the model layer (``models.validate_input``) then names each invalid field;
their parameters stay in the signature only so the OpenAPI document describes them.

No Powertools ``Tracer`` here: Lambda's active tracing records each invocation, and the
X-Ray SDK with ``patch_all`` cost 270 ms of every cold start (``ledgerbridge.observability``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, NamedTuple

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

import ledgerbridge.snapstart  # noqa: F401  (registers the SnapStart after-restore hooks, freezes init's heap)
from ledgerbridge import connections, errors, idempotency, jsonutil, models, request_body, service
from ledgerbridge.auth import Principal, authenticate
from ledgerbridge.errors import ApiError
from ledgerbridge.models import (
    Account,
    AccountPage,
    Contact,
    ContactInput,
    ContactPage,
    ErrorBody,
    Invoice,
    InvoiceInput,
    InvoicePage,
    Item,
    ItemPage,
    TrackingCategory,
    TrackingCategoryPage,
)
from ledgerbridge.observability import logger
from ledgerbridge.params import parse_flag, prefers_async
from ledgerbridge.route_params import Body, Header, InvalidParameters, Path, Query, documented, validated

app = APIGatewayHttpResolver(serializer=jsonutil.dumps, json_body_deserializer=jsonutil.loads)
_SECURITY = [{"apiKey": [], "connectionToken": []}]
_ERROR_MEANINGS = {
    400: "Malformed request: body not a JSON object, or a bad query parameter (named in details)",
    401: "Missing or invalid x-api-key / x-connection-token (one answer for every credential failure)",
    404: "No such record for this connection",
    409: "The Idempotency-Key is still in flight (retry after Retry-After), or the connection needs"
    " authorising again",
    413: "Body over 1 MB",
    415: "Body sent as something other than JSON",
    422: "Invalid field, unknown reference, or refused by the ledger (each field named in details)",
    503: "Storage unavailable; nothing was stored or sent: safe to retry",
}
_RETRY_AFTER = {"description": "seconds to wait before retrying the same Idempotency-Key",
                "schema": {"type": "integer"}}  # fmt: skip
# The status codes each kind of route really answers (the fuzz suite holds the handler to them),
# in the document's order: a create's 422 first, where the generator put it while the resolver
# validated (tests/fixtures/openapi/api.json).
_READ_ONE, _READ_PAGE, _CREATE = (400, 401, 404, 503), (400, 401, 503), (422, 400, 401, 409, 413, 415, 503)


def _errors(*codes: int) -> dict[int, dict[str, Any]]:
    """OpenAPI error responses for ``codes``, all in the ErrorBody shape."""
    responses: dict[int, dict[str, Any]] = {}
    for code in codes:
        response = {
            "description": _ERROR_MEANINGS[code],
            "content": {"application/json": {"model": ErrorBody}},
        }
        if code == 409:
            response["headers"] = {"Retry-After": _RETRY_AFTER}
        responses[code] = response
    return responses


SETTLE_MARGIN_SECONDS = 3.0
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="1-255 printable characters, no commas (a header sent twice arrives joined by"
        " commas): a retry with the same key returns the first answer"
        " and creates nothing new (kept 24 h, per connection)",
    ),
]
ConnectionTokenHeader = Annotated[
    str,
    Header(
        alias="x-connection-token",
        description="identifies one connection (one end customer's ledger) of the project; the"
        " connectionToken security scheme, repeated as a parameter for clients generated from Panora's"
        " spec, which pass it on every call",
    ),
]
PreferHeader = Annotated[
    str | None,
    Header(
        alias="Prefer",
        description="respond-async (RFC 7240): store and queue the invoice, answer 202 without waiting"
        " for the ledger",
    ),
]
# Response headers a client acts on, documented where they are sent.
_STRING = {"type": "string"}
_LOCATION = {"description": "where to GET the created record", "schema": _STRING}
_REPLAYED = {"description": "true: the stored answer to an earlier request with this Idempotency-Key",
             "schema": {"type": "string", "enum": ["true"]}}  # fmt: skip
_CREATED_HEADERS = {"Location": _LOCATION, "Idempotent-Replayed": _REPLAYED}
_ASYNC_HEADERS = {
    **_CREATED_HEADERS,
    "Preference-Applied": {
        "description": "respond-async",
        "schema": {"type": "string", "enum": ["respond-async"]},
    },
}
RemoteDataFlag = Annotated[
    str | None,
    Query(description="true/1: include the provider's own record in remote_data; false/0 or absent: null"),
]


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    payload = body.model_dump() if isinstance(body, BaseModel) else body
    return Response(status, content_types.APPLICATION_JSON, jsonutil.dumps(payload), headers=headers or {})


def _principal() -> Principal:
    """Authenticate the current request; raises the one 401 for every failure."""
    headers = app.current_event.headers  # case-insensitive
    return authenticate(headers.get("x-api-key"), headers.get("x-connection-token"))


def _deadline() -> float:
    """When the provider call must be over: the Lambda's remaining time, less room to settle and answer."""
    remaining = app.lambda_context.get_remaining_time_in_millis() / 1000
    return time.monotonic() + remaining - SETTLE_MARGIN_SECONDS


def _body() -> dict[str, Any]:
    """The request body as a JSON object; call only after ``_principal()``."""
    event = app.current_event
    return request_body.read_json_object(
        event.body, event.is_base64_encoded, event.headers.get("content-type")
    )


def _query(name: str) -> str | None:
    """A query value, for routes whose parameters Powertools does not inject."""
    return (app.current_event.query_string_parameters or {}).get(name)


@app.post(
    "/accounting/invoices",
    summary="Create an invoice in the connection's accounting software",
    operation_id="createInvoice",
    responses={
        **_errors(*_CREATE),
        201: {
            "description": "Stored and created in the ledger (sync_status synced), or stored and queued"
            " because the ledger could not be reached in time (sync_status pending: the retry function"
            " delivers it; poll Location, do not send it again)",
            "headers": _CREATED_HEADERS,
            "content": {"application/json": {"model": Invoice}},
        },
        202: {
            "description": "Prefer: respond-async was sent: stored and queued without calling the ledger"
            " (sync_status pending; poll Location)",
            "headers": _ASYNC_HEADERS,
            "content": {"application/json": {"model": Invoice}},
        },
    },
    security=_SECURITY,
    tags=["Invoices"],
)
@documented  # the body and parameters are read after authentication: see the module docstring
def create_invoice(
    invoice: Annotated[InvoiceInput, Body()] = None,  # type: ignore[assignment]  # documents only
    remote_data: RemoteDataFlag = None,  # documents only: read below, after authentication
    x_connection_token: ConnectionTokenHeader = "",  # documents only: _principal() reads it
    idempotency_key: IdempotencyKeyHeader = None,  # documents only
    prefer: PreferHeader = None,  # documents only
):
    principal = _principal()
    invoice = models.validate_input(InvoiceInput, _body())
    include_remote_data = parse_flag(_query("remote_data"), "remote_data")
    respond_async = prefers_async(app.current_event.headers.get("prefer"))

    def run(invoice_id: str | None) -> idempotency.Answer:
        created = service.create_invoice(
            principal, invoice, include_remote_data, _deadline(), respond_async, invoice_id
        )
        return created.answer()

    def stored(invoice_id: str, status: int) -> idempotency.Stored | None:
        return service.created_state(principal, invoice_id, status, include_remote_data)

    success = 202 if respond_async else 201
    return _answer(_once(f"{principal.connection_id}#invoices", include_remote_data, success, run, stored))


def _once(
    scope: str,
    include_remote_data: bool,
    success_status: int,
    run: Callable[[str | None], idempotency.Answer],
    stored: Callable[[str, int], idempotency.Stored | None],
) -> idempotency.Answer:
    """``run`` once per ``Idempotency-Key`` within ``scope``: a connection and a kind of record
    (``<connection id>#invoices``): a connection id has no ``#`` and a kind is a fixed word, so no
    key of one scope can spell another scope's record id."""
    key = app.current_event.headers.get("idempotency-key")
    if key is None:
        return run(None)
    # The bytes sent, decoded: an HTTP API base64-encodes some JSON media types and not others,
    # so the same body may arrive either way (already read and checked by the route).
    request = idempotency.fingerprint(app.current_event.decoded_body or "", str(include_remote_data))
    return idempotency.once(
        scope, idempotency.check_key(key), request, success_status, app.lambda_context, run, stored
    )


@app.post(
    "/accounting/contacts",
    summary="Create a customer or supplier in the connection's accounting software",
    operation_id="createContact",
    responses={
        **_errors(*_CREATE),
        201: {
            "description": "Stored and created in the ledger (sync_status synced: usable at once as an"
            " invoice's contact_id), or stored and queued because the ledger did not answer (sync_status"
            " pending: the retry function creates it; poll Location, do not send it again)",
            "headers": _CREATED_HEADERS,
            "content": {"application/json": {"model": Contact}},
        },
    },
    security=_SECURITY,
    tags=["Contacts"],
)
@documented  # the body and parameters are read after authentication: see the module docstring
def create_contact(
    contact: Annotated[ContactInput, Body()] = None,  # type: ignore[assignment]  # documents only
    remote_data: RemoteDataFlag = None,  # documents only: read below, after authentication
    x_connection_token: ConnectionTokenHeader = "",  # documents only: _principal() reads it
    idempotency_key: IdempotencyKeyHeader = None,  # documents only
):
    from ledgerbridge import contacts  # not on an invoice create's cold start

    principal = _principal()
    contact = models.validate_input(ContactInput, _body())
    include_remote_data = parse_flag(_query("remote_data"), "remote_data")

    def run(contact_id: str | None) -> idempotency.Answer:
        created = contacts.create_contact(principal, contact, include_remote_data, _deadline(), contact_id)
        return contacts.contact_answer(created.status, created.contact)

    def stored(contact_id: str, status: int) -> idempotency.Stored | None:
        return contacts.created_state(principal, contact_id, status, include_remote_data)

    return _answer(_once(f"{principal.connection_id}#contacts", include_remote_data, 201, run, stored))


def _answer(answer: idempotency.Answer) -> Response:
    headers = {"Location": answer.location} if answer.location else {}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    if answer.status == 202:
        headers["Preference-Applied"] = "respond-async"
    return Response(answer.status, content_types.APPLICATION_JSON, answer.body, headers=headers)


@app.get(
    "/accounting/invoices",
    summary="List the connection's invoices in creation order",
    operation_id="listInvoices",
    responses={
        200: {"description": "A page", "content": {"application/json": {"model": InvoicePage}}},
        **_errors(*_READ_PAGE),
    },
    security=_SECURITY,
    tags=["Invoices"],
)
@validated(app)
def list_invoices(
    limit: Annotated[int, Query(ge=1, le=100, description="page size, 1-100")] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor or previous_cursor of a page")] = None,
    remote_data: RemoteDataFlag = None,
    x_connection_token: ConnectionTokenHeader = "",  # documents only: _principal() reads it
):
    principal = _principal()
    include_remote_data = parse_flag(remote_data, "remote_data")
    return _json(200, service.list_invoices(principal, limit, cursor, include_remote_data))


@app.get(
    "/accounting/invoices/<id>",
    summary="Retrieve one invoice",
    operation_id="retrieveInvoice",
    responses={
        200: {"description": "The invoice", "content": {"application/json": {"model": Invoice}}},
        **_errors(*_READ_ONE),
    },
    security=_SECURITY,
    tags=["Invoices"],
)
@validated(app)
def get_invoice(
    id: Annotated[str, Path(description="the invoice's Ledgerbridge id (a UUID)")],
    remote_data: RemoteDataFlag = None,
    x_connection_token: ConnectionTokenHeader = "",  # documents only: _principal() reads it
):
    principal = _principal()
    include_remote_data = parse_flag(remote_data, "remote_data")
    return _json(200, service.get_invoice(principal, id, include_remote_data))


ListLimit = Annotated[int, Query(ge=1, le=100, description="page size, 1-100")]
ListCursor = Annotated[str | None, Query(description="next_cursor of a page")]
ReferenceId = Annotated[str, Path(description="the record's Ledgerbridge id (a UUID)")]


class _ReferenceKind(NamedTuple):
    """One kind of synced reference and how its two GET routes are documented."""

    path: str
    kind: str  # as stored (connections.list_references)
    page: type[BaseModel]
    model: type[BaseModel]
    summary: str
    tag: str  # groups the operations (a module per tag in a generated client)
    plural: str  # operationIds: list{plural} and retrieve{singular}
    singular: str


_REFERENCE_KINDS = (
    _ReferenceKind(
        "/accounting/contacts", "contact", ContactPage, Contact,
        "Customers and suppliers in the ledger", "Contacts", "Contacts", "Contact",
    ),
    _ReferenceKind(
        "/accounting/items", "item", ItemPage, Item,
        "Products and services synced from the ledger", "Items", "Items", "Item",
    ),
    _ReferenceKind(
        "/accounting/trackingcategories", "tracking_category", TrackingCategoryPage, TrackingCategory,
        "Classes, departments, tracking", "Tracking categories", "TrackingCategories", "TrackingCategory",
    ),
    _ReferenceKind(
        "/accounting/accounts", "account", AccountPage, Account,
        "The ledger's chart of accounts", "Accounts", "Accounts", "Account",
    ),
)  # fmt: skip


def _reference_routes(kind: _ReferenceKind) -> None:
    """GET routes for synced references (the ids to put in an invoice): a list and one by id."""

    def list_references(
        limit: ListLimit = 50,
        cursor: ListCursor = None,
        remote_data: RemoteDataFlag = None,
        x_connection_token: ConnectionTokenHeader = "",  # documents only: _principal() reads it
    ):
        principal = _principal()
        include_remote_data = parse_flag(remote_data, "remote_data")
        records, next_cursor = connections.list_references(
            principal, kind.kind, limit, cursor, include_remote_data
        )
        return _json(200, kind.page.model_validate({"data": records, "next_cursor": next_cursor}))

    def get_reference(
        id: ReferenceId,
        remote_data: RemoteDataFlag = None,
        x_connection_token: ConnectionTokenHeader = "",  # documents only: _principal() reads it
    ):
        principal = _principal()
        include_remote_data = parse_flag(remote_data, "remote_data")
        record = connections.get_reference(principal, kind.kind, id, include_remote_data)
        return _json(200, kind.model.model_validate(record))

    noun = kind.kind.replace("_", " ")
    page = {"description": "A page", "content": {"application/json": {"model": kind.page}}}
    one = {"description": f"One {noun}", "content": {"application/json": {"model": kind.model}}}
    common = {"security": _SECURITY, "tags": [kind.tag]}
    app.get(
        kind.path,
        summary=kind.summary,
        operation_id=f"list{kind.plural}",
        responses={200: page, **_errors(*_READ_PAGE)},
        **common,
    )(validated(app)(list_references))
    app.get(
        f"{kind.path}/<id>",
        summary=f"Retrieve one {noun}",
        operation_id=f"retrieve{kind.singular}",
        responses={200: one, **_errors(*_READ_ONE)},
        **common,
    )(validated(app)(get_reference))


for _reference_kind in _REFERENCE_KINDS:
    _reference_routes(_reference_kind)


@app.get("/openapi.json", include_in_schema=False)
def openapi_document():
    return Response(200, content_types.APPLICATION_JSON, _openapi_json())


@app.get("/swagger", include_in_schema=False)
def swagger_ui():
    """Swagger UI of the served document: Powertools' ``enable_swagger`` page (which imports the
    machinery at start, and showed the document before ``_correct_operation``), with the stage as
    its server, as that page had it, so "Try it out" goes through the stage's URL."""
    from importlib.resources import files  # ~30 ms to import: not on the cold start

    from aws_lambda_powertools.event_handler.openapi import swagger_ui as ui

    wanted = (app.current_event.query_string_parameters or {}).get("format")
    if wanted == "oauth2-redirect":
        return Response(200, content_types.TEXT_HTML, ui.generate_oauth2_redirect_html())
    document = json.loads(_openapi_json())
    document["servers"] = [{"url": _stage_path() or "/"}]
    spec = json.dumps(document, indent=2).replace("</", "<\\/")  # no </script> inside the page
    if wanted == "json":
        return Response(200, content_types.APPLICATION_JSON, spec)
    script, style = (files(ui).joinpath(name).read_text("utf-8") for name in _SWAGGER_ASSETS)
    return Response(200, content_types.TEXT_HTML, ui.generate_swagger_html(spec, script, style, None, None))


_SWAGGER_ASSETS = ("swagger-ui-bundle.min.js", "swagger-ui.min.css")  # shipped with Powertools


def _stage_path() -> str:
    """``/v1`` when the request's path carries the stage, as on the stage's own URL; "" on ``$default``."""
    context = app.current_event.request_context
    stage = context.stage
    return f"/{stage}" if stage and stage != "$default" and context.http.path.startswith(f"/{stage}") else ""


@cache  # the routes are fixed at import: build it once per container
def _openapi_json() -> str:
    """The generated document, corrected where Powertools cannot know how the routes behave.

    Built on the first request for it, which alone imports Powertools' OpenAPI machinery
    (~120 ms of CPU) and converts the routes' parameter declarations (``ledgerbridge.route_params``).
    """
    from aws_lambda_powertools.event_handler.openapi.compat import model_json
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

    schema = app.get_openapi_schema(
        title="Ledgerbridge",
        version="1.0.0",
        description="Panora-compatible unified accounting API that really creates invoices.",
        security_schemes={
            "apiKey": APIKey(name="x-api-key", in_=APIKeyIn.header, description="identifies the project"),
            "connectionToken": APIKey(
                name="x-connection-token",
                in_=APIKeyIn.header,
                description="identifies one connection of that project",
            ),
        },
    )
    document = json.loads(model_json(schema, by_alias=True, exclude_none=True))
    for operation in (op for path_item in document["paths"].values() for op in path_item.values()):
        _correct_operation(operation)
    _drop_unreferenced_schemas(document)
    return json.dumps(document, indent=2)


def _correct_operation(operation: dict[str, Any]) -> None:
    """Bodies of routes that read their own are required, and so is ``x-connection-token``
    (its default only lets body routes be called without it: a missing one is the 401)."""
    if "requestBody" in operation:
        operation["requestBody"]["required"] = True
    for parameter in operation.get("parameters", []):
        if parameter["name"] == "x-connection-token":
            parameter["required"] = True
            parameter["schema"].pop("default", None)


def _drop_unreferenced_schemas(document: dict[str, Any]) -> None:
    """Keep the component schemas the operations reach; drop the rest (Powertools' own models)."""
    schemas = document["components"]["schemas"]
    reachable: set[str] = set()
    pending = _schema_refs(document["paths"])
    while pending:
        name = pending.pop()
        if name not in reachable:
            reachable.add(name)
            pending |= _schema_refs(schemas.get(name, {}))
    for name in set(schemas) - reachable:
        del schemas[name]


def _schema_refs(value: Any) -> set[str]:
    """Names of the component schemas ``value`` points at, however deep."""
    if isinstance(value, dict):
        found = {value["$ref"].rsplit("/", 1)[-1]} if isinstance(value.get("$ref"), str) else set()
        return found.union(*(_schema_refs(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_schema_refs(item) for item in value))
    return set()


# --- errors -------------------------------------------------------------------------------


@app.exception_handler(InvalidParameters)
def on_invalid_parameters(error: InvalidParameters) -> Response:
    """A validated route's parameters were refused before it ran: authentication still answers first."""
    try:
        _principal()
    except ApiError as first:
        return _json(first.status, first.body())
    problem = errors.bad_request("Invalid query or path parameter.", error.details)
    return _json(problem.status, problem.body())


@app.exception_handler(ApiError)
def on_api_error(error: ApiError) -> Response:
    return _json(error.status, error.body(), error.headers)


@app.not_found
def on_not_found(_: NotFoundError) -> Response:
    # The gateway routes any segment as an id, but the resolver's route patterns refuse some
    # characters (a backslash, a quote): such a request lands here, and without valid
    # credentials it must still get the one 401, not a 404 that tells it the route exists.
    _principal()
    return _json(404, errors.not_found("Route").body())


@app.exception_handler(Exception)
def on_unexpected(_: Exception) -> Response:
    logger.exception("unhandled error")
    return _json(500, ApiError(500, "internal_error", "Something went wrong on our side.").body())


# clear_state: keys appended while serving one request (invoice_id, provider) must never
# be logged with the next one, which may be another tenant's or unauthenticated.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
