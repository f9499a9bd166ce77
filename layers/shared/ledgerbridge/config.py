"""Deployment configuration, read from the environment once per container.

Table names default to ``<stack>-invoices`` / ``<stack>-accounts`` / ``<stack>-webhooks`` (the
names template.yaml gives them), so ``ledgerbridge-admin`` finds a stack by its name alone; the
Lambda gets them explicitly from the template.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Settings:
    stack_name: str
    invoices_table: str
    accounts_table: str
    credentials_key: str
    oauth_clients_secret: str
    idempotency_table: str
    auth_cache_seconds: float
    webhooks_table: str


@cache
def settings() -> Settings:
    stack = os.environ.get("LEDGERBRIDGE_STACK", "ledgerbridge")
    return Settings(
        stack_name=stack,
        invoices_table=os.environ.get("LEDGERBRIDGE_INVOICES_TABLE", f"{stack}-invoices"),
        accounts_table=os.environ.get("LEDGERBRIDGE_ACCOUNTS_TABLE", f"{stack}-accounts"),
        credentials_key=os.environ.get("LEDGERBRIDGE_CREDENTIALS_KEY", f"alias/{stack}-credentials"),
        oauth_clients_secret=os.environ.get("LEDGERBRIDGE_OAUTH_CLIENTS_SECRET", f"{stack}/oauth-clients"),
        idempotency_table=os.environ.get("LEDGERBRIDGE_IDEMPOTENCY_TABLE", f"{stack}-idempotency"),
        auth_cache_seconds=min(float(os.environ.get("LEDGERBRIDGE_AUTH_CACHE_SECONDS", "60")), 60.0),
        webhooks_table=os.environ.get("LEDGERBRIDGE_WEBHOOKS_TABLE", f"{stack}-webhooks"),
    )
