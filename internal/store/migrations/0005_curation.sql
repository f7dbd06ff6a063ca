-- Curation: batch outputs become tasks that curators review side by side,
-- correct, rate and star, and export as training data.

CREATE TABLE curation_tasks (
    id               TEXT PRIMARY KEY,
    conquest_type    TEXT NOT NULL,
    conquest_version BIGINT NOT NULL,
    -- custom_id, or "sha256:" and the hash of the input when none was given.
    task_key         TEXT NOT NULL,
    -- JSON: {"messages": [...]}, the prompt the models answered.
    input            TEXT NOT NULL,
    -- Lower-cased text of the input, for search.
    search_text      TEXT NOT NULL,
    -- pending, reviewed or skipped.
    status           TEXT NOT NULL DEFAULT 'pending',
    gold_output_id   TEXT,
    notes            TEXT NOT NULL DEFAULT '',
    -- Bumped by every annotation: a write names the version it read.
    version          BIGINT NOT NULL DEFAULT 1,
    curator          TEXT NOT NULL DEFAULT '',
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (conquest_type, task_key)
);

CREATE INDEX curation_tasks_type ON curation_tasks (conquest_type, id);
CREATE INDEX curation_tasks_status ON curation_tasks (status, id);

CREATE TABLE curation_outputs (
    id                TEXT PRIMARY KEY,
    task_id           TEXT NOT NULL,
    batch_id          TEXT NOT NULL,
    model             TEXT NOT NULL,
    -- The model's answer as it came.
    content           TEXT NOT NULL,
    valid             BIGINT NOT NULL,
    reason            TEXT NOT NULL DEFAULT '',
    message           TEXT NOT NULL DEFAULT '',
    input_tokens      BIGINT NOT NULL DEFAULT 0,
    output_tokens     BIGINT NOT NULL DEFAULT 0,
    -- How long the model took to answer, when known.
    latency_ms        BIGINT,
    rating            BIGINT,
    corrected         TEXT,
    -- 1 when the correction matches the schema; 0 when the curator saved
    -- it anyway (forced).
    corrected_valid   BIGINT,
    corrected_message TEXT NOT NULL DEFAULT '',
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    UNIQUE (task_id, batch_id)
);

CREATE INDEX curation_outputs_task ON curation_outputs (task_id, model);

CREATE TABLE curation_history (
    id      TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    curator TEXT NOT NULL,
    action  TEXT NOT NULL,
    -- JSON: what changed.
    detail  TEXT NOT NULL,
    at      BIGINT NOT NULL
);

CREATE INDEX curation_history_task ON curation_history (task_id, id);

-- Batches imported, so that importing one twice does nothing.
CREATE TABLE curation_imports (
    batch_id    TEXT PRIMARY KEY,
    tasks       BIGINT NOT NULL,
    outputs     BIGINT NOT NULL,
    imported_at BIGINT NOT NULL
);

CREATE TABLE curation_exports (
    id           TEXT PRIMARY KEY,
    format       TEXT NOT NULL,
    -- JSON: the selection and options.
    options      TEXT NOT NULL,
    -- queued, running, completed or failed.
    status       TEXT NOT NULL,
    done         BIGINT NOT NULL DEFAULT 0,
    total        BIGINT NOT NULL DEFAULT 0,
    rows         BIGINT NOT NULL DEFAULT 0,
    file_id      TEXT,
    error        TEXT NOT NULL DEFAULT '',
    curator      TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    completed_at BIGINT
);

-- Curators: keys and roles apart from the batch API's keys.
CREATE TABLE curators (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    -- curator or admin.
    role       TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE curator_sessions (
    hash       TEXT PRIMARY KEY,
    curator_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- The data records of requests built through the API, by conquest type and
-- custom_id, so that curators see a task's fields as its type renders them.
CREATE TABLE conquest_records (
    conquest_type TEXT NOT NULL,
    custom_id     TEXT NOT NULL,
    data          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (conquest_type, custom_id)
);
