"""Finding messages whose job was lost, and outbox rows the broker refuses.

- ``outbox.attempts``, ``last_error`` and ``quarantined_at``: a row the broker keeps refusing
  (unroutable) is set aside instead of blocking the rows behind it.
- ``mailing.messages_pruned_at``, and a delete trigger that leaves the counters alone when the
  transaction sets ``herald.keep_counts``: retention deletes the message rows of long-finished
  mailings while their statistics stay exact.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# The idle statuses as of this revision (a migration is a frozen snapshot).
IDLE_PREDICATE = "status IN ('deferred', 'paused', 'pending', 'retrying')"

# Retention deletes messages whose counts must stay: it sets this for its transaction.
KEEP_COUNTS_GUARD = (
    "IF current_setting('herald.keep_counts', true) = 'on' THEN RETURN NULL; END IF;"
)

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The expiry sweep: which mailings still have idle messages (only unfinished ones do).
    op.create_index(
        "ix_mailing_message_count_idle",
        "mailing_message_count",
        ["mailing_id"],
        postgresql_where=sa.text(IDLE_PREDICATE),
    )
    op.add_column("mailing", sa.Column("messages_pruned_at", sa.DateTime(timezone=True)))
    _delete_trigger(KEEP_COUNTS_GUARD)
    op.add_column("outbox", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("outbox", sa.Column("last_error", sa.Text()))
    op.add_column("outbox", sa.Column("quarantined_at", sa.DateTime(timezone=True)))


def _delete_trigger(guard: str) -> None:
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION message_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {guard}
            INSERT INTO mailing_message_count AS c (mailing_id, status, shard, count)
            SELECT mailing_id, status, pg_backend_pid() % 16, sum(delta) FROM (
                SELECT mailing_id, status, -1 AS delta FROM old_rows
            ) AS d
            GROUP BY mailing_id, status
            HAVING sum(delta) <> 0
            ORDER BY mailing_id, status
            ON CONFLICT (mailing_id, status, shard) DO UPDATE SET count = c.count + excluded.count;
            RETURN NULL;
        END
        $$
        """
    )


def downgrade() -> None:
    _delete_trigger("")
    op.drop_column("mailing", "messages_pruned_at")
    op.drop_index("ix_mailing_message_count_idle", table_name="mailing_message_count")
    op.drop_column("outbox", "quarantined_at")
    op.drop_column("outbox", "last_error")
    op.drop_column("outbox", "attempts")
