"""Outbound webhooks: endpoints a customer registers, the events Ledgerbridge emits to them, and
the deliveries (signed POSTs, retried) that carry each event. ``urls`` decides which endpoint URLs
a deployed stack may contact at all (no internal or cloud metadata addresses), ``sender`` makes
one delivery attempt pinned to the addresses ``urls`` checked, and ``signing`` produces the
Standard Webhooks headers a receiver verifies with any Standard Webhooks library."""
