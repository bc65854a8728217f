"""Which database errors mean "the database is unavailable, try again" rather than "this record
cannot be stored": one rule for the writer, the scorer and the error policy.

A connection that fails, a server shutting down, out of resources, a deadlock or a lock not
available will pass: the batch is retried and nothing is dead-lettered. A program limit (SQLSTATE
class 54: an index row or a value too large) fails the same way every time, so it is the
record's fault and the record is dead-lettered instead of blocking its partition for ever. A
read-only transaction (SQLSTATE 25006: a hot standby, as after a failover; psycopg classes it as
an InternalError) passes too, so a failover never dead-letters what is in flight.
"""

from __future__ import annotations

import psycopg
from psycopg.errors import ReadOnlySqlTransaction
from psycopg_pool import PoolTimeout

__all__ = ["database_unavailable"]

# SQLSTATE classes of psycopg's OperationalError that pass: connection exception, insufficient
# resources, object not in prerequisite state, operator intervention, system error, and
# transaction rollback (serialization failure, deadlock).
_PASSING_CLASSES = frozenset({"08", "53", "55", "57", "58", "40"})


def database_unavailable(error: BaseException) -> bool:
    """True when ``error`` says the database cannot be used now, and a retry may succeed."""
    if isinstance(error, PoolTimeout | psycopg.InterfaceError | ReadOnlySqlTransaction):
        return True
    if not isinstance(error, psycopg.OperationalError):
        return False
    state = error.sqlstate
    return state is None or state[:2] in _PASSING_CLASSES  # None: no server answer at all
