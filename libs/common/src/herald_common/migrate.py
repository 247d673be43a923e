"""``herald-migrate``: bring the schema to the newest revision (safe to run in parallel)."""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

from herald_common.settings import to_sqlalchemy_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on a '%' in a password.
    config.set_main_option("sqlalchemy.url", to_sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def run() -> None:
    import os

    url = os.environ.get("HERALD_DATABASE_URL")
    if not url:
        print("herald-migrate: HERALD_DATABASE_URL is not set", file=sys.stderr)
        raise SystemExit(2)
    upgrade(url, sys.argv[1] if len(sys.argv) > 1 else "head")
    print('{"event": "migrations_applied", "revision": "head"}', flush=True)
