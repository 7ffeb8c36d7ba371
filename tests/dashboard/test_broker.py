"""The Redis broker transport when its server dies: what a worker's consumer then does.

After a connection loss, Celery 5.7.0's consumer calls `Connection.collect()` and then
`Connection.close()` on the old connection. Each test sets up the state in which a
worker once exited on that second call. A task channel has an unacknowledged message
and has a BRPOP pending, and a second channel consumes an auto-delete fanout queue, as
the worker's remote-control channel does. Then the server is killed. It is a throwaway
redis-server for that reason, and REDIS_URL's server is never touched.
"""

import shutil

import pytest
from kombu import Connection, Exchange, Queue

from bench.stack import RedisServer

STOCK_TRANSPORT = "redis"
PROJECT_TRANSPORT = "dashboard.broker:Transport"

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs the redis-server binary: apt-get install redis-server"
)


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


def connection_lost_with_pending_brpop(*, server: RedisServer, transport: str):
    """Return a connection and its task channel after the server was killed mid BRPOP."""
    tasks = Queue("tasks", Exchange("tasks", type="direct"), routing_key="tasks")
    control = Queue("control.pidbox", Exchange("control.pidbox", type="fanout"), auto_delete=True)
    with Connection(server.url, transport=transport) as producer_connection:
        producer_connection.Producer().publish(
            {"task": 1}, exchange=tasks.exchange, routing_key="tasks", declare=[tasks]
        )

    connection = Connection(server.url, transport=transport)
    received = []
    connection.Consumer([tasks], callbacks=[lambda body, message: received.append(message)]).consume()
    connection.Consumer(
        [control], channel=connection.channel(), callbacks=[lambda body, message: None], no_ack=True
    ).consume()
    task_channel = connection.default_channel
    # The first drain delivers the message; a later one times out with the next BRPOP sent.
    for _ in range(5):
        try:
            connection.drain_events(timeout=0.5)
        except TimeoutError:
            if received and task_channel._in_poll:
                break
    assert received, "the task message was not delivered"
    assert task_channel._in_poll, "no BRPOP is pending on the task channel"

    server.kill()
    connection.collect(socket_timeout=5)
    return connection, task_channel


def test_broker_transport_close_after_collect_succeeds(redis_server):
    connection, _task_channel = connection_lost_with_pending_brpop(
        server=redis_server, transport=PROJECT_TRANSPORT
    )

    connection.close()


def test_broker_transport_collect_closes_task_channel(redis_server):
    _connection, task_channel = connection_lost_with_pending_brpop(
        server=redis_server, transport=PROJECT_TRANSPORT
    )

    assert task_channel.closed


def test_stock_redis_transport_close_after_collect_raises(redis_server):
    # The upstream bug that dashboard.broker works around. When this test fails, kombu
    # has fixed it, and CELERY_BROKER_TRANSPORT can go back to kombu's own transport.
    connection, _task_channel = connection_lost_with_pending_brpop(
        server=redis_server, transport=STOCK_TRANSPORT
    )

    with pytest.raises(AttributeError):
        connection.close()
