"""Ledgerbridge: a Panora-compatible unified accounting API.

The package is the shared Lambda layer: domain models, logic, data access and providers.
Nothing here imports AWS event shapes; handlers in ``functions/`` adapt events to it.
"""
