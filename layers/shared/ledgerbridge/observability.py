"""Powertools Logger and Tracer, one of each per container.

Configured by the POWERTOOLS_* environment variables that template.yaml sets.

Metrics are counted where they happen (``count``; ``service`` counts each create's outcome),
each with its own dimensions, as one line in CloudWatch's embedded metric format (EMF): the
line Powertools' ``single_metric`` prints, namespace and ``service`` dimension included, built
here. ``single_metric`` sets up a metrics manager per call (its units and resolutions
validated again each time), ~70 µs of a warm create's CPU, 2-3 % of it, for one counter
(``make bench``); this line costs ~8 µs. ``tests/unit/test_observability.py`` holds the two
lines side by side. Not Powertools' ``Metrics`` with a flush per count either: its metric set
is shared by every instance in the process, and the local stack runs several requests at once.

``tracer`` is created on first access (module ``__getattr__``), not at import: a Powertools
``Tracer`` imports the X-Ray SDK and runs ``patch_all`` (which imports httpx and patches
botocore), 270 ms of a cold start. The API function does not use it: Lambda's active tracing
(``Tracing: Active``) already records each invocation's segment, and an API call is one
handler span. Functions that want SDK subsegments (connect, retry) still get the same Tracer
by importing ``tracer``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger


def _json_message(message: Any) -> Any:
    """Powertools' Logger tries to read every text message as a JSON document (so a logged
    document comes out as an object) and keeps the text when that fails. Our messages are
    words; raising for them before ``json.loads`` does saved ~28 µs per line (``json.loads``
    building its JSONDecodeError, ~1 % of a warm create). A message that is a document is read
    as before."""
    if isinstance(message, str) and message.lstrip()[:1] not in ("{", "["):
        raise ValueError("not a JSON document")
    return json.loads(message)


logger = Logger(json_deserializer=_json_message)


def count(metric: str, metadata: Mapping[str, str] | None = None, **dimensions: str) -> None:
    """Add one to ``metric`` with these dimensions (and ``service``), in the namespace
    ``POWERTOOLS_METRICS_NAMESPACE`` names (the template sets it): an EMF line on stdout, as
    Powertools prints it. Never raises for want of a namespace: a count must not fail a create.

    ``metadata`` is what Powertools' ``add_metadata`` adds: members of the line that are no
    dimension (CloudWatch aggregates nothing by them) but searchable in the logs, such as the
    invoice a count is about. That makes the line the log of the event it counts, so the
    event needs no second line (see ``service.create_invoice``)."""
    service = os.environ.get("POWERTOOLS_SERVICE_NAME", "service_undefined")
    document = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Ledgerbridge"),
                    "Dimensions": [[*dimensions, "service"]],
                    "Metrics": [{"Name": metric, "Unit": "Count"}],
                }
            ],
        },
        **dimensions,
        "service": service,
        **(metadata or {}),
        metric: [1.0],
    }
    print(json.dumps(document, separators=(",", ":")))


def __getattr__(name: str) -> Any:
    if name == "tracer":
        from aws_lambda_powertools import Tracer

        tracer = globals()["tracer"] = Tracer()
        return tracer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
