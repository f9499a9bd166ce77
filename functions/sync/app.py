"""The scheduled reference sync: every connection's contacts, items, accounts and tracking.

EventBridge invokes it on the template's schedule; it does what ``ledgerbridge-admin
sync-references`` does, and fails the invocation (so the error shows in CloudWatch and the
alarm) only after trying every connection.
"""

from __future__ import annotations

from aws_lambda_powertools.utilities.typing import LambdaContext

from ledgerbridge.admin import sync_references
from ledgerbridge.observability import logger


class SyncFailed(Exception):
    """At least one connection could not be synced."""


@logger.inject_lambda_context(clear_state=True)  # no key of one invocation in the next
def handler(event: dict, context: LambdaContext) -> dict:
    results = sync_references()
    failures = [result for result in results if "error" in result]
    logger.info("references synced", extra={"connections": len(results), "failures": failures})
    if failures:
        raise SyncFailed(f"{len(failures)} of {len(results)} connections failed to sync")
    return {"connections": len(results)}
