"""`malestrom up`: start what is needed, supervise the children, stop everything cleanly.

Order: embedded PostgreSQL and broker (only when no external ones are configured) → migrations →
topics → streams worker → API → simulator. A child that dies is reported and everything stops
with a non-zero exit; SIGTERM or Ctrl-C stops the children in reverse order.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from api.settings import DEV_ISSUER_PATH
from infra.devissuer import DevIssuer
from infra.embedded import EmbeddedBroker, EmbeddedPostgres
from infra.engine import EngineMismatchError, check_engine
from infra.migrate import upgrade
from infra.processes import port_free, spawn, stop, wait_for_port
from infra.settings import UpSettings
from infra.topics import ensure_topics
from ingestion.topics import Topics

__all__ = ["UpOptions", "run_up"]


@dataclass(frozen=True, slots=True)
class UpOptions:
    """Command-line options of `malestrom up`."""

    host: str
    port: int
    data_dir: Path
    simulate: int
    dev_proxy_port: int = 0  # the development proxy on 127.0.0.1 (0: none)


class _StopSignalError(BaseException):
    """Raised by the signal handler to unwind into the clean-up."""


def run_up(options: UpOptions, settings: UpSettings) -> int:
    """Run the whole system until a signal or a child's death; return the exit code."""
    options.data_dir.mkdir(parents=True, exist_ok=True)
    logs = options.data_dir / "logs"
    with _exclusive(options.data_dir / "malestrom.lock") as locked:
        if not locked:
            _say(f"another malestrom is already running on {options.data_dir}")
            return 1
        return _run_locked(options, settings, logs)


def _run_locked(options: UpOptions, settings: UpSettings, logs: Path) -> int:
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    services: list[EmbeddedPostgres | EmbeddedBroker] = []
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        env = _start_services(options, settings, services)
        children.append(("worker", _child(["worker"], env, logs / "worker.log")))
        api_args = ["api", "--host", options.host, "--port", str(options.port)]
        children.append(("api", _child(api_args, env, logs / "api.log")))
        api = children[-1][1]
        wait_for_port(options.host, options.port, timeout=60, alive=lambda: api.poll() is None)
        url = f"http://{options.host}:{options.port}"
        if settings.wants_dev_issuer and settings.allows_dev_proxy and options.dev_proxy_port:
            _start_dev_proxy(options.dev_proxy_port, url, env, logs, children)
        if options.simulate:
            sim_args = ["simulate", "--url", url, "-n", str(options.simulate),
                        "--data-dir", str(options.data_dir)]  # fmt: skip
            children.append(("simulator", _child(sim_args, env, logs / "simulator.log")))
        _say(f"malestrom is up at {url}  (health: {url}/healthz, logs: {logs})")
        return _supervise(children, services, logs)
    except _StopSignalError:
        _say("stopping")
        return 0
    except (TimeoutError, OSError, subprocess.CalledProcessError, EngineMismatchError) as exc:
        _say(f"could not start: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for _name, proc in reversed(children):
            stop(proc)
        for service in reversed(services):
            service.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_services(
    options: UpOptions, settings: UpSettings, services: list[EmbeddedPostgres | EmbeddedBroker]
) -> dict[str, str]:
    env = dict(os.environ)
    if settings.database_url is None:
        postgres = EmbeddedPostgres(
            options.data_dir, engine=settings.engine, license=settings.timescaledb_license
        )
        services.append(postgres)
        env["MALESTROM_DATABASE_URL"] = postgres.start()
        _say(f"embedded PostgreSQL on 127.0.0.1:{postgres.port} (data in {postgres.pgdata})")
    if settings.kafka_bootstrap is None:
        broker = EmbeddedBroker(options.data_dir)
        services.append(broker)
        env["MALESTROM_KAFKA_BOOTSTRAP"] = broker.start()
        env.setdefault("MALESTROM_BROKER_SESSION_TIMEOUT", str(settings.embedded_session_timeout))
        _say(
            f"embedded Kafka-protocol broker (Tansu) on {broker.bootstrap}: it keeps data in "
            "memory only, so readings not yet stored are lost if it stops (senders' resends "
            "bring them back); production needs Kafka with replication 3, min.insync.replicas=2"
        )
    if settings.wants_dev_issuer:
        issuer = DevIssuer.ensure(
            options.data_dir / "dev-issuer",
            f"http://{options.host}:{options.port}{DEV_ISSUER_PATH}",
        )
        env |= issuer.env() | {"MALESTROM_DEV_ISSUER_DIR": str(issuer.directory)}
        _say(
            "development issuer (synthetic identities only; refused in production): "
            "`malestrom token --role nurse` prints a token, "
            "`malestrom call GET /api/v1/board` sends a signed request"
        )
    database_url = env["MALESTROM_DATABASE_URL"]
    _, change = check_engine(database_url)  # refuses before migrating what it cannot serve
    applied = upgrade(database_url)
    if applied:
        _say(f"applied migrations: {', '.join(applied)}")
    _say(f"storage: {check_engine(database_url)[0]}")
    if change:
        _say(change)
    topics = Topics(settings.topic_prefix)
    ensure_topics(env["MALESTROM_KAFKA_BOOTSTRAP"], topics, partitions=settings.partitions)
    return env


def _start_dev_proxy(
    port: int,
    upstream: str,
    env: dict[str, str],
    logs: Path,
    children: list[tuple[str, subprocess.Popen[bytes]]],
) -> None:
    if not port_free("127.0.0.1", port):  # a convenience: never the reason `up` fails
        _say(f"development proxy not started: 127.0.0.1:{port} is in use (--dev-proxy-port P)")
        return
    args = ["dev-proxy", "--port", str(port), "--upstream", upstream]
    proxy = _child(args, env, logs / "dev-proxy.log")
    children.append(("dev-proxy", proxy))
    wait_for_port("127.0.0.1", port, timeout=30, alive=lambda: proxy.poll() is None)
    _say(
        f"development proxy for FHIR clients without credentials: http://127.0.0.1:{port}/fhir "
        "(signs readings sent in as the hub of 311000004, everything else as its nurse)"
    )


def _supervise(
    children: list[tuple[str, subprocess.Popen[bytes]]],
    services: list[EmbeddedPostgres | EmbeddedBroker],
    logs: Path,
) -> int:
    watched = [*children]
    watched += [(type(s).__name__, s.process) for s in services if s.process is not None]
    while True:
        for name, proc in watched:
            code = proc.poll()
            if code is not None:
                _say(f"{name} exited with code {code}; stopping everything")
                _tail(logs / f"{name}.log")
                return 1
        time.sleep(0.2)


def _child(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return spawn([sys.executable, "-m", "infra.cli", *args], env=env, log=log)


def _raise_stop(_signum: int, _frame: FrameType | None) -> None:
    raise _StopSignalError


@contextmanager
def _exclusive(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``path``; the kernel frees it if we die, so it is never stale."""
    handle: IO[str] = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield True
    finally:
        handle.close()


def _tail(path: Path, lines: int = 20) -> None:
    if path.exists():
        for line in path.read_text(errors="replace").splitlines()[-lines:]:
            _say(f"  | {line}")


def _say(message: str) -> None:
    print(f"malestrom: {message}", flush=True)  # noqa: T201 - the supervisor talks to its user
