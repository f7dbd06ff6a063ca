-- Expiring files (OpenAI's expires_after). files.expires_at, from 0001, is
-- set from a client's expires_after or the purpose's retention; the
-- files_expire job deletes each file once it has passed, and finds them
-- through this index.
CREATE INDEX files_expires_at ON files (expires_at) WHERE expires_at IS NOT NULL AND deleted_at IS NULL;
-- An upload's expires_after: its file expires this many seconds after it
-- is made, when the upload completes (0: the purpose's retention).
ALTER TABLE uploads ADD COLUMN file_expires_after BIGINT NOT NULL DEFAULT 0;
-- A batch's output_expires_after: its output and error files expire this
-- many seconds after finalize makes them (0: the purpose's retention).
ALTER TABLE batches ADD COLUMN output_expires_after BIGINT NOT NULL DEFAULT 0;
