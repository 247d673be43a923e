"""The bulk import's staging tables, and the set-based statements that check them and merge
them into ``client``.

What a live client is and which messages are deferred is said by ``herald_common``'s table
modules and statuses; the statements here only join the file's rows to them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Integer,
    MetaData,
    Select,
    Table,
    Text,
    Update,
    and_,
    cast,
    exists,
    func,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.schema import CreateTable, DropTable
from sqlalchemy.sql.elements import TextClause

from herald_api.clients.imports import MAX_REPORTED
from herald_common.models import Client, Message
from herald_common.statuses import MessageStatus
from herald_common.tables import client

_metadata = MetaData()


def _staging_table(name: str) -> Table:
    """The file's valid rows, dropped with the transaction whatever its outcome. Phones as
    numbers: they hash and sort several times faster than text, and 11 digits starting with 7
    order alike."""
    return Table(
        name,
        _metadata,
        Column("line", Integer, nullable=False),
        Column("phone", BigInteger, nullable=False),
        Column("operator_code", Text, nullable=False),
        Column("tag", Text, nullable=False),
        Column("timezone", Text, nullable=False),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )


RECEIVED = _staging_table("client_import_raw")  # in the file's order, as COPY writes them
SORTED = _staging_table("client_import")  # the same rows again, in phone order

CREATE_RECEIVED = CreateTable(RECEIVED)
COPY_RECEIVED = f"COPY {RECEIVED.name} ({', '.join(RECEIVED.c.keys())}) FROM STDIN"
# Updates and inserts then walk the phone index (and the clients' pages, mostly) in order
# instead of at random, twice as fast on a million rows; and concurrent imports wait on each
# other's phones in one order. (SQLAlchemy's CreateTableAs has no ON COMMIT DROP.)
SORT: TextClause = text(
    f"CREATE TEMPORARY TABLE {SORTED.name} ON COMMIT DROP AS "
    f"SELECT * FROM {RECEIVED.name} ORDER BY phone"
)
DROP_RECEIVED = DropTable(RECEIVED)
# A temporary table has no statistics until analysed; the joins below need them.
ANALYZE_SORTED: TextClause = text(f"ANALYZE {SORTED.name}")


def _duplicates_in_file() -> Select[int, int, str, int]:
    """Each row whose phone an earlier row of the file has, with that row's line; the first
    ``MAX_REPORTED`` by line, and how many there are in all."""
    repeated = (
        select(RECEIVED.c.phone, func.min(RECEIVED.c.line).label("first_line"))
        .group_by(RECEIVED.c.phone)
        .having(func.count() > 1)
        .cte("repeated")
    )
    return (
        select(
            RECEIVED.c.line,
            repeated.c.first_line,
            cast(RECEIVED.c.phone, Text).label("phone"),
            func.count().over().label("total"),
        )
        .join_from(RECEIVED, repeated, RECEIVED.c.phone == repeated.c.phone)
        .where(RECEIVED.c.line != repeated.c.first_line)
        .order_by(RECEIVED.c.line)
        .limit(MAX_REPORTED)
    )


def _has_live_client() -> ColumnElement[bool]:
    """The row's phone is a live client's: the join of every statement below."""
    return and_(Client.phone == cast(SORTED.c.phone, Text), client.is_live())


def _existing() -> Select[str, int]:
    """Phones of the file that live clients have; the first ``MAX_REPORTED`` by line, and how
    many there are in all."""
    return (
        select(cast(SORTED.c.phone, Text).label("phone"), func.count().over().label("total"))
        .join_from(SORTED, Client, _has_live_client())
        .order_by(SORTED.c.line)
        .limit(MAX_REPORTED)
    )


def _replan_moved() -> Update:
    """Deferred messages of clients whose time zone changes wait for an opening in the old
    zone; due now, the scheduler queues them and the senders judge them anew. (Run before
    the update of the clients.)"""
    return (
        _update_unsynchronized(Message)
        .where(
            Message.client_id == Client.id,
            Message.status == MessageStatus.DEFERRED,
            _has_live_client(),
            Client.timezone != SORTED.c.timezone,
        )
        .values(next_attempt_at=func.now(), updated_at=func.now())
    )


def _update_existing() -> Update:
    """Live clients given the file's values; a row equal to its client changes nothing (and
    is counted as skipped)."""
    return (
        _update_unsynchronized(Client)
        .where(
            _has_live_client(),
            tuple_(Client.operator_code, Client.tag, Client.timezone).is_distinct_from(
                tuple_(SORTED.c.operator_code, SORTED.c.tag, SORTED.c.timezone)
            ),
        )
        .values(
            operator_code=SORTED.c.operator_code,
            tag=SORTED.c.tag,
            timezone=SORTED.c.timezone,
            updated_at=func.now(),
        )
    )


def _update_unsynchronized(entity: type[Client] | type[Message]) -> Update:
    """An UPDATE that leaves the session's objects alone: the session holds none of these
    rows, and synchronising would fetch every id the statement touched."""
    return update(entity).execution_options(synchronize_session=False)


def _rows_to_insert() -> Select[str, str, str, str]:
    return select(
        cast(SORTED.c.phone, Text), SORTED.c.operator_code, SORTED.c.tag, SORTED.c.timezone
    )


def _insert(rows: Select[str, str, str, str]) -> Insert:
    return insert(Client).from_select(
        [Client.phone, Client.operator_code, Client.tag, Client.timezone],
        rows.order_by(SORTED.c.phone),
    )


def _insert_new() -> Insert:
    """Clients for the phones no live client has. Live phones are left out by a join first:
    ON CONFLICT alone would still check constraints, draw an id and probe the index for each
    of them, several times slower on a re-import. ON CONFLICT stays for phones a concurrent
    request takes meanwhile."""
    rows = _rows_to_insert().where(~exists().where(_has_live_client()))
    return (
        _insert(rows)
        .on_conflict_do_nothing(index_elements=[Client.phone], index_where=client.is_live())
        # SQLAlchemy reads an INSERT's rowcount only when asked to: it is the count created.
        .execution_options(preserve_rowcount=True)
    )


DUPLICATES_IN_FILE = _duplicates_in_file()
EXISTING = _existing()
REPLAN_MOVED = _replan_moved()
UPDATE_EXISTING = _update_existing()
INSERT_ALL = _insert(_rows_to_insert())
INSERT_NEW = _insert_new()
