-- Named queries of the shared runtime (inbox, outbox, parked messages).

-- name: inbox_claim_many
-- Each event under its own occurred_at: both copies of one event meet in one partition.
INSERT INTO inbox (event_id, occurred_at)
SELECT * FROM unnest(%(event_ids)s::uuid[], %(occurred_ats)s::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING event_id

-- name: inbox_claim_many_with_legacy
-- While the inbox from before partitioning still holds recent ids, they count too.
INSERT INTO inbox (event_id, occurred_at)
SELECT u.event_id, u.occurred_at
FROM unnest(%(event_ids)s::uuid[], %(occurred_ats)s::timestamptz[]) AS u (event_id, occurred_at)
WHERE NOT EXISTS (SELECT 1 FROM inbox_legacy l WHERE l.event_id = u.event_id)
ON CONFLICT DO NOTHING
RETURNING event_id

-- name: inbox_claim_unblocked
-- A batch's first two questions in one statement: which orders wait behind a parked message
-- (blocked = true: their events are parked, not claimed), and which of the other events
-- are new (claimed now).
WITH blocked AS (
    SELECT DISTINCT order_id FROM parked
    WHERE blocks AND order_id = ANY(%(order_ids)s::uuid[])
), claimed AS (
    INSERT INTO inbox (event_id, occurred_at)
    SELECT u.event_id, u.occurred_at
    FROM unnest(
        %(event_ids)s::uuid[], %(occurred_ats)s::timestamptz[], %(event_orders)s::uuid[]
    ) AS u (event_id, occurred_at, order_id)
    WHERE NOT EXISTS (SELECT 1 FROM blocked b WHERE b.order_id = u.order_id)
    ON CONFLICT DO NOTHING
    RETURNING event_id
)
SELECT true AS blocked, order_id AS id FROM blocked
UNION ALL
SELECT false, event_id FROM claimed

-- name: inbox_legacy_present
SELECT to_regclass('inbox_legacy') IS NOT NULL

-- name: inbox_legacy_expired
-- The pre-partitioning inbox can go once its newest entry is past the inbox retention.
SELECT coalesce(max(consumed_at), '-infinity') < now() - make_interval(secs => %(retention_s)s)
FROM inbox_legacy

-- name: inbox_legacy_drop
DROP TABLE IF EXISTS inbox_legacy

-- name: outbox_copy
COPY outbox (topic, key, value, headers, order_id, event_id, event_type) FROM STDIN

-- name: outbox_unsent
-- tableoid: the partition each row is in, so marking it sent touches that partition only.
SELECT id, topic, key, value, headers, tableoid::regclass::text
FROM outbox
WHERE sent_at IS NULL
ORDER BY id
LIMIT %(limit)s

-- name: outbox_unsent_except
-- outbox_unsent without the rows published already and not yet marked sent: the relay marks
-- several rounds' rows in one statement (eventing/relay.py).
SELECT id, topic, key, value, headers, tableoid::regclass::text
FROM outbox
WHERE sent_at IS NULL AND id <> ALL(%(published)s::bigint[])
ORDER BY id
LIMIT %(limit)s

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

-- name: metrics_outbox
SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
FROM outbox WHERE sent_at IS NULL

-- name: metrics_parked
SELECT count(*) FILTER (WHERE state = 'retrying'), count(*) FILTER (WHERE state = 'dead')
FROM parked
