import aio_pika
import psycopg


def test_fresh_database_is_empty_and_usable(fresh_database: str) -> None:
    with psycopg.connect(fresh_database) as conn:
        conn.execute("CREATE TABLE t (x int)")
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (1,)


def test_fresh_databases_are_distinct(fresh_database: str, postgres_server: object) -> None:
    with psycopg.connect(fresh_database) as conn:
        assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)


async def test_fresh_vhost_carries_messages(fresh_vhost: str) -> None:
    connection = await aio_pika.connect(fresh_vhost)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("q", auto_delete=True)
        await channel.default_exchange.publish(aio_pika.Message(b"x"), routing_key="q")
        message = await queue.get(timeout=5)
        assert message is not None
        assert message.body == b"x"
