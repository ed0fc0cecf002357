-- Named queries of the shared runtime (inbox, outbox, parked messages).

-- name: inbox_claim_many
INSERT INTO inbox (event_id)
SELECT unnest(%(event_ids)s::uuid[])
ON CONFLICT DO NOTHING
RETURNING event_id

-- name: inbox_claim_one
INSERT INTO inbox (event_id) VALUES (%(event_id)s)
ON CONFLICT DO NOTHING
RETURNING event_id

-- name: outbox_copy
COPY outbox (topic, key, value, headers, order_id, event_id, event_type) FROM STDIN

-- name: outbox_unsent
SELECT id, topic, key, value, headers
FROM outbox
WHERE sent_at IS NULL
ORDER BY id
LIMIT %(limit)s

-- name: outbox_mark_sent
UPDATE outbox SET sent_at = now() WHERE id = ANY(%(ids)s)

-- name: outbox_prune
DELETE FROM outbox
WHERE id IN (
    SELECT id FROM outbox
    WHERE sent_at < now() - make_interval(secs => %(retention_s)s)
    LIMIT 10000
)

-- name: parked_blocking_orders
SELECT DISTINCT order_id FROM parked
WHERE blocks AND order_id = ANY(%(order_ids)s::uuid[])

-- name: parked_insert
INSERT INTO parked (
    event_id, order_id, event_type, state, blocks, source_topic, source_partition,
    source_offset, key, value, headers, attempts, error_kind, last_error,
    first_failed_at, last_failed_at, next_attempt_at
) VALUES (
    %(event_id)s, %(order_id)s, %(event_type)s, %(state)s, %(blocks)s, %(source_topic)s,
    %(source_partition)s, %(source_offset)s, %(key)s, %(value)s, %(headers)s, %(attempts)s,
    %(error_kind)s, %(last_error)s, %(first_failed_at)s, %(last_failed_at)s,
    %(next_attempt_at)s
)
ON CONFLICT (event_id) DO NOTHING
RETURNING seq

-- name: parked_due
-- The head of each order's queue, when due; later messages of the order wait behind it.
SELECT p.* FROM parked p
WHERE p.state = 'retrying' AND p.next_attempt_at <= now()
  AND NOT EXISTS (
      SELECT 1 FROM parked q
      WHERE q.order_id = p.order_id AND q.seq < p.seq AND q.blocks
  )
ORDER BY p.seq
LIMIT %(limit)s
FOR UPDATE OF p SKIP LOCKED

-- name: parked_delete
DELETE FROM parked WHERE seq = %(seq)s

-- name: parked_failed_again
UPDATE parked SET
    attempts = attempts + 1,
    state = %(state)s,
    error_kind = %(error_kind)s,
    last_error = %(last_error)s,
    first_failed_at = coalesce(first_failed_at, now()),
    last_failed_at = now(),
    next_attempt_at = now() + make_interval(secs => %(delay_s)s)
WHERE seq = %(seq)s

-- name: parked_next_due_in
SELECT extract(epoch FROM min(next_attempt_at) - now()) FROM parked WHERE state = 'retrying'

-- name: dlq_list
SELECT seq, event_id, order_id, event_type, state, blocks, source_topic, source_partition,
       source_offset, attempts, error_kind, last_error, first_failed_at, last_failed_at,
       next_attempt_at, redriven_count
FROM parked
WHERE state = 'dead' OR %(include_retrying)s
ORDER BY seq

-- name: dlq_get
SELECT * FROM parked WHERE seq = %(seq)s

-- name: dlq_redrive
-- A fresh budget; only a dead entry moves, so a second redrive of the same entry is a no-op.
UPDATE parked SET
    state = 'retrying', attempts = 0, first_failed_at = NULL, next_attempt_at = now(),
    redriven_count = redriven_count + 1
WHERE state = 'dead' AND (seq = %(seq)s OR %(all)s)
RETURNING seq, event_id, order_id, event_type

-- name: parked_for_order
SELECT seq, event_id, event_type, state, attempts, error_kind, last_error, first_failed_at,
       last_failed_at, next_attempt_at, parked_at
FROM parked WHERE order_id = %(order_id)s ORDER BY seq

-- name: inbox_prune
DELETE FROM inbox
WHERE event_id IN (
    SELECT event_id FROM inbox
    WHERE consumed_at < now() - make_interval(secs => %(retention_s)s)
    LIMIT 10000
)
