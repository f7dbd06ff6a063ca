-- Claims: ShardClaim orders the batches of a model with shards to claim
-- (a few rows), then takes the first shard of the batch that goes first
-- from an index in the order in which it takes a batch's shards, instead
-- of sorting every waiting shard of the model on each claim, which grew
-- with the shards waiting (about 180 ms a claim at 20,000 on Postgres).
-- The running shards have an index of their own: ShardClaim counts them
-- per project and takes over those whose lease ran out, and they are few
-- beside the done shards that the table keeps.
CREATE INDEX batch_shards_pending ON batch_shards (batch_id, priority DESC, ready_at, idx) WHERE status = 'pending';
CREATE INDEX batch_shards_running ON batch_shards (batch_id, lease_expires_at) WHERE status = 'running';
