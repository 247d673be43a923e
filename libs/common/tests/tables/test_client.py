"""Mailing filters, run by PostgreSQL: empty lists mean "any", both lists must accept the
client, and deleted clients are never in an audience."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.models import Client
from herald_common.tables import client

# (filter's codes, filter's tags, client's code, client's tag, selected?)
CASES: list[tuple[str, Sequence[str], Sequence[str], str, str, bool]] = [
    ("empty-filter-matches-all", [], [], "900", "vip", True),
    ("empty-filter-matches-empty-tag", [], [], "999", "", True),
    ("codes-only-match", ["900"], [], "900", "vip", True),
    ("codes-only-second-code", ["900", "916"], [], "916", "any", True),
    ("codes-only-other-code", ["900"], [], "901", "vip", False),
    ("tags-only-match", [], ["vip"], "123", "vip", True),
    ("tags-only-second-tag", [], ["vip", "new"], "123", "new", True),
    ("tags-are-case-sensitive", [], ["vip"], "123", "VIP", False),
    ("tags-match-exactly", [], ["vip"], "123", "vip ", False),
    ("tags-only-empty-tag", [], ["vip"], "123", "", False),
    ("both-match", ["900"], ["vip"], "900", "vip", True),
    ("both-tag-rejects", ["900"], ["vip"], "900", "new", False),
    ("both-code-rejects", ["900"], ["vip"], "901", "vip", False),
    ("both-reject", ["900"], ["vip"], "901", "new", False),
    ("tuples-work-too", ("900",), ("vip",), "900", "vip", True),
    ("code-is-not-a-prefix-match", ["90"], [], "900", "vip", False),
]


async def test_a_filter_selects_the_clients_both_its_lists_accept(
    clean_engine: AsyncEngine,
) -> None:
    async with clean_engine.begin() as conn:
        ids = list(
            (
                await conn.execute(
                    insert(Client).returning(Client.id),
                    [
                        {
                            "phone": f"7900000{n:04d}",
                            "operator_code": code,
                            "tag": tag,
                            "timezone": "UTC",
                        }
                        for n, (_, _, _, code, tag, _) in enumerate(CASES)
                    ],
                )
            ).scalars()
        )
        for client_id, (name, codes, tags, _, _, expected) in zip(ids, CASES, strict=True):
            selected = await conn.scalar(
                select(Client.id).where(Client.id == client_id, client.in_audience(codes, tags))
            )
            assert (selected is not None) is expected, name


async def test_a_deleted_client_is_in_no_audience(clean_engine: AsyncEngine) -> None:
    async with clean_engine.begin() as conn:
        client_id = await conn.scalar(
            insert(Client)
            .values(phone="79000000001", operator_code="900", tag="", timezone="UTC")
            .returning(Client.id)
        )
        audience = select(Client.id).where(client.in_audience([], []))
        assert list((await conn.execute(audience)).scalars()) == [client_id]
        await conn.execute(Client.__table__.update().values(deleted_at=Client.created_at))
        assert list((await conn.execute(audience)).scalars()) == []
