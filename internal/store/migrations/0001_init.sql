-- kiln's schema. Written in the SQL that both PostgreSQL and SQLite accept:
-- times are Unix seconds (as OpenAI's API) in BIGINT, JSON documents in TEXT.

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE TABLE files (
    id         TEXT PRIMARY KEY,
    purpose    TEXT NOT NULL,
    filename   TEXT NOT NULL,
    bytes      BIGINT NOT NULL,
    object_key TEXT NOT NULL,
    status     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    deleted_at BIGINT
);
CREATE INDEX files_purpose_id ON files (purpose, id);

CREATE TABLE batches (
    id                TEXT PRIMARY KEY,
    endpoint          TEXT NOT NULL,
    model             TEXT NOT NULL DEFAULT '',
    input_file_id     TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    status            TEXT NOT NULL,
    output_file_id    TEXT,
    error_file_id     TEXT,
    errors            TEXT,
    metadata          TEXT,
    created_at        BIGINT NOT NULL,
    in_progress_at    BIGINT,
    expires_at        BIGINT NOT NULL,
    finalizing_at     BIGINT,
    completed_at      BIGINT,
    failed_at         BIGINT,
    expired_at        BIGINT,
    cancelling_at     BIGINT,
    cancelled_at      BIGINT,
    total             BIGINT NOT NULL DEFAULT 0,
    completed         BIGINT NOT NULL DEFAULT 0,
    failed            BIGINT NOT NULL DEFAULT 0,
    input_tokens      BIGINT NOT NULL DEFAULT 0,
    output_tokens     BIGINT NOT NULL DEFAULT 0,
    -- stop_reason is why the batch stops before all requests ran:
    -- '' (it runs to the end), 'cancelled' or 'expired'.
    stop_reason       TEXT NOT NULL DEFAULT '',
    -- The lease of the agent that runs the batch; Unix milliseconds.
    lease_owner       TEXT NOT NULL DEFAULT '',
    lease_expires_at  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX batches_status ON batches (status);

-- A chunk is a durable object of results. A chunk row is written only after
-- its object is in the object store, in the same transaction that moves the
-- batch's counts.
CREATE TABLE batch_chunks (
    batch_id      TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    object_key    TEXT NOT NULL,
    output_lines  BIGINT NOT NULL,
    error_lines   BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (batch_id, seq)
);

CREATE TABLE agents (
    id           TEXT PRIMARY KEY,
    hostname     TEXT NOT NULL,
    models       TEXT NOT NULL,
    synthetic    BIGINT NOT NULL DEFAULT 0,
    in_flight    BIGINT NOT NULL DEFAULT 0,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
