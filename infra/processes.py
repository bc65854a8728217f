"""Child processes that die with their parent, and the small helpers to start and stop them."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

__all__ = [
    "die_with_parent",
    "free_port",
    "pid_alive",
    "port_free",
    "spawn",
    "stop",
    "wait_for_port",
]

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child before exec: ask the kernel to SIGTERM us when the parent dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    args: Sequence[str],
    *,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    user: str | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child process that is terminated if this process dies."""
    out: IO[bytes] | None = None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        out = log.open("ab")
    try:
        return subprocess.Popen(
            list(args),
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            stdin=subprocess.DEVNULL,
            env=env,
            user=user,
            cwd=cwd,
            preexec_fn=die_with_parent,  # the supervisor runs no threads when it spawns
            start_new_session=True,  # Ctrl-C reaches the supervisor, which stops children in order
        )
    finally:
        if out is not None:
            out.close()  # the child has its own copy


def stop(
    proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 15.0
) -> None:
    """Signal a child, wait for it, and kill it if it does not exit in time."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(5)


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_free(host: str, port: int) -> bool:
    """Return whether ``host:port`` can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_for_port(
    host: str, port: int, *, timeout: float, alive: Callable[[], bool] = lambda: True
) -> None:
    """Wait until ``host:port`` accepts connections.

    Raises:
        TimeoutError: it did not within ``timeout`` seconds, or ``alive()`` turned false.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise TimeoutError(f"the process meant to listen on {host}:{port} exited")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


def pid_alive(pid: int) -> bool:
    """Return whether a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
