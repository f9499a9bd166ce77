"""Value types that both ``providers/`` and ``store/`` need, kept below both.

The credential store saves and loads OAuth tokens and raises the two provider failures; the
providers' HTTP and OAuth code raise them too. The sandbox ledger's books (a store) raise
NumberTaken, which the sandbox provider answers. Defined here, neither package imports the
other, and ``providers/base.py`` and ``providers/http.py`` no longer import each other:
``base`` and ``oauth`` re-export these names, so provider modules keep importing them there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ProviderUnavailable(Exception):
    """The provider could not be reached or failed on its side: the invoice may be resent."""


class ReauthorizationRequired(Exception):
    """The provider refused the connection's refresh token: a person must connect it again."""


class NumberTaken(Exception):
    """Another invoice of this connection already carries the number (the sandbox ledger's books
    raise it from store/sandbox_ledger.py; providers/sandbox.py answers it as a refusal)."""


@dataclass(frozen=True)
class RemoteReference:
    """A record of the provider's that invoices point at.

    ``kind`` is one of contact, item, account, tracking_category, accounting_period.
    ``fields`` holds what a mapper or a reader needs beyond the id (``is_customer``,
    ``is_supplier``, a tracking category's ``category_name``/``option_name``, an item's
    ``code``, ...); ``remote_data`` is the provider's own record.
    """

    kind: str
    remote_id: str
    name: str
    fields: dict[str, Any] = field(default_factory=dict)
    remote_data: dict[str, Any] | None = None


@dataclass(frozen=True)
class OAuthTokens:
    access_token: str
    refresh_token: str
    expires_at: float  # Unix seconds
    version: int = 0  # the store's version of these tokens (for conditional saves)

    def to_credentials(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any], version: int) -> OAuthTokens:
        return cls(
            access_token=str(credentials["access_token"]),
            refresh_token=str(credentials["refresh_token"]),
            expires_at=float(credentials.get("expires_at", 0)),
            version=version,
        )
