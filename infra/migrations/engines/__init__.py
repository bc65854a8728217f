"""The engine-specific DDL of the storage layout, chosen by migration 0002.

``postgresql`` (plain PostgreSQL ≥ 14: daily range partitions, BRIN, writer-kept rollups) and
``timescaledb`` (hypertable, compression, retention, continuous aggregates). Both define the
same SQL functions and the same relation names, so the application asks the same questions of
either engine.
"""
