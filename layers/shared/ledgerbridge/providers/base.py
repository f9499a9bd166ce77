"""The interface every accounting provider implements.

A provider does three things: turn a unified invoice into its own request (``map_invoice``,
pure, no I/O: mapping errors are caught before anything is stored or sent), send that
request and map the answer back (``send_invoice``), and list the records invoices point at
(``list_references``). A provider that can create contacts also has ``map_contact`` and
``send_contact`` (same contract: map refuses with InvalidInvoice before anything is stored,
send uses the contact id as the idempotency key, and a ledger without idempotency keys adds
``find_contact``, the lookup a resend makes first). They are optional members, not part of
the Protocol, so callers go through the module functions ``map_contact``/``send_contact``
here, whose default refuses with ContactsNotSupported: a ledger without contact creation is
answered 422 before anything is stored. It knows nothing of DynamoDB or API Gateway: references arrive
already resolved, and what it needs from outside (the sandbox's books, OAuth tokens, HTTP)
comes through ``ConnectionContext`` behind small protocols.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from ledgerbridge.models import ContactInput, InvoiceInput
from ledgerbridge.provider_types import ProviderUnavailable as ProviderUnavailable
from ledgerbridge.provider_types import ReauthorizationRequired as ReauthorizationRequired
from ledgerbridge.provider_types import RemoteReference as RemoteReference

if TYPE_CHECKING:
    from ledgerbridge.providers.http import ProviderHttp


@dataclass(frozen=True)
class ConnectionContext:
    """One connection, as a provider sees it during one request.

    ``settings`` are the operator's ``--setting`` values (``realm_id``, ``tenant_id``,
    defaults, and ``custom_field.<slug>=<provider field id>`` definitions). ``http`` sends
    requests with retries and OAuth (None for the sandbox). ``deadline`` is the
    ``time.monotonic()`` by which the provider call must be over (the Lambda's remaining
    time minus a margin), or None for no limit.
    """

    connection_id: str
    provider: str
    settings: dict[str, str] = field(default_factory=dict)
    http: ProviderHttp | None = None
    deadline: float | None = None

    def custom_field_definitions(self) -> dict[str, str]:
        prefix = "custom_field."
        return {key[len(prefix) :]: value for key, value in self.settings.items() if key.startswith(prefix)}


@dataclass(frozen=True)
class OutboundInvoice:
    """What a provider is asked to create.

    ``invoice_id`` is Ledgerbridge's id, passed to the provider as its idempotency key so a
    resend can never create a second invoice. ``references`` maps each reference's field
    path (``contact_id``, ``line_items.0.item_id``, ``tracking_categories.1``,
    ``line_items.0.tracking_categories.0``) to the provider's record for it.
    """

    invoice_id: str
    invoice: InvoiceInput
    references: dict[str, RemoteReference] = field(default_factory=dict)

    def remote_id(self, path: str) -> str | None:
        reference = self.references.get(path)
        return reference.remote_id if reference else None


@dataclass(frozen=True)
class RemoteInvoice:
    """What the provider recorded, mapped back to unified fields."""

    remote_id: str
    remote_data: dict[str, Any]
    remote_updated_at: datetime | None
    fields: dict[str, Any]  # unified fields the provider decided: number, totals, balance, status
    line_remote_ids: list[str | None]


class InvalidInvoice(Exception):
    """The invoice cannot be expressed in this provider (found while mapping, before sending).

    ``details`` are (field path, reason) pairs, answered as a 422 naming each field.
    """

    def __init__(self, details: list[tuple[str, str]]):
        super().__init__("; ".join(f"{path}: {reason}" for path, reason in details))
        self.details = details


@dataclass(frozen=True)
class OutboundContact:
    """A contact a provider is asked to create; ``contact_id`` is its idempotency key."""

    contact_id: str
    contact: ContactInput


class ContactsNotSupported(Exception):
    """This provider cannot create contacts (yet): refused before anything is stored."""


def supports_contacts(provider: object) -> bool:
    return all(callable(getattr(provider, name, None)) for name in ("map_contact", "send_contact"))


def map_contact(provider: object, connection: ConnectionContext, outbound: OutboundContact) -> Any:
    """The provider's request for ``outbound``; raises InvalidInvoice or ContactsNotSupported. No I/O."""
    if not supports_contacts(provider):
        raise ContactsNotSupported(getattr(provider, "name", "this ledger"))
    return provider.map_contact(connection, outbound)  # type: ignore[attr-defined]


def send_contact(
    provider: object, connection: ConnectionContext, outbound: OutboundContact, request: Any
) -> RemoteReference:
    """Create the contact; the answer is a ``contact`` reference with the ledger's id and fields.

    ``fields`` carries unified contact fields (is_customer, is_supplier, email_address,
    tax_number, status, currency, addresses, phone_numbers, remote_updated_at) as the ledger
    recorded them.
    """
    if not supports_contacts(provider):
        raise ContactsNotSupported(getattr(provider, "name", "this ledger"))
    return provider.send_contact(connection, outbound, request)  # type: ignore[attr-defined]


def find_contact(
    provider: object, connection: ConnectionContext, outbound: OutboundContact
) -> RemoteReference | None:
    """Before a resend: the contact an earlier attempt already created, if any.

    Like ``find_invoice``: a ledger without idempotency keys declares ``find_contact`` and looks
    the contact up by a unique reference it wrote from ``outbound.contact_id``; one that honours
    the id as an idempotency key declares none, and None here means "resend with the key".
    """
    finder = getattr(provider, "find_contact", None)
    return finder(connection, outbound) if callable(finder) else None


# --- hosted connect: optional members of a provider with OAuth consent -----------------------
#
# A provider whose connections come from an OAuth consent screen declares, besides
# ``oauth_token_url`` and ``oauth_client_auth``:
#
# - ``connect_choices``: the questions the connect page asks before consent (a Zoho data
#   centre, an Exact country, QuickBooks sandbox or production), each answer a connection
#   setting; () when there are none.
# - ``connect_pkce``: True when its authorisation server takes PKCE (S256).
# - ``authorization_url(request)``: the consent screen's URL, with its scopes (overridable by
#   LEDGERBRIDGE_<PROVIDER>_AUTHORIZE_URL, as the API and token URLs are). No I/O.
# - ``discover_tenants(client, access_token, settings, callback)``: the companies the consent
#   gave access to, read with the fresh access token (``callback`` holds the callback's query
#   parameters, for QuickBooks' ``realmId`` or Zoho's ``accounts-server``).
# - optionally ``revoke_tokens(client, app, tokens)``: revoke them at the provider when a
#   connection is deleted (a provider without a revocation endpoint does not declare it).
#
# The code exchange itself is the same for all (providers/oauth.py ``exchange_code``).


@dataclass(frozen=True)
class ConnectChoice:
    """A question the connect page asks before consent; the answer becomes connection setting ``setting``."""

    setting: str
    label: str
    options: tuple[tuple[str, str], ...]  # (value, what the page shows)
    default: str


@dataclass(frozen=True)
class AuthorizationRequest:
    """What a provider's consent screen is asked for."""

    client_id: str
    redirect_uri: str
    state: str  # random, single use, bound to one connect session
    code_challenge: str  # S256 of the session's verifier; ignored where connect_pkce is False
    settings: dict[str, str]  # the answers to connect_choices


@dataclass(frozen=True)
class Tenant:
    """One company a consent gave access to; ``settings`` become the connection's settings."""

    remote_id: str  # realm id, tenant id, account id, organization id, division, company id
    name: str
    settings: dict[str, str]


def supports_connect(provider: object) -> bool:
    return all(callable(getattr(provider, name, None)) for name in ("authorization_url", "discover_tenants"))


def connect_choices(provider: object) -> tuple[ConnectChoice, ...]:
    return tuple(getattr(provider, "connect_choices", ()) or ())


class ProviderRejected(Exception):
    """The provider refused the invoice as invalid: resending the same thing will not help."""

    def __init__(self, messages: list[str]):
        super().__init__("; ".join(messages))
        self.messages = messages


@dataclass(frozen=True)
class RefreshRules:
    """How one provider's token endpoint wants access tokens refreshed (oauth.TokenSource follows it).

    A provider declares its own as the class attribute ``oauth_refresh``; providers that do not
    get ``DEFAULT_REFRESH_RULES`` (see ``refresh_rules``), which suits OAuth servers that follow RFC 6749.

    - ``margin_seconds``: refresh this long before the access token expires, so a token never
      dies in the middle of a call. Two minutes by default; less where the provider refuses
      early refreshes (Exact Online).
    - ``sends_redirect_uri``: send the OAuth app's registered ``redirect_uri`` with every
      refresh, for token endpoints documented to require it (FreshBooks). The deployment's
      OAuth client secret must then hold one, else the provider counts as not configured.
    - ``too_early``: texts in a refusal's ``error_description`` (or ``Reason`` header) that
      mean "the current access token is still valid, no new one yet": the current token is
      kept, never the connection sent back to consent.
    """

    margin_seconds: float = 120.0
    sends_redirect_uri: bool = False
    too_early: tuple[str, ...] = ()


DEFAULT_REFRESH_RULES = RefreshRules()


def refresh_rules(provider: object) -> RefreshRules:
    """The provider's ``oauth_refresh``, or the defaults for a provider that declares none."""
    rules = getattr(provider, "oauth_refresh", None)
    return rules if isinstance(rules, RefreshRules) else DEFAULT_REFRESH_RULES


class Provider(Protocol):
    """A ledger. Besides these members a provider may declare ``oauth_refresh: RefreshRules``."""

    #: The name in LEDGERBRIDGE_<NAME>_API_URL / _TOKEN_URL and in the OAuth client secret.
    name: str
    #: How its token endpoint takes client credentials: "basic", "form" or "json" (oauth.OAuthApp).
    oauth_client_auth: str

    def oauth_token_url(self, settings: dict[str, str] | None = None) -> str | None:
        """Where this connection's refresh tokens are exchanged (after overrides); None without OAuth.

        ``settings`` are the connection's: a data centre or country can choose the host.
        """
        ...

    def map_invoice(self, connection: ConnectionContext, outbound: OutboundInvoice) -> Any:
        """The provider's request for ``outbound``; raises InvalidInvoice. No I/O."""
        ...

    def send_invoice(
        self, connection: ConnectionContext, outbound: OutboundInvoice, request: Any
    ) -> RemoteInvoice:
        """Create ``request`` at the provider, with ``outbound.invoice_id`` as idempotency key."""
        ...

    def find_invoice(self, connection: ConnectionContext, outbound: OutboundInvoice) -> RemoteInvoice | None:
        """Before a resend: the invoice an earlier attempt already created, if any.

        A provider without idempotency keys looks it up by a unique reference it wrote from
        ``outbound.invoice_id``; one whose API honours the id as an idempotency key may return
        None, since the key already makes the resend create nothing new.
        """
        ...

    def list_references(self, connection: ConnectionContext) -> list[RemoteReference]: ...
