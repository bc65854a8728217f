"""The dependency rules of ARCHITECTURE.md, enforced on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_PURE = (
    "faust", "fastapi", "starlette", "psycopg", "psycopg_pool", "confluent_kafka",
    "aiokafka", "pydantic_settings", "uvicorn", "infra", "api", "streams",
)  # fmt: skip
# The edge adapters of ingestion are allowed to touch HTTP and Kafka; the rest is its pure core.
INGESTION_EDGES = {
    "receiver.py", "responses.py", "publisher.py", "kafka.py", "prometheus.py",
    "vendor_receiver.py",
}  # fmt: skip


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _pure_modules() -> list[Path]:
    news2 = sorted((ROOT / "news2").rglob("*.py"))
    ingestion = [
        p for p in sorted((ROOT / "ingestion").rglob("*.py")) if p.name not in INGESTION_EDGES
    ]
    return news2 + ingestion


@pytest.mark.parametrize("path", _pure_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_code_imports_no_io_framework(path: Path) -> None:
    """news2/ and the core of ingestion/ import no Faust, FastAPI, psycopg, Kafka or settings."""
    assert not (_imports(path) & set(FORBIDDEN_IN_PURE))


def test_news2_depends_on_numpy_only() -> None:
    """news2/ imports nothing outside the standard library, numpy and itself."""
    import sys

    allowed = set(sys.stdlib_module_names) | {"numpy", "news2", "__future__"}
    for path in (ROOT / "news2").rglob("*.py"):
        assert _imports(path) <= allowed, path


@pytest.mark.parametrize("package", ["ingestion", "streams", "news2", "api"])
def test_nothing_but_entry_points_imports_infra(package: str) -> None:
    """infra is the composition root: no package imports it."""
    for path in (ROOT / package).rglob("*.py"):
        assert "infra" not in _imports(path), path


def test_test_modules_have_unique_names() -> None:
    """pytest imports test modules by their file name (no packages under tests/): two files of
    one name in different folders cannot be collected in one run."""
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
