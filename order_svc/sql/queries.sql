-- name: prices_for
SELECT sku, price_minor, currency FROM prices WHERE sku = ANY(%(skus)s)

-- name: set_price
INSERT INTO prices (sku, price_minor, currency) VALUES (%(sku)s, %(price_minor)s, %(currency)s)
ON CONFLICT (sku) DO UPDATE SET price_minor = excluded.price_minor,
    currency = excluded.currency, updated_at = now()

-- name: insert_order_from_event
-- An order started by an OrderPlaced that another system published (placement uses COPY).
INSERT INTO orders (order_id, status, origin, customer_id, items, total_minor, currency,
                    card_token, ship_to)
VALUES (%(order_id)s, 'PENDING', 'event', %(customer_id)s, %(items)s, %(total_minor)s,
        %(currency)s, %(card_token)s, %(ship_to)s)
ON CONFLICT DO NOTHING
RETURNING order_id

-- name: stub_and_lock_orders
-- An event may overtake the OrderPlaced of an order placed elsewhere: an order not seen yet
-- gets a stub. One statement (a round trip less per batch) creates the stubs, then locks
-- the others (one snapshot: the stubs come back from the INSERT, the rest from FOR UPDATE,
-- in the order they were taken before). An order another transaction inserted after this
-- statement's snapshot is in neither: the caller locks it with lock_orders.
WITH stub AS (
    INSERT INTO orders (order_id, status, origin)
    SELECT unnest(%(order_ids)s::uuid[]), 'PENDING', 'event'
    ON CONFLICT (order_id) DO NOTHING
    RETURNING order_id, status, cancel_reason, seen, payment_failure, expired, created_at
), existing AS (
    SELECT order_id, status, cancel_reason, seen, payment_failure, expired, created_at
    FROM orders
    WHERE order_id = ANY(%(order_ids)s::uuid[])
    ORDER BY order_id
    FOR UPDATE
)
SELECT * FROM stub UNION ALL SELECT * FROM existing

-- name: fill_order_details
UPDATE orders SET customer_id = %(customer_id)s, items = %(items)s,
    total_minor = %(total_minor)s, currency = %(currency)s, card_token = %(card_token)s,
    ship_to = %(ship_to)s, updated_at = now()
WHERE order_id = %(order_id)s AND customer_id IS NULL

-- name: lock_orders
SELECT order_id, status, cancel_reason, seen, payment_failure, expired, created_at FROM orders
WHERE order_id = ANY(%(order_ids)s::uuid[])
ORDER BY order_id
FOR UPDATE

-- name: known_steps
SELECT event_id FROM saga_steps
WHERE order_id = ANY(%(order_ids)s::uuid[]) AND event_id = ANY(%(event_ids)s::uuid[])

-- name: write_orders
UPDATE orders o SET status = u.status, cancel_reason = u.cancel_reason, seen = u.seen::text[],
    payment_failure = u.payment_failure, expired = u.expired, updated_at = now(),
    terminal_at = CASE WHEN u.status IN ('COMPLETED', 'CANCELLED')
                       THEN coalesce(o.terminal_at, now()) END
FROM unnest(%(order_ids)s::uuid[], %(statuses)s::text[], %(cancel_reasons)s::text[],
            %(seen)s::text[], %(payment_failures)s::text[], %(expired)s::bool[])
     AS u (order_id, status, cancel_reason, seen, payment_failure, expired)
WHERE o.order_id = u.order_id

-- name: get_order
-- Running or archived (orders_all): an order reads the same after it moved.
SELECT order_id, status, cancel_reason, origin, customer_id, items, total_minor, currency,
       ship_to, created_at, updated_at, terminal_at, archived_at
FROM orders_all WHERE order_id = %(order_id)s

-- name: steps_of
SELECT event_id, event_type, producer, occurred_at, recorded_at, causation_id, compensation,
       payload, traceparent
FROM saga_steps WHERE order_id = %(order_id)s ORDER BY occurred_at, recorded_at

-- name: orders_not_terminal
SELECT order_id, status, cancel_reason, created_at, updated_at
FROM orders
WHERE status IN ('PENDING', 'CANCELLING') AND updated_at <= now() - make_interval(secs => %(older_than_s)s)
ORDER BY created_at
LIMIT %(limit)s

-- name: count_in_flight
SELECT count(*) FROM orders WHERE status IN ('PENDING', 'CANCELLING')

-- name: admission_stats
-- What admission control steers by (order_svc/api/adaptive.py): sagas in flight, and the p99
-- and rate of those that ended in the last window (orders_settled covers it).
SELECT (SELECT count(*) FROM orders WHERE status IN ('PENDING', 'CANCELLING')) AS in_flight,
       count(*) AS ended,
       percentile_cont(0.99) WITHIN GROUP (
           ORDER BY extract(epoch FROM terminal_at - created_at)) AS p99_s
FROM orders
WHERE status IN ('COMPLETED', 'CANCELLED')
  AND terminal_at > now() - make_interval(secs => %(window_s)s)

-- name: bench_progress
SELECT count(*) AS placed,
       count(*) FILTER (WHERE status IN ('COMPLETED', 'CANCELLED')) AS terminal
FROM orders_all WHERE customer_id = %(customer_id)s

-- name: bench_latency_ms
SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM terminal_at - created_at)::float8 * 1000) AS pcts,
       max(extract(epoch FROM terminal_at - created_at))::float8 * 1000 AS max_ms,
       min(created_at) AS first_placed, max(created_at) AS last_placed,
       max(terminal_at) AS last_terminal
FROM orders_all WHERE customer_id = %(customer_id)s AND terminal_at IS NOT NULL

-- name: bench_completions_between
SELECT count(*) FROM orders_all
WHERE customer_id = %(customer_id)s AND terminal_at BETWEEN %(start)s AND %(end)s

-- name: bench_outcomes
SELECT status, cancel_reason, count(*) AS n FROM orders_all
WHERE customer_id = %(customer_id)s GROUP BY 1, 2 ORDER BY 3 DESC

-- name: placement_lookup
-- What placing a batch needs to know, in one statement (a round trip less per batch): the
-- prices of its SKUs (kind 'price': key = sku) and the orders already placed under its
-- idempotency keys (kind 'order': key = idempotency_key), running or archived. One
-- statement over both tables: an order the archiver moves meanwhile is seen in one of
-- them, never in neither.
SELECT 'price' AS kind, sku AS key, price_minor, currency,
       NULL::uuid AS order_id, NULL::text AS status, NULL::text AS request_hash
FROM prices WHERE sku = ANY(%(skus)s::text[])
UNION ALL
SELECT 'order', idempotency_key, NULL, NULL, order_id, status, request_hash FROM orders
WHERE idempotency_key = ANY(%(keys)s::text[])
UNION ALL
SELECT 'order', idempotency_key, NULL, NULL, order_id, status, request_hash
FROM orders_archive
WHERE idempotency_key = ANY(%(keys)s::text[])

-- name: copy_steps
COPY saga_steps (event_id, order_id, event_type, producer, occurred_at, causation_id,
                 compensation, payload, traceparent)
FROM STDIN

-- name: copy_orders
COPY orders (order_id, status, origin, customer_id, items, total_minor, currency, card_token,
             ship_to, idempotency_key, request_hash, seen)
FROM STDIN

-- name: order_details
-- An OrderPlaced's content as recorded, to tell a copy of it from a contradiction.
SELECT customer_id, items, total_minor, currency, card_token, ship_to FROM orders
WHERE order_id = %(order_id)s

-- name: step_payloads
SELECT payload FROM saga_steps WHERE order_id = %(order_id)s AND event_type = %(event_type)s
