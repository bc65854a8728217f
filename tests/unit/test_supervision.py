"""The supervise loop of `malestrom up`, with small real processes for children: a convenience
(simulator, development proxy) that fails never stops the system; an essential child does."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from infra import supervisor
from infra.processes import free_port, stop
from infra.restarts import RestartPolicy
from infra.settings import UpSettings
from ingestion.kafka import TopicStatus
from ingestion.topics import Topics


class _Dropped(Exception):  # noqa: N818 - not an error: how a test ends the endless loop
    """Raised by a test's pause once the crashing child has been dropped."""


def _policy() -> RestartPolicy:
    """Give up after 3 crashes, restarting after 10 ms: a crash loop in well under a second."""
    return RestartPolicy(limit=3, window=300.0, first_delay=0.01, max_delay=0.01)


def _crashing() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sh", "-c", "exit 3"])


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A child that runs until the test stops it."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    stop(proc, timeout=5)


def _child(
    name: str, launch: Callable[[], subprocess.Popen[bytes]], run_dir: Path, *, essential: bool
) -> supervisor._Child:
    child = supervisor._Child(name, launch, _policy(), name, name, essential=essential)
    child.start(run_dir)
    return child


def test_a_crash_looping_simulator_is_dropped_and_the_rest_keeps_running(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """The simulator crashes 3 times: it is given up on alone, its pid file removed, and the
    supervisor goes on watching the worker, which still runs."""
    run_dir = tmp_path / "run"
    worker = _child("worker", lambda: sleeper, run_dir, essential=True)
    simulator = _child("simulator", _crashing, run_dir, essential=False)
    watched = [worker, simulator]
    deadline = time.monotonic() + 20

    def pause(seconds: float) -> None:
        if simulator not in watched:
            raise _Dropped
        assert time.monotonic() < deadline, "the simulator was never dropped"
        time.sleep(min(seconds, 0.02))

    with pytest.raises(_Dropped):
        supervisor._supervise(watched, run_dir, tmp_path / "logs", pause=pause)
    said = capsys.readouterr().out
    assert watched == [worker]
    assert sleeper.poll() is None
    assert "simulator exited with code 3; it crashed 3 times within 300 s" in said
    assert "giving up on it alone: malestrom keeps running without the simulator" in said
    assert "stopping everything" not in said
    assert sorted(p.name for p in run_dir.iterdir()) == ["worker.pid"]


def test_an_essential_child_that_keeps_crashing_stops_everything(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """The worker crashes 3 times: the supervisor returns 1 (and `up` then stops the rest)."""
    run_dir = tmp_path / "run"
    watched = [
        _child("worker", _crashing, run_dir, essential=True),
        _child("simulator", lambda: sleeper, run_dir, essential=False),
    ]
    deadline = time.monotonic() + 20

    def pause(seconds: float) -> None:
        assert time.monotonic() < deadline, "the supervisor never gave up"
        time.sleep(min(seconds, 0.02))

    assert supervisor._supervise(watched, run_dir, tmp_path / "logs", pause=pause) == 1
    assert "worker exited with code 3; it crashed 3 times within 300 s, so it keeps crashing: " \
        "giving up, stopping everything" in capsys.readouterr().out  # fmt: skip


def test_a_development_proxy_that_exits_at_start_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A proxy that dies before it listens is reported as skipped and not supervised; `up`
    goes on (no TimeoutError) and no pid file is left behind."""
    monkeypatch.setattr(supervisor, "_child", lambda *_: _crashing())
    children: list[supervisor._Child] = []
    run_dir = tmp_path / "run"
    supervisor._start_dev_proxy(
        free_port(), "http://127.0.0.1:1", {}, tmp_path / "logs", children, run_dir, _policy()
    )
    assert children == []
    assert "development proxy skipped: it did not start" in capsys.readouterr().out
    assert list(run_dir.iterdir()) == []


def test_topics_with_the_wrong_partition_count_are_named_in_a_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ensure_topics` never changes an existing topic, so `up` checks afterwards and says
    which topics have another partition count, and how many; it goes on."""
    topics = Topics("t")
    checked: list[tuple[str, int]] = []

    def check(bootstrap: str, wanted: Topics, *, partitions: int) -> TopicStatus:
        checked.append((bootstrap, partitions))
        wrong = {wanted.readings: 3, wanted.alerts: 1}
        return TopicStatus(wrong_partitions=wrong, expected_partitions=partitions)

    monkeypatch.setattr(supervisor, "ensure_topics", lambda *_, **__: ["new"])
    monkeypatch.setattr(supervisor, "check_topics", check)
    settings = UpSettings(topic_prefix="t", partitions=8)
    env = {"MALESTROM_KAFKA_BOOTSTRAP": "127.0.0.1:1"}

    assert supervisor._ensure_topics(env, settings) == ["new"]
    assert checked == [("127.0.0.1:1", 8)]
    assert (
        "warning: topics with another partition count than MALESTROM_PARTITIONS=8: "
        f"{topics.alerts} has 1, {topics.readings} has 3; "
        "malestrom never changes an existing topic"
    ) in capsys.readouterr().out


def test_a_topic_check_the_broker_does_not_answer_is_a_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No answer to the check does not stop `up` (the topics were just created)."""

    def check(*_: object, **__: object) -> TopicStatus:
        raise KafkaException("timed out")

    monkeypatch.setattr(supervisor, "ensure_topics", lambda *_, **__: [])
    monkeypatch.setattr(supervisor, "check_topics", check)
    env = {"MALESTROM_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    assert supervisor._ensure_topics(env, UpSettings(topic_prefix="t")) == []
    assert "warning: the topics' partition counts could not be checked" in capsys.readouterr().out
