-- Curation: the SQLite search index (migration 15) merges its segments less
-- often. FTS5 writes each transaction's entries as a new segment and, by
-- default, merges four segments of a level into one of the next, so every
-- entry is rewritten once per level; an import spent a third of its one
-- writer's time there (1.55 s of 5.3 s of CPU for 100,000 tasks). Sixteen
-- segments a level rewrite each entry half as often: the import of 100,000
-- tasks went from about 14,000 to 19,000 tasks/s, and the task list's text
-- searches at 1,000,000 tasks stayed under 16 ms at the 95th percentile
-- (BenchmarkTaskList), against 13 ms. The setting is kept in the table's
-- own configuration.

-- dialect: sqlite
INSERT INTO curation_tasks_fts (curation_tasks_fts, rank) VALUES ('automerge', 16);
