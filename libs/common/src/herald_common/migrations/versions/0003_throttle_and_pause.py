"""A provider throttle shared by all senders; pausing mailings.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
OLD = "'pending', 'sending', 'retrying', 'deferred', 'sent', 'failed', 'expired', 'cancelled'"
NEW = OLD.replace("'deferred',", "'deferred', 'paused',")


def upgrade() -> None:
    # One row per provider: a GCRA rate limit (theoretical arrival time) and a shared pause
    # (a 429's Retry-After, honoured by every sender replica).
    op.create_table(
        "provider_throttle",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("tat", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("paused_until", TZ),
    )
    op.execute("INSERT INTO provider_throttle (name) VALUES ('provider')")
    op.add_column("mailing", sa.Column("paused_at", TZ))
    op.drop_constraint(op.f("ck_message_status_known"), "message", type_="check")
    op.create_check_constraint("status_known", "message", f"status IN ({NEW})")


def downgrade() -> None:
    op.execute("UPDATE message SET status = 'deferred' WHERE status = 'paused'")
    op.drop_constraint(op.f("ck_message_status_known"), "message", type_="check")
    op.create_check_constraint("status_known", "message", f"status IN ({OLD})")
    op.drop_column("mailing", "paused_at")
    op.drop_table("provider_throttle")
