"""Powertools Logger and Tracer, one of each per container.

Configured by the POWERTOOLS_* environment variables that template.yaml sets. Metrics are
emitted with ``single_metric`` where they happen (see ``service._count``), because each
carries its own provider/outcome dimensions.

``tracer`` is created on first access (module ``__getattr__``), not at import: a Powertools
``Tracer`` imports the X-Ray SDK and runs ``patch_all`` (which imports httpx and patches
botocore), 270 ms of a cold start. The API function does not use it: Lambda's active tracing
(``Tracing: Active``) already records each invocation's segment, and an API call is one
handler span. Functions that want SDK subsegments (connect, retry) still get the same Tracer
by importing ``tracer``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

logger = Logger()


def __getattr__(name: str) -> Any:
    if name == "tracer":
        from aws_lambda_powertools import Tracer

        tracer = globals()["tracer"] = Tracer()
        return tracer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
