"""SQLAlchemy models: the database is Herald's source of truth."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    Time,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from herald_common.statuses import ALL_STATUSES, IDLE_STATUSES, ReportStatus

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TZ = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Client(Base):
    __tablename__ = "client"
    __table_args__ = (
        # Deleted clients keep their history, so only live clients must have distinct phones.
        Index(
            "uq_client_phone_live",
            "phone",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
        CheckConstraint("phone ~ '^7[0-9]{10}$'", name="phone_format"),
        CheckConstraint("operator_code ~ '^[0-9]{3}$'", name="operator_code_format"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    phone: Mapped[str] = mapped_column(String(11))
    operator_code: Mapped[str] = mapped_column(String(3))
    tag: Mapped[str] = mapped_column(String(64), server_default="")
    timezone: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(TZ)


class Mailing(Base):
    __tablename__ = "mailing"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("(window_start IS NULL) = (window_end IS NULL)", name="window_complete"),
        # The scheduler's hot query: live mailings whose fan-out is not done.
        Index(
            "ix_mailing_due",
            "starts_at",
            postgresql_where=text("deleted_at IS NULL AND fanout_done_at IS NULL"),
        ),
        Index("ix_mailing_unfinished", "ends_at", postgresql_where=text("finished_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(TZ)
    ends_at: Mapped[datetime] = mapped_column(TZ)
    text: Mapped[str] = mapped_column(Text)
    filter_operator_codes: Mapped[list[str]] = mapped_column(ARRAY(String(3)), server_default="{}")
    filter_tags: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default="{}")
    window_start: Mapped[time | None] = mapped_column(Time)
    window_end: Mapped[time | None] = mapped_column(Time)
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(TZ)
    # Fan-out progress: clients with id <= fanout_cursor already have their message row.
    started_at: Mapped[datetime | None] = mapped_column(TZ)
    fanout_cursor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    fanout_done_at: Mapped[datetime | None] = mapped_column(TZ)
    finished_at: Mapped[datetime | None] = mapped_column(TZ)
    paused_at: Mapped[datetime | None] = mapped_column(TZ)
    # Retention deleted its messages (HERALD_RETENTION_DAYS); its counters remain.
    messages_pruned_at: Mapped[datetime | None] = mapped_column(TZ)


_status_list = ", ".join(f"'{s.value}'" for s in ALL_STATUSES)
# The predicate of ix_mailing_message_count_idle. A query can use that partial index only if
# its own condition spells the same list out (a bound parameter would not do).
IDLE_STATUS_PREDICATE = (
    "status IN (" + ", ".join(f"'{s.value}'" for s in sorted(IDLE_STATUSES)) + ")"
)


class Message(Base):
    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("mailing_id", "client_id"),
        CheckConstraint(f"status IN ({_status_list})", name="status_known"),
        Index("ix_message_mailing_id_status", "mailing_id", "status"),
        Index("ix_message_client_id", "client_id"),
        Index(
            "ix_message_deferred_due",
            "next_attempt_at",
            postgresql_where=text("status = 'deferred'"),
        ),
        Index("ix_message_lease", "lease_until", postgresql_where=text("status = 'sending'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    mailing_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("mailing.id"))
    client_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("client.id"))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(TZ)
    next_attempt_at: Mapped[datetime | None] = mapped_column(TZ)
    lease_until: Mapped[datetime | None] = mapped_column(TZ)


class Outbox(Base):
    """Broker messages committed with the state change that needs them; a relay publishes them."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    exchange: Mapped[str] = mapped_column(String(128))
    routing_key: Mapped[str] = mapped_column(String(128))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    expiration_ms: Mapped[int | None] = mapped_column(Integer)
    # Failed relay attempts; a row the broker keeps refusing is quarantined, not retried.
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    quarantined_at: Mapped[datetime | None] = mapped_column(TZ)


class MailingMessageCount(Base):
    """Messages of a mailing per status, in shards that only mean something summed; kept by
    triggers on ``message`` (migrations 0002, 0004)."""

    __tablename__ = "mailing_message_count"
    __table_args__ = (
        # The scheduler's expiry sweep looks up the mailings with idle messages here.
        Index(
            "ix_mailing_message_count_idle",
            "mailing_id",
            postgresql_where=text(IDLE_STATUS_PREDICATE),
        ),
    )

    mailing_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("mailing.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default="0")
    count: Mapped[int] = mapped_column(BigInteger)


class MailingProgress(Base):
    """How many messages of a running mailing were settled at a moment; rates come from these."""

    __tablename__ = "mailing_progress"

    mailing_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("mailing.id"), primary_key=True)
    sampled_at: Mapped[datetime] = mapped_column(TZ, primary_key=True)
    done: Mapped[int] = mapped_column(BigInteger)


# How long the API replays an Idempotency-Key's answer; the scheduler prunes older keys.
IDEMPOTENCY_KEEP_HOURS = 24


class IdempotencyKey(Base):
    """A creating POST's Idempotency-Key with its first answer (migration 0005)."""

    __tablename__ = "idempotency_key"
    __table_args__ = (Index("ix_idempotency_key_created_at", "created_at"),)

    caller: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[bytes] = mapped_column(LargeBinary)
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())


class ProviderThrottle(Base):
    """Shared by every sender: a GCRA rate limit and a pause (a provider's Retry-After)."""

    __tablename__ = "provider_throttle"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    tat: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    paused_until: Mapped[datetime | None] = mapped_column(TZ)


# The predicate of ix_daily_report_owed; the reporter's claim spells it out the same way, a
# literal, so that the partial index serves it (a bound parameter would not do).
REPORT_OWED_PREDICATE = f"status = '{ReportStatus.SENDING.value}'"


class DailyReport(Base):
    """One day's statistics e-mail (migration 0006): ``sending`` while owed, then ``sent``.

    ``claimed_at`` is a reporter's lease on it; ``next_attempt_at`` the backoff after a failed
    try. The window is what the report covers, fixed when the day is planned.
    """

    __tablename__ = "daily_report"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s.value}'" for s in ReportStatus) + ")",
            name="status_known",
        ),
        CheckConstraint("window_end_at > window_start_at", name="window_ordered"),
        CheckConstraint(
            f"(status = '{ReportStatus.SENT.value}') = (sent_at IS NOT NULL)", name="sent_has_time"
        ),
        Index("ix_daily_report_owed", "report_day", postgresql_where=text(REPORT_OWED_PREDICATE)),
    )

    report_day: Mapped[date] = mapped_column(Date, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), server_default=ReportStatus.SENDING.value)
    window_start_at: Mapped[datetime] = mapped_column(TZ)
    window_end_at: Mapped[datetime] = mapped_column(TZ)
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    claimed_at: Mapped[datetime | None] = mapped_column(TZ)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(TZ)
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))
    sent_at: Mapped[datetime | None] = mapped_column(TZ)
    recipients: Mapped[int | None] = mapped_column(Integer)


class AdminSession(Base):
    """An admin UI login (migration 0007); the cookie carries the id, this row its SHA-256."""

    __tablename__ = "admin_session"
    __table_args__ = (Index("ix_admin_session_expires_at", "expires_at"),)

    id_hash: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(TZ)
    ended_at: Mapped[datetime | None] = mapped_column(TZ)
