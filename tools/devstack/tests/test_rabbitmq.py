import shutil
import tempfile
from pathlib import Path

import aio_pika

from herald_devstack.probes import is_port_free, port_accepts
from herald_devstack.processes import find_marked_processes
from herald_devstack.rabbitmq import RabbitMQServer
from herald_devstack.rabbitmq_api import amqp_url


def test_amqp_url_encodes_the_vhost() -> None:
    assert amqp_url("127.0.0.1", 5673, "guest", "guest") == "amqp://guest:guest@127.0.0.1:5673/%2F"
    assert amqp_url("h", 1, "u", "p@ss", "a/b c") == "amqp://u:p%40ss@h:1/a%2Fb%20c"


async def test_server_vhost_roundtrip_and_clean_stop() -> None:
    base_dir = Path(tempfile.mkdtemp(prefix="herald-rmqt-"))
    server = RabbitMQServer(base_dir)
    try:
        server.start()
        assert port_accepts(server.prometheus_port)
        server.create_vhost("orders/eu")
        assert "orders/eu" in server.api.list_vhosts()

        connection = await aio_pika.connect(server.url("orders/eu"))
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("jobs")
            await channel.default_exchange.publish(aio_pika.Message(b"hello"), routing_key="jobs")
            message = await queue.get(timeout=5)
            assert message is not None
            assert message.body == b"hello"
            await message.ack()

        server.delete_vhost("orders/eu")
        assert "orders/eu" not in server.api.list_vhosts()
    finally:
        server.stop()
        shutil.rmtree(base_dir, ignore_errors=True)

    assert [port for port in server.ports if not is_port_free(port)] == []
    assert find_marked_processes(str(base_dir)) == []
