"""``ledgerbridge-admin``: projects, API keys and connections, for operators.

Talks to real AWS with the usual credentials chain, or to the local stack when
``AWS_ENDPOINT_URL`` is set. Tables are found by stack name (``--stack`` or
LEDGERBRIDGE_STACK, default ``ledgerbridge``) unless LEDGERBRIDGE_*_TABLE say otherwise.
API keys and connection tokens are printed once, here, and stored only as hashes.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ledgerbridge import connections
from ledgerbridge.auth import Principal, secret_hash
from ledgerbridge.config import settings
from ledgerbridge.ids import reference_id, uuid7
from ledgerbridge.models import now_text
from ledgerbridge.service import failure_text
from ledgerbridge.store import accounts
from ledgerbridge.store.credentials import encrypt_credentials


class AdminError(Exception):
    """A mistake the operator can fix; printed without a traceback."""


def create_project(name: str) -> dict[str, str]:
    project_id = str(uuid7())
    accounts.put_project(project_id, name, now_text())
    return {"project_id": project_id, "name": name}


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


def _oauth_credentials(provider: str, credentials: dict[str, Any] | None) -> dict[str, Any]:
    """The tokens from the OAuth consent flow, with ``expires_in`` turned into ``expires_at``."""
    if not credentials:
        raise AdminError(f"{provider} needs --credentials: a JSON file with access_token and refresh_token")
    missing = [key for key in ("access_token", "refresh_token") if not credentials.get(key)]
    if missing:
        raise AdminError(f"the credentials file has no {', '.join(missing)}")
    expires_at = credentials.get("expires_at") or time.time() + float(credentials.get("expires_in", 0))
    return {
        "access_token": credentials["access_token"],
        "refresh_token": credentials["refresh_token"],
        "expires_at": float(expires_at),
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
    connection_id = str(uuid7())
    token = f"lbc_{secrets.token_urlsafe(32)}"
    record = {
        "project_id": project_id,
        "connection_id": connection_id,
        "provider": provider,
        "settings": connection_settings or {},
        "credentials": encrypt_credentials(connection_id, credentials) if credentials else None,
        "credentials_version": 0 if credentials else None,
        "created_at": now_text(),
    }
    accounts.put_connection(record, secret_hash(token))
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
        try:
            results.append(
                {"connection_id": principal.connection_id, "synced": connections.sync_references(principal)}
            )
        except Exception as exc:  # report per connection, go on with the others
            error = f"{type(exc).__name__}: {failure_text(principal, exc)}"  # printed and logged
            results.append({"connection_id": principal.connection_id, "error": error})
    if connection_id and not results:
        raise AdminError(f"no connection {connection_id}")
    return results


def seed_demo() -> dict[str, Any]:
    """A demo project, API key and sandbox connection (what ``make run`` prints)."""
    project = create_project("Demo project")
    key = create_api_key(project["project_id"])
    connection = create_connection(project["project_id"], "sandbox")
    sync_references(connection_id=connection["connection_id"])
    demo_contact = reference_id(connection["connection_id"], "contact", "C-1001")
    return {**project, **key, **connection, "contact_id": demo_contact}


# --- command line -------------------------------------------------------------------------


def _setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledgerbridge-admin", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--stack", help="stack name (default: $LEDGERBRIDGE_STACK or ledgerbridge)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("create-project", help="create a project").add_argument("--name", required=True)
    commands.add_parser("create-api-key", help="issue an API key (shown once)").add_argument(
        "--project", required=True
    )
    commands.add_parser("revoke-api-key", help="revoke an API key").add_argument("--key-id", required=True)
    connection = commands.add_parser("create-connection", help="connect a ledger (token shown once)")
    connection.add_argument("--project", required=True)
    connection.add_argument("--provider", required=True)
    connection.add_argument("--credentials", type=Path, help="JSON file with the provider's OAuth tokens")
    connection.add_argument("--setting", type=_setting, action="append", default=[], metavar="KEY=VALUE")
    commands.add_parser("list-connections", help="list connections").add_argument("--project")
    sync = commands.add_parser(
        "sync-references", help="sync contacts, items, accounts, tracking from providers"
    )
    sync.add_argument("--project")
    sync.add_argument("--connection")
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
    if args.command == "create-api-key":
        return create_api_key(args.project)
    if args.command == "revoke-api-key":
        return revoke_api_key(args.key_id)
    if args.command == "create-connection":
        credentials = _read_credentials(args.credentials)
        return create_connection(args.project, args.provider, credentials, dict(args.setting))
    if args.command == "sync-references":
        return sync_references(args.project, args.connection)
    return list_connections(args.project)


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
