import time
import uuid

from ledgerbridge.ids import derived_uuid7, reference_id, uuid7


def test_uuid7_has_version_7_and_rfc_variant() -> None:
    value = uuid7()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_uuid7_carries_the_current_unix_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= value.int >> 80 <= after + 1


def test_uuid7_sorts_in_creation_order_even_within_one_millisecond() -> None:
    ids = [str(uuid7()) for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_reference_ids_are_stable_and_scoped_to_connection_and_kind() -> None:
    first = reference_id("conn-1", "contact", "42")
    assert first == reference_id("conn-1", "contact", "42")
    assert first != reference_id("conn-2", "contact", "42")
    assert first != reference_id("conn-1", "item", "42")
    assert uuid.UUID(first).version == 5


def test_a_derived_uuid7_is_the_same_for_the_same_fact_and_differs_for_another():
    first = derived_uuid7(1_764_000_000_123, "stream-event-1/invoice.synced")
    assert first == derived_uuid7(1_764_000_000_123, "stream-event-1/invoice.synced")
    assert first != derived_uuid7(1_764_000_000_123, "stream-event-2/invoice.synced")
    parsed = uuid.UUID(first)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert parsed.int >> 80 == 1_764_000_000_123
    assert derived_uuid7(1_764_000_000_124, "a") > derived_uuid7(1_764_000_000_123, "a")
