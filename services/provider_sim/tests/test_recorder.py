"""The recorder keeps counters for every request but only a bounded window of records."""

from __future__ import annotations

from herald_provider_sim.recorder import DUPLICATES_SHOWN, ERROR, OK, Recorder

PHONE = 79001234567


def test_records_beyond_the_bound_are_dropped_but_still_counted() -> None:
    recorder = Recorder(max_records=3)
    for msg_id in range(1, 6):
        recorder.record(msg_id, PHONE, "t", 1000.0 + msg_id, OK, 200)

    items, next_after = recorder.page(after=0, limit=10)

    assert [(item["index"], item["id"]) for item in items] == [(3, 3), (4, 4), (5, 5)]
    assert next_after == 5
    assert recorder.page(after=5, limit=10) == ([], 5)
    assert recorder.page(after=1, limit=1)[0][0]["index"] == 3
    stats = recorder.stats()
    assert (stats["requests"], stats["accepted"], stats["records_kept"]) == (5, 5, 3)
    assert recorder.for_id(1) == []
    assert recorder.request_count(1) == 1


def test_only_ok_outcomes_count_as_accepted() -> None:
    recorder = Recorder(max_records=10)
    recorder.record(1, PHONE, "t", 1.0, ERROR, 503)
    recorder.record(1, PHONE, "t", 2.0, OK, 200)

    assert (recorder.request_count(1), recorder.accepted_count(1)) == (2, 1)
    assert recorder.stats()["last_accepted_at"] == "1970-01-01T00:00:02+00:00"


def test_duplicates_list_is_capped_but_counted() -> None:
    recorder = Recorder(max_records=10)
    for msg_id in range(DUPLICATES_SHOWN + 5):
        recorder.record(msg_id, PHONE, "t", 1.0, OK, 200)
        recorder.record(msg_id, PHONE, "t", 1.0, OK, 200)

    stats = recorder.stats()

    assert stats["duplicates_accepted_count"] == DUPLICATES_SHOWN + 5
    assert len(stats["duplicates_accepted"]) == DUPLICATES_SHOWN  # type: ignore[arg-type]
