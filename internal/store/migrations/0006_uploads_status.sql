-- Uploads in progress are counted on every create (the cap on pending
-- uploads) and on every scrape of /metrics; they are few among all the
-- uploads ever made.
CREATE INDEX uploads_status ON uploads (status);
