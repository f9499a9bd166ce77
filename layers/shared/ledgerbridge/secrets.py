"""Deployment secrets: the OAuth apps' client ids and secrets, one Secrets Manager secret.

The secret (named in template.yaml, LEDGERBRIDGE_OAUTH_CLIENTS_SECRET) holds
``{"quickbooks": {"client_id": "...", "client_secret": "..."}, "xero": {...}}``. It is
configuration of the deployment, never per request. Powertools Parameters caches it for
five minutes per container, so a rotated secret is picked up without a redeploy.
"""

from __future__ import annotations

from ledgerbridge.config import settings
from ledgerbridge.errors import ApiError

CACHE_SECONDS = 300


def oauth_client(provider: str) -> tuple[str, str]:
    """(client_id, client_secret) of the deployment's OAuth app at ``provider``."""
    from aws_lambda_powertools.utilities import parameters  # only providers with OAuth need it

    try:
        clients = parameters.get_secret(
            settings().oauth_clients_secret, transform="json", max_age=CACHE_SECONDS
        )
    except parameters.exceptions.GetParameterError as exc:
        raise _not_configured(provider) from exc
    entry = clients.get(provider) if isinstance(clients, dict) else None
    if not isinstance(entry, dict) or not entry.get("client_id") or not entry.get("client_secret"):
        raise _not_configured(provider)
    return str(entry["client_id"]), str(entry["client_secret"])


def _not_configured(provider: str) -> ApiError:
    return ApiError(
        503,
        "provider_not_configured",
        f"Ledgerbridge's OAuth app for {provider} is not configured; nothing was sent.",
    )
