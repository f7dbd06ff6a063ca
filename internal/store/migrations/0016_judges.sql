-- Curation: model judges. A judge is a kiln batch that asks a local model
-- to compare two outputs of a task (kind preference) or to rate one (kind
-- rating); its answers come back as pre-labels.

-- A judge run: its batch, and what became of it. status: running (the
-- batch has not ended), imported (its answers are pre-labels) or failed
-- (error says why).
CREATE TABLE curation_judges (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL,
    conquest_type TEXT NOT NULL,
    model         TEXT NOT NULL,
    kind          TEXT NOT NULL,
    batch_id      TEXT NOT NULL,
    status        TEXT NOT NULL,
    requests      BIGINT NOT NULL,
    labels        BIGINT NOT NULL DEFAULT 0,
    unreadable    BIGINT NOT NULL DEFAULT 0,
    error         TEXT NOT NULL DEFAULT '',
    curator_id    TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    ended_at      BIGINT
);
CREATE INDEX curation_judges_project ON curation_judges (project_id, id);
CREATE UNIQUE INDEX curation_judges_batch ON curation_judges (batch_id);

-- A judge's answer on one unit: for a preference, the pair output_a <
-- output_b (by ID, as curation_preferences keeps it) and value a winner;
-- for a rating, output_a the output, output_b '' and value 1 to 5.
CREATE TABLE curation_prelabels (
    judge_id      TEXT NOT NULL,
    project_id    TEXT NOT NULL,
    conquest_type TEXT NOT NULL,
    task_id       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    output_a      TEXT NOT NULL,
    output_b      TEXT NOT NULL DEFAULT '',
    value         TEXT NOT NULL,
    reason        TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (judge_id, task_id, output_a, output_b)
);
-- In the order agreement reads votes (task, unit, coder), as
-- curation_preferences' unique key; also a task's pre-labels.
CREATE INDEX curation_prelabels_unit ON curation_prelabels (task_id, output_a, output_b, judge_id);

-- Ratings in the order agreement reads them (task, output, curator).
CREATE INDEX curation_ratings_unit ON curation_ratings (task_id, output_id, curator_id);
