-- Queries of `saga dlq` beyond the runtime's own dlq_* queries (eventing/sql/queries.sql).

-- name: dlq_seq_issued
-- The highest entry number ever handed out: an id at or below it existed once (it was
-- processed and removed after a redrive); an id above it never existed.
SELECT pg_sequence_last_value(pg_get_serial_sequence('parked', 'seq')::regclass)

-- name: dlq_held_behind
-- Later messages of the same order this service keeps waiting behind the entry.
SELECT count(*) FROM parked WHERE order_id = %(order_id)s AND seq > %(seq)s
