"""Observability: the EMF counter (the line Powertools' ``single_metric`` prints, a valid EMF
document) and log messages (text kept as text, a JSON document read as one)."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from ledgerbridge.observability import count


def _printed(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _without_timestamp(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "_aws": {**document["_aws"], "Timestamp": None}}


def test_a_count_prints_what_powertools_single_metric_prints(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "ledgerbridge")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Ledgerbridge")
    with single_metric(name="InvoiceCreates", unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="provider", value="xero")
        metric.add_dimension(name="outcome", value="rejected")
    count("InvoiceCreates", provider="xero", outcome="rejected")
    powertools, ours = _printed(capsys)
    assert _without_timestamp(ours) == _without_timestamp(powertools)
    assert abs(ours["_aws"]["Timestamp"] - powertools["_aws"]["Timestamp"]) < 5_000


def test_metadata_is_printed_as_powertools_add_metadata_prints_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Metadata names what was counted (searchable in the logs) without becoming a dimension."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "ledgerbridge")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Ledgerbridge")
    metadata = {"invoice_id": "01a2324c-4dc2-7226-98d9-73b4d9f3bed0", "remote_id": "217"}
    with single_metric(name="InvoiceCreates", unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="provider", value="quickbooks")
        metric.add_dimension(name="outcome", value="created")
        for key, value in metadata.items():
            metric.add_metadata(key=key, value=value)
    count("InvoiceCreates", metadata, provider="quickbooks", outcome="created")
    powertools, ours = _printed(capsys)
    assert _without_timestamp(ours) == _without_timestamp(powertools)
    assert list(ours) == list(powertools)  # the same members in the same order
    assert ours["invoice_id"] == metadata["invoice_id"] and ours["remote_id"] == "217"
    assert ours["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["provider", "outcome", "service"]]


def test_a_count_is_a_valid_embedded_metric_format_document(capsys: pytest.CaptureFixture[str]) -> None:
    """The rules of CloudWatch's EMF specification that a counter can break."""
    before = int(time.time() * 1000)
    count("InvoiceCreates", provider="sandbox", outcome="created")
    [document] = _printed(capsys)
    metadata = document["_aws"]
    assert set(metadata) == {"Timestamp", "CloudWatchMetrics"}
    assert isinstance(metadata["Timestamp"], int) and before <= metadata["Timestamp"] <= before + 5_000
    [directive] = metadata["CloudWatchMetrics"]
    assert set(directive) == {"Namespace", "Dimensions", "Metrics"}
    assert isinstance(directive["Namespace"], str) and 1 <= len(directive["Namespace"]) <= 1024
    for dimension_set in directive["Dimensions"]:
        assert 1 <= len(dimension_set) <= 30
        assert all(isinstance(document[name], str) and document[name] for name in dimension_set)
    for definition in directive["Metrics"]:
        assert definition["Unit"] == "Count"
        values = document[definition["Name"]]
        assert all(
            isinstance(value, int | float) for value in (values if isinstance(values, list) else [values])
        )
    assert (document["provider"], document["outcome"]) == ("sandbox", "created")


def test_a_count_without_a_namespace_set_still_prints(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing setting must not fail the create that counts."""
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    count("InvoiceCreates", provider="sandbox", outcome="created")
    [document] = _printed(capsys)
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Ledgerbridge"


def _logged(message: str) -> Any:
    """The ``message`` of the line the Logger writes for ``message``."""
    from ledgerbridge.observability import logger

    stream = io.StringIO()
    handler = logger.registered_handler
    saved, handler.stream = handler.stream, stream
    try:
        logger.info(message)
    finally:
        handler.stream = saved
    return json.loads(stream.getvalue())["message"]


def test_a_text_message_is_logged_as_text_and_a_json_one_as_its_document() -> None:
    assert _logged("invoice delivered") == "invoice delivered"
    assert _logged("{not json") == "{not json"
    assert _logged(' {"outcome": "created"}') == {"outcome": "created"}
    assert _logged("[1, 2]") == [1, 2]
