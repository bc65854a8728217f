"""Edge adapter: publish records to Kafka and wait for the broker's acknowledgement.

Idempotent producer with ``acks=all``: a 2xx at the HTTP edge means the broker has the record.
A broker that does not acknowledge within the timeout raises `BrokerUnavailableError`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Producer

from ingestion.exceptions import BrokerUnavailableError

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
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
                "message.timeout.ms": int(timeout_s * 1000),
                "socket.connection.setup.timeout.ms": int(timeout_s * 1000),
            }
        )
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def publish(self, topic: str, records: Sequence[Record]) -> None:
        """Publish records and wait until the broker acknowledged all of them.

        Raises:
            BrokerUnavailableError: a record was not acknowledged within the timeout.
        """
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for key, value, headers in records:
            future: asyncio.Future[None] = loop.create_future()
            futures.append(future)
            try:
                self._producer.produce(
                    topic, value, key, headers=headers, on_delivery=_deliverer(loop, future)
                )
            except (BufferError, KafkaException) as exc:
                raise BrokerUnavailableError(f"broker queue refused the record: {exc}") from exc
        try:
            await asyncio.wait_for(asyncio.gather(*futures), self._timeout_s + 1.0)
        except (TimeoutError, KafkaException) as exc:
            raise BrokerUnavailableError("the broker did not acknowledge in time") from exc

    async def ping(self) -> bool:
        """Return whether the broker answers a metadata request within two seconds."""
        try:
            await asyncio.to_thread(self._producer.list_topics, timeout=2.0)
        except KafkaException:
            return False
        return True

    def close(self) -> None:
        """Flush what is in flight and stop the poller."""
        self._producer.flush(self._timeout_s)
        self._stop.set()
        self._poller.join(timeout=1.0)


def _deliverer(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> Any:
    def on_delivery(error: KafkaError | None, _message: Any) -> None:
        loop.call_soon_threadsafe(_settle, future, error)

    return on_delivery


def _settle(future: asyncio.Future[None], error: KafkaError | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(KafkaException(error))
