import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from herald_devstack.errors import PermissionProblemError
from herald_devstack.postgres import PostgresServer
from herald_devstack.probes import is_port_free


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Under /tmp, which the postgres user can traverse (pytest's tmp_path root is 0700).
    path = Path(tempfile.mkdtemp(prefix="herald-pgt-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_server_creates_queries_and_drops_a_database(short_dir: Path) -> None:
    server = PostgresServer(short_dir / "pg", durable=False)
    with server:
        server.create_database("orders")
        with psycopg.connect(server.url("orders")) as conn:
            row = conn.execute(
                "SELECT current_database(), current_user, current_setting('fsync'),"
                " current_setting('listen_addresses'), current_setting('max_connections')"
            ).fetchone()
        assert row == ("orders", "herald", "off", "127.0.0.1", "200")

        server.drop_database("orders")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(server.url("orders")).close()
    assert server.postmaster_pid() is None
    assert is_port_free(server.port)


def test_durable_server_keeps_data_across_restarts(short_dir: Path) -> None:
    server = PostgresServer(short_dir / "pg", durable=True)
    with server:
        server.create_database("herald", exist_ok=True)
        with psycopg.connect(server.url()) as conn:
            conn.execute("CREATE TABLE kept (value text)")
            conn.execute("INSERT INTO kept VALUES ('still here')")
    with server:
        server.create_database("herald", exist_ok=True)
        with psycopg.connect(server.url()) as conn:
            assert conn.execute("SELECT current_setting('fsync')").fetchone() == ("on",)
            assert conn.execute("SELECT value FROM kept").fetchall() == [("still here",)]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the directory to postgres")
def test_unreachable_parent_is_explained(short_dir: Path) -> None:
    hidden = short_dir / "hidden"
    hidden.mkdir(mode=0o700)
    with pytest.raises(PermissionProblemError, match=r"hidden.*chmod o\+x"):
        PostgresServer(hidden / "pg").start()
