"""Per-mailing counters spread over shards, so that concurrent writers do not queue.

With one row per (mailing, status), every transaction that changes a mailing's messages (each
sender's claims and outcome batches) updated the same few rows and held them until its commit:
one mailing's writers ran one after the other, and adding senders added nothing. Each database
session now writes the shard ``pg_backend_pid() % 16``; readers sum the shards. Shard rows may
be negative (a message counted in by one session and out by another); only sums mean anything.
The scheduler folds a finished mailing's shards into shard 0.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SHARDS = 16

APPLY_DELTAS = """
    INSERT INTO mailing_message_count AS c (mailing_id, status, shard, count)
    SELECT mailing_id, status, {shard}, sum(delta) FROM ({deltas}) AS d
    GROUP BY mailing_id, status
    HAVING sum(delta) <> 0
    ORDER BY mailing_id, status
    ON CONFLICT (mailing_id, status, shard) DO UPDATE SET count = c.count + excluded.count;
"""
OLD_APPLY_DELTAS = """
    INSERT INTO mailing_message_count AS c (mailing_id, status, count)
    SELECT mailing_id, status, sum(delta) FROM ({deltas}) AS d
    GROUP BY mailing_id, status
    HAVING sum(delta) <> 0
    ORDER BY mailing_id, status
    ON CONFLICT (mailing_id, status) DO UPDATE SET count = c.count + excluded.count;
"""
NEW = "SELECT mailing_id, status, 1 AS delta FROM new_rows"
OLD = "SELECT mailing_id, status, -1 AS delta FROM old_rows"
DELTAS = {
    "message_count_insert": NEW,
    "message_count_update": f"{NEW} UNION ALL {OLD}",
    "message_count_delete": OLD,
}


def _replace_functions(template: str, shard: str) -> None:
    for name, deltas in DELTAS.items():
        body = template.format(deltas=deltas, shard=shard)
        op.execute(
            f"""
            CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {body}
                RETURN NULL;
            END
            $$
            """
        )


def upgrade() -> None:
    op.add_column(
        "mailing_message_count",
        sa.Column("shard", sa.SmallInteger(), nullable=False, server_default="0"),
    )
    op.drop_constraint("pk_mailing_message_count", "mailing_message_count", type_="primary")
    op.create_primary_key(
        "pk_mailing_message_count", "mailing_message_count", ["mailing_id", "status", "shard"]
    )
    _replace_functions(APPLY_DELTAS, f"pg_backend_pid() % {SHARDS}")


def downgrade() -> None:
    op.execute(
        """
        CREATE TEMPORARY TABLE folded ON COMMIT DROP AS
        SELECT mailing_id, status, sum(count) AS count FROM mailing_message_count
        GROUP BY mailing_id, status
        """
    )
    op.execute("DELETE FROM mailing_message_count")
    op.drop_constraint("pk_mailing_message_count", "mailing_message_count", type_="primary")
    op.drop_column("mailing_message_count", "shard")
    op.create_primary_key(
        "pk_mailing_message_count", "mailing_message_count", ["mailing_id", "status"]
    )
    op.execute(
        "INSERT INTO mailing_message_count (mailing_id, status, count) "
        "SELECT mailing_id, status, count FROM folded"
    )
    _replace_functions(OLD_APPLY_DELTAS, "")
