"""The daily statistics e-mail: one row per report day, claimed by a reporter replica.

A row in ``sending`` is a report still owed (never tried, failed and waiting for
``next_attempt_at``, or claimed: ``claimed_at`` is the claim, a lease); ``sent`` is final. The
reporter plans new days from the latest ``report_day``, so rows are never deleted.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "daily_report",
        sa.Column("report_day", sa.Date(), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False, server_default="sending"),
        sa.Column("window_start_at", TZ, nullable=False),
        sa.Column("window_end_at", TZ, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("claimed_at", TZ),
        sa.Column("claimed_by", sa.String(128)),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TZ),
        sa.Column("last_error", sa.Text()),
        sa.Column("message_id", sa.String(255)),
        sa.Column("sent_at", TZ),
        sa.Column("recipients", sa.Integer()),
        sa.CheckConstraint("status IN ('sending', 'sent')", name="status_known"),
        sa.CheckConstraint("window_end_at > window_start_at", name="window_ordered"),
        sa.CheckConstraint("(status = 'sent') = (sent_at IS NOT NULL)", name="sent_has_time"),
    )
    # The claim's query: owed reports, oldest day first.
    op.create_index(
        "ix_daily_report_owed",
        "daily_report",
        ["report_day"],
        postgresql_where=sa.text("status = 'sending'"),
    )


def downgrade() -> None:
    op.drop_table("daily_report")
