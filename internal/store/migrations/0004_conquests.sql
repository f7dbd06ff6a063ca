-- Conquests: a batch built from a conquest type records it, and each of its
-- outputs is checked against the type's output schema once it ends.

ALTER TABLE batches ADD COLUMN conquest_type TEXT NOT NULL DEFAULT '';
ALTER TABLE batches ADD COLUMN conquest_version BIGINT NOT NULL DEFAULT 0;
-- Outputs checked, valid and invalid; checked_at is NULL until the check ran.
ALTER TABLE batches ADD COLUMN conquest_valid BIGINT NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN conquest_invalid BIGINT NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN conquest_checked_at BIGINT;
-- Why the whole batch could not be checked (an unknown type or version).
ALTER TABLE batches ADD COLUMN conquest_error TEXT NOT NULL DEFAULT '';

CREATE TABLE conquest_outputs (
    batch_id  TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    -- The line of the output file, from 1.
    line      BIGINT NOT NULL,
    valid     BIGINT NOT NULL,
    reason    TEXT NOT NULL DEFAULT '',
    message   TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (batch_id, custom_id)
);

CREATE INDEX conquest_outputs_valid ON conquest_outputs (batch_id, valid, custom_id);
