"""Idempotency-Key on POST: one invoice per key, the first answer replayed, mismatches refused."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest

from ledgerbridge import admin, connections
from tests.conftest import load_handler_module
from tests.integration.conftest import Api


def sandbox_sends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the sandbox ledger's create calls (the provider side of the write path)."""
    sandbox = connections.provider_for("sandbox")
    calls: list[str] = []
    original = type(sandbox).send_invoice

    def counting(connection, outbound, request):
        calls.append(outbound.invoice_id)
        return original(sandbox, connection, outbound, request)

    monkeypatch.setattr(sandbox, "send_invoice", counting)
    return calls


def test_a_repeat_returns_the_first_answer_without_touching_the_provider(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = sandbox_sends(monkeypatch)
    body = {"total_amount": Decimal("10.00"), "memo": "once"}
    first = api.create(body, headers={"Idempotency-Key": "order-1001"})
    again = api.create(body, headers={"Idempotency-Key": "order-1001"})
    assert (first.status, again.status) == (201, 201)
    assert again.text == first.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Location"] == first.headers["Location"]
    assert len(calls) == 1
    assert len(api.call("GET", "/accounting/invoices").json["data"]) == 1


def test_the_same_key_with_a_different_body_is_422(api: Api) -> None:
    assert api.create({"total_amount": Decimal("10")}, headers={"Idempotency-Key": "k-1"}).status == 201
    answer = api.create({"total_amount": Decimal("11")}, headers={"Idempotency-Key": "k-1"})
    assert answer.status == 422
    assert answer.json["error"] == "idempotency_mismatch"


def test_keys_are_scoped_per_connection(api: Api, demo: dict[str, Any]) -> None:
    other = admin.create_connection(demo["project_id"], "sandbox")
    body = {"total_amount": Decimal("10")}
    first = api.create(body, headers={"Idempotency-Key": "shared"})
    second = api.create(
        body, headers={"Idempotency-Key": "shared", "x-connection-token": other["connection_token"]}
    )
    assert (first.status, second.status) == (201, 201)
    assert first.json["id"] != second.json["id"]
    assert "Idempotent-Replayed" not in second.headers


def test_a_rejected_invoice_is_replayed_as_the_same_422(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = sandbox_sends(monkeypatch)
    first = api.create({"memo": "nothing to bill"}, headers={"Idempotency-Key": "bad-1"})
    again = api.create({"memo": "nothing to bill"}, headers={"Idempotency-Key": "bad-1"})
    assert (first.status, again.status) == (422, 422)
    assert again.json["invoice_id"] == first.json["invoice_id"]
    assert len(calls) == 1


def test_an_answer_given_before_storing_does_not_use_up_the_key(api: Api) -> None:
    assert api.create({"currency": "XYZ"}, headers={"Idempotency-Key": "fix-me"}).status == 422
    assert api.create({"total_amount": Decimal("1")}, headers={"Idempotency-Key": "fix-me"}).status == 201


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "é"])
def test_malformed_keys_are_400(api: Api, key: str) -> None:
    answer = api.create({"total_amount": Decimal("1")}, headers={"Idempotency-Key": key})
    assert answer.status == 400
    assert answer.json["details"][0]["field"] == "Idempotency-Key"


def test_a_key_still_in_flight_answers_409_with_retry_after(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = connections.provider_for("sandbox")
    entered, release = threading.Event(), threading.Event()
    original = type(sandbox).send_invoice

    def slow(connection, outbound, request):
        entered.set()
        release.wait(10)
        return original(sandbox, connection, outbound, request)

    monkeypatch.setattr(sandbox, "send_invoice", slow)
    body = {"total_amount": Decimal("5")}
    results: list[Any] = []
    other_container = Api(
        load_handler_module(), api._context, api.credentials
    )  # concurrent: another container
    first = threading.Thread(
        target=lambda: results.append(other_container.create(body, headers={"Idempotency-Key": "slow"}))
    )
    first.start()
    assert entered.wait(10)
    second = api.create(body, headers={"Idempotency-Key": "slow"})
    release.set()
    first.join(10)
    assert second.status == 409
    assert second.json["error"] == "idempotency_in_progress"
    assert second.headers["Retry-After"] == "2"
    assert results[0].status == 201
