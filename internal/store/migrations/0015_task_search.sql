-- Curation: an index for the task list's text search. The search (q) finds
-- a substring of a task's search_text, the lower-cased text of its prompt,
-- as LIKE '%q%' does; these indexes serve it without reading every task.

-- dialect: postgres
-- A trigram GIN index (pg_trgm, in Postgres's contrib) serves LIKE for
-- patterns with three characters or more in a row; shorter ones read the
-- tasks as before.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX curation_tasks_search ON curation_tasks USING gin (search_text gin_trgm_ops);

-- dialect: sqlite
-- An FTS5 table with the trigram tokenizer holds each task's search_text
-- beside its ID, kept in step with curation_tasks by triggers; a query
-- narrows the tasks by a MATCH on it, and LIKE on the task confirms. Its
-- rows are keyed by task_id, not by curation_tasks' rowid, which VACUUM may
-- renumber.
CREATE VIRTUAL TABLE curation_tasks_fts USING fts5(task_id UNINDEXED, search_text, tokenize = 'trigram');
INSERT INTO curation_tasks_fts (task_id, search_text) SELECT id, search_text FROM curation_tasks;
CREATE TRIGGER curation_tasks_fts_insert AFTER INSERT ON curation_tasks BEGIN INSERT INTO curation_tasks_fts (task_id, search_text) VALUES (new.id, new.search_text); END;
CREATE TRIGGER curation_tasks_fts_delete AFTER DELETE ON curation_tasks BEGIN DELETE FROM curation_tasks_fts WHERE task_id = old.id; END;
CREATE TRIGGER curation_tasks_fts_update AFTER UPDATE OF id, search_text ON curation_tasks BEGIN UPDATE curation_tasks_fts SET task_id = new.id, search_text = new.search_text WHERE task_id = old.id; END;
