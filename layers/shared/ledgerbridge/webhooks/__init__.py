"""Outbound webhooks: endpoints a customer registers, the events Ledgerbridge emits to them, and
the deliveries (signed POSTs, retried) that carry each event. ``urls`` decides which endpoint URLs
a deployed stack may contact at all (no internal or cloud metadata addresses), ``sender`` makes
one delivery attempt pinned to the addresses ``urls`` checked, and ``signing`` produces the
Standard Webhooks headers a receiver verifies with any Standard Webhooks library.

The event types are listed here once: validation of a subscription, the stream's event
derivation and the documentation all read this tuple. ``ping`` is sent only by the test route,
so it cannot be subscribed to.
"""

EVENT_TYPES: tuple[str, ...] = (
    "invoice.pending",
    "invoice.synced",
    "invoice.failed",
    "contact.synced",
    "contact.failed",
    "connection.created",
    "connection.needs_reauthorization",
    "connection.deleted",
    "connect_session.completed",
    "connect_session.failed",
)
PING = "ping"
