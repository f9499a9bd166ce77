"""The connect function: hosted connect pages for end users, connect sessions for SaaS backends.

Thin: routes, reading the request, shaping the answer; ``ledgerbridge.connect`` does the work
and ``ledgerbridge.connect_pages`` renders the HTML. A function of its own, not routes of the
API function: its answers are pages and redirects with their own security headers, and the
invoice path's cold start need not import any of it.

Session routes (``/connect/sessions``) take ``x-api-key`` alone: they act for the project, not
for one connection, and answer JSON in the API's error shape. Page routes take no credentials
(the page token or ``state`` is the capability) and answer HTML; a failure is a page saying
what happened, or a redirect to the session's return URL with ``status=error``.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs, urlencode

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from ledgerbridge import connect, connect_pages, errors, jsonutil, request_body
from ledgerbridge.auth import authenticate_project
from ledgerbridge.errors import ApiError
from ledgerbridge.observability import logger, tracer
from ledgerbridge.params import parse_flag, parse_limit

app = APIGatewayHttpResolver(serializer=jsonutil.dumps)
MAX_FORM_BYTES = 8192


def _public_url() -> str:
    """The API's base URL as the browser sees it (LEDGERBRIDGE_PUBLIC_URL, set by the template);
    without it, the stage's own URL (a ``$default`` stage has no path of its own)."""
    configured = os.environ.get("LEDGERBRIDGE_PUBLIC_URL")
    if configured:
        return configured.rstrip("/")
    context = app.current_event.request_context
    stage = "" if context.stage == "$default" else f"/{context.stage}"
    return f"https://{context.domain_name}{stage}"


def _json(status: int, body: Any) -> Response:
    return Response(status, content_types.APPLICATION_JSON, jsonutil.dumps(body))


def _page(status: int, html: str) -> Response:
    schemes = "http: https:" if _public_url().startswith("http://") else "https:"
    return Response(status, None, html, headers=connect_pages.security_headers(schemes))


def _redirect(url: str) -> Response:
    return Response(303, None, "", headers={**connect_pages.security_headers(), "Location": url})


def _is_json_route() -> bool:
    """Routes for SaaS backends answer JSON; the end user's pages answer HTML."""
    path = app.current_event.path
    return path.startswith(("/connect/sessions", "/connections"))


def _project() -> str:
    return authenticate_project(app.current_event.headers.get("x-api-key"))


# --- the SaaS backend -------------------------------------------------------------------------


@app.post("/connect/sessions")
def create_session() -> Response:
    project_id = _project()
    event = app.current_event
    body = request_body.read_json_object(
        event.body, event.is_base64_encoded, event.headers.get("content-type")
    )
    return _json(201, connect.create_session(project_id, body, _public_url()))


@app.get("/connect/sessions/<session_id>")
def read_session(session_id: str) -> Response:
    return _json(200, connect.read_session(_project(), session_id))


@app.get("/connections")
def list_connections() -> Response:
    return _json(200, {"data": connect.list_connections(_project())})


@app.get("/connections/<connection_id>")
def get_connection(connection_id: str) -> Response:
    return _json(200, connect.get_connection(_project(), connection_id))


@app.get("/connections/<connection_id>/invoices")
def connection_invoices(connection_id: str) -> Response:
    project_id = _project()
    query = app.current_event.query_string_parameters or {}
    limit = parse_limit(query.get("limit"))
    include_remote_data = parse_flag(query.get("remote_data"), "remote_data")
    cursor = query.get("cursor")
    page = connect.connection_invoices(project_id, connection_id, limit, cursor, include_remote_data)
    return _json(200, page.model_dump())


@app.delete("/connections/<connection_id>")
def delete_connection(connection_id: str) -> Response:
    connect.delete_connection(_project(), connection_id)
    return Response(204, None, "")


# --- the end user's browser -------------------------------------------------------------------


@app.get("/connect/callback")
def callback() -> Response:
    query = dict(app.current_event.query_string_parameters or {})
    outcome = connect.callback(query, _public_url())
    if isinstance(outcome, connect.TenantChoice):
        return _page(200, connect_pages.tenant_page(outcome))
    return _finished(outcome)


@app.get("/connect/tenant")
def choose_tenant() -> Response:
    choice = (app.current_event.query_string_parameters or {}).get("choice") or ""
    return _finished(connect.choose_tenant(choice))


@app.get("/connect/sandbox/consent")
def sandbox_consent() -> Response:
    state = (app.current_event.query_string_parameters or {}).get("state") or ""
    if not connect.sandbox_consent_is_valid(state):
        raise connect.ConnectFailed("invalid_request", "This consent request is not valid.")
    callback_url = f"{_public_url()}/connect/callback"
    approve = f"{callback_url}?{urlencode({'state': state, 'code': 'sandbox'})}"
    refuse = f"{callback_url}?{urlencode({'state': state, 'error': 'access_denied'})}"
    return _page(200, connect_pages.sandbox_consent_page(approve, refuse))


@app.get("/connect/<page_token>")
def ledger_page(page_token: str) -> Response:
    return _page(200, connect_pages.ledger_page(connect.page(page_token), page_token))


@app.post("/connect/<page_token>")
def choose_ledger(page_token: str) -> Response:
    form = _form()
    provider = form.pop("provider", "")
    return _redirect(connect.authorize(page_token, provider, form, _public_url()).url)


def _form() -> dict[str, str]:
    """The ledger form's fields; anything but a small UTF-8 form (raw bytes, a flood of fields)
    is a page saying so, never an error of ours."""
    event = app.current_event
    try:
        raw = event.decoded_body if event.is_base64_encoded else (event.body or "")
        if len(raw.encode()) > MAX_FORM_BYTES:
            raise ValueError("too large")
        fields = parse_qs(raw, max_num_fields=20, errors="strict")
    except ValueError:  # UnicodeDecodeError (raw or percent-escaped bytes), too many fields, too large
        raise connect.ConnectFailed("invalid_request", "The form could not be read. Start again.") from None
    return {key: values[-1] for key, values in fields.items()}


def _finished(outcome: connect.Redirect) -> Response:
    if outcome.url:
        return _redirect(outcome.url)
    return _page(
        200, connect_pages.message_page("Connected", "Your ledger is connected. You can close this window.")
    )


# --- errors -------------------------------------------------------------------------------------


@app.exception_handler(connect.ConnectFailed)
def on_connect_failed(failure: connect.ConnectFailed) -> Response:
    return _page(400, connect_pages.message_page("Could not connect", failure.message))


@app.exception_handler(ApiError)
def on_api_error(error: ApiError) -> Response:
    if _is_json_route():
        return _json(error.status, error.body())
    return _page(error.status, connect_pages.message_page("Could not connect", error.message))


@app.not_found
def on_not_found(_: NotFoundError) -> Response:
    return _json(404, errors.not_found("Route").body())


@app.exception_handler(Exception)
def on_unexpected(_: Exception) -> Response:
    logger.exception("unhandled error")
    if _is_json_route():
        return _json(500, ApiError(500, "internal_error", "Something went wrong on our side.").body())
    return _page(500, connect_pages.message_page("Something went wrong", "Something went wrong on our side."))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
