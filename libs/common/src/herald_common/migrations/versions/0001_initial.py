"""Initial schema: client, mailing, message, outbox.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
STATUSES = "'pending', 'sending', 'retrying', 'deferred', 'sent', 'failed', 'expired', 'cancelled'"


def upgrade() -> None:
    op.create_table(
        "client",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("phone", sa.String(11), nullable=False),
        sa.Column("operator_code", sa.String(3), nullable=False),
        sa.Column("tag", sa.String(64), nullable=False, server_default=""),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("deleted_at", TZ),
        sa.CheckConstraint("phone ~ '^7[0-9]{10}$'", name="phone_format"),
        sa.CheckConstraint("operator_code ~ '^[0-9]{3}$'", name="operator_code_format"),
    )
    op.create_index(
        "uq_client_phone_live",
        "client",
        ["phone"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "mailing",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("starts_at", TZ, nullable=False),
        sa.Column("ends_at", TZ, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "filter_operator_codes",
            postgresql.ARRAY(sa.String(3)),
            nullable=False,
            server_default="{}",
        ),
        sa.Column(
            "filter_tags", postgresql.ARRAY(sa.String(64)), nullable=False, server_default="{}"
        ),
        sa.Column("window_start", sa.Time()),
        sa.Column("window_end", sa.Time()),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("deleted_at", TZ),
        sa.Column("started_at", TZ),
        sa.Column("fanout_cursor", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("fanout_done_at", TZ),
        sa.Column("finished_at", TZ),
        sa.CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        sa.CheckConstraint("(window_start IS NULL) = (window_end IS NULL)", name="window_complete"),
    )
    op.create_index(
        "ix_mailing_due",
        "mailing",
        ["starts_at"],
        postgresql_where=sa.text("deleted_at IS NULL AND fanout_done_at IS NULL"),
    )
    op.create_index(
        "ix_mailing_unfinished",
        "mailing",
        ["ends_at"],
        postgresql_where=sa.text("finished_at IS NULL"),
    )
    op.create_table(
        "message",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("mailing_id", sa.BigInteger(), sa.ForeignKey("mailing.id"), nullable=False),
        sa.Column("client_id", sa.BigInteger(), sa.ForeignKey("client.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("sent_at", TZ),
        sa.Column("next_attempt_at", TZ),
        sa.Column("lease_until", TZ),
        sa.UniqueConstraint("mailing_id", "client_id"),
        sa.CheckConstraint(f"status IN ({STATUSES})", name="status_known"),
    )
    op.create_index("ix_message_mailing_id_status", "message", ["mailing_id", "status"])
    op.create_index("ix_message_client_id", "message", ["client_id"])
    op.create_index(
        "ix_message_deferred_due",
        "message",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'deferred'"),
    )
    op.create_index(
        "ix_message_lease",
        "message",
        ["lease_until"],
        postgresql_where=sa.text("status = 'sending'"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("exchange", sa.String(128), nullable=False),
        sa.Column("routing_key", sa.String(128), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("headers", postgresql.JSONB(), nullable=False, server_default="{}"),
        sa.Column("expiration_ms", sa.Integer()),
    )


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("message")
    op.drop_table("mailing")
    op.drop_table("client")
