"""Provider credentials: KMS-encrypted in the connection item, versioned for safe refreshes.

The ciphertext is bound to its connection by KMS encryption context, so a blob copied to
another connection's item does not decrypt. ``credentials_version`` makes token saves
conditional: two containers refreshing at once cannot overwrite a newer token with an
older one (see providers/oauth.py).
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from ledgerbridge.aws import client
from ledgerbridge.config import settings
from ledgerbridge.provider_types import OAuthTokens, ProviderUnavailable, ReauthorizationRequired
from ledgerbridge.store.dynamo import (
    STORAGE_ERRORS,
    dynamodb,
    from_item,
    is_condition_failure,
    storage_unavailable,
    to_values,
)

NEEDS_REAUTHORIZATION = "needs_reauthorization"


def encrypt_json(context: dict[str, str], value: Any) -> bytes:
    """``value`` as JSON, encrypted with the credentials key and bound to ``context`` (KMS
    encryption context): provider tokens to their connection, webhook secrets to their endpoint."""
    response = client("kms").encrypt(
        KeyId=settings().credentials_key, Plaintext=json.dumps(value).encode(), EncryptionContext=context
    )
    return response["CiphertextBlob"]


def decrypt_json(context: dict[str, str], blob: bytes) -> Any:
    """Inverse of ``encrypt_json``; a blob made for another context does not decrypt."""
    return json.loads(client("kms").decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"])


def encrypt_credentials(connection_id: str, credentials: dict[str, Any]) -> bytes:
    return encrypt_json({"connection_id": connection_id}, credentials)


def decrypt_credentials(connection_id: str, blob: bytes) -> dict[str, Any]:
    return decrypt_json({"connection_id": connection_id}, blob)


class DynamoCredentialStore:
    """``CredentialStore`` for one connection's OAuth tokens."""

    def __init__(self, project_id: str, connection_id: str):
        self._connection_id = connection_id
        self._key = to_values({"pk": f"PROJECT#{project_id}", "sk": f"CONNECTION#{connection_id}"})

    def load(self) -> OAuthTokens:
        try:
            response = dynamodb().get_item(
                TableName=settings().accounts_table, Key=self._key, ConsistentRead=True
            )
            item = from_item(response.get("Item") or {})
            if item.get("status") == NEEDS_REAUTHORIZATION:
                raise ReauthorizationRequired(
                    item.get("status_reason") or "connection needs authorising again"
                )
            if not item.get("credentials"):
                raise ReauthorizationRequired("connection has no OAuth credentials")
            credentials = decrypt_credentials(self._connection_id, item["credentials"].value)
        except STORAGE_ERRORS as exc:
            raise ProviderUnavailable("connection credentials unavailable") from exc
        return OAuthTokens.from_credentials(credentials, int(item.get("credentials_version", 0)))

    def save(self, tokens: OAuthTokens, replaces: OAuthTokens) -> bool:
        try:
            dynamodb().update_item(
                TableName=settings().accounts_table,
                Key=self._key,
                UpdateExpression="SET credentials = :blob, credentials_version = :new",
                ConditionExpression="credentials_version = :old",
                ExpressionAttributeValues=to_values(
                    {
                        ":blob": encrypt_credentials(self._connection_id, tokens.to_credentials()),
                        ":new": tokens.version,
                        ":old": replaces.version,
                    }
                ),
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise ProviderUnavailable("could not store refreshed credentials") from exc
        except STORAGE_ERRORS as exc:
            raise ProviderUnavailable("could not store refreshed credentials") from exc
        return True

    def mark_needs_reauthorization(self, reason: str) -> None:
        dynamodb().update_item(
            TableName=settings().accounts_table,
            Key=self._key,
            UpdateExpression="SET #status = :status, status_reason = :reason",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=to_values({":status": NEEDS_REAUTHORIZATION, ":reason": reason}),
        )


def replace_credentials(project_id: str, connection_id: str, credentials: dict[str, Any] | None) -> None:
    """A reconnect: new tokens (a new version, so no container's refresh can overwrite them with
    older ones) and the connection active again."""
    key = to_values({"pk": f"PROJECT#{project_id}", "sk": f"CONNECTION#{connection_id}"})
    values: dict[str, Any] = {":active": "active", ":one": 1, ":zero": 0}
    assignments = "#status = :active, credentials_version = if_not_exists(credentials_version, :zero) + :one"
    if credentials:
        values[":blob"] = encrypt_credentials(connection_id, credentials)
        assignments += ", credentials = :blob"
    try:
        dynamodb().update_item(
            TableName=settings().accounts_table,
            Key=key,
            UpdateExpression=f"SET {assignments} REMOVE status_reason",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=to_values(values),
        )
    except (ClientError, *STORAGE_ERRORS) as exc:
        raise storage_unavailable() from exc
