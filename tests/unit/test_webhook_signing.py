"""Signatures made here verify with the standardwebhooks library a receiver uses, and only then."""

from __future__ import annotations

import base64
import json
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from ledgerbridge.webhooks.signing import new_secret, signature_headers

BODY = json.dumps({"type": "invoice.created", "data": {"id": "inv_123", "total_amount": "108.00"}})


def test_a_new_secret_is_whsec_and_32_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert new_secret() != secret


def test_headers_for_one_secret_verify() -> None:
    secret = new_secret()
    now = int(time.time())
    headers = signature_headers("msg_1", now, BODY, [secret])
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(now)
    assert headers["webhook-signature"].startswith("v1,")
    assert " " not in headers["webhook-signature"]
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)


def test_during_a_rotation_either_secret_verifies() -> None:
    new, old = new_secret(), new_secret()
    headers = signature_headers("msg_2", int(time.time()), BODY, [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        assert Webhook(secret).verify(BODY.encode(), headers) == json.loads(BODY)


def test_a_tampered_body_fails() -> None:
    secret = new_secret()
    headers = signature_headers("msg_3", int(time.time()), BODY, [secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace("108.00", "1.00"), headers)


def test_a_changed_message_id_fails() -> None:
    secret = new_secret()
    headers = signature_headers("msg_4", int(time.time()), BODY, [secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "msg_5"})


def test_a_wrong_secret_fails() -> None:
    headers = signature_headers("msg_6", int(time.time()), BODY, [new_secret()])
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_a_stale_timestamp_fails() -> None:
    secret = new_secret()
    headers = signature_headers("msg_7", int(time.time()) - 3600, BODY, [secret])
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(BODY, headers)


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError):
        signature_headers("msg_8", int(time.time()), BODY, [])
