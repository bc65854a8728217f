"""A line repeated while a service is down is written once per interval with a count; the topic
check names what is missing or has the wrong partitions."""

from __future__ import annotations

import logging
import sys
import threading

import pytest
from confluent_kafka import KafkaError

from infra.logs import RepeatFilter
from ingestion.kafka import TopicWatch, client_config, topic_status


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(message: str, *args: object, name: str = "streams.app") -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, message, args, None)


def test_identical_lines_pass_once_per_interval_and_the_next_one_carries_the_count() -> None:
    """1,000 identical lines in 10 s: the first passes; after the interval the next says how
    many were held back."""
    clock = _Clock()
    repeats = RepeatFilter(30.0, clock=clock)
    passed = []
    for i in range(1000):
        clock.now = i / 100
        record = _record("offsets not committed: %s", "KafkaException")
        if repeats.filter(record):
            passed.append(record.getMessage())
    clock.now = 31.0
    later = _record("offsets not committed: %s", "KafkaException")

    assert passed == ["offsets not committed: KafkaException"]
    assert repeats.filter(later)
    assert later.getMessage() == (
        "offsets not committed: KafkaException (repeated 999 times in the last 31 s)"
    )


def test_different_lines_and_loggers_are_counted_apart() -> None:
    """Another message, or the same one from another logger, is a line of its own."""
    repeats = RepeatFilter(30.0, clock=_Clock())

    assert repeats.filter(_record("lane: %s", "A"))
    assert repeats.filter(_record("lane: %s", "B"))
    assert repeats.filter(_record("lane: %s", "A", name="ingestion.kafka"))
    assert not repeats.filter(_record("lane: %s", "A"))


def test_a_line_after_a_quiet_interval_passes_without_a_count() -> None:
    """Nothing held back: nothing to count."""
    clock = _Clock()
    repeats = RepeatFilter(30.0, clock=clock)
    assert repeats.filter(_record("heartbeat not recorded"))
    clock.now = 45.0
    again = _record("heartbeat not recorded")

    assert repeats.filter(again)
    assert again.getMessage() == "heartbeat not recorded"


def test_only_so_many_distinct_lines_are_remembered() -> None:
    """The oldest line is forgotten past ``max_keys``, so it passes again."""
    repeats = RepeatFilter(30.0, max_keys=2, clock=_Clock())
    for message in ("one", "two", "three"):
        assert repeats.filter(_record(message))

    assert repeats.filter(_record("one"))
    assert not repeats.filter(_record("three"))


def test_the_check_names_missing_topics_and_wrong_partition_counts() -> None:
    """Found: a with 8 partitions, b with 4; wanted a, b, c with 8."""
    status = topic_status({"a": 8, "b": 4, "other": 1}, ["a", "b", "c"], partitions=8)

    assert status.missing == ("c",)
    assert dict(status.wrong_partitions) == {"b": 4}
    assert not status.ok
    assert status.public() == {
        "status": "down",
        "missing": ["c"],
        "wrong_partitions": {"b": {"found": 4, "expected": 8}},
    }


def test_every_topic_as_configured_is_up() -> None:
    """Nothing missing, nothing wrong: up, and the public status says no more."""
    status = topic_status({"a": 2, "b": 2}, ["a", "b"], partitions=2)

    assert status.ok
    assert status.public() == {"status": "up"}


def test_every_client_starts_with_topic_auto_creation_off() -> None:
    """librdkafka's producer would create topics by default; ours never do, whatever is added."""
    config = client_config("127.0.0.1:9092", {"acks": "all"})

    assert config["allow.auto.create.topics"] is False
    assert config["acks"] == "all"


def test_lines_from_several_threads_at_once_never_raise() -> None:
    """librdkafka logs from its own threads: 8 threads, each writing distinct lines past
    ``max_keys``, all pass and no thread fails while the oldest lines are forgotten."""
    repeats = RepeatFilter(30.0, max_keys=2)
    failures: list[BaseException] = []
    passed: list[int] = []

    def write(thread: int) -> None:
        count = 0
        try:
            for i in range(10_000):
                count += repeats.filter(_record("lane %s: %s", thread, i))
        except Exception as exc:  # noqa: BLE001 - collected, to fail the test in its thread
            failures.append(exc)
        passed.append(count)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show at once
    try:
        threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []
    assert passed == [10_000] * 8


@pytest.mark.parametrize("fatal", [False, True])
def test_a_client_error_is_logged_by_name_and_makes_the_watch_check_again(
    fatal: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """An error a Kafka client reports (authentication, SSL, a fatal one) reaches the log by its
    name, saying whether it is fatal, never with its text; and the topics are checked again."""
    watch = TopicWatch("127.0.0.1:1", ["t"], partitions=1)
    error = KafkaError(KafkaError._AUTHENTICATION, "token abc123 refused", fatal=fatal)
    with caplog.at_level(logging.WARNING, logger="ingestion.kafka"):
        watch.poke(error)
    assert "_AUTHENTICATION" in caplog.text
    assert ("fatal" in caplog.text) is fatal
    assert "abc123" not in caplog.text
    assert watch.poked
