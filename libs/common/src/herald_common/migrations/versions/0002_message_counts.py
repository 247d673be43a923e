"""Per-mailing message counts by status, kept by triggers; progress samples.

Counting a million messages per stats call is too slow; these counters make ``/stats`` and
the scheduler's gauges O(statuses). Statement-level triggers with transition tables update
them once per statement, whoever changes messages (api, scheduler, sender), in the same
transaction. Rows are upserted in (mailing_id, status) order so that concurrent
transactions lock counters in one order.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)

APPLY_DELTAS = """
    INSERT INTO mailing_message_count AS c (mailing_id, status, count)
    SELECT mailing_id, status, sum(delta) FROM ({deltas}) AS d
    GROUP BY mailing_id, status
    HAVING sum(delta) <> 0
    ORDER BY mailing_id, status
    ON CONFLICT (mailing_id, status) DO UPDATE SET count = c.count + excluded.count;
"""
NEW = "SELECT mailing_id, status, 1 AS delta FROM new_rows"
OLD = "SELECT mailing_id, status, -1 AS delta FROM old_rows"

FUNCTIONS = {
    "message_count_insert": APPLY_DELTAS.format(deltas=NEW),
    "message_count_update": APPLY_DELTAS.format(deltas=f"{NEW} UNION ALL {OLD}"),
    "message_count_delete": APPLY_DELTAS.format(deltas=OLD),
}
TRIGGERS = {
    "message_count_insert": ("INSERT", "REFERENCING NEW TABLE AS new_rows"),
    "message_count_update": ("UPDATE", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    "message_count_delete": ("DELETE", "REFERENCING OLD TABLE AS old_rows"),
}


def upgrade() -> None:
    op.create_table(
        "mailing_message_count",
        sa.Column("mailing_id", sa.BigInteger(), sa.ForeignKey("mailing.id"), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "mailing_progress",
        sa.Column("mailing_id", sa.BigInteger(), sa.ForeignKey("mailing.id"), primary_key=True),
        sa.Column("sampled_at", TZ, primary_key=True),
        sa.Column("done", sa.BigInteger(), nullable=False),
    )
    for name, body in FUNCTIONS.items():
        op.execute(
            f"""
            CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {body}
                RETURN NULL;
            END
            $$
            """
        )
    for name, (event, referencing) in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON message {referencing} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )
    op.execute(
        """
        INSERT INTO mailing_message_count (mailing_id, status, count)
        SELECT mailing_id, status, count(*) FROM message GROUP BY mailing_id, status
        """
    )


def downgrade() -> None:
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON message")
        op.execute(f"DROP FUNCTION {name}()")
    op.drop_table("mailing_progress")
    op.drop_table("mailing_message_count")
