-- Events and the functions they trigger. An event is written in the same
-- transaction as the state change it reports (an outbox), with one
-- invocation per subscribed function, each run as a River job.

CREATE TABLE events (
    id         TEXT PRIMARY KEY,
    type       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- The event's data object, as JSON: {"id": "batch_..."} and so on.
    data       TEXT NOT NULL,
    -- Set for events that must be emitted once per fact (an object seen by
    -- both a notification and a poll); NULL otherwise.
    dedupe_key TEXT UNIQUE
);

CREATE INDEX events_type ON events (type, id);

CREATE TABLE function_invocations (
    id         TEXT PRIMARY KEY,
    event_id   TEXT NOT NULL,
    function   TEXT NOT NULL,
    -- pending, succeeded or dead (retries exhausted: the dead letter).
    status     TEXT NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (event_id, function)
);

CREATE INDEX function_invocations_status ON function_invocations (status, id);

CREATE TABLE webhook_endpoints (
    id          TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    -- JSON array of event types.
    event_types TEXT NOT NULL,
    secret      TEXT NOT NULL,
    -- After a rotation that keeps the old secret active, deliveries are
    -- signed with both until previous_expires_at.
    previous_secret     TEXT NOT NULL DEFAULT '',
    previous_expires_at BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    deleted_at  BIGINT
);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    event_id         TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL,
    url              TEXT NOT NULL,
    -- pending, succeeded or failed (retries exhausted).
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    response_status  BIGINT NOT NULL DEFAULT 0,
    response_body    TEXT NOT NULL DEFAULT '',
    last_error       TEXT NOT NULL DEFAULT '',
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    delivered_at     BIGINT,
    UNIQUE (event_id, endpoint_id, url)
);

CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);

-- Objects dropped in the inbox prefix, and the files they became.
CREATE TABLE inbox_objects (
    object_key TEXT NOT NULL,
    etag       TEXT NOT NULL,
    file_id    TEXT,
    batch_id   TEXT,
    created_at BIGINT NOT NULL,
    -- Set once the object has left the inbox: the same bytes uploaded
    -- again under the same key (same ETag on S3) are a new import.
    released_at BIGINT,
    PRIMARY KEY (object_key, etag)
);

-- Processes that run jobs, with their last heartbeat: a running job whose
-- process stopped beating is handed back at once, not after River's rescue
-- delay.
CREATE TABLE job_clients (
    id           TEXT PRIMARY KEY,
    heartbeat_at BIGINT NOT NULL
);
