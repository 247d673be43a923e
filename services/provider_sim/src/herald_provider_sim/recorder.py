"""What the simulator received: bounded arrival records, per-id request and acceptance counts."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from itertools import islice

OK = "ok"
ERROR = "error"
HANG = "hang"
MALFORMED = "malformed"
OUTAGE = "outage"
TOO_MANY = "429"
OUTCOMES = (OK, ERROR, HANG, MALFORMED, OUTAGE, TOO_MANY)

DUPLICATES_SHOWN = 1000
# Mailings repeat one text for many clients; sharing the str saves memory at a million records.
_SHARED_TEXTS = 1024

# (msg_id, phone, text, received_at, outcome, status): tuples keep a million records affordable.
Record = tuple[int, int, str, float, str, int | None]


def iso_utc(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def record_to_json(index: int, record: Record) -> dict[str, object]:
    msg_id, phone, text, received_at, outcome, status = record
    return {
        "index": index,
        "id": msg_id,
        "phone": phone,
        "text": text,
        "received_at": iso_utc(received_at),
        "received_ts": received_at,
        "outcome": outcome,
        "status": status,
    }


class Recorder:
    """Records every request that passed auth and validation; `accepted` means answered 200 OK."""

    def __init__(self, max_records: int) -> None:
        self._records: deque[Record] = deque(maxlen=max_records)
        self.clear()

    def clear(self) -> None:
        self._records.clear()
        self._texts: dict[str, str] = {}
        self._total = 0
        self._accepted_total = 0
        self._requests: dict[int, int] = {}
        self._accepted: dict[int, int] = {}
        self._duplicate_count = 0
        self._duplicates: list[int] = []
        self._by_outcome = dict.fromkeys(OUTCOMES, 0)
        self._rejected = {"401": 0, "400": 0}
        self._first_at: float | None = None
        self._last_at: float | None = None
        self._last_accepted_at: float | None = None

    def reject(self, status: int) -> None:
        self._rejected[str(status)] += 1

    def record(
        self,
        msg_id: int,
        phone: int,
        text: str,
        received_at: float,
        outcome: str,
        status: int | None,
    ) -> None:
        shared = self._texts.get(text)
        if shared is None:
            if len(self._texts) < _SHARED_TEXTS:
                self._texts[text] = text
            shared = text
        self._records.append((msg_id, phone, shared, received_at, outcome, status))
        self._total += 1
        requests = self._requests
        requests[msg_id] = requests.get(msg_id, 0) + 1
        self._by_outcome[outcome] += 1
        if self._first_at is None:
            self._first_at = received_at
        self._last_at = received_at
        if outcome is OK:
            accepted = self._accepted.get(msg_id, 0) + 1
            self._accepted[msg_id] = accepted
            self._accepted_total += 1
            self._last_accepted_at = received_at
            if accepted == 2:
                self._duplicate_count += 1
                if len(self._duplicates) < DUPLICATES_SHOWN:
                    self._duplicates.append(msg_id)

    def accepted_count(self, msg_id: int) -> int:
        return self._accepted.get(msg_id, 0)

    def request_count(self, msg_id: int) -> int:
        return self._requests.get(msg_id, 0)

    def stats(self) -> dict[str, object]:
        return {
            "requests": self._total,
            "accepted": self._accepted_total,
            "distinct_ids": len(self._requests),
            "distinct_accepted": len(self._accepted),
            "duplicates_accepted": list(self._duplicates),
            "duplicates_accepted_count": self._duplicate_count,
            "by_outcome": dict(self._by_outcome),
            "rejected": dict(self._rejected),
            "records_kept": len(self._records),
            "first_received_at": iso_utc(self._first_at),
            "last_received_at": iso_utc(self._last_at),
            "last_accepted_at": iso_utc(self._last_accepted_at),
        }

    def page(self, after: int, limit: int) -> tuple[list[dict[str, object]], int]:
        """Records with index > `after` (indices start at 1), oldest first, and the next cursor."""
        # Records older than the deque's bound are gone; their indices stay reserved.
        dropped = self._total - len(self._records)
        start = max(after - dropped, 0)
        first_index = dropped + start + 1
        chunk = islice(self._records, start, start + limit)
        items = [record_to_json(first_index + i, rec) for i, rec in enumerate(chunk)]
        next_after = first_index + len(items) - 1 if items else max(after, dropped)
        return items, next_after

    def for_id(self, msg_id: int) -> list[dict[str, object]]:
        if msg_id not in self._requests:
            return []
        dropped = self._total - len(self._records)
        return [
            record_to_json(dropped + i + 1, rec)
            for i, rec in enumerate(self._records)
            if rec[0] == msg_id
        ]
