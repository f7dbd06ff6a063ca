-- Projects, as OpenAI's Administration API has them: every resource belongs
-- to one, and a key sees only its own. Everything that existed before
-- belongs to the default project.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    archived_at BIGINT,
    -- claim_seq orders projects by when the agent last took a shard of
    -- theirs: the least recently served goes first (fair share).
    claim_seq   BIGINT NOT NULL DEFAULT 0
);
INSERT INTO projects (id, name, created_at) VALUES ('proj_default', 'Default Project', 0);

ALTER TABLE api_keys ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE files ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE uploads ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE batches ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE webhook_endpoints ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE events ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE function_invocations ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE webhook_deliveries ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE inbox_objects ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE curation_tasks ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';
ALTER TABLE curation_exports ADD COLUMN project_id TEXT NOT NULL DEFAULT 'proj_default';

CREATE INDEX files_project_id ON files (project_id, id);
CREATE INDEX uploads_project_id ON uploads (project_id, id);
CREATE INDEX batches_project_id ON batches (project_id, id);
CREATE INDEX webhook_endpoints_project_id ON webhook_endpoints (project_id, id);
CREATE INDEX events_project_id ON events (project_id, id);
CREATE INDEX function_invocations_project_id ON function_invocations (project_id, id);

-- Keys: a project's keys are a user's (kiln keys create) or a service
-- account's; scopes limit what they open ('' is everything); a rotated key
-- stays valid until expires_at.
ALTER TABLE api_keys ADD COLUMN owner_type TEXT NOT NULL DEFAULT 'user';
ALTER TABLE api_keys ADD COLUMN service_account_id TEXT;
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;

CREATE TABLE service_accounts (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX service_accounts_project_id ON service_accounts (project_id, id);

-- Admin keys open the Administration API (/v1/organization/...) only.
CREATE TABLE admin_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

-- Per project and model; model '' applies to every model without its own.
CREATE TABLE project_rate_limits (
    id                           TEXT PRIMARY KEY,
    project_id                   TEXT NOT NULL,
    model                        TEXT NOT NULL,
    max_requests_per_1_minute    BIGINT NOT NULL DEFAULT 0,
    batch_1_day_max_input_tokens BIGINT NOT NULL DEFAULT 0,
    max_pending_uploads          BIGINT NOT NULL DEFAULT 0,
    max_pending_upload_bytes     BIGINT NOT NULL DEFAULT 0,
    UNIQUE (project_id, model)
);

CREATE TABLE audit_logs (
    id           TEXT PRIMARY KEY,
    type         TEXT NOT NULL,
    effective_at BIGINT NOT NULL,
    project_id   TEXT,
    actor_type   TEXT NOT NULL,
    actor_id     TEXT NOT NULL,
    -- the event's details, as OpenAI's log carries them under its type
    details      TEXT NOT NULL
);
CREATE INDEX audit_logs_effective_at ON audit_logs (effective_at, id);

-- The projects a curator works in.
CREATE TABLE curator_projects (
    curator_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    PRIMARY KEY (curator_id, project_id)
);
INSERT INTO curator_projects (curator_id, project_id) SELECT id, 'proj_default' FROM curators;

-- A batch's estimated input tokens, counted against its project's
-- enqueued-token limit while it runs.
ALTER TABLE batches ADD COLUMN enqueued_tokens BIGINT NOT NULL DEFAULT 0;

-- The Administration API: a project's keys and a service account's, and
-- usage by day from the result chunks.
CREATE INDEX api_keys_project_id ON api_keys (project_id, id);
CREATE INDEX api_keys_service_account_id ON api_keys (service_account_id);
CREATE INDEX batch_chunks_created_at ON batch_chunks (created_at);

-- Curation is per project: a task's key is unique within its project and
-- conquest type, so that the same request in two projects makes two tasks,
-- and a data record kept for a request is its project's. SQLite cannot drop
-- a UNIQUE constraint, so both tables are rebuilt, with their rows.
CREATE TABLE curation_tasks_new (
    id               TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL DEFAULT 'proj_default',
    conquest_type    TEXT NOT NULL,
    conquest_version BIGINT NOT NULL,
    task_key         TEXT NOT NULL,
    input            TEXT NOT NULL,
    search_text      TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending',
    gold_output_id   TEXT,
    notes            TEXT NOT NULL DEFAULT '',
    version          BIGINT NOT NULL DEFAULT 1,
    curator          TEXT NOT NULL DEFAULT '',
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    CONSTRAINT curation_tasks_project_key UNIQUE (project_id, conquest_type, task_key)
);
INSERT INTO curation_tasks_new (id, project_id, conquest_type, conquest_version, task_key, input, search_text, status, gold_output_id,
    notes, version, curator, created_at, updated_at)
    SELECT id, project_id, conquest_type, conquest_version, task_key, input, search_text, status, gold_output_id,
    notes, version, curator, created_at, updated_at FROM curation_tasks;
DROP TABLE curation_tasks;
ALTER TABLE curation_tasks_new RENAME TO curation_tasks;
CREATE INDEX curation_tasks_project ON curation_tasks (project_id, id);
CREATE INDEX curation_tasks_type ON curation_tasks (project_id, conquest_type, id);
CREATE INDEX curation_tasks_status ON curation_tasks (project_id, status, id);

CREATE TABLE conquest_records_new (
    project_id    TEXT NOT NULL DEFAULT 'proj_default',
    conquest_type TEXT NOT NULL,
    custom_id     TEXT NOT NULL,
    data          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (project_id, conquest_type, custom_id)
);
INSERT INTO conquest_records_new (conquest_type, custom_id, data, created_at)
    SELECT conquest_type, custom_id, data, created_at FROM conquest_records;
DROP TABLE conquest_records;
ALTER TABLE conquest_records_new RENAME TO conquest_records;

CREATE INDEX curation_exports_project_id ON curation_exports (project_id, id);
CREATE INDEX curator_projects_project_id ON curator_projects (project_id, curator_id);

-- The project a workbench session works in, as chosen in its switcher; ''
-- until one is chosen (the curator's first project).
ALTER TABLE curator_sessions ADD COLUMN project_id TEXT NOT NULL DEFAULT '';
