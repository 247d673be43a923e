"""Alembic environment: runs migrations online over psycopg 3, URL from HERALD_DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from herald_common.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    raise RuntimeError("sqlalchemy.url is not configured; run migrations through herald-migrate")

# Parameters hold personal data (phones, texts): never in an error's text or a log line.
connectable = create_engine(url, poolclass=pool.NullPool, hide_parameters=True)
with connectable.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        # Several replicas may start at once: only one migrates, the others wait on the lock.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(4242000001)")
        context.run_migrations()
