"""A mailing's state, in Python for one row and in SQL for many, is one rule: every case of
the table below is checked both ways, the SQL on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

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
        ids = list(
            (
                await conn.execute(
                    insert(Mailing).returning(Mailing.id, sort_by_parameter_order=True),
                    [
                        {
                            "starts_at": starts_at,
                            "ends_at": ends_at,
                            "finished_at": finished_at,
                            "paused_at": paused_at,
                            "text": "hello",
                        }
                        for starts_at, ends_at, finished_at, paused_at, _ in cases
                    ],
                )
            ).scalars()
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
        counts = await mailing.count_by_state(conn, NOW)
        assert counts == {state.value: len(expected[state]) for state in MailingState}
