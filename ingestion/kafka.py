"""Edge adapter: what every Kafka client of malestrom shares, and the watch on its topics.

Topics are managed, never auto-created: every client runs with ``allow.auto.create.topics``
off (librdkafka's producer default is *on*, unlike its consumer's). A broker that auto-creates
gives a topic its own default partition count (4 on Tansu, where we configure 8), which splits
one patient's readings over partitions the live and backfill lanes no longer share; and a topic
that is missing should be seen and reported, not papered over. Creating the topics is an
explicit step (``infra.topics.ensure_topics``, run by ``malestrom up``).

`TopicWatch` checks that every topic exists with the configured partitions: at start-up, after
any error a client reports, every ``unhealthy_every`` seconds while something is wrong and every
``healthy_every`` seconds otherwise. The API shows it in ``/healthz`` and refuses ingest while a
topic is missing (`WatchedPublisher`); the worker pauses its lanes until the topics are back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from ingestion.exceptions import BrokerUnavailableError

if TYPE_CHECKING:  # the publisher builds on `client_config`: no import cycle at run time
    from ingestion.publisher import Publisher, Record

__all__ = [
    "TopicStatus",
    "TopicWatch",
    "WatchedPublisher",
    "client_config",
    "read_partitions",
    "topic_status",
]

log = logging.getLogger(__name__)
# librdkafka's own log lines (connection failures, commit failures), through Python logging so
# that they share the process's format and its filter of repeated lines.
librdkafka_log = logging.getLogger("malestrom.kafka.client")


def client_config(bootstrap: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The configuration every client starts from: topic auto-creation off, logs to Python.

    librdkafka hands its log lines over only inside ``poll``/``consume``/``flush`` calls, so a
    client created with this configuration must be polled (all of ours are).
    """
    return {
        "bootstrap.servers": bootstrap,
        "allow.auto.create.topics": False,
        "logger": librdkafka_log,
    } | dict(extra or {})


@dataclass(frozen=True, slots=True)
class TopicStatus:
    """What a topic check found; ``error`` is set when the broker could not be asked."""

    missing: tuple[str, ...] = ()
    wrong_partitions: Mapping[str, int] = field(default_factory=dict)  # name -> partitions found
    expected_partitions: int = 0
    error: str | None = None

    @property
    def known(self) -> bool:
        """Whether the broker answered the check."""
        return self.error is None

    @property
    def ok(self) -> bool:
        """Every topic exists with the configured partitions."""
        return self.known and not self.missing and not self.wrong_partitions

    def public(self) -> dict[str, Any]:
        """The status as ``/healthz`` shows it."""
        out: dict[str, Any] = {"status": "up" if self.ok else "down"}
        if self.error is not None:
            out["error"] = self.error
        if self.missing:
            out["missing"] = list(self.missing)
        if self.wrong_partitions:
            out["wrong_partitions"] = {
                name: {"found": found, "expected": self.expected_partitions}
                for name, found in self.wrong_partitions.items()
            }
        return out

    def describe(self) -> str:
        """One line for a log."""
        if self.error is not None:
            return f"topics not checked: {self.error}"
        if self.ok:
            return "every topic exists with its partitions"
        parts = []
        if self.missing:
            parts.append(f"missing: {', '.join(self.missing)}")
        for name, found in self.wrong_partitions.items():
            parts.append(f"{name} has {found} partitions, expected {self.expected_partitions}")
        return "; ".join(parts)


def topic_status(
    found: Mapping[str, int], wanted: Iterable[str], *, partitions: int
) -> TopicStatus:
    """Compare the topics found (name -> partition count) with those wanted."""
    names = tuple(wanted)
    return TopicStatus(
        missing=tuple(n for n in names if n not in found),
        wrong_partitions={n: found[n] for n in names if n in found and found[n] != partitions},
        expected_partitions=partitions,
    )


def read_partitions(admin: AdminClient, *, timeout: float) -> dict[str, int]:
    """Every topic on the broker with its partition count (one metadata request).

    Raises:
        KafkaException: the broker did not answer within ``timeout``.
    """
    metadata = admin.list_topics(timeout=timeout)
    return {
        name: len(topic.partitions)
        for name, topic in metadata.topics.items()
        if topic.error is None or topic.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART
    }


class TopicWatch:
    """Keeps a fresh `TopicStatus` of malestrom's topics; run `watch` as a task."""

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        *,
        partitions: int,
        healthy_every: float = 10.0,
        unhealthy_every: float = 2.0,
        timeout: float = 2.0,
    ) -> None:
        self._admin = AdminClient(client_config(bootstrap, {"error_cb": self.poke}))
        self._topics = tuple(topics)
        self._partitions = partitions
        self._healthy_every = healthy_every
        self._unhealthy_every = unhealthy_every
        self._timeout = timeout
        self._poked = False
        self._ok = asyncio.Event()
        self.status = TopicStatus(expected_partitions=partitions, error="not checked yet")

    def poke(self, error: KafkaError | None = None) -> None:
        """Check again soon: a client met an error, the broker may have restarted (any thread;
        fits a client's ``error_cb``). The error is logged by its name (authentication, SSL and
        fatal errors must reach the log), never its text."""
        if error is not None:
            fatal = " (fatal: the client must be restarted)" if error.fatal() else ""
            log.warning("Kafka client error: %s%s", error.name(), fatal)
        self._poked = True

    @property
    def poked(self) -> bool:
        """Whether a check is due because a client reported an error."""
        return self._poked

    async def check(self) -> TopicStatus:
        """Check now; log when the status changes; return the new status."""
        try:
            found = await asyncio.to_thread(read_partitions, self._admin, timeout=self._timeout)
            status = topic_status(found, self._topics, partitions=self._partitions)
        except KafkaException as exc:
            status = TopicStatus(error=_reason(exc), expected_partitions=self._partitions)
        self._update(status)
        return status

    async def wait_ready(self) -> None:
        """Return once no topic is known to be missing (an unreachable broker does not block:
        its clients find out by themselves)."""
        await self._ok.wait()

    async def watch(self) -> None:
        """Check on the schedule and whenever a client reported an error (forever)."""
        since = 0.0
        tick = 0.25
        while True:
            await asyncio.sleep(tick)
            since += tick
            self._admin.poll(0)  # serves the admin client's own error callback
            every = self._healthy_every if self.status.ok else self._unhealthy_every
            if self._poked or since >= every:
                self._poked = False
                since = 0.0
                await self.check()

    def _update(self, status: TopicStatus) -> None:
        previous, self.status = self.status, status
        if status.missing:
            self._ok.clear()
        else:
            self._ok.set()
        if status == previous:
            return
        if status.ok:
            if previous.known:  # not at start-up: only a recovery is news
                log.warning("Kafka topics are back: %s", status.describe())
        else:
            log.error("Kafka topics are not as configured: %s", status.describe())


class WatchedPublisher:
    """A `Publisher` that refuses at once, with the topic's name, while a topic is missing
    (rather than letting the record wait for the broker's timeout)."""

    def __init__(self, publisher: Publisher, watch: TopicWatch) -> None:
        self._publisher = publisher
        self._watch = watch

    async def publish(self, topic: str, records: Sequence[Record]) -> None:
        """Publish through the wrapped publisher unless ``topic`` is known to be missing.

        Raises:
            BrokerUnavailableError: the topic is missing, or the broker did not acknowledge.
        """
        if topic in self._watch.status.missing:
            raise BrokerUnavailableError(f"the Kafka topic {topic} is missing", retry_after=5.0)
        await self._publisher.publish(topic, records)

    async def ping(self) -> bool:
        """Return whether the broker answers."""
        return await self._publisher.ping()


def _reason(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return error.name() if isinstance(error, KafkaError) else type(exc).__name__
