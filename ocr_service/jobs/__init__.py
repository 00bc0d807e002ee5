"""Durable asynchronous jobs: a store (PostgreSQL or embedded SQLite), page workers with leases,
completion callbacks, retention, and a change feed (`changes`, `pglisten`: LISTEN/NOTIFY across
replicas) that wakes event streams and workers instead of polling. `runtime.JobRuntime` wires
them together for the app.
"""
