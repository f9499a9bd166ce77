"""The sweeper: every few minutes, re-queue invoices and contacts left pending with no retry in flight.

This is crash recovery. A Lambda that dies between storing an invoice (or a contact) and
settling it, or fails to queue its retry, leaves a pending record behind; the sweeper hands
it to the retry function, which finds it at the ledger or resends it under the same
idempotency key, so it settles exactly once. Each kind's pending records are read from a
sparse index (one Query each, see ``redelivery.sweep``), never by scanning a table. It also
removes the connection token of connect sessions past their expiry (``connect``), from the
same index, so a token never outlives its session by more than a sweep.
"""

from __future__ import annotations

import os

from aws_lambda_powertools.utilities.typing import LambdaContext

from ledgerbridge.connect import forget_expired_tokens
from ledgerbridge.observability import logger
from ledgerbridge.redelivery import sweep


@logger.inject_lambda_context(clear_state=True)  # no key of one invocation in the next
def handler(event: dict, context: LambdaContext) -> dict:
    older_than = int(os.environ.get("LEDGERBRIDGE_SWEEP_AFTER_SECONDS", "300"))
    requeue_after = int(os.environ.get("LEDGERBRIDGE_REQUEUE_AFTER_SECONDS", "1800"))
    return {"requeued": sweep(older_than, requeue_after), "tokens_removed": forget_expired_tokens()}
