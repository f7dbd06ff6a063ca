-- A file's owner: '' for the API's files, which API keys see, or
-- 'curation' for curation exports, which only curators see.
ALTER TABLE files ADD COLUMN owner TEXT NOT NULL DEFAULT '';
UPDATE files SET owner = 'curation' WHERE id IN (SELECT file_id FROM curation_exports WHERE file_id IS NOT NULL);
