"""Xero records exactly what the unified invoice means: exchange rates, memo, idempotency key.

Against the fake Xero (tests/fakes/xero.py), which keeps CurrencyRate in Xero's convention
and History & Notes as Xero does; every invoice body is also checked against Xero's OpenAPI.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from ledgerbridge import jsonutil
from ledgerbridge.providers import xero as xero_module
from ledgerbridge.providers.base import ConnectionContext, InvalidInvoice, ProviderUnavailable
from ledgerbridge.providers.xero import note_idempotency_key, unified_exchange_rate, xero_currency_rate
from tests.fakes.xero import FakeXero
from tests.unit.test_xero import (
    CONTACT_UUID,
    INVOICE_ID,
    RITE_AGENCY,
    SETTINGS,
    XERO_SUPPLIER,
    connect,
    contact,
    create,
    outbound,
    provider,
)


@pytest.fixture
def fake() -> FakeXero:
    return FakeXero()


def invoice(extra: dict[str, Any] | None = None, payable: bool = False):
    body = {
        "type": "ACCOUNTS_PAYABLE" if payable else "ACCOUNTS_RECEIVABLE",
        "contact_id": CONTACT_UUID,
        "line_items": [{"description": "Consulting", "quantity": 1, "unit_price": 100}],
        **(extra or {}),
    }
    return outbound(body, {"contact_id": contact(XERO_SUPPLIER if payable else RITE_AGENCY)})


def refused(extra: dict[str, Any], payable: bool = False, **settings: str) -> list[tuple[str, str]]:
    connection = ConnectionContext("conn-xero", "xero", {**SETTINGS, **settings})
    with pytest.raises(InvalidInvoice) as caught:
        provider.map_invoice(connection, invoice(extra, payable))
    return caught.value.details


# --- exchange rates ---------------------------------------------------------------------------


def test_a_eur_invoice_at_1_08_is_recorded_as_xeros_inverse_and_reads_back_as_1_08(fake: FakeXero) -> None:
    remote = create(connect(fake.handle, fake), invoice({"currency": "EUR", "exchange_rate": "1.08"}))

    [sent] = FakeXero.body_of(fake.invoice_requests()[0])["Invoices"]
    assert sent["CurrencyRate"] == Decimal("0.925926")  # EUR per USD, 1/1.08 to 6 places
    assert b'"CurrencyRate":0.925926' in fake.invoice_requests()[0].content
    recorded = fake.invoices[remote.remote_id]
    assert (recorded["CurrencyCode"], recorded["CurrencyRate"]) == ("EUR", Decimal("0.925926"))
    # Read in Xero's convention (base = amount / CurrencyRate), 100 EUR is the 108.00 USD meant.
    assert (Decimal(100) / recorded["CurrencyRate"]).quantize(Decimal("0.01")) == Decimal("108.00")
    assert remote.fields["exchange_rate"] == Decimal("1.08")
    assert str(remote.fields["exchange_rate"]) == "1.08"


@pytest.mark.parametrize(
    ("rate", "currency_rate"),
    [
        ("1.08", "0.925926"),
        ("0.5", "2.000000"),
        ("3", "0.333333"),
        ("0.92", "1.086957"),
        ("1.0825", "0.923788"),
        ("1.234566", "0.810001"),
        ("150.24", "0.006656"),  # a yen company invoicing in dollars
        ("0.006656", "150.240385"),  # a dollar company invoicing in yen
        ("150.2", "0.006658"),
        ("1", "1.000000"),
    ],
)
def test_rates_round_trip_through_xeros_convention(fake: FakeXero, rate: str, currency_rate: str) -> None:
    assert xero_currency_rate(Decimal(rate)) == Decimal(currency_rate)
    assert unified_exchange_rate(Decimal(currency_rate)) == Decimal(rate)
    remote = create(connect(fake.handle, fake), invoice({"currency": "EUR", "exchange_rate": rate}))
    assert fake.invoices[remote.remote_id]["CurrencyRate"] == Decimal(currency_rate)
    assert remote.fields["exchange_rate"] == Decimal(rate)


def test_a_tie_rounds_half_to_even() -> None:
    # 1/128 = 0.0078125 exactly: half-even gives 0.007812 (half-up would give 0.007813).
    assert xero_currency_rate(Decimal(128)) == Decimal("0.007812")
    assert unified_exchange_rate(Decimal("0.007812")) == Decimal(128)


@pytest.mark.parametrize(
    ("rate", "currency_rate", "reads_back"),
    [
        ("150.25", "0.006656", "150.24"),  # also 1/150.24 and 1/150.23 to 6 places
        ("1.234567", "0.810001", "1.234566"),
        ("1349", "0.000741", "1350"),
        ("1.0800004", "0.925926", "1.08"),
    ],
)
def test_a_rate_xero_cannot_hold_is_refused_naming_what_it_would_read_back_as(
    rate: str, currency_rate: str, reads_back: str
) -> None:
    [(path, reason)] = refused({"exchange_rate": rate})
    assert path == "exchange_rate"
    assert reason == (
        f"Xero keeps 1/exchange_rate to 6 decimal places: {rate} would be CurrencyRate {currency_rate}, "
        f"which reads back as {reads_back}; send {reads_back} or a rate Xero can hold"
    )


def test_a_rate_too_large_for_six_places_is_refused() -> None:
    [(path, reason)] = refused({"exchange_rate": "2000001"})
    assert (path, reason) == (
        "exchange_rate",
        "Xero keeps 1/exchange_rate to 6 decimal places: 2000001 would be 0",
    )


def test_a_rate_xero_chose_reads_back_in_the_unified_convention(fake: FakeXero) -> None:
    remote = create(connect(fake.handle, fake), invoice({"currency": "EUR"}))  # no rate: Xero's day rate
    assert "CurrencyRate" not in FakeXero.body_of(fake.invoice_requests()[0])["Invoices"][0]
    assert fake.invoices[remote.remote_id]["CurrencyRate"] == Decimal("0.925926")
    assert remote.fields["exchange_rate"] == Decimal("1.08")


def test_line_rates_equal_to_the_invoices_are_sent_once_as_the_invoice_rate(fake: FakeXero) -> None:
    extra = {
        "currency": "EUR",
        "exchange_rate": "1.08",
        "line_items": [
            {"unit_price": 10, "exchange_rate": "1.080"},
            {"unit_price": 5, "exchange_rate": "1.08"},
        ],
    }
    remote = create(connect(fake.handle, fake), invoice(extra))
    [sent] = FakeXero.body_of(fake.invoice_requests()[0])["Invoices"]
    assert sent["CurrencyRate"] == Decimal("0.925926")
    assert all("CurrencyRate" not in line for line in sent["LineItems"])
    assert remote.fields["exchange_rate"] == Decimal("1.08")
    details = refused(
        {"exchange_rate": "1.08", "line_items": [{"unit_price": 1, "exchange_rate": "0.925926"}]}
    )
    assert details == [("line_items.0.exchange_rate", "Xero lines use the invoice's exchange rate")]


@pytest.mark.parametrize(("recorded", "unified"), [(None, None), (0, None), ("", None), (1, Decimal(1))])
def test_a_missing_or_meaningless_currency_rate_reads_back_as_no_rate(recorded: Any, unified: Any) -> None:
    assert unified_exchange_rate(recorded) == unified


# --- memo -------------------------------------------------------------------------------------


@pytest.mark.parametrize("payable", [False, True])
def test_by_default_the_memo_is_a_history_note_never_the_printed_reference(
    fake: FakeXero, payable: bool
) -> None:
    remote = create(connect(fake.handle, fake), invoice({"memo": "Internal: chase in May"}, payable))

    [sent] = FakeXero.body_of(fake.invoice_requests()[0])["Invoices"]
    assert "Reference" not in sent
    assert fake.invoices[remote.remote_id]["Reference"] == ""
    assert fake.notes(remote.remote_id) == ["Internal: chase in May"]
    [note] = fake.history_requests()
    assert note.method == "PUT"
    assert note.url.path == f"/api.xro/2.0/Invoices/{remote.remote_id}/History"
    assert note.headers["idempotency-key"] == note_idempotency_key(INVOICE_ID) == f"{INVOICE_ID}-memo"
    assert note.headers["xero-tenant-id"] == SETTINGS["tenant_id"]
    assert jsonutil.loads(note.content) == {"HistoryRecords": [{"Details": "Internal: chase in May"}]}


def test_memo_target_reference_opts_into_the_printed_reference(fake: FakeXero) -> None:
    connection = connect(fake.handle, fake, settings={**SETTINGS, "memo_target": "Reference"})
    remote = create(connection, invoice({"memo": "PO 7731"}))
    [sent] = FakeXero.body_of(fake.invoice_requests()[0])["Invoices"]
    assert sent["Reference"] == "PO 7731"
    assert fake.invoices[remote.remote_id]["Reference"] == "PO 7731"
    assert fake.history_requests() == [] and fake.notes(remote.remote_id) == []


@pytest.mark.parametrize("memo", [None, "", "   "])
def test_no_memo_writes_no_note_and_no_reference(fake: FakeXero, memo: str | None) -> None:
    for target in ("history", "reference"):
        connection = connect(fake.handle, fake, settings={**SETTINGS, "memo_target": target})
        create(connection, invoice({"memo": memo}, payable=False))
        assert "Reference" not in FakeXero.body_of(fake.invoice_requests()[-1])["Invoices"][0]
    assert fake.history_requests() == []


@pytest.mark.parametrize(
    ("extra", "payable", "settings", "expected"),
    [
        ({"memo": "m" * 251}, False, {}, ("memo", "a Xero history note holds at most 250 characters")),
        ({"memo": "m" * 251}, True, {}, ("memo", "a Xero history note holds at most 250 characters")),
        (
            {"memo": "note"},
            True,
            {"memo_target": "reference"},
            (
                "memo",
                "Xero bills have no Reference (memo_target=reference is for sales invoices); "
                "the supplier reference goes in number",
            ),
        ),
        (
            {},
            False,
            {"memo_target": "notes"},
            ("connection", "memo_target must be history (an internal note, the default) or reference"),
        ),
    ],
)
def test_what_the_memo_target_cannot_take_is_refused(
    extra: dict, payable: bool, settings: dict, expected: tuple[str, str]
) -> None:
    assert refused(extra, payable, **settings) == [expected]


def test_a_250_character_memo_fits_a_note(fake: FakeXero) -> None:
    remote = create(connect(fake.handle, fake), invoice({"memo": "m" * 250}))
    assert fake.notes(remote.remote_id) == ["m" * 250]


def only_notes_fail(fake: FakeXero, answers: list[httpx.Response]):
    """A transport giving the next note requests ``answers`` (the fake records them); all else is Xero."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/History") and answers:
            request.read()
            fake.requests.append(request)
            return answers.pop(0)
        return fake.handle(request)

    return handle


def test_a_note_xero_cannot_write_yet_leaves_the_invoice_pending_and_the_resend_makes_one_of_each(
    fake: FakeXero,
) -> None:
    answers = [httpx.Response(503) for _ in range(4)]  # every attempt of the first delivery
    connection = connect(only_notes_fail(fake, answers), fake)
    with pytest.raises(
        ProviderUnavailable, match="its memo note is not written yet: HTTP 503 from the provider"
    ):
        create(connection, invoice({"memo": "Internal"}))
    [made] = fake.invoices
    assert fake.notes(made) == []

    again = create(connection, invoice({"memo": "Internal"}))  # the retry function's resend

    assert list(fake.invoices) == [again.remote_id] == [made]  # replayed by Idempotency-Key
    assert fake.notes(made) == ["Internal"]
    assert {r.headers["idempotency-key"] for r in fake.invoice_requests()} == {INVOICE_ID}


def test_a_lost_note_answer_is_resent_with_the_same_key_and_writes_one_note(fake: FakeXero) -> None:
    def lose_first_note_answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/History") and not fake.history_requests():
            fake.handle(request)  # Xero wrote it; the answer never arrives
            raise httpx.ReadTimeout("lost", request=request)
        return fake.handle(request)

    remote = create(connect(lose_first_note_answer, fake), invoice({"memo": "Internal"}))
    first, second = fake.history_requests()
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == f"{INVOICE_ID}-memo"
    assert fake.notes(remote.remote_id) == ["Internal"]


@pytest.mark.parametrize("status", [404, 409])
def test_a_note_refused_for_now_keeps_the_invoice_pending(fake: FakeXero, status: int) -> None:
    connection = connect(only_notes_fail(fake, [httpx.Response(status)]), fake)
    with pytest.raises(ProviderUnavailable, match=f"its memo note is not written yet \\(HTTP {status}\\)"):
        create(connection, invoice({"memo": "Internal"}))
    assert len(fake.invoices) == 1


def test_a_connection_refused_for_the_note_keeps_the_invoice_pending_not_failed(fake: FakeXero) -> None:
    connection = connect(only_notes_fail(fake, [httpx.Response(401), httpx.Response(401)]), fake)
    with pytest.raises(ProviderUnavailable, match="refused the connection for its note"):
        create(connection, invoice({"memo": "Internal"}))  # never ReauthorizationRequired: "nothing created"
    assert len(fake.invoices) == 1


def test_a_note_xero_refuses_for_good_still_reports_the_invoice_it_made(
    fake: FakeXero, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        xero_module.logger, "warning", lambda message, extra: warnings.append((message, extra))
    )
    refusal = {"Elements": [{"ValidationErrors": [{"Message": "secret-ish provider words"}]}]}
    connection = connect(only_notes_fail(fake, [httpx.Response(400, json=refusal)]), fake)

    remote = create(connection, invoice({"memo": "Internal"}))

    assert list(fake.invoices) == [remote.remote_id]  # made once, and reported as made
    assert warnings == [("Xero refused the memo note", {"remote_id": remote.remote_id, "status": 400})]


def test_a_200_note_answer_carrying_validation_errors_is_not_taken_as_written(
    fake: FakeXero, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings: list[dict] = []
    monkeypatch.setattr(xero_module.logger, "warning", lambda message, extra: warnings.append(extra))
    answer = {"HistoryRecords": [{"Details": "x", "ValidationErrors": [{"Message": "Details is too long"}]}]}
    create(connect(only_notes_fail(fake, [httpx.Response(200, json=answer)]), fake), invoice({"memo": "x"}))
    assert [extra["status"] for extra in warnings] == [200]


# --- where the idempotency reference is written ------------------------------------------------


def test_the_invoice_id_travels_only_as_headers_never_on_the_documents(fake: FakeXero) -> None:
    remote = create(connect(fake.handle, fake), invoice({"memo": "Internal", "number": "LB-77"}))
    [made, note] = [fake.invoice_requests()[0], fake.history_requests()[0]]
    assert made.headers["idempotency-key"] == INVOICE_ID
    assert note.headers["idempotency-key"] == f"{INVOICE_ID}-memo"
    for request in (made, note):
        assert INVOICE_ID.encode() not in request.content
        assert INVOICE_ID not in str(request.url)
    stored = jsonutil.dumps(fake.invoices[remote.remote_id]) + jsonutil.dumps(fake.history[remote.remote_id])
    assert INVOICE_ID not in stored


# --- the fake's History & Notes, as Xero documents them -----------------------------------------


def history_call(fake: FakeXero, method: str, invoice_id: str, body: Any = None, key: str | None = None):
    headers = {"authorization": "Bearer xero-access-0", "xero-tenant-id": SETTINGS["tenant_id"]}
    if key:
        headers["idempotency-key"] = key
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as client:
        return client.request(
            method,
            f"https://api.xero.com/api.xro/2.0/Invoices/{invoice_id}/History",
            headers=headers,
            content=None if body is None else jsonutil.dumps(body),
        )


def test_the_fake_keeps_notes_like_xero(fake: FakeXero) -> None:
    made = create(connect(fake.handle, fake), invoice()).remote_id
    assert (
        history_call(
            fake, "PUT", "00000000-0000-0000-0000-000000000001", {"HistoryRecords": [{"Details": "x"}]}
        ).status_code
        == 404
    )
    too_long = history_call(fake, "PUT", made, {"HistoryRecords": [{"Details": "d" * 251}]})
    assert too_long.status_code == 400 and too_long.json()["Type"] == "ValidationException"
    read_only = history_call(
        fake, "PUT", made, {"HistoryRecords": [{"Details": "x", "DateUTC": "/Date(0)/"}]}
    )
    assert read_only.status_code == 400 and read_only.json()["Type"] == "PostDataInvalidException"
    for _ in range(2):
        answer = history_call(fake, "POST", made, {"HistoryRecords": [{"Details": "once"}]}, key="k-1")
        assert answer.status_code == 200 and answer.json()["HistoryRecords"][0]["Details"] == "once"
    listed = history_call(fake, "GET", made).json()["HistoryRecords"]
    assert [(r["Changes"], r["User"], r["Details"]) for r in listed] == [("Note", "System Generated", "once")]
