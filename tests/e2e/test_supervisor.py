"""`malestrom up` as a supervisor: a crashed child is restarted with back-off and the system is
healthy again; a child that keeps crashing stops everything; the embedded services come back."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest
from confluent_kafka.admin import AdminClient

from infra.processes import free_port, pid_alive
from tests.e2e.test_up import _env, _eventually, _post, _roles, _search
from tests.helpers import for_patient, fresh_fnr, load_fixture

pytestmark = pytest.mark.e2e


@contextmanager
def _up(data_dir: Path, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """Run `malestrom up` with ``env``; yield it, its URL and its output; SIGTERM at the end."""
    port = free_port()
    output = data_dir.parent / f"up-{port}.log"
    with output.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "up", "--port", str(port),
             "--data-dir", str(data_dir)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        try:
            yield proc, f"http://127.0.0.1:{port}", output
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)


def _healthy(url: str) -> None:
    _eventually(lambda: httpx.get(f"{url}/healthz").status_code == 200, timeout=60, what="healthy")


def _said(output: Path, text: str, *, timeout: float = 60) -> None:
    _eventually(lambda: text in output.read_text(), timeout=timeout, what=repr(text))


def _pid(data_dir: Path, name: str) -> int:
    return int((data_dir / "run" / f"{name}.pid").read_text())


def _new_pid(data_dir: Path, name: str, old: int) -> int:
    """The pid of ``name``'s next incarnation, once it is alive."""
    return int(
        _eventually(
            lambda: (pid := _pid(data_dir, name)) != old and pid_alive(pid) and pid,
            timeout=60,
            what=f"a new {name}",
        )
    )


def _stored_after_posting(url: str, data_dir: Path) -> None:
    """A new patient's three vitals are accepted and, within 30 s, stored."""
    hub, nurse = _roles(data_dir)
    fnr = fresh_fnr()
    body = for_patient(load_fixture("bundle_three_vitals.json"), fnr)
    _eventually(lambda: _post(url, body, hub) == 200, timeout=30, what="a Bundle accepted")
    _eventually(lambda: len(_search(url, fnr, nurse)) == 3, timeout=30, what="3 observations")


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def test_a_killed_worker_and_api_are_restarted_and_the_system_is_healthy_again(
    tmp_path: Path,
) -> None:
    """kill -9 of the worker, then of the API: each is restarted after 1 s, says so, and readings
    posted afterwards are stored; `up` keeps running and stops cleanly."""
    data_dir = tmp_path / "data"
    with _up(data_dir, _env()) as (proc, url, output):
        _healthy(url)
        _stored_after_posting(url, data_dir)
        worker = _pid(data_dir, "worker")
        _kill(worker)
        _said(output, "worker exited with code -9; restarting it, next attempt in 1 s")
        _new_pid(data_dir, "worker", worker)
        _stored_after_posting(url, data_dir)
        api = _pid(data_dir, "api")
        _kill(api)
        _said(output, "api exited with code -9; restarting it, next attempt in 1 s")
        _new_pid(data_dir, "api", api)
        _healthy(url)
        _stored_after_posting(url, data_dir)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    assert list((data_dir / "run").glob("*.pid")) == []


def test_a_child_that_keeps_crashing_stops_everything_with_a_non_zero_exit(tmp_path: Path) -> None:
    """A worker with a bad setting dies at once, each time: it is retried after 1, 2, 4 and 8 s,
    then `up` gives up, stops every other process and exits 1."""
    data_dir = tmp_path / "data"
    with _up(data_dir, _env(MALESTROM_BATCH_SIZE="many")) as (proc, _url, output):
        _said(output, "malestrom is up")
        family = psutil.Process(proc.pid).children(recursive=True)
        assert proc.wait(120) == 1
    said = output.read_text()
    delays = re.findall(r"worker exited with code 1; restarting it, next attempt in (\d+) s", said)
    assert delays == ["1", "2", "4", "8"]
    assert "worker exited with code 1; it crashed 5 times within 300 s" in said
    assert "giving up, stopping everything" in said
    _, alive = psutil.wait_procs(family, timeout=10)
    assert alive == []


def _embedded_only() -> dict[str, str]:
    """The tests' environment, but with the embedded services even where external ones are set."""
    env = _env()
    env.pop("MALESTROM_DATABASE_URL", None)
    env.pop("MALESTROM_KAFKA_BOOTSTRAP", None)
    env.pop("MALESTROM_TOPIC_PREFIX", None)
    return env


def _topics(output: Path) -> set[str]:
    bootstrap = re.findall(r"\(Tansu\) on (127\.0\.0\.1:\d+)", output.read_text())[0]
    listed = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
    return {name for name in listed if name.startswith("malestrom.")}


def test_killed_embedded_services_are_restarted_and_say_what_was_lost(tmp_path: Path) -> None:
    """kill -9 of the embedded broker: restarted on its port with every topic again, saying that
    readings not yet stored and dead letters not yet replayed are lost; kill -9 of PostgreSQL:
    restarted, saying its data is on disk. After each, readings posted are stored."""
    data_dir = tmp_path / "data"
    with _up(data_dir, _embedded_only()) as (proc, url, output):
        _healthy(url)
        topics = _topics(output)
        assert len(topics) >= 3
        broker = _pid(data_dir, "broker")
        _kill(broker)
        _said(output, "embedded broker exited with code -9; the embedded broker keeps data in "
              "memory only: readings accepted but not yet stored are lost; senders' resends "
              "bring them back; dead letters not yet replayed (`malestrom dlq list`) are lost "
              "for good")  # fmt: skip
        _said(output, "topics recreated: ")
        _new_pid(data_dir, "broker", broker)
        assert _topics(output) == topics
        _stored_after_posting(url, data_dir)
        postgres = _pid(data_dir, "postgres")
        _kill(postgres)
        _said(output, "embedded PostgreSQL exited with code -9; its data is on disk")
        _said(output, "embedded PostgreSQL restarted", timeout=90)
        _stored_after_posting(url, data_dir)
        assert proc.poll() is None
