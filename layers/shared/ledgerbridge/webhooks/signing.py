"""Standard Webhooks signatures (https://www.standardwebhooks.com) for outbound webhooks.

Decisions:

- The headers are ``webhook-id``, ``webhook-timestamp`` (epoch seconds) and
  ``webhook-signature``, so receivers verify with any Standard Webhooks library instead of
  code of their own. The signature is made by ``standardwebhooks.Webhook.sign``, never by a
  hand-rolled HMAC, so ours cannot drift from what those libraries check.
- Secrets are ``whsec_`` + base64 of 32 random bytes, the format the libraries accept as is.
- During a rotation every current secret signs: ``webhook-signature`` holds one ``v1,<base64>``
  per secret, space-separated, and a receiver holding either secret verifies.
"""

from __future__ import annotations

import base64
import secrets as _secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """ "whsec_" + base64 of 32 random bytes (secrets.token_bytes)."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode("ascii")


def signature_headers(message_id: str, timestamp: int, body: str, secrets: Sequence[str]) -> dict[str, str]:
    """Standard Webhooks headers: webhook-id, webhook-timestamp (epoch seconds), webhook-signature
    with one "v1,<base64>" per secret, space-separated (during a rotation both the new and the
    old secret sign, so a receiver holding either verifies)."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign a webhook")
    signed_at = datetime.fromtimestamp(timestamp, tz=UTC)
    signatures = [Webhook(secret).sign(message_id, signed_at, body) for secret in secrets]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }
