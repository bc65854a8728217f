"""`malestrom up`: start what is needed, supervise the children, stop everything cleanly.

Order: embedded PostgreSQL and broker (only when no external ones are configured) → migrations →
topics → streams worker → API → simulator. A child that dies is restarted with back-off and the
supervisor says which, with what code, and when it tries again (`infra/restarts.py`); a restarted
embedded broker gets its topics again, and the message says what its restart lost. Only an
essential child (worker, API, embedded PostgreSQL and broker) that keeps crashing makes `up` stop
everything with a non-zero exit; the conveniences (development proxy, simulator) are stopped and
dropped alone when they fail to start or keep crashing. SIGTERM or Ctrl-C stops the children in
reverse order. Each child's pid is in ``DATA/run/NAME.pid`` while it runs.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from typing import IO

import platformdirs
import psycopg
from confluent_kafka import KafkaException

from api.settings import DEV_ISSUER_PATH
from infra.devissuer import DevIssuer
from infra.embedded import EmbeddedBroker, EmbeddedPostgres
from infra.engine import EngineMismatchError, check_engine
from infra.migrate import upgrade
from infra.processes import port_free, spawn, stop, wait_for_port
from infra.restarts import RestartPolicy
from infra.settings import UpSettings
from infra.topics import check_topics, ensure_topics
from ingestion.topics import Topics

# The embedded broker's address while `up` runs (its port changes with every start), so that
# commands run beside it (`malestrom dlq`) find it.
BROKER_ADDRESS = "broker.address"

__all__ = ["BROKER_ADDRESS", "UpOptions", "run_up"]


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
    run_dir = options.data_dir / "run"
    children: list[_Child] = []
    services: list[EmbeddedPostgres | EmbeddedBroker] = []
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        env = _start_services(options, settings, services)
        _metrics_ports(options.port, env)
        policy = partial(_policy, settings)
        children.append(_program(["worker"], env, logs, policy()))
        api_args = ["api", "--host", options.host, "--port", str(options.port)]
        children.append(_program(api_args, env, logs, policy()))
        for child in children:
            child.start(run_dir)
        api = children[-1].proc
        assert api is not None
        wait_for_port(options.host, options.port, timeout=60, alive=lambda: api.poll() is None)
        url = f"http://{options.host}:{options.port}"
        if settings.wants_dev_issuer and settings.allows_dev_proxy and options.dev_proxy_port:
            _start_dev_proxy(options.dev_proxy_port, url, env, logs, children, run_dir, policy())
        if options.simulate:
            sim_args = ["simulate", "--url", url, "-n", str(options.simulate),
                        "--data-dir", str(options.data_dir)]  # fmt: skip
            children.append(_program(sim_args, env, logs, policy(), essential=False))
            children[-1].start(run_dir)
        _say(f"malestrom is up at {url}  (health: {url}/healthz, logs: {logs})")
        watched = [*_service_children(services, run_dir, settings, env, policy), *children]
        return _supervise(watched, run_dir, logs)
    except _StopSignalError:
        _say("stopping")
        return 0
    except (TimeoutError, OSError, subprocess.CalledProcessError, EngineMismatchError) as exc:
        _say(f"could not start: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for child in reversed(children):
            if child.proc is not None:
                stop(child.proc)
        for service in reversed(services):
            service.stop()
        for pid_file in run_dir.glob("*.pid"):
            pid_file.unlink(missing_ok=True)
        (run_dir / BROKER_ADDRESS).unlink(missing_ok=True)
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
        run_dir = options.data_dir / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / BROKER_ADDRESS).write_text(f"{broker.bootstrap}\n")  # for `malestrom dlq`
        env.setdefault("MALESTROM_BROKER_SESSION_TIMEOUT", str(settings.embedded_session_timeout))
        _say(
            f"embedded Kafka-protocol broker (Tansu) on {broker.bootstrap}: it keeps data in "
            "memory only, so readings not yet stored are lost if it stops (senders' resends "
            "bring them back), and so are dead letters not yet replayed; production needs Kafka "
            "with replication 3, min.insync.replicas=2"
        )
    if settings.wants_dev_issuer:
        issuer = DevIssuer.ensure(
            options.data_dir / "dev-issuer",
            f"http://{options.host}:{options.port}{DEV_ISSUER_PATH}",
        )
        env |= issuer.env() | {"MALESTROM_DEV_ISSUER_DIR": str(issuer.directory)}
        default = Path(platformdirs.user_data_dir("malestrom"))
        here = "" if options.data_dir == default else f" --data-dir {options.data_dir}"
        url = f"http://{options.host}:{options.port}"
        there = "" if url == "http://127.0.0.1:8080" else f" --url {url}"  # `call`'s default
        _say(
            "development issuer (synthetic identities only; refused in production): "
            f"`malestrom token --role nurse{here}` prints a token, "
            f"`malestrom call GET /api/v1/board{here}{there}` sends a signed request"
        )
    database_url = env["MALESTROM_DATABASE_URL"]
    _, change = check_engine(database_url)  # refuses before migrating what it cannot serve
    applied = upgrade(database_url)
    if applied:
        _say(f"applied migrations: {', '.join(applied)}")
    _say(f"storage: {check_engine(database_url)[0]}")
    if change:
        _say(change)
    _ensure_topics(env, settings)
    return env


# Prometheus endpoints on 127.0.0.1 that `up` turns on unless set: the worker's, and the API's
# own (a scraper cannot sign DPoP proofs for GET /metrics), next to the development proxy.
_METRICS_PORTS = (("worker", "MALESTROM_WORKER_METRICS_PORT", 2),
                  ("API", "MALESTROM_API_METRICS_PORT", 3))  # fmt: skip


def _metrics_ports(port: int, env: dict[str, str]) -> None:
    served = []
    for name, variable, offset in _METRICS_PORTS:
        if variable not in env and port_free("127.0.0.1", port + offset):
            env[variable] = str(port + offset)
        if env.get(variable, "0") != "0":
            served.append(f"{name} http://127.0.0.1:{env[variable]}/metrics")
    if served:
        _say(f"metrics for Prometheus: {', '.join(served)}")


def _start_dev_proxy(
    port: int,
    upstream: str,
    env: dict[str, str],
    logs: Path,
    children: list[_Child],
    run_dir: Path,
    policy: RestartPolicy,
) -> None:
    if not port_free("127.0.0.1", port):  # a convenience: never the reason `up` fails
        _say(f"development proxy not started: 127.0.0.1:{port} is in use (--dev-proxy-port P)")
        return
    args = ["dev-proxy", "--port", str(port), "--upstream", upstream]
    proxy = _program(args, env, logs, policy, essential=False)
    proxy.start(run_dir)
    process = proxy.proc
    assert process is not None
    try:
        wait_for_port("127.0.0.1", port, timeout=30, alive=lambda: process.poll() is None)
    except TimeoutError as exc:
        stop(process)
        (run_dir / f"{proxy.key}.pid").unlink(missing_ok=True)
        _say(f"development proxy skipped: it did not start ({exc}; see {logs / 'dev-proxy.log'})")
        return
    children.append(proxy)
    _say(
        f"development proxy for FHIR clients without credentials: http://127.0.0.1:{port}/fhir "
        "(signs readings sent in as the hub of 311000004, everything else as its nurse)"
    )


def _ensure_topics(env: dict[str, str], settings: UpSettings) -> list[str]:
    topics = Topics(settings.topic_prefix)
    bootstrap = env["MALESTROM_KAFKA_BOOTSTRAP"]
    created = ensure_topics(bootstrap, topics, partitions=settings.partitions)
    _warn_about_partitions(bootstrap, topics, settings.partitions)
    return created


def _warn_about_partitions(bootstrap: str, topics: Topics, partitions: int) -> None:
    """Say which topics exist with another partition count: `ensure_topics` leaves them so."""
    try:
        status = check_topics(bootstrap, topics, partitions=partitions)
    except KafkaException as exc:
        _say(f"warning: the topics' partition counts could not be checked ({exc})")
        return
    if status.wrong_partitions:
        found = ", ".join(f"{n} has {c}" for n, c in sorted(status.wrong_partitions.items()))
        _say(
            f"warning: topics with another partition count than MALESTROM_PARTITIONS="
            f"{partitions}: {found}; malestrom never changes an existing topic (add partitions "
            "with the broker's tools, or set MALESTROM_PARTITIONS to match)"
        )
    if status.missing:
        _say(f"warning: topics still missing after creating them: {', '.join(status.missing)}")


def _policy(settings: UpSettings) -> RestartPolicy:
    return RestartPolicy(
        limit=settings.restart_limit,
        window=settings.restart_window,
        stable_after=settings.restart_stable_after,
        max_delay=settings.restart_max_delay,
    )


# Errors that mean "this start did not work": a crash like any other, retried with back-off.
_START_ERRORS = (
    TimeoutError,
    OSError,
    subprocess.CalledProcessError,
    psycopg.OperationalError,
    KafkaException,
)


@dataclass(slots=True)
class _Child:
    """One supervised process: how to start it, its back-off, and what its death costs."""

    name: str
    launch: Callable[[], subprocess.Popen[bytes]]
    policy: RestartPolicy
    key: str  # its pid file is DATA/run/KEY.pid
    log: str  # its log is DATA/logs/LOG.log, shown when it keeps crashing
    lost: str = ""  # said when it dies: what was lost and what brings it back
    essential: bool = True  # False: when it keeps crashing, `up` drops it and keeps running
    proc: subprocess.Popen[bytes] | None = None
    restart_at: float | None = None

    def start(self, run_dir: Path) -> None:
        """Start (or restart) it."""
        self.restart_at = None
        self.watch(self.launch(), run_dir)

    def watch(self, proc: subprocess.Popen[bytes], run_dir: Path) -> None:
        """Watch ``proc`` as this child from now on and write its pid file."""
        self.proc = proc
        self.policy.started(time.monotonic())
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / f"{self.key}.pid").write_text(f"{proc.pid}\n")


def _service_children(
    services: list[EmbeddedPostgres | EmbeddedBroker],
    run_dir: Path,
    settings: UpSettings,
    env: dict[str, str],
    policy: Callable[[], RestartPolicy],
) -> list[_Child]:
    out = []
    for service in services:
        if isinstance(service, EmbeddedPostgres):
            lost = f"its data is on disk ({service.pgdata}): nothing stored is lost"
            launch = _postgres_starter(service)
            child = _Child("embedded PostgreSQL", launch, policy(), "postgres", "postgres", lost)
        else:
            launch = _broker_starter(service, env, settings)
            child = _Child("embedded broker", launch, policy(), "broker", "tansu", _BROKER_LOSS)
        if service.process is not None:
            child.watch(service.process, run_dir)
        out.append(child)
    return out


_BROKER_LOSS = (
    "the embedded broker keeps data in memory only: readings accepted but not yet stored are "
    "lost; senders' resends bring them back; dead letters not yet replayed (`malestrom dlq "
    "list`) are lost for good"
)


def _postgres_starter(postgres: EmbeddedPostgres) -> Callable[[], subprocess.Popen[bytes]]:
    def launch() -> subprocess.Popen[bytes]:
        try:
            postgres.start()
        except _START_ERRORS:
            postgres.stop()
            raise
        assert postgres.process is not None
        return postgres.process

    return launch


def _broker_starter(
    broker: EmbeddedBroker, env: dict[str, str], settings: UpSettings
) -> Callable[[], subprocess.Popen[bytes]]:
    def launch() -> subprocess.Popen[bytes]:
        try:
            broker.start()  # the same port: clients reconnect to the address they know
            created = _ensure_topics(env, settings)
        except _START_ERRORS:
            broker.stop()
            raise
        _say(f"embedded broker on {broker.bootstrap} again; topics recreated: {', '.join(created)}")
        assert broker.process is not None
        return broker.process

    return launch


def _supervise(
    watched: list[_Child],
    run_dir: Path,
    logs: Path,
    *,
    pause: Callable[[float], None] = time.sleep,
) -> int:
    """Restart what dies, with back-off; drop a non-essential child that keeps crashing; return
    1 once an essential one keeps crashing."""
    while True:
        for child in list(watched):
            if _check(child, run_dir, logs):
                continue
            if child.essential:
                return 1
            watched.remove(child)
            (run_dir / f"{child.key}.pid").unlink(missing_ok=True)
        pause(0.2)


def _check(child: _Child, run_dir: Path, logs: Path) -> bool:
    """Restart ``child`` if it is due, note its death if it died; False when it keeps crashing."""
    if child.proc is None:
        if child.restart_at is None or time.monotonic() < child.restart_at:
            return True
        try:
            child.start(run_dir)
        except _START_ERRORS as exc:
            return _died(child, f"could not start again ({exc})", logs)
        _say(f"{child.name} restarted")
        return True
    code = child.proc.poll()
    if code is None:
        return True
    child.proc = None
    if code == 0 and child.name == "simulator":
        _say("simulator finished")
        return True
    return _died(child, f"exited with code {code}", logs)


def _died(child: _Child, how: str, logs: Path) -> bool:
    """Say that ``child`` died and schedule its restart; False when it keeps crashing."""
    verdict = child.policy.crashed(time.monotonic())
    lost = f"; {child.lost}" if child.lost else ""
    if verdict.give_up:
        then = (
            "giving up, stopping everything"
            if child.essential
            else f"giving up on it alone: malestrom keeps running without the {child.name}"
        )
        _say(
            f"{child.name} {how}{lost}; it crashed {verdict.crashes_in_window} times within "
            f"{child.policy.window:g} s, so it keeps crashing: {then}"
        )
        _tail(logs / f"{child.log}.log")
        return False
    child.restart_at = time.monotonic() + verdict.delay
    _say(
        f"{child.name} {how}{lost}; restarting it, next attempt in {verdict.delay:g} s "
        f"(crash {verdict.crashes_in_window} of {child.policy.limit} within "
        f"{child.policy.window:g} s)"
    )
    return True


def _program(
    args: list[str],
    env: dict[str, str],
    logs: Path,
    policy: RestartPolicy,
    *,
    essential: bool = True,
) -> _Child:
    """A `malestrom` subcommand as a supervised child, named after it (worker, api, …)."""
    name = "simulator" if args[0] == "simulate" else args[0]
    launch = partial(_child, args, env, logs / f"{name}.log")
    return _Child(name, launch, policy, name, name, essential=essential)


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
