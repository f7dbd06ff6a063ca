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
    -- priority orders batches of one model, higher first (a kiln extension).
    priority          BIGINT NOT NULL DEFAULT 0,
    shards_total      BIGINT NOT NULL DEFAULT 0,
    shards_done       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX batches_status ON batches (status);

-- A shard is a run of consecutive input lines that one agent claims and
-- runs under a lease. An agent that dies stops renewing it; once it expires
-- another agent takes the shard over and runs the lines that have no
-- durable result.
CREATE TABLE batch_shards (
    batch_id         TEXT NOT NULL,
    idx              BIGINT NOT NULL,
    model            TEXT NOT NULL,
    priority         BIGINT NOT NULL,
    first_line       BIGINT NOT NULL,
    last_line        BIGINT NOT NULL,
    byte_offset      BIGINT NOT NULL,
    requests         BIGINT NOT NULL,
    -- pending, running or done.
    status           TEXT NOT NULL,
    lease_owner      TEXT NOT NULL DEFAULT '',
    -- Unix milliseconds.
    lease_expires_at BIGINT NOT NULL DEFAULT 0,
    -- When the shard became claimable, Unix milliseconds: the age of work
    -- waiting for a model.
    ready_at         BIGINT NOT NULL,
    claims           BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (batch_id, idx)
);
CREATE INDEX batch_shards_claim ON batch_shards (model, status);

-- A chunk is a durable object of results of one shard. A chunk row is
-- written only after its object is in the object store, in the same
-- transaction that moves the batch's counts.
CREATE TABLE batch_chunks (
    batch_id      TEXT NOT NULL,
    shard         BIGINT NOT NULL,
    seq           BIGINT NOT NULL,
    object_key    TEXT NOT NULL,
    output_lines  BIGINT NOT NULL,
    error_lines   BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (batch_id, shard, seq)
);

CREATE TABLE agents (
    id                TEXT PRIMARY KEY,
    hostname          TEXT NOT NULL,
    models            TEXT NOT NULL,
    synthetic         BIGINT NOT NULL DEFAULT 0,
    loaded_model      TEXT NOT NULL DEFAULT '',
    state             TEXT NOT NULL DEFAULT '',
    in_flight         BIGINT NOT NULL DEFAULT 0,
    concurrency       BIGINT NOT NULL DEFAULT 0,
    requests_per_sec  DOUBLE PRECISION NOT NULL DEFAULT 0,
    tokens_per_sec    DOUBLE PRECISION NOT NULL DEFAULT 0,
    model_switches    BIGINT NOT NULL DEFAULT 0,
    started_at        BIGINT NOT NULL,
    heartbeat_at      BIGINT NOT NULL
);
