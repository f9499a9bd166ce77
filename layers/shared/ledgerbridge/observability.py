"""Powertools Logger and Tracer, one of each per container.

Configured by the POWERTOOLS_* environment variables that template.yaml sets. Metrics are
emitted with ``single_metric`` where they happen (see ``service._count``), because each
carries its own provider/outcome dimensions.
"""

from aws_lambda_powertools import Logger, Tracer

logger = Logger()
tracer = Tracer()
