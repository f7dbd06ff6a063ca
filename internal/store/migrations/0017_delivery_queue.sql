-- Webhook deliveries are their own queue: kiln's sender claims the pending
-- deliveries that are due, many at once, under a lease, instead of one
-- River job per delivery. next_attempt_ms is when a pending delivery is
-- next due (Unix milliseconds); lease_until_ms is how long a sender holds
-- it (a sender that dies lets it go when the lease ends); a round of
-- attempts (the first delivery, or a redelivery) started at
-- round_started_ms and has made round_attempts attempts, which the retry
-- policy bounds. trace_context continues the event's trace in the
-- delivery's span.
ALTER TABLE webhook_deliveries ADD COLUMN next_attempt_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhook_deliveries ADD COLUMN lease_until_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhook_deliveries ADD COLUMN round_started_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhook_deliveries ADD COLUMN round_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhook_deliveries ADD COLUMN trace_context TEXT NOT NULL DEFAULT '';
-- Deliveries pending before this migration are due at once, in a round
-- that started when they were made.
UPDATE webhook_deliveries SET round_started_ms = updated_at * 1000, round_attempts = attempts WHERE status = 'pending';
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_ms) WHERE status = 'pending';
