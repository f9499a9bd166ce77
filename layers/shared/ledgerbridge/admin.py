"""``ledgerbridge-admin``: projects, API keys, connections and webhooks, for operators.

Talks to real AWS with the usual credentials chain, or to the local stack when
``AWS_ENDPOINT_URL`` is set. Tables are found by stack name (``--stack`` or
LEDGERBRIDGE_STACK, default ``ledgerbridge``) unless LEDGERBRIDGE_*_TABLE say otherwise.
API keys and connection tokens are printed once, here, and stored only as hashes.
Webhook commands call the same functions as the API's ``/webhooks`` routes (the same checks,
the signing secret shown once); the API's refusals are printed as operator mistakes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import TypeAdapter, ValidationError

from ledgerbridge import connections
from ledgerbridge.auth import Principal, secret_hash
from ledgerbridge.aws import client
from ledgerbridge.config import settings
from ledgerbridge.errors import ApiError
from ledgerbridge.ids import reference_id, uuid7
from ledgerbridge.models import DateTime, now_text
from ledgerbridge.service import failure_text
from ledgerbridge.store import accounts

# The API's own date-time rules (RFC 3339 with an offset) for a credentials file's expires_at.
_DATE_TIME: TypeAdapter[Any] = TypeAdapter(DateTime)
MAX_EPOCH_SECONDS = 253402300800  # 10000-01-01: larger is milliseconds, or nonsense


class AdminError(Exception):
    """A mistake the operator can fix; printed without a traceback."""


def create_project(name: str) -> dict[str, str]:
    project_id = str(uuid7())
    accounts.put_project(project_id, name, now_text())
    return {"project_id": project_id, "name": name}


def set_project(project_id: str, return_urls: list[str]) -> dict[str, Any]:
    """``set-project --return-url URL`` (repeatable): where connect sessions may send end users
    back to. Each must be an absolute https URL (http only for localhost, for local testing);
    the list given replaces the project's list."""
    _require_project(project_id)
    for url in return_urls:
        parts = urlsplit(url)
        local = parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1")
        if not (parts.scheme == "https" or local) or not parts.hostname or parts.fragment:
            raise AdminError(f"--return-url must be an https URL without a #fragment, not {url!r}")
    accounts.set_return_urls(project_id, list(dict.fromkeys(return_urls)))
    return {"project_id": project_id, "return_urls": list(dict.fromkeys(return_urls))}


def _require_project(project_id: str) -> None:
    if accounts.get_project(project_id) is None:
        raise AdminError(f"no project {project_id}")


def create_api_key(project_id: str) -> dict[str, str]:
    _require_project(project_id)
    key_id = secrets.token_hex(8)
    api_key = f"lbk_{key_id}_{secrets.token_urlsafe(32)}"
    accounts.put_api_key(project_id, key_id, secret_hash(api_key), now_text())
    return {"project_id": project_id, "key_id": key_id, "api_key": api_key}


def revoke_api_key(key_id: str) -> dict[str, str]:
    key = accounts.find_api_key_by_id(key_id)
    if key is None:
        raise AdminError(f"no API key {key_id}")
    revoked_at = now_text()
    accounts.revoke_api_key(key["project_id"], key_id, key["key_hash"], revoked_at)
    return {"key_id": key_id, "revoked_at": revoked_at}


def _seconds(value: Any) -> float | None:
    """A JSON number, or a string holding one (Exact sends ``"expires_in": "600"``); None otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _expires_at(value: Any) -> float:
    """``expires_at`` as Unix seconds: epoch seconds, or an RFC 3339 date-time with an offset."""
    seconds = _seconds(value)
    if seconds is None and isinstance(value, str):
        try:
            seconds = _DATE_TIME.validate_python(value).timestamp()
        except ValidationError:
            seconds = None
    if seconds is None or not 0 < seconds < MAX_EPOCH_SECONDS:
        raise AdminError(
            "the credentials file's expires_at must be epoch seconds or an RFC 3339 date-time "
            f"with an offset (such as 2026-11-24T10:00:00Z), not {json.dumps(value, default=str)}"
        )
    return seconds


def _expires_in(value: Any) -> float:
    """``expires_in``: seconds from now, as the token endpoint answered it."""
    seconds = _seconds(value)
    if seconds is None or seconds < 0:
        raise AdminError(
            "the credentials file's expires_in must be a number of seconds from now, "
            f"not {json.dumps(value, default=str)}"
        )
    return time.time() + seconds


def _oauth_credentials(provider: str, credentials: dict[str, Any] | None) -> dict[str, Any]:
    """The tokens from the OAuth consent flow, with their expiry as Unix seconds.

    ``expires_at`` (epoch seconds or RFC 3339) wins over ``expires_in`` (seconds from now, what
    a token endpoint answers); with neither the token counts as expiring, so the first call
    refreshes it.
    """
    if not credentials:
        raise AdminError(f"{provider} needs --credentials: a JSON file with access_token and refresh_token")
    missing = [key for key in ("access_token", "refresh_token") if not credentials.get(key)]
    if missing:
        raise AdminError(f"the credentials file has no {', '.join(missing)}")
    if credentials.get("expires_at") is not None:
        expires_at = _expires_at(credentials["expires_at"])
    elif credentials.get("expires_in") is not None:
        expires_at = _expires_in(credentials["expires_in"])
    else:
        expires_at = time.time()
    return {
        "access_token": credentials["access_token"],
        "refresh_token": credentials["refresh_token"],
        "expires_at": expires_at,
    }


def create_connection(
    project_id: str,
    provider: str,
    credentials: dict[str, Any] | None = None,
    connection_settings: dict[str, str] | None = None,
) -> dict[str, Any]:
    _require_project(project_id)
    if provider not in connections.PROVIDER_FACTORIES:
        raise AdminError(f"provider must be one of: {', '.join(sorted(connections.PROVIDER_FACTORIES))}")
    if connections.provider_for(provider).oauth_token_url(connection_settings or {}):
        credentials = _oauth_credentials(provider, credentials)
    connection_id, token = connections.store_connection(
        project_id, provider, credentials, connection_settings
    )
    return {
        "project_id": project_id,
        "connection_id": connection_id,
        "provider": provider,
        "connection_token": token,
    }


CONNECTION_FIELDS = ("project_id", "connection_id", "provider", "settings", "status_reason", "created_at")


def list_connections(project_id: str | None) -> list[dict[str, Any]]:
    project_ids = [project_id] if project_id else [p["pk"].split("#", 1)[1] for p in accounts.list_projects()]
    return [
        {key: connection.get(key) for key in CONNECTION_FIELDS}
        | {"status": connection.get("status") or "active"}
        for pid in project_ids
        for connection in accounts.list_connections(pid)
    ]


def _sync_one(principal: Principal) -> dict[str, Any]:
    """``{"synced": counts by kind}``, or ``{"error": text}``: a failure is reported, not raised."""
    try:
        return {"synced": connections.sync_references(principal)}
    except ApiError as exc:  # Ledgerbridge's own answer (the OAuth app not configured): its words
        return {"error": f"{exc.error}: {exc.message}"}
    except Exception as exc:  # report per connection, go on with the others
        return {"error": f"{type(exc).__name__}: {failure_text(principal, exc)}"}  # printed and logged


def sync_references(project_id: str | None = None, connection_id: str | None = None) -> list[dict[str, Any]]:
    """Sync one connection, a project's, or every connection; one failure does not stop the rest."""
    results = []
    for connection in list_connections(project_id):
        if connection_id and connection["connection_id"] != connection_id:
            continue
        principal = Principal(
            connection["project_id"],
            connection["connection_id"],
            connection["provider"],
            connection["settings"] or {},
        )
        results.append({"connection_id": principal.connection_id, **_sync_one(principal)})
    if connection_id and not results:
        raise AdminError(f"no connection {connection_id}")
    return results


def create_synced_connection(
    project_id: str,
    provider: str,
    credentials: dict[str, Any] | None = None,
    connection_settings: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``create-connection``: create it, then sync its references once.

    Invoices name contacts, items and tracking categories by the ids a sync stores, so a
    connection nobody has synced refuses its first invoice with a contact (422). A failed sync
    (the ledger unreachable, the OAuth app not configured yet) is reported with the result and
    does not undo the connection: its token is shown only here, and ``sync-references`` (or the
    scheduled sync) can be run again later.
    """
    created = create_connection(project_id, provider, credentials, connection_settings)
    principal = Principal(project_id, created["connection_id"], provider, connection_settings or {})
    outcome = _sync_one(principal)
    if "error" in outcome:
        return {
            **created,
            "references_error": outcome["error"],
            "next_step": f"ledgerbridge-admin sync-references --connection {created['connection_id']}",
        }
    return {**created, "references_synced": outcome["synced"]}


def seed_demo() -> dict[str, Any]:
    """A demo project, API key and sandbox connection (what ``make run`` prints)."""
    project = create_project("Demo project")
    key = create_api_key(project["project_id"])
    connection = create_connection(project["project_id"], "sandbox")
    sync_references(connection_id=connection["connection_id"])
    demo_contact = reference_id(connection["connection_id"], "contact", "C-1001")
    return {**project, **key, **connection, "contact_id": demo_contact}


# --- webhooks -----------------------------------------------------------------------------


def create_webhook(project_id: str, url: str, events: list[str], description: str | None = None) -> dict:
    """``webhook-create``: register an endpoint; its signing secret is shown here, once."""
    from ledgerbridge.webhooks import endpoints

    _require_project(project_id)
    body: dict[str, Any] = {"url": url, "events": events}
    if description is not None:
        body["description"] = description
    return endpoints.create_endpoint(project_id, body)


def list_webhooks(project_id: str) -> list[dict[str, Any]]:
    from ledgerbridge.webhooks import endpoints

    _require_project(project_id)
    return endpoints.list_endpoints(project_id)


def delete_webhook(project_id: str, webhook_id: str) -> dict[str, Any]:
    from ledgerbridge.webhooks import endpoints

    endpoints.delete_endpoint(project_id, webhook_id)
    return {"id": webhook_id, "deleted": True}


def rotate_webhook_secret(project_id: str, webhook_id: str) -> dict[str, Any]:
    from ledgerbridge.webhooks import endpoints

    return endpoints.rotate_secret(project_id, webhook_id)


def _webhook_queue_url() -> str:
    """The stack's webhook queue: LEDGERBRIDGE_WEBHOOK_QUEUE_URL, else the stack's ``WebhookQueue``
    resource as CloudFormation knows it (a Ref to a queue is its URL)."""
    configured = os.environ.get("LEDGERBRIDGE_WEBHOOK_QUEUE_URL")
    if configured:
        return configured
    try:
        resource = client("cloudformation").describe_stack_resource(
            StackName=settings().stack_name, LogicalResourceId="WebhookQueue"
        )
    except (ClientError, BotoCoreError):
        raise AdminError(
            "cannot find the stack's webhook queue: set LEDGERBRIDGE_WEBHOOK_QUEUE_URL to its URL"
        ) from None
    return resource["StackResourceDetail"]["PhysicalResourceId"]


def send_test_webhook(project_id: str, webhook_id: str) -> dict[str, Any]:
    """``webhook-test``: queue a ``ping`` to the endpoint; ``webhook-deliveries`` shows how it went."""
    from ledgerbridge.webhooks import endpoints

    os.environ["LEDGERBRIDGE_WEBHOOK_QUEUE_URL"] = _webhook_queue_url()
    return endpoints.send_test(project_id, webhook_id)


def webhook_deliveries(project_id: str, webhook_id: str, limit: int = 20, cursor: str | None = None) -> dict:
    from ledgerbridge.webhooks import endpoints

    return endpoints.list_deliveries(project_id, webhook_id, limit, cursor)


def _api_error_text(error: ApiError) -> str:
    details = "; ".join(f"{detail.field}: {detail.reason}" for detail in error.details)
    return f"{error.message} {details}".strip()


# --- command line -------------------------------------------------------------------------


def _setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _global_options(parser: argparse.ArgumentParser, on_command: bool) -> None:
    """``--json`` and ``--stack``, on the program and again on every command.

    Operators type them at either end (``create-project --name x --json``). A command's copy
    defaults to SUPPRESS, so leaving it out there keeps what was given before the command.
    """
    json_default, stack_default = (argparse.SUPPRESS, argparse.SUPPRESS) if on_command else (False, None)
    parser.add_argument("--json", action="store_true", default=json_default, help="machine-readable output")
    stack_help = "stack name (default: $LEDGERBRIDGE_STACK or ledgerbridge)"
    parser.add_argument("--stack", default=stack_default, help=stack_help)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledgerbridge-admin", description=__doc__.splitlines()[0])
    _global_options(parser, on_command=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, on_command=True)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, parents=[common])

    command("create-project", "create a project").add_argument("--name", required=True)
    project = command("set-project", "set a project's registered connect return URLs")
    project.add_argument("--project", required=True)
    project.add_argument("--return-url", action="append", default=[], metavar="URL", dest="return_urls")
    command("create-api-key", "issue an API key (shown once)").add_argument("--project", required=True)
    command("revoke-api-key", "revoke an API key").add_argument("--key-id", required=True)
    connection = command("create-connection", "connect a ledger and sync its references (token shown once)")
    connection.add_argument("--project", required=True)
    connection.add_argument("--provider", required=True)
    connection.add_argument("--credentials", type=Path, help="JSON file with the provider's OAuth tokens")
    connection.add_argument("--setting", type=_setting, action="append", default=[], metavar="KEY=VALUE")
    command("list-connections", "list connections").add_argument("--project")
    sync = command("sync-references", "sync contacts, items, accounts, tracking from providers")
    sync.add_argument("--project")
    sync.add_argument("--connection")
    webhook = command("webhook-create", "register a webhook endpoint (signing secret shown once)")
    webhook.add_argument("--project", required=True)
    webhook.add_argument("--url", required=True)
    webhook.add_argument("--event", action="append", required=True, metavar="TYPE", dest="events")
    webhook.add_argument("--description")
    command("webhook-list", "list a project's webhook endpoints").add_argument("--project", required=True)
    for name, help_text in (
        ("webhook-delete", "delete a webhook endpoint"),
        ("webhook-rotate-secret", "new signing secret (shown once); the old one signs for 24 more hours"),
        ("webhook-test", "send a ping event to a webhook endpoint"),
        ("webhook-deliveries", "a webhook endpoint's deliveries, newest first"),
    ):
        one = command(name, help_text)
        one.add_argument("--project", required=True)
        one.add_argument("--webhook", required=True, metavar="WEBHOOK_ID")
    deliveries = commands.choices["webhook-deliveries"]
    deliveries.add_argument("--limit", type=int, default=20)
    deliveries.add_argument("--cursor")
    return parser


def _read_credentials(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        credentials = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AdminError(f"cannot read credentials from {path}: {exc}") from None
    if not isinstance(credentials, dict):
        raise AdminError("the credentials file must hold a JSON object")
    return credentials


def _run(args: argparse.Namespace) -> Any:
    if args.command == "create-project":
        return create_project(args.name)
    if args.command == "set-project":
        return set_project(args.project, args.return_urls)
    if args.command == "create-api-key":
        return create_api_key(args.project)
    if args.command == "revoke-api-key":
        return revoke_api_key(args.key_id)
    if args.command == "create-connection":
        credentials = _read_credentials(args.credentials)
        return create_synced_connection(args.project, args.provider, credentials, dict(args.setting))
    if args.command == "sync-references":
        return sync_references(args.project, args.connection)
    if args.command.startswith("webhook-"):
        return _run_webhook(args)
    return list_connections(args.project)


def _run_webhook(args: argparse.Namespace) -> Any:
    try:
        if args.command == "webhook-create":
            return create_webhook(args.project, args.url, args.events, args.description)
        if args.command == "webhook-list":
            return list_webhooks(args.project)
        if args.command == "webhook-delete":
            return delete_webhook(args.project, args.webhook)
        if args.command == "webhook-rotate-secret":
            return rotate_webhook_secret(args.project, args.webhook)
        if args.command == "webhook-test":
            return send_test_webhook(args.project, args.webhook)
        return webhook_deliveries(args.project, args.webhook, args.limit, args.cursor)
    except ApiError as exc:  # the API's refusal (bad URL, unknown webhook, ...): the operator's to fix
        if exc.status >= 500:  # DynamoDB, KMS or SQS failed: an AWS failure, not a mistake
            raise
        raise AdminError(_api_error_text(exc)) from None


def _print(result: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return
    rows = result if isinstance(result, list) else [result]
    for row in rows:
        for key, value in row.items():
            print(f"{key}: {json.dumps(value) if isinstance(value, dict | list) else value}")
        print()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.stack:
        os.environ["LEDGERBRIDGE_STACK"] = args.stack
        settings.cache_clear()
    try:
        _print(_run(args), args.json)
    except AdminError as exc:
        print(f"ledgerbridge-admin: {exc}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as exc:
        print(f"ledgerbridge-admin: AWS call failed: {exc}", file=sys.stderr)
        return 1
    except ApiError as exc:  # storage_unavailable: the AWS call failed below the store
        print(f"ledgerbridge-admin: AWS call failed: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
