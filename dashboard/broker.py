"""kombu's Redis transport, with channels that finish closing when the server is gone.

Settings select it for `redis://` broker URLs (`CELERY_BROKER_TRANSPORT`).

Why: with kombu 5.7.0 and Celery 5.7.0, a worker that lost its Redis server could
exit instead of reconnecting. After a connection loss, Celery's consumer calls
`Connection.collect()`. Its close of the task channel first reads the reply of a
BRPOP still pending there, and with the server gone that read raises a connection
error before the channel is marked closed. `collect()` then closes the transport's
channels but stops at the first whose close raises (the remote-control channel,
which deletes its auto-delete queue), so the task channel stays half closed, and it
detaches the transport. Celery 5.7.0 then calls `Connection.close()`, which closes
the task channel again. To restore unacknowledged messages it builds a connection
pool from the detached transport and raises AttributeError. `ignore_errors()` lets
that through because it is not a connection error, so the worker logs
"Unrecoverable error" and shuts down. The crash needs a BRPOP pending on the task
channel and unacknowledged tasks when the loss is handled, so it happens in some
Redis restarts and not in others.
"""

import logging
from queue import Empty

from kombu.transport import redis

logger = logging.getLogger(__name__)


class Channel(redis.Channel):
    def close(self) -> None:
        """Close the channel, also when the pending BRPOP reply cannot be read.

        The reply is lost with the connection in that case. Redis keeps no reply for a
        dropped client, so skipping the read loses nothing that reading could have
        returned.
        """
        if self._in_poll:
            try:
                self._brpop_read()
            except Empty:
                pass
            except self.connection_errors as exc:
                # _brpop_read has disconnected the client and cleared _in_poll, so the
                # close below goes on without the server.
                logger.info(
                    "Redis broker connection lost while closing a channel; closing it without the server",
                    extra={"error_type": type(exc).__name__},
                )
        super().close()


class Transport(redis.Transport):
    Channel = Channel
