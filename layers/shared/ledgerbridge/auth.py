"""Who is calling: API key -> project, connection token -> one of that project's connections.

Every failure is the same 401, so a caller cannot tell an unknown token from another
project's. Successful lookups are cached per container for up to
LEDGERBRIDGE_AUTH_CACHE_SECONDS (at most 60 s) so the warm path reads nothing; failures
are not cached, so a key works the moment it is created. A revoked key therefore keeps
working on a warm container for at most that long.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ledgerbridge.config import settings
from ledgerbridge.errors import unauthorized
from ledgerbridge.expiring import ExpiringCache
from ledgerbridge.store import accounts


@dataclass(frozen=True)
class Principal:
    project_id: str
    connection_id: str
    provider: str
    connection_settings: dict[str, str] = field(default_factory=dict)


_cache: ExpiringCache[tuple[str, str], Principal] = ExpiringCache(limit=1024)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _lookup(key_hash: str, token_hash: str) -> Principal:
    api_key = accounts.find_api_key(key_hash)
    if api_key is None or api_key.get("revoked_at"):
        raise unauthorized()
    token = accounts.find_connection_token(token_hash)
    if token is None or token["project_id"] != api_key["project_id"]:
        raise unauthorized()
    connection = accounts.get_connection(token["project_id"], token["connection_id"])
    if connection is None or connection.get("status") == "deleted":
        raise unauthorized()
    return Principal(
        project_id=token["project_id"],
        connection_id=token["connection_id"],
        provider=connection["provider"],
        connection_settings=connection.get("settings") or {},
    )


def authenticate_project(api_key: str | None) -> str:
    """The project an ``x-api-key`` belongs to, for the routes that act for a project, not a
    connection (connect sessions, connections); the same one 401 for every failure."""
    if not _plausible(api_key):
        raise unauthorized()
    found = accounts.find_api_key(secret_hash(api_key))
    if found is None or found.get("revoked_at"):
        raise unauthorized()
    return str(found["project_id"])


# Our keys and tokens are short ASCII; anything else is refused unhashed, so no header value
# (megabytes, a lone surrogate smuggled into the event) is ever encoded or looked up.
_MAX_SECRET_LENGTH = 256


def _plausible(secret: str | None) -> bool:
    return bool(secret) and len(secret) <= _MAX_SECRET_LENGTH and secret.isascii()


def authenticate(api_key: str | None, connection_token: str | None) -> Principal:
    if not _plausible(api_key) or not _plausible(connection_token):
        raise unauthorized()
    cache_key = (secret_hash(api_key), secret_hash(connection_token))
    principal = _cache.get(cache_key)
    if principal is None:
        principal = _lookup(*cache_key)
        _cache.put(cache_key, principal, settings().auth_cache_seconds)
    return principal
