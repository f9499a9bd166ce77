"""FakeQuickBooks' own contract: Intuit's token endpoint, bearer checks, query paging shapes.

The e2e suite puts this fake behind a real server, so what it answers must be what QuickBooks
answers, and the refresh flow must work with the real TokenSource end to end.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from ledgerbridge import jsonutil
from ledgerbridge.models import InvoiceInput
from ledgerbridge.providers.base import ConnectionContext, OutboundInvoice, ProviderRejected, RemoteReference
from ledgerbridge.providers.http import ProviderHttp
from ledgerbridge.providers.oauth import OAuthApp, OAuthTokens, TokenSource
from ledgerbridge.providers.quickbooks import TOKEN_URL, QuickBooksProvider
from tests.fakes.quickbooks import REALM_ID, FakeQuickBooks

API = f"https://quickbooks.api.intuit.com/v3/company/{REALM_ID}"
NOW = 1_800_000_000.0


@pytest.fixture
def fake() -> FakeQuickBooks:
    return FakeQuickBooks()


@pytest.fixture
def client(fake: FakeQuickBooks) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(fake.handle))


def refresh(
    client: httpx.Client, refresh_token: str, auth: tuple[str, str] = ("qb-client-id", "qb-client-secret")
):
    return client.post(
        TOKEN_URL, data={"grant_type": "refresh_token", "refresh_token": refresh_token}, auth=auth
    )


def test_a_refresh_issues_new_tokens_and_retires_the_used_refresh_token(client: httpx.Client) -> None:
    first = refresh(client, "qb-refresh-0")
    assert first.status_code == 200
    body = first.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert (body["access_token"], body["refresh_token"]) == ("qb-access-1", "qb-refresh-1")
    again = refresh(client, "qb-refresh-0")
    assert (again.status_code, again.json()) == (400, {"error": "invalid_grant"})
    assert refresh(client, "qb-refresh-1").status_code == 200


def test_the_token_endpoint_needs_the_apps_basic_credentials(client: httpx.Client) -> None:
    refused = refresh(client, "qb-refresh-0", auth=("qb-client-id", "wrong"))
    assert (refused.status_code, refused.json()) == (401, {"error": "invalid_client"})


def test_api_calls_without_a_valid_bearer_get_an_authentication_fault(
    fake: FakeQuickBooks, client: httpx.Client
) -> None:
    response = client.get(f"{API}/query", params={"query": "select * from Item"})
    assert response.status_code == 401
    fault = response.json()["Fault"]
    assert fault["type"] == "AuthenticationFault"
    assert fault["Error"][0]["code"] == "3200"
    fake.expire_access_tokens()
    expired = client.get(f"{API}/invoice/1", headers={"authorization": "Bearer qb-access-0"})
    assert expired.status_code == 401


def test_another_companys_realm_is_forbidden(client: httpx.Client) -> None:
    response = client.get(
        "https://quickbooks.api.intuit.com/v3/company/123/query",
        params={"query": "select * from Item"},
        headers={"authorization": "Bearer qb-access-0"},
    )
    assert response.status_code == 403
    assert response.json()["Fault"]["type"] == "AuthorizationFault"


def test_a_page_past_the_end_is_an_empty_query_response(client: httpx.Client) -> None:
    response = client.get(
        f"{API}/query",
        params={"query": "select * from Vendor STARTPOSITION 4 MAXRESULTS 3"},
        headers={"authorization": "Bearer qb-access-0"},
    )
    assert response.status_code == 200
    assert response.json()["QueryResponse"] == {}


def test_a_created_invoice_can_be_read_back(fake: FakeQuickBooks, client: httpx.Client) -> None:
    body = {
        "CustomerRef": {"value": "1"},
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": 5,
                "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
            }
        ],
    }
    headers = {"authorization": "Bearer qb-access-0", "content-type": "application/json"}
    created = client.post(
        f"{API}/invoice", params={"requestid": "r-1"}, content=jsonutil.dumps(body), headers=headers
    )
    invoice_id = created.json()["Invoice"]["Id"]
    read = client.get(f"{API}/invoice/{invoice_id}", headers=headers)
    assert read.json()["Invoice"] == created.json()["Invoice"]
    assert created.json()["Invoice"]["DocNumber"] == "1044"  # numbering continues after the recorded 1043


class MemoryStore:
    """CredentialStore with versioned, conditional saves."""

    def __init__(self, tokens: OAuthTokens):
        self.tokens = tokens

    def load(self) -> OAuthTokens:
        return self.tokens

    def save(self, tokens: OAuthTokens, replaces: OAuthTokens) -> bool:
        if self.tokens.version != replaces.version:
            return False
        self.tokens = tokens
        return True

    def mark_needs_reauthorization(self, reason: str) -> None:
        raise AssertionError(f"unexpected reauthorization: {reason}")


def test_an_expired_access_token_is_refreshed_and_the_invoice_created(fake: FakeQuickBooks) -> None:
    fake.expire_access_tokens()
    client = httpx.Client(transport=httpx.MockTransport(fake.handle))
    store = MemoryStore(OAuthTokens("qb-access-0", "qb-refresh-0", expires_at=NOW + 3000))
    tokens = TokenSource(
        store, OAuthApp(TOKEN_URL, "qb-client-id", "qb-client-secret"), client, clock=lambda: NOW
    )
    connection = ConnectionContext(
        "conn-qb", "quickbooks", {"realm_id": REALM_ID, "default_item_id": "1"}, ProviderHttp(client, tokens)
    )
    invoice = InvoiceInput.model_validate(
        {
            "contact_id": "0196a3f2-0000-7000-8000-000000000000",
            "line_items": [{"total_amount": Decimal("12.5")}],
        }
    )
    outbound = OutboundInvoice("inv-1", invoice, {"contact_id": RemoteReference("contact", "1", "Amy")})
    provider = QuickBooksProvider()

    remote = provider.send_invoice(connection, outbound, provider.map_invoice(connection, outbound))

    assert [request.url.path for request in fake.requests] == [
        f"/v3/company/{REALM_ID}/invoice",
        "/oauth2/v1/tokens/bearer",
        f"/v3/company/{REALM_ID}/invoice",
    ]
    assert fake.requests[-1].headers["authorization"] == "Bearer qb-access-1"
    assert (store.tokens.refresh_token, store.tokens.version) == ("qb-refresh-1", 1)
    assert remote.fields["total_amount"] == Decimal("12.5")


def test_a_wrong_realm_is_a_rejection_not_a_retry(fake: FakeQuickBooks) -> None:
    client = httpx.Client(transport=httpx.MockTransport(fake.handle))

    class Tokens:
        def access_token(self) -> str:
            return "qb-access-0"

        def refresh_after_rejection(self, rejected: str) -> str:
            raise AssertionError("no refresh expected")

    connection = ConnectionContext("c", "quickbooks", {"realm_id": "123"}, ProviderHttp(client, Tokens()))
    with pytest.raises(ProviderRejected, match="ApplicationAuthorizationFailed"):
        QuickBooksProvider().list_references(connection)
    assert len(fake.requests) == 1
