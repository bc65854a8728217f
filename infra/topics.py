"""Malestrom's topics: created by an explicit step (`ensure_topics`, run by ``malestrom up``
before the workers start), never by a client (see `ingestion.kafka`), and checked
(`check_topics`): each must exist with the configured partition count."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from ingestion.kafka import TopicStatus, client_config, read_partitions, topic_status
from ingestion.topics import Topics

__all__ = ["check_topics", "ensure_topics"]


def ensure_topics(
    bootstrap: str, topics: Topics, *, partitions: int, timeout: float = 30.0
) -> list[str]:
    """Create any of the topics that do not exist; return the names created.

    A topic that exists is left as it is, whatever its partitions: `check_topics` reports it.
    """
    admin = AdminClient(client_config(bootstrap))
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [
        NewTopic(name, num_partitions=partitions, replication_factor=-1)
        for name in topics.all()
        if name not in existing
    ]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created


def check_topics(
    bootstrap: str, topics: Topics, *, partitions: int, timeout: float = 10.0
) -> TopicStatus:
    """Which of the topics are missing or have another partition count than ``partitions``.

    Raises:
        KafkaException: the broker did not answer within ``timeout``.
    """
    admin = AdminClient(client_config(bootstrap))
    found = read_partitions(admin, timeout=timeout)
    return topic_status(found, topics.all(), partitions=partitions)
