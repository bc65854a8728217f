"""docker-compose.yml describes the distributed shape, and every command it runs exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.cli import _parser

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_the_whole_system_is_described(compose: dict[str, Any]) -> None:
    """Kafka in KRaft mode, TimescaleDB, worker, API and simulator are all there."""
    services = compose["services"]
    assert {"kafka", "timescaledb", "worker", "api", "simulator"} <= set(services)
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb")


def test_every_service_has_a_health_check_or_waits_for_one(compose: dict[str, Any]) -> None:
    """Long-running infrastructure checks its health; our services wait for it."""
    services = compose["services"]
    for name in ("kafka", "timescaledb", "api"):
        assert "healthcheck" in services[name], name
    for name in ("worker", "api", "simulator"):
        assert services[name]["depends_on"], name


def test_every_malestrom_command_exists(compose: dict[str, Any]) -> None:
    """Each service command is a valid `malestrom` command line."""
    parser = _parser()
    commands = [s["command"] for s in compose["services"].values() if "command" in s]
    assert commands
    for command in commands:
        assert command[0] == "malestrom"
        parser.parse_args(command[1:])  # exits (SystemExit) on an unknown command or option
    assert "malestrom" in (ROOT / "Dockerfile").read_text()
