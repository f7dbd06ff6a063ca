-- A batch's trace context: the W3C traceparent of the span that created
-- it, or '' where tracing was off. The jobs and agents that work on the
-- batch later start their spans under it, so that a batch is one trace.
ALTER TABLE batches ADD COLUMN trace_context TEXT NOT NULL DEFAULT '';
