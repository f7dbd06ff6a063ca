-- Curation: the task list's text search, for a text in a thousand tasks or
-- more, reads its page from the FTS5 table (migration 15) in the table's
-- own order, newest first, and stops at a page, rather than finding every
-- task that holds the text and sorting them by ID: a three-character text
-- is in thousands of tasks of a million. The table's rows are in the
-- order they were written (its rowid), which is the tasks' ID order as
-- long as each task written has the greatest ID so far; kiln makes a
-- task's ID in the transaction that writes it, and SQLite has one writer,
-- so nearly all do. A task that does not (a clock set back, an ID
-- changed) is listed in curation_tasks_fts_unordered, and the search reads
-- those apart: the rows of the FTS5 table less those listed are in ID
-- order. Postgres's trigram index has no order to keep.

-- dialect: sqlite
CREATE TABLE curation_tasks_fts_unordered (task_id TEXT PRIMARY KEY) WITHOUT ROWID;
-- The rows written so far out of order: those with a smaller ID than a row
-- written before them. One read of the table, not a rebuild of its index
-- (about 2 s of CPU at 1,000,000 tasks).
INSERT INTO curation_tasks_fts_unordered (task_id)
SELECT DISTINCT task_id FROM (SELECT task_id, MAX(task_id) OVER (ORDER BY rowid ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
    FROM curation_tasks_fts) WHERE task_id < before;
DROP TRIGGER curation_tasks_fts_insert;
DROP TRIGGER curation_tasks_fts_delete;
DROP TRIGGER curation_tasks_fts_update;
-- A task is out of order when a task with a greater ID is there already.
CREATE TRIGGER curation_tasks_fts_insert AFTER INSERT ON curation_tasks BEGIN
    INSERT INTO curation_tasks_fts (task_id, search_text) VALUES (new.id, new.search_text); INSERT OR IGNORE INTO curation_tasks_fts_unordered (task_id)
    SELECT new.id WHERE EXISTS (SELECT 1 FROM curation_tasks WHERE id > new.id); END;
CREATE TRIGGER curation_tasks_fts_delete AFTER DELETE ON curation_tasks BEGIN
    DELETE FROM curation_tasks_fts WHERE task_id = old.id; DELETE FROM curation_tasks_fts_unordered WHERE task_id = old.id; END;
-- A changed ID keeps its row, and so its place: out of order.
CREATE TRIGGER curation_tasks_fts_update AFTER UPDATE OF id, search_text ON curation_tasks BEGIN
    UPDATE curation_tasks_fts SET task_id = new.id, search_text = new.search_text WHERE task_id = old.id; DELETE FROM curation_tasks_fts_unordered
    WHERE task_id = old.id AND new.id <> old.id; INSERT OR IGNORE INTO curation_tasks_fts_unordered (task_id) SELECT new.id WHERE new.id <> old.id; END;
