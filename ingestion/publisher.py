"""Edge adapter: publish records to Kafka and wait for the broker's acknowledgement.

Idempotent producer with ``acks=all``: a 2xx at the HTTP edge means the broker has the record.
A broker that does not acknowledge within the timeout raises `BrokerUnavailableError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Producer

from ingestion.exceptions import BrokerUnavailableError
from ingestion.kafka import client_config

__all__ = ["KafkaPublisher", "Publisher", "Record"]

Record = tuple[bytes, bytes, list[tuple[str, str | bytes | None]]]  # key, value, headers


class Publisher(Protocol):
    """Port: something that durably publishes records to a topic."""

    async def publish(self, topic: str, records: Sequence[Record]) -> None:
        """Publish and return only when every record is acknowledged."""

    async def ping(self) -> bool:
        """Return whether the broker answers."""


class KafkaPublisher:
    """confluent-kafka producer bridged to asyncio; one per process."""

    def __init__(self, *, bootstrap: str, timeout_s: float = 4.0) -> None:
        self._timeout_s = timeout_s
        self._config = client_config(  # topics are never auto-created (see ingestion.kafka)
            bootstrap,
            {
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
                "message.timeout.ms": int(timeout_s * 1000),
                "socket.connection.setup.timeout.ms": int(timeout_s * 1000),
            },
        )
        self._producer = Producer(self._config)
        self._fatal = False
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self._producer.poll(0.05)
            except KafkaException:  # fatal, e.g. a restarted broker forgot our producer id
                self._fatal = True
                self._stop.wait(0.05)

    def _renew_if_fatal(self) -> None:
        # An idempotent producer that hit a fatal error refuses everything from then on; what
        # it had in flight was never acknowledged (so answered 503). Start over with a new one;
        # should the old one still deliver a record, its id is deterministic: stored once.
        if self._fatal:
            self._fatal = False
            self._producer = Producer(self._config)

    async def publish(self, topic: str, records: Sequence[Record]) -> None:
        """Publish records and wait until the broker acknowledged all of them.

        Raises:
            BrokerUnavailableError: a record was not acknowledged within the timeout.
        """
        if not records:
            return
        self._renew_if_fatal()
        loop = asyncio.get_running_loop()
        batch = _Batch(loop, len(records))
        for key, value, headers in records:
            try:
                self._producer.produce(topic, value, key, headers=headers, on_delivery=batch.done)
            except (BufferError, KafkaException) as exc:
                self._fatal = self._fatal or _is_fatal(exc)
                raise BrokerUnavailableError(f"broker queue refused the record: {exc}") from exc
        try:
            await asyncio.wait_for(batch.future, self._timeout_s + 0.25)
        except (TimeoutError, KafkaException) as exc:
            # Start the next publish on a fresh producer: an idempotent producer whose records
            # timed out may be stuck with sequence numbers a restarted broker does not know.
            self._fatal = True
            raise BrokerUnavailableError("the broker did not acknowledge in time") from exc

    async def ping(self) -> bool:
        """Return whether the broker answers a metadata request within two seconds."""
        try:
            await asyncio.to_thread(self._producer.list_topics, timeout=2.0)
        except KafkaException:
            return False
        return True

    def close(self, timeout: float | None = None) -> None:
        """Flush what is in flight (for at most ``timeout`` s, the publish timeout by default)
        and stop the poller."""
        self._producer.flush(self._timeout_s if timeout is None else timeout)
        self._stop.set()
        self._poller.join(timeout=1.0)


def _is_fatal(exc: BaseException) -> bool:
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return isinstance(error, KafkaError) and (error.fatal() or error.code() == KafkaError._FATAL)


class _Batch:
    """Counts deliveries on the poll thread; wakes the event loop once, when all are in.

    One wake-up per batch instead of one per record keeps the per-record cost to the produce
    call itself.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.future: asyncio.Future[None] = loop.create_future()
        self._loop = loop
        self._remaining = count
        self._error: KafkaError | None = None

    def done(self, error: KafkaError | None, _message: Any) -> None:
        """Delivery callback (poll thread)."""
        if error is not None and self._error is None:
            self._error = error
        self._remaining -= 1
        if self._remaining == 0 or (error is not None and self._error is error):
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                self._loop.call_soon_threadsafe(self._settle, self._error)

    def _settle(self, error: KafkaError | None) -> None:
        if self.future.done():
            return
        if error is None:
            self.future.set_result(None)
        else:
            self.future.set_exception(KafkaException(error))
