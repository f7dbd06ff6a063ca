-- Curation: versioned datasets, and near-duplicate inputs.

-- A dataset version: an immutable snapshot of an export, its files under
-- prefix in the object store. manifest (JSON) holds the export's options,
-- the counts per conquest type, model and source, each file's hash, and
-- content_hash (the sha256 over the data files' hashes).
CREATE TABLE curation_datasets (
    project_id   TEXT NOT NULL,
    name         TEXT NOT NULL,
    version      BIGINT NOT NULL,
    format       TEXT NOT NULL,
    file_format  TEXT NOT NULL,
    manifest     TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    rows         BIGINT NOT NULL,
    tasks        BIGINT NOT NULL,
    prefix       TEXT NOT NULL,
    curator      TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (project_id, name, version)
);

-- The tasks a dataset version holds, with the hash of each task's
-- examples: what a diff between two versions compares.
CREATE TABLE curation_dataset_items (
    project_id TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    task_id    TEXT NOT NULL,
    rows       BIGINT NOT NULL,
    hash       TEXT NOT NULL,
    PRIMARY KEY (project_id, name, version, task_id)
);

-- Each task's SimHash fingerprint of its input, and its cluster of near
-- duplicates within its conquest type: cluster_id is the cluster's first
-- task (the task itself when it has no near duplicate seen before it).
CREATE TABLE curation_neardups (
    task_id       TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL,
    conquest_type TEXT NOT NULL,
    simhash       BIGINT NOT NULL,
    cluster_id    TEXT NOT NULL
);
CREATE INDEX curation_neardups_type ON curation_neardups (project_id, conquest_type, task_id);
