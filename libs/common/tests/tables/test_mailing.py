"""A mailing's state, in Python for one row and in SQL for many, is one rule: every case of
the table below is checked both ways, the SQL on PostgreSQL. Which mailings a report window
covers is checked on PostgreSQL too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from herald_common.models import Mailing
from herald_common.statuses import MailingState
from herald_common.tables import mailing

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
H = timedelta(hours=1)

# (starts_at, ends_at, finished_at, paused_at, state at NOW)
CASES = [
    pytest.param(NOW + H, NOW + 2 * H, None, None, MailingState.SCHEDULED, id="future"),
    pytest.param(NOW, NOW + H, None, None, MailingState.RUNNING, id="starts-now"),
    pytest.param(NOW - H, NOW + H, None, None, MailingState.RUNNING, id="running"),
    pytest.param(NOW - 2 * H, NOW, None, None, MailingState.FINISHED, id="ends-now"),
    pytest.param(NOW - H, NOW + H, NOW, None, MailingState.FINISHED, id="all-settled"),
    pytest.param(NOW - H, NOW + H, None, NOW, MailingState.PAUSED, id="paused"),
    pytest.param(NOW + H, NOW + 2 * H, None, NOW, MailingState.PAUSED, id="paused-early"),
    pytest.param(NOW - 2 * H, NOW - H, None, NOW, MailingState.FINISHED, id="ended-paused"),
    pytest.param(NOW - 2 * H, NOW - H, NOW, NOW, MailingState.FINISHED, id="finished-paused"),
]


async def insert_mailings(conn: AsyncConnection, rows: list[dict[str, object]]) -> list[int]:
    """One mailing per row (times as given), their ids in the rows' order."""
    # One statement for many rows takes the columns of the first: every row gets them all.
    columns = {name for row in rows for name in row}
    inserted = await conn.execute(
        insert(Mailing).returning(Mailing.id, sort_by_parameter_order=True),
        [{"text": "hello", **dict.fromkeys(columns), **row} for row in rows],
    )
    return list(inserted.scalars())


@pytest.mark.parametrize(("starts_at", "ends_at", "finished_at", "paused_at", "expected"), CASES)
def test_state_of_one_mailing(
    starts_at: datetime,
    ends_at: datetime,
    finished_at: datetime | None,
    paused_at: datetime | None,
    expected: MailingState,
) -> None:
    assert mailing.state(NOW, starts_at, ends_at, finished_at, paused_at) == expected


async def test_in_state_selects_exactly_the_mailings_state_puts_there(
    clean_engine: AsyncEngine,
) -> None:
    cases = [case.values for case in CASES]
    async with clean_engine.begin() as conn:
        ids = await insert_mailings(
            conn,
            [
                {
                    "starts_at": starts_at,
                    "ends_at": ends_at,
                    "finished_at": finished_at,
                    "paused_at": paused_at,
                }
                for starts_at, ends_at, finished_at, paused_at, _ in cases
            ],
        )
        expected = {
            state: {mid for mid, case in zip(ids, cases, strict=True) if case[4] == state}
            for state in MailingState
        }
        for state in MailingState:
            found = await conn.execute(select(Mailing.id).where(mailing.in_state(state, NOW)))
            assert set(found.scalars()) == expected[state], state
        # Finished is exactly "has ended"; the others are "open".
        ended = await conn.execute(select(Mailing.id).where(mailing.has_ended(NOW)))
        assert set(ended.scalars()) == expected[MailingState.FINISHED]
        still_open = await conn.execute(select(Mailing.id).where(mailing.is_open(NOW)))
        assert set(still_open.scalars()) == set(ids) - expected[MailingState.FINISHED]
        counts = await mailing.count_by_state(conn, NOW)
        assert counts == {state.value: len(expected[state]) for state in MailingState}


START = datetime(2026, 11, 21, 7, tzinfo=UTC)  # a report window: [START, END)
END = START + 24 * H

# (starts_at, ends_at, deleted_at, active in [START, END))
WINDOW_CASES = [
    pytest.param(START - 3 * H, START - H, None, False, id="before"),
    pytest.param(START - 3 * H, START, None, False, id="ends-at-the-start"),
    pytest.param(START - H, START + H, None, True, id="overlapping-the-start"),
    pytest.param(START + H, END - H, None, True, id="inside"),
    pytest.param(START - H, END + H, None, True, id="spanning"),
    pytest.param(END - H, END + H, None, True, id="overlapping-the-end"),
    pytest.param(END, END + H, None, False, id="starts-at-the-end"),
    pytest.param(END + H, END + 3 * H, None, False, id="after"),
    pytest.param(START - H, END + H, START - H, False, id="deleted-before"),
    pytest.param(START - H, END + H, START, False, id="deleted-at-the-start"),
    pytest.param(START - H, END + H, START + H, True, id="deleted-inside"),
    pytest.param(START - H, START + H, END + H, True, id="deleted-after"),
]


async def test_was_active_between_selects_the_mailings_of_a_window_deleted_ones_until_deletion(
    clean_engine: AsyncEngine,
) -> None:
    cases = [case.values for case in WINDOW_CASES]
    async with clean_engine.begin() as conn:
        ids = await insert_mailings(
            conn,
            [
                {"starts_at": starts_at, "ends_at": ends_at, "deleted_at": deleted_at}
                for starts_at, ends_at, deleted_at, _ in cases
            ],
        )
        found = await conn.execute(select(Mailing.id).where(mailing.was_active_between(START, END)))
        names = {mid: case.id for mid, case in zip(ids, WINDOW_CASES, strict=True)}
        expected = {names[mid] for mid, case in zip(ids, cases, strict=True) if case[3]}
        assert {names[mid] for mid in found.scalars()} == expected


async def test_upcoming_and_overdue_mailings(clean_engine: AsyncEngine) -> None:
    """Upcoming: live, not started, its start ahead. Overdue: its start passed more than the
    grace ago and the scheduler has not started it (paused and ended ones are not late)."""
    grace = timedelta(minutes=1)
    rows: list[dict[str, object]] = [
        {"starts_at": NOW + H, "ends_at": NOW + 2 * H},  # upcoming
        {"starts_at": NOW + H, "ends_at": NOW + 2 * H, "deleted_at": NOW},  # deleted
        {"starts_at": NOW - 2 * grace, "ends_at": NOW + H},  # overdue
        {"starts_at": NOW - 2 * grace, "ends_at": NOW + H, "started_at": NOW},  # started
        {"starts_at": NOW - grace / 2, "ends_at": NOW + H},  # within its grace
        {"starts_at": NOW - 2 * grace, "ends_at": NOW + H, "paused_at": NOW},  # paused
        {"starts_at": NOW - 2 * H, "ends_at": NOW - H},  # ended
    ]
    async with clean_engine.begin() as conn:
        ids = await insert_mailings(conn, rows)
        upcoming = await conn.execute(select(Mailing.id).where(mailing.is_upcoming(NOW)))
        overdue = await conn.execute(
            select(Mailing.id).where(mailing.is_live(), mailing.is_overdue(NOW, grace))
        )
        assert set(upcoming.scalars()) == {ids[0]}
        assert set(overdue.scalars()) == {ids[2]}
