"""A QuickBooks connection answered by the tests' fake, for the warm benchmark and its call counts.

The connection is made as a customer's would be (the OAuth app in Secrets Manager, tokens
KMS-encrypted in DynamoDB, references synced from the ledger), so a create runs the real
provider module, TokenSource and ProviderHttp. Whoever calls ``connect`` first points
``ledgerbridge.providers.http.shared_client`` at an httpx client whose transport reaches the
fake (``tests.fakes.quickbooks.FakeQuickBooks.handle``): the reference sync goes through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3

from ledgerbridge import admin
from ledgerbridge.config import settings
from ledgerbridge.ids import reference_id
from ledgerbridge.providers.quickbooks import MINOR_VERSION, api_base_url

CUSTOMER_ID = "1"  # a USD customer of the recorded company
ITEM_ID = "1"  # a service item of the recorded company


@dataclass(frozen=True)
class Connection:
    connection_id: str
    connection_token: str
    contact_id: str  # Ledgerbridge's id of customer CUSTOMER_ID
    access_token: str  # the one the connection starts with (what a warm container holds)
    invoice_url: str  # where QuickBooks creates the company's invoices
    minor_version: str  # the API version the provider module pins


def connect(project_id: str, fake: Any) -> Connection:
    """A QuickBooks connection of ``project_id`` to ``fake``'s company, its references synced."""
    apps = {"quickbooks": {"client_id": fake.client_id, "client_secret": fake.client_secret}}
    boto3.client("secretsmanager").put_secret_value(
        SecretId=settings().oauth_clients_secret, SecretString=json.dumps(apps)
    )
    [access_token], [refresh_token] = fake.access_tokens, fake.refresh_tokens  # the fake's first ones
    tokens = {"access_token": access_token, "refresh_token": refresh_token, "expires_in": 3600}
    options = {"realm_id": fake.realm_id, "default_item_id": ITEM_ID}
    created = admin.create_connection(project_id, "quickbooks", tokens, options)
    [synced] = admin.sync_references(connection_id=created["connection_id"])
    if "error" in synced:
        raise RuntimeError(f"QuickBooks reference sync failed: {synced}")
    return Connection(
        connection_id=created["connection_id"],
        connection_token=created["connection_token"],
        contact_id=reference_id(created["connection_id"], "contact", CUSTOMER_ID),
        access_token=access_token,
        invoice_url=f"{api_base_url(options)}/v3/company/{fake.realm_id}/invoice",
        minor_version=MINOR_VERSION,
    )
