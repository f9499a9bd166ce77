"""Large parts of an invoice, kept in S3 so the DynamoDB item stays under its 400 KB limit.

An invoice's line items and the provider's record are usually small and live in the item.
When one of them is too big (a thousand long lines, a provider answering with a megabyte),
it is written compressed to the private, encrypted offload bucket and the item keeps its
key instead; reads put it back. Objects are written before the item that points at them.
"""

from __future__ import annotations

import gzip
import os
from typing import Any

from ledgerbridge import jsonutil
from ledgerbridge.aws import client

# Parts above this many bytes of JSON go to S3; the rest of an invoice is a few KB at most.
INLINE_LIMIT = 100_000


def put(key: str, value: Any) -> str:
    return put_json(key, jsonutil.dumps(value))


def put_json(key: str, text: str) -> str:
    """``put`` of a value already serialised (``jsonutil.dumps``)."""
    client("s3").put_object(
        Bucket=os.environ["LEDGERBRIDGE_OFFLOAD_BUCKET"],
        Key=key,
        Body=gzip.compress(text.encode()),
        ContentType="application/json",
        ContentEncoding="gzip",
    )
    return key


def get(key: str) -> Any:
    response = client("s3").get_object(Bucket=os.environ["LEDGERBRIDGE_OFFLOAD_BUCKET"], Key=key)
    return jsonutil.loads(gzip.decompress(response["Body"].read()))
