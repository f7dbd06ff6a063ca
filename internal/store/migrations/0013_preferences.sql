-- Curation, second edition: pairwise preferences, per-curator ratings,
-- queues per curator with an overlap, for agreement between curators.

-- One curator's verdict on two outputs of one task. The pair is kept in
-- one order (output_a < output_b by ID) whichever side the curator saw it
-- on, so that two curators' verdicts on a pair line up; winner is a, b,
-- tie or both_bad. A curator has one verdict per pair: judging it again
-- replaces it. final: an admin's verdict that settles a disagreement, and
-- stands alone for the pair in the leaderboard and the exports.
CREATE TABLE curation_preferences (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL DEFAULT 'proj_default',
    task_id       TEXT NOT NULL,
    conquest_type TEXT NOT NULL,
    output_a      TEXT NOT NULL,
    output_b      TEXT NOT NULL,
    model_a       TEXT NOT NULL,
    model_b       TEXT NOT NULL,
    winner        TEXT NOT NULL,
    reason        TEXT NOT NULL DEFAULT '',
    curator_id    TEXT NOT NULL,
    final         BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    CONSTRAINT curation_preferences_pair UNIQUE (task_id, output_a, output_b, curator_id)
);
CREATE INDEX curation_preferences_project ON curation_preferences (project_id, conquest_type, id);
CREATE INDEX curation_preferences_curator ON curation_preferences (curator_id, project_id, task_id);

-- Verdicts counted per project, type and pair of models (model_lo <
-- model_hi), kept with each verdict in its transaction, so that choosing
-- the next pair reads a few rows rather than every verdict.
CREATE TABLE curation_pair_counts (
    project_id    TEXT NOT NULL,
    conquest_type TEXT NOT NULL,
    model_lo      TEXT NOT NULL,
    model_hi      TEXT NOT NULL,
    wins_lo       BIGINT NOT NULL DEFAULT 0,
    wins_hi       BIGINT NOT NULL DEFAULT 0,
    ties          BIGINT NOT NULL DEFAULT 0,
    both_bad      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, conquest_type, model_lo, model_hi)
);

-- Each curator's own rating of an output (curation_outputs.rating is the
-- last one saved), so that two curators' ratings can be compared.
CREATE TABLE curation_ratings (
    output_id     TEXT NOT NULL,
    curator_id    TEXT NOT NULL,
    task_id       TEXT NOT NULL,
    project_id    TEXT NOT NULL,
    conquest_type TEXT NOT NULL,
    rating        BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    PRIMARY KEY (output_id, curator_id)
);
CREATE INDEX curation_ratings_project ON curation_ratings (project_id, conquest_type, output_id);
CREATE INDEX curation_ratings_curator ON curation_ratings (curator_id, project_id, task_id);

-- A curator's queue in a project: the tasks of a type, with an output of a
-- model, whose prompt holds a text ('' for any).
CREATE TABLE curation_queues (
    project_id    TEXT NOT NULL,
    curator_id    TEXT NOT NULL,
    conquest_type TEXT NOT NULL DEFAULT '',
    model         TEXT NOT NULL DEFAULT '',
    query         TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (project_id, curator_id)
);

-- The share of a project's tasks that several curators review (overlap,
-- 0 to 1), and how many (reviewers).
CREATE TABLE curation_assignment (
    project_id TEXT PRIMARY KEY,
    overlap    DOUBLE PRECISION NOT NULL DEFAULT 0,
    reviewers  BIGINT NOT NULL DEFAULT 2
);

-- The models that answered each type's tasks, per project, kept by imports:
-- the pairs of models a curator may be asked to compare.
CREATE TABLE curation_type_models (
    project_id    TEXT NOT NULL,
    conquest_type TEXT NOT NULL,
    model         TEXT NOT NULL,
    PRIMARY KEY (project_id, conquest_type, model)
);
INSERT INTO curation_type_models (project_id, conquest_type, model)
    SELECT DISTINCT t.project_id, t.conquest_type, o.model FROM curation_outputs o JOIN curation_tasks t ON t.id = o.task_id;
