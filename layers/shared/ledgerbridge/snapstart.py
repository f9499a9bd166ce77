"""SnapStart: what an execution environment restored from a snapshot must not share with the others.

With SnapStart (template.yaml, ApiFunction), Lambda runs the function's init once per published
version, snapshots the initialised memory, and starts each new execution environment of that
version by restoring the snapshot instead of running init again. Every environment restored from
one snapshot starts from the same bytes, possibly days after the snapshot was taken and on
another host. So whatever init left in memory that must be unique, random or current is reset
here, by hooks the Lambda runtime runs after each restore, in this order:

- ``random`` is re-seeded from the OS. The module seeds itself once, when first imported, so
  every restore would draw the same sequence: the full jitter of provider HTTP retries
  (``providers.http``) would come out identical in every container, which would then retry a
  struggling ledger in lockstep. (Python re-seeds ``random`` in a forked child; nothing does
  after a restore.)
- ``ids`` forgets its last millisecond and counter, so the next id starts a fresh random
  counter. Uniqueness never rested on them: each id carries 62 bits from ``os.urandom``, which
  Lambda documents as staying random across restores. But restores carrying on one counter
  would be kept apart by those bits alone.
- The auth cache and the resolved references are emptied: each entry was read before the
  snapshot with a deadline on ``time.monotonic()``, and nothing promises that the time a
  snapshot sat unused counts on the restored clock; a revoked key must stop working within the
  cache's 60 s, and a synced reference must not be older than that.
- Everything holding a connection is dropped, to be created again on first use: the boto3
  clients (``aws.client``; Powertools Parameters' providers, once loaded), the shared httpx
  client and what holds it (the per-connection token sources, the provider instances). A
  pooled connection was open at snapshot time, to a host the restored environment has no
  socket to.

Today the API function's init creates none of these (importing it makes no client, no id and
no cache entry), so ``random`` is the only one a snapshot really holds; the rest are reset so
that nothing init is later taught to prepare can leak into every restore.

No before-snapshot hook: the only sizeable work the first request still does after init is
creating its boto3 client (~100 ms of CPU on the dev machine), and a client made before the snapshot
would be dropped after the restore and made again at the same cost (each boto3 session parses the
service models anew). The modules the first create imports lazily cost a few ms.

The hooks come from ``snapshot_restore_py``, which only Lambda's Python runtime has: here it is
imported defensively and, locally, nothing is registered. The module registers when imported,
and Lambda runs only the hooks of modules the handler's module imports, so functions/api/app.py
imports it. ``AFTER_RESTORE`` lists the hooks so tests can run them as a restore would.

Init's heap is built with the cyclic garbage collector paused, then frozen (``gc.freeze``),
snapshot or not, by this module's import: functions/api/app.py imports it first among ours,
after Powertools and pydantic, and its own imports pull in the rest of what init keeps (boto3
and botocore, the models, the core modules): ~50,000 objects the collector tracks, all kept for
the container's life. Collecting while they were built freed nothing (init has a few hundred
objects of cyclic garbage in all), and the first full collection, due during the first
request, walked all of them again: ~35 ms of the cold start's CPU together (dev machine,
Lambda's Python 3.12, ``make bench``). Frozen objects are skipped by every later collection;
reference counting still frees them if they are ever released; the little cyclic garbage init
made stays, once. The collector is resumed after the freeze, unless it was off before.
"""

from __future__ import annotations

import gc
import random
import sys
from collections.abc import Callable
from types import ModuleType

_collecting = gc.isenabled()
gc.disable()  # until init's heap is frozen, below: see the module docstring
from ledgerbridge import auth, aws, connections, ids  # noqa: E402

Hook = Callable[[], None]


def reseed_random() -> None:
    random.seed()  # from os.urandom: each restore its own sequence


def clear_caches() -> None:
    auth._cache.clear()
    connections._resolved.clear()


def drop_connections() -> None:
    aws.client.cache_clear()
    http = sys.modules.get("ledgerbridge.providers.http")
    if http is not None:  # loaded with the first ledger call: importing it here would slow every start
        http.shared_client.cache_clear()
    connections._token_sources.clear()
    connections._providers.clear()
    parameters = sys.modules.get("aws_lambda_powertools.utilities.parameters")
    if parameters is not None:  # loaded once a request reads the OAuth apps' secret; never loaded here
        parameters.base.DEFAULT_PROVIDERS.clear()
        parameters.clear_caches()


AFTER_RESTORE: tuple[Hook, ...] = (reseed_random, ids.reset, clear_caches, drop_connections)


def register(runtime: ModuleType | None = None) -> bool:
    """Hand the hooks to Lambda's runtime; False (nothing registered) where there is none."""
    if runtime is None:
        try:
            import snapshot_restore_py as runtime
        except ImportError:
            return False
    for hook in AFTER_RESTORE:
        runtime.register_after_restore(hook)
    return True


registered = register()
gc.freeze()
if _collecting:
    gc.enable()
