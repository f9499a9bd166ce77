"""The webhooks function: a project's webhook endpoints, their deliveries and manual retries.

Thin: routes, reading the request, shaping the answer; ``ledgerbridge.webhooks.endpoints`` does
the work. A function of its own, not routes of the API function: it needs the webhooks table,
the webhook queue and KMS Encrypt, which the invoice path must not have, and the invoice path's
cold start need not import any of it.

Every route takes ``x-api-key`` alone (endpoints belong to the project, not to a connection) and
checks it before reading anything else, so a caller without a valid key learns nothing but the
one 401. Bodies go through ``ledgerbridge.request_body`` (413, 415, 400 as on every route);
every error is the API's JSON error shape, and an unexpected one is a bare 500.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from ledgerbridge import errors, jsonutil, request_body
from ledgerbridge.auth import authenticate_project
from ledgerbridge.errors import ApiError
from ledgerbridge.observability import logger, tracer
from ledgerbridge.params import parse_limit
from ledgerbridge.webhooks import endpoints

app = APIGatewayHttpResolver(serializer=jsonutil.dumps)


def _json(status: int, body: Any) -> Response:
    return Response(status, content_types.APPLICATION_JSON, jsonutil.dumps(body))


def _project() -> str:
    return authenticate_project(app.current_event.headers.get("x-api-key"))


def _body() -> dict[str, Any]:
    event = app.current_event
    return request_body.read_json_object(
        event.body, event.is_base64_encoded, event.headers.get("content-type")
    )


@app.post("/webhooks")
def create_webhook() -> Response:
    project_id = _project()
    return _json(201, endpoints.create_endpoint(project_id, _body()))


@app.get("/webhooks")
def list_webhooks() -> Response:
    return _json(200, {"data": endpoints.list_endpoints(_project())})


@app.get("/webhooks/<webhook_id>")
def get_webhook(webhook_id: str) -> Response:
    return _json(200, endpoints.get_endpoint(_project(), webhook_id))


@app.patch("/webhooks/<webhook_id>")
def update_webhook(webhook_id: str) -> Response:
    project_id = _project()
    return _json(200, endpoints.update_endpoint(project_id, webhook_id, _body()))


@app.delete("/webhooks/<webhook_id>")
def delete_webhook(webhook_id: str) -> Response:
    endpoints.delete_endpoint(_project(), webhook_id)
    return Response(204, None, "")


@app.post("/webhooks/<webhook_id>/rotate-secret")
def rotate_secret(webhook_id: str) -> Response:
    return _json(200, endpoints.rotate_secret(_project(), webhook_id))


@app.post("/webhooks/<webhook_id>/test")
def send_test(webhook_id: str) -> Response:
    return _json(202, endpoints.send_test(_project(), webhook_id))


@app.get("/webhooks/<webhook_id>/deliveries")
def list_deliveries(webhook_id: str) -> Response:
    project_id = _project()
    query = app.current_event.query_string_parameters or {}
    limit = parse_limit(query.get("limit"))
    return _json(200, endpoints.list_deliveries(project_id, webhook_id, limit, query.get("cursor")))


@app.post("/webhooks/<webhook_id>/deliveries/<delivery_id>/retry")
def retry_delivery(webhook_id: str, delivery_id: str) -> Response:
    return _json(202, endpoints.retry_delivery(_project(), webhook_id, delivery_id))


@app.exception_handler(ApiError)
def on_api_error(error: ApiError) -> Response:
    return Response(error.status, content_types.APPLICATION_JSON, jsonutil.dumps(error.body()), error.headers)


@app.not_found
def on_not_found(_: NotFoundError) -> Response:
    # The gateway routes any segment as an id, but the resolver's route patterns refuse some
    # characters (a backslash, a quote): such a request lands here, and without a valid key it
    # must still get the one 401, not a 404 that tells it the route exists.
    _project()
    return _json(404, errors.not_found("Route").body())


@app.exception_handler(Exception)
def on_unexpected(_: Exception) -> Response:
    logger.exception("unhandled error")
    return _json(500, ApiError(500, "internal_error", "Something went wrong on our side.").body())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
