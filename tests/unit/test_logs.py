"""Logs people can read: one line per request with the route's template (never a concrete
path that could hold an identity number), the status, the duration and the correlation id;
JSON lines when asked for."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from infra.devissuer import DevIssuer
from infra.logs import JsonFormatter
from tests.helpers import SYNTHETIC_FNR
from tests.unit.offline import offline_api


class _Refusing:
    async def publish(self, topic: str, records: Any) -> None:
        raise AssertionError("nothing is published here")

    async def ping(self) -> bool:
        return True


@pytest.fixture(scope="module")
def client(issuer: DevIssuer) -> Iterator[TestClient]:
    """The API without a broker or database."""
    with offline_api(_Refusing(), issuer) as test_client:
        yield test_client


def test_a_request_is_logged_by_its_route_template(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Method, template, status, duration and correlation id; no identity number."""
    caplog.set_level(logging.INFO, logger="malestrom.requests")
    answer = client.get(
        f"/fhir/Observation/{SYNTHETIC_FNR}", auth=None, headers={"correlation-id": "c-1"}
    )
    assert answer.headers["correlation-id"] == "c-1"
    [line] = [r for r in caplog.records if r.name == "malestrom.requests"]
    message = line.getMessage()
    assert message.startswith("GET /fhir/Observation/{resource_id} 401 ")
    assert message.endswith(" ms c-1")
    assert SYNTHETIC_FNR not in message


def test_json_lines_carry_the_fields() -> None:
    """With the JSON format each record is one object with its extra fields."""
    record = logging.makeLogRecord(
        {"name": "malestrom.requests", "levelname": "INFO", "msg": "GET /x 200",
         "route": "/x", "status": 200}
    )  # fmt: skip
    line = orjson.loads(JsonFormatter().format(record))
    assert (line["level"], line["logger"], line["route"], line["status"]) == (
        "info",
        "malestrom.requests",
        "/x",
        200,
    )
    assert "\x1b" not in JsonFormatter().format(record)
