"""Admin UI sessions, kept server-side so that logging out ends a session for good.

The browser holds a signed cookie with a random session id; this table holds the id's
SHA-256, so a copy of the table alone opens no session. ``ended_at`` is set by logout.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "admin_session",
        sa.Column("id_hash", sa.LargeBinary(), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("ended_at", TZ),
    )
    op.create_index("ix_admin_session_expires_at", "admin_session", ["expires_at"])


def downgrade() -> None:
    op.drop_table("admin_session")
