-- The details of a batch's usage, as OpenAI's Batch object has them
-- (usage.input_tokens_details.cached_tokens and
-- usage.output_tokens_details.reasoning_tokens): each chunk records what
-- the engine reported for its lines, and the batch sums its chunks, as it
-- sums input_tokens and output_tokens.
ALTER TABLE batch_chunks ADD COLUMN cached_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE batch_chunks ADD COLUMN reasoning_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN cached_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN reasoning_tokens BIGINT NOT NULL DEFAULT 0;
