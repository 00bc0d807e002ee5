"""Durable asynchronous jobs: a store (PostgreSQL or embedded SQLite), page workers with leases,
completion callbacks and retention. `runtime.JobRuntime` wires them together for the app.
"""
