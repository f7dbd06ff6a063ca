-- Uploads: OpenAI's Uploads API. A large file arrives in parts, each an
-- object of its own (sent through kiln, or straight to object storage
-- through a presigned URL), and is assembled server-side on completion.

CREATE TABLE uploads (
    id         TEXT PRIMARY KEY,
    filename   TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    bytes      BIGINT NOT NULL,
    mime_type  TEXT NOT NULL,
    -- pending, completing, completed, cancelled or expired.
    status     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    file_id    TEXT,
    -- The object store's multipart upload that multipart presigned parts
    -- go to, created with the first of them, and the file it becomes.
    multipart_id      TEXT,
    multipart_file_id TEXT
);

CREATE TABLE upload_parts (
    id         TEXT PRIMARY KEY,
    upload_id  TEXT NOT NULL,
    object_key TEXT NOT NULL,
    -- Bytes received through kiln; -1 for a presigned part, whose size is
    -- known only once the client has sent it.
    bytes      BIGINT NOT NULL,
    presigned  BIGINT NOT NULL DEFAULT 0,
    -- A presigned part's number in the multipart upload, from 1; 0 for a
    -- part sent through kiln.
    part_number BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX upload_parts_upload ON upload_parts (upload_id);
