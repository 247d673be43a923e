"""Finding messages whose job was lost, and outbox rows the broker refuses.

- Partial indexes for the lost-job sweep: ``pending`` messages by when they last changed,
  ``retrying`` ones by when their retry was due.
- ``outbox.attempts``, ``last_error`` and ``quarantined_at``: a row the broker keeps refusing
  (unroutable) is set aside instead of blocking the rows behind it.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# The idle statuses as of this revision (a migration is a frozen snapshot).
IDLE_PREDICATE = "status IN ('deferred', 'paused', 'pending', 'retrying')"

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_message_pending_since",
        "message",
        ["updated_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_message_retry_due",
        "message",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'retrying'"),
    )
    # The expiry sweep: which mailings still have idle messages (only unfinished ones do).
    op.create_index(
        "ix_mailing_message_count_idle",
        "mailing_message_count",
        ["mailing_id"],
        postgresql_where=sa.text(IDLE_PREDICATE),
    )
    op.add_column("outbox", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("outbox", sa.Column("last_error", sa.Text()))
    op.add_column("outbox", sa.Column("quarantined_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_index("ix_mailing_message_count_idle", table_name="mailing_message_count")
    op.drop_column("outbox", "quarantined_at")
    op.drop_column("outbox", "last_error")
    op.drop_column("outbox", "attempts")
    op.drop_index("ix_message_retry_due", table_name="message")
    op.drop_index("ix_message_pending_since", table_name="message")
