"""The dead-letter topic, for people: list what failed after acceptance, and replay it after a fix.

A dead letter keeps the original key, value and headers, plus ``dlq-*`` headers saying where
and why it failed (`streams.deadletter`). Replaying sends the original record back to the topic
it was consumed from (the failed stage's input), with the original key and headers; downstream
is idempotent (deterministic ids, ``ON CONFLICT`` writes), so replaying twice stores nothing
twice. Listings show ids, stages and errors, never the record's content.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from ingestion.kafka import client_config
from ingestion.topics import Topics

__all__ = ["DeadLetter", "list_dead_letters", "replay_dead_letters"]

_REPLAYED_FROM = "dlq-replayed-from"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter: its id (``partition:offset`` in the DLQ topic) and what failed."""

    id: str
    key: bytes
    value: bytes
    headers: dict[str, bytes]

    def header(self, name: str) -> str:
        """A ``dlq-*`` header as text ('' when absent)."""
        return self.headers.get(name, b"").decode(errors="replace")

    @property
    def original_headers(self) -> list[tuple[str, bytes]]:
        """The record's own headers, without the dead-letter ones."""
        return [(k, v) for k, v in self.headers.items() if not k.startswith("dlq-")]


def list_dead_letters(bootstrap: str, topics: Topics, *, timeout: float = 10.0) -> list[DeadLetter]:
    """Read every dead letter currently in the DLQ topic (no offsets are committed)."""
    return list(_read(bootstrap, topics.readings_dlq, timeout))


def replay_dead_letters(
    bootstrap: str, topics: Topics, *, ids: Iterable[str] = (), timeout: float = 10.0
) -> list[DeadLetter]:
    """Send dead letters (all, or those with the given ids) back to their stage's input topic.

    Returns:
        The dead letters replayed.

    Raises:
        KafkaException: the broker did not acknowledge every replayed record.
    """
    wanted = set(ids)
    letters = list_dead_letters(bootstrap, topics, timeout=timeout)
    chosen = [d for d in letters if not wanted or d.id in wanted]
    producer = Producer(client_config(bootstrap, {"enable.idempotence": True, "acks": "all"}))
    errors: list[str] = []
    for letter in chosen:
        target = letter.header("dlq-topic") or topics.readings
        headers: list[tuple[str, str | bytes | None]] = [
            *letter.original_headers,
            (_REPLAYED_FROM, letter.id.encode()),
        ]
        producer.produce(
            target,
            letter.value,
            letter.key,
            headers=headers,
            on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
        )
    remaining = producer.flush(timeout)
    if remaining or errors:
        raise KafkaException(f"replay not acknowledged: {remaining} pending, errors {errors}")
    return chosen


def _read(bootstrap: str, topic: str, timeout: float) -> Iterator[DeadLetter]:
    consumer = Consumer(
        client_config(
            bootstrap,
            {
                "group.id": f"malestrom-dlq-reader-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            },
        )
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return
        partitions = []
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout
            )
            if high > low:
                partitions.append((TopicPartition(topic, partition, low), high))
        if not partitions:
            return
        consumer.assign([tp for tp, _ in partitions])
        yield from _drain(consumer, {tp.partition: high for tp, high in partitions}, timeout)
    finally:
        consumer.close()


def _drain(consumer: Consumer, ends: dict[int, int], timeout: float) -> Iterator[DeadLetter]:
    # Read to the end-of-partition event, not to the high watermark: some Kafka-protocol
    # brokers (Tansu) report watermarks per record batch.
    pending = dict(ends)
    while pending:
        message = consumer.poll(timeout)
        if message is None:
            raise KafkaException(f"timed out reading the dead letters of {sorted(pending)}")
        partition, offset = message.partition() or 0, message.offset() or 0
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                pending.pop(partition, None)
                continue
            raise KafkaException(error)
        yield DeadLetter(
            id=f"{partition}:{offset}",
            key=_bytes(message.key()),
            value=_bytes(message.value()),
            headers={pair[0]: _bytes(pair[1]) for pair in message.headers() or []},
        )


def _bytes(value: str | bytes | None) -> bytes:
    return value.encode() if isinstance(value, str) else value or b""
