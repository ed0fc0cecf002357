-- Each step keeps the trace context it was produced in: `saga trace` shows the trace id,
-- and each step's span, to find the saga in a tracing backend.
ALTER TABLE saga_steps ADD COLUMN traceparent text;
