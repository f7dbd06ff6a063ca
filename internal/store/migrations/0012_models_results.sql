-- The model catalogue: the models agents have declared, kept after the
-- agents go offline, so that a batch naming a model no agent ever served
-- fails at validation with model_not_found, and one naming a known model
-- waits for its agent.
CREATE TABLE models (
    id            TEXT PRIMARY KEY,
    synthetic     BIGINT NOT NULL DEFAULT 0,
    first_seen_at BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL
);

-- Live partial results: each chunk takes the next of its batch's ordinals
-- as it commits (commits of one batch are serialised by the batch's row),
-- so that a reader tailing the chunks by ordinal never skips one that
-- commits late. The byte sizes of its output and error objects place the
-- chunk in the batch's final files, once finalize has composed them and
-- removed the chunks.
ALTER TABLE batch_chunks ADD COLUMN ord BIGINT NOT NULL DEFAULT 0;
ALTER TABLE batch_chunks ADD COLUMN output_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE batch_chunks ADD COLUMN error_bytes BIGINT NOT NULL DEFAULT 0;
CREATE INDEX batch_chunks_ord ON batch_chunks (batch_id, ord);
ALTER TABLE batches ADD COLUMN chunks_committed BIGINT NOT NULL DEFAULT 0;

-- Retries: a batch made from another's failed lines names it. A batch is
-- retried at most once, so that a batch's retries form a chain.
ALTER TABLE batches ADD COLUMN retry_of TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX batches_retry_of ON batches (retry_of) WHERE retry_of <> '';
