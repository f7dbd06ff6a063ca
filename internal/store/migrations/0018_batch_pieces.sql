-- Pieces: while a batch runs, runs of its finished shards' chunks are
-- concatenated into pieces of several MiB, so that finalize composes the
-- files from pieces that S3 copies server-side (every part of a multipart
-- upload but the last must be 5 MiB or more) instead of reading every chunk
-- through kiln. A piece holds the output and error objects of every chunk of
-- shards first_shard to last_shard, in order of shard and sequence: the same
-- bytes the chunks would give, and their indexes likewise concatenated, so
-- that finalize reads one index per piece. chunks counts them, which
-- finalize checks.
CREATE TABLE batch_pieces (
    batch_id     TEXT NOT NULL,
    first_shard  BIGINT NOT NULL,
    last_shard   BIGINT NOT NULL,
    chunks       BIGINT NOT NULL,
    index_key    TEXT NOT NULL,
    output_key   TEXT NOT NULL,
    output_bytes BIGINT NOT NULL,
    error_key    TEXT NOT NULL,
    error_bytes  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (batch_id, first_shard)
);
