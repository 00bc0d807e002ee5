"""Versioned schema migrations of the job store, one list per database dialect.

A migration is appended, never edited: replicas record applied versions in
`ocr_schema_migrations` and apply the missing ones at start-up (PostgreSQL under an advisory
lock, SQLite under its write lock), so several replicas starting at once are safe.

Version 2 gives each job an `owner`: an opaque id derived from the API key that created it
(`http.auth.key_owner`), or '' for a job created without authentication (and for every job
that existed before). '' rather than NULL because NULLs are all distinct in a UNIQUE index, and
the Idempotency-Key must still dedupe among ownerless jobs: it is unique per (owner, key).
SQLite cannot drop a column's UNIQUE constraint, so its version 2 rebuilds `ocr_jobs` the way
SQLite documents (new table, copy, drop, rename) while `sqlite._migrate` holds foreign keys off,
so dropping the old table does not cascade into the pages, inputs and events that refer to it.
"""

from __future__ import annotations

POSTGRES_MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE ocr_jobs (
            id text PRIMARY KEY,
            status text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            started_at timestamptz,
            finished_at timestamptz,
            options text NOT NULL,
            filename text,
            document_sha256 text NOT NULL,
            pages_total integer NOT NULL,
            pages_done integer NOT NULL DEFAULT 0,
            cached_pages integer NOT NULL DEFAULT 0,
            error text,
            idempotency_key text UNIQUE,
            request_hash text NOT NULL,
            callback_url text,
            callback_state text,
            callback_attempts integer NOT NULL DEFAULT 0,
            callback_next_at timestamptz,
            callback_last_error text
        );
        CREATE INDEX ocr_jobs_finished ON ocr_jobs (finished_at) WHERE finished_at IS NOT NULL;
        CREATE INDEX ocr_jobs_callbacks ON ocr_jobs (callback_next_at) WHERE callback_state = 'pending';
        CREATE TABLE ocr_job_inputs (
            job_id text PRIMARY KEY REFERENCES ocr_jobs (id) ON DELETE CASCADE,
            data bytea NOT NULL
        );
        CREATE TABLE ocr_job_pages (
            job_id text NOT NULL REFERENCES ocr_jobs (id) ON DELETE CASCADE,
            idx integer NOT NULL,
            page_number integer NOT NULL,
            state text NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
            attempts integer NOT NULL DEFAULT 0,
            lease_owner text,
            lease_expires_at timestamptz,
            queued_at timestamptz NOT NULL,
            started_at timestamptz,
            finished_at timestamptz,
            cached integer NOT NULL DEFAULT 0,
            error text,
            finished_by text,
            PRIMARY KEY (job_id, idx)
        );
        CREATE INDEX ocr_job_pages_queue ON ocr_job_pages (queued_at, job_id, idx) WHERE state = 'queued';
        CREATE INDEX ocr_job_pages_leases ON ocr_job_pages (lease_expires_at) WHERE state = 'running';
        CREATE TABLE ocr_job_results (
            job_id text NOT NULL,
            idx integer NOT NULL,
            format text NOT NULL,
            body bytea NOT NULL,
            PRIMARY KEY (job_id, idx, format),
            FOREIGN KEY (job_id, idx) REFERENCES ocr_job_pages (job_id, idx) ON DELETE CASCADE
        );
        CREATE TABLE ocr_job_events (
            id bigserial PRIMARY KEY,
            job_id text NOT NULL REFERENCES ocr_jobs (id) ON DELETE CASCADE,
            at timestamptz NOT NULL,
            kind text NOT NULL,
            data text NOT NULL
        );
        CREATE INDEX ocr_job_events_job ON ocr_job_events (job_id, id);
        """,
    ),
    (
        2,
        """
        ALTER TABLE ocr_jobs ADD COLUMN owner text NOT NULL DEFAULT '';
        ALTER TABLE ocr_jobs DROP CONSTRAINT ocr_jobs_idempotency_key_key;
        CREATE UNIQUE INDEX ocr_jobs_idempotency ON ocr_jobs (owner, idempotency_key);
        """,
    ),
)

SQLITE_MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE ocr_jobs (
            id TEXT PRIMARY KEY,
            status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            options TEXT NOT NULL,
            filename TEXT,
            document_sha256 TEXT NOT NULL,
            pages_total INTEGER NOT NULL,
            pages_done INTEGER NOT NULL DEFAULT 0,
            cached_pages INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            idempotency_key TEXT UNIQUE,
            request_hash TEXT NOT NULL,
            callback_url TEXT,
            callback_state TEXT,
            callback_attempts INTEGER NOT NULL DEFAULT 0,
            callback_next_at REAL,
            callback_last_error TEXT
        );
        CREATE INDEX ocr_jobs_finished ON ocr_jobs (finished_at) WHERE finished_at IS NOT NULL;
        CREATE INDEX ocr_jobs_callbacks ON ocr_jobs (callback_next_at) WHERE callback_state = 'pending';
        CREATE TABLE ocr_job_inputs (
            job_id TEXT PRIMARY KEY REFERENCES ocr_jobs (id) ON DELETE CASCADE,
            data BLOB NOT NULL
        );
        CREATE TABLE ocr_job_pages (
            job_id TEXT NOT NULL REFERENCES ocr_jobs (id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            page_number INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
            attempts INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_expires_at REAL,
            queued_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            cached INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            finished_by TEXT,
            PRIMARY KEY (job_id, idx)
        );
        CREATE INDEX ocr_job_pages_queue ON ocr_job_pages (queued_at, job_id, idx) WHERE state = 'queued';
        CREATE INDEX ocr_job_pages_leases ON ocr_job_pages (lease_expires_at) WHERE state = 'running';
        CREATE TABLE ocr_job_results (
            job_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            format TEXT NOT NULL,
            body BLOB NOT NULL,
            PRIMARY KEY (job_id, idx, format),
            FOREIGN KEY (job_id, idx) REFERENCES ocr_job_pages (job_id, idx) ON DELETE CASCADE
        );
        CREATE TABLE ocr_job_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id TEXT NOT NULL REFERENCES ocr_jobs (id) ON DELETE CASCADE,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            data TEXT NOT NULL
        );
        CREATE INDEX ocr_job_events_job ON ocr_job_events (job_id, id);
        """,
    ),
    (
        2,
        """
        CREATE TABLE ocr_jobs_v2 (
            id TEXT PRIMARY KEY,
            status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            options TEXT NOT NULL,
            filename TEXT,
            document_sha256 TEXT NOT NULL,
            pages_total INTEGER NOT NULL,
            pages_done INTEGER NOT NULL DEFAULT 0,
            cached_pages INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            idempotency_key TEXT,
            request_hash TEXT NOT NULL,
            callback_url TEXT,
            callback_state TEXT,
            callback_attempts INTEGER NOT NULL DEFAULT 0,
            callback_next_at REAL,
            callback_last_error TEXT,
            owner TEXT NOT NULL DEFAULT ''
        );
        INSERT INTO ocr_jobs_v2 (id, status, created_at, updated_at, started_at, finished_at, options, filename,
            document_sha256, pages_total, pages_done, cached_pages, error, idempotency_key, request_hash,
            callback_url, callback_state, callback_attempts, callback_next_at, callback_last_error)
        SELECT id, status, created_at, updated_at, started_at, finished_at, options, filename,
            document_sha256, pages_total, pages_done, cached_pages, error, idempotency_key, request_hash,
            callback_url, callback_state, callback_attempts, callback_next_at, callback_last_error
        FROM ocr_jobs;
        DROP TABLE ocr_jobs;
        ALTER TABLE ocr_jobs_v2 RENAME TO ocr_jobs;
        CREATE INDEX ocr_jobs_finished ON ocr_jobs (finished_at) WHERE finished_at IS NOT NULL;
        CREATE INDEX ocr_jobs_callbacks ON ocr_jobs (callback_next_at) WHERE callback_state = 'pending';
        CREATE UNIQUE INDEX ocr_jobs_idempotency ON ocr_jobs (owner, idempotency_key);
        """,
    ),
)
