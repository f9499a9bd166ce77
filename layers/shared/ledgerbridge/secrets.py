"""Deployment secrets: the OAuth apps' client ids, secrets and redirect URIs, one Secrets Manager secret.

The secret (named in template.yaml, LEDGERBRIDGE_OAUTH_CLIENTS_SECRET) holds
``{"quickbooks": {"client_id": "...", "client_secret": "..."}, "freshbooks": {"client_id":
"...", "client_secret": "...", "redirect_uri": "https://..."}, ...}``. ``redirect_uri`` is the
one registered with the app at the provider: FreshBooks wants it on every token refresh, so
a FreshBooks app without it counts as not configured (a 503 before anything is sent, rather
than a refresh the provider refuses). It is configuration of the deployment, never per
request. Powertools Parameters caches it for five minutes per container, so a rotated secret
is picked up without a redeploy.
"""

from __future__ import annotations

from typing import NamedTuple

from ledgerbridge.config import settings
from ledgerbridge.errors import ApiError

CACHE_SECONDS = 300


class OAuthClient(NamedTuple):
    """The deployment's OAuth app at one provider."""

    client_id: str
    client_secret: str
    redirect_uri: str | None


def oauth_client(provider: str, needs_redirect_uri: bool = False) -> OAuthClient:
    """The OAuth app at ``provider``; 503 ``provider_not_configured`` if it lacks what is needed."""
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
    redirect_uri = entry.get("redirect_uri")
    redirect_uri = redirect_uri if isinstance(redirect_uri, str) and redirect_uri else None
    if needs_redirect_uri and redirect_uri is None:
        raise _not_configured(provider, "its redirect_uri")
    return OAuthClient(str(entry["client_id"]), str(entry["client_secret"]), redirect_uri)


def _not_configured(provider: str, missing: str | None = None) -> ApiError:
    detail = f" ({missing} is missing)" if missing else ""
    return ApiError(
        503,
        "provider_not_configured",
        f"Ledgerbridge's OAuth app for {provider} is not configured{detail}; nothing was sent.",
    )
