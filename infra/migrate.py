"""Schema migrations, versioned in ``infra/migrations`` and applied with yoyo-migrations."""

from __future__ import annotations

from pathlib import Path

from yoyo import get_backend, read_migrations

__all__ = ["MIGRATIONS_DIR", "applied_ids", "migration_ids", "upgrade"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _yoyo_url(database_url: str) -> str:
    scheme, rest = database_url.split("://", 1)
    if scheme in ("postgres", "postgresql"):
        scheme = "postgresql+psycopg"
    return f"{scheme}://{rest}"


def migration_ids() -> tuple[str, ...]:
    """Return the ids of every migration shipped with this version, in order."""
    return tuple(m.id for m in read_migrations(str(MIGRATIONS_DIR)))


def upgrade(database_url: str) -> list[str]:
    """Apply pending migrations under yoyo's lock; return the ids applied."""
    backend = get_backend(_yoyo_url(database_url))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return [m.id for m in pending]


def applied_ids(database_url: str) -> set[str]:
    """Return the ids of the migrations applied to the database."""
    backend = get_backend(_yoyo_url(database_url))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    return {m.id for m in migrations if backend.is_applied(m)}
