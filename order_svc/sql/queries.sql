-- name: prices_for
SELECT sku, price_minor, currency FROM prices WHERE sku = ANY(%(skus)s)

-- name: set_price
INSERT INTO prices (sku, price_minor, currency) VALUES (%(sku)s, %(price_minor)s, %(currency)s)
ON CONFLICT (sku) DO UPDATE SET price_minor = excluded.price_minor,
    currency = excluded.currency, updated_at = now()

-- name: order_by_idempotency_key
SELECT order_id, status, request_hash FROM orders WHERE idempotency_key = %(key)s

-- name: insert_order
INSERT INTO orders (order_id, status, origin, customer_id, items, total_minor, currency,
                    card_token, ship_to, idempotency_key, request_hash)
VALUES (%(order_id)s, 'PENDING', %(origin)s, %(customer_id)s, %(items)s, %(total_minor)s,
        %(currency)s, %(card_token)s, %(ship_to)s, %(idempotency_key)s, %(request_hash)s)
ON CONFLICT DO NOTHING
RETURNING order_id

-- name: insert_stub_order
INSERT INTO orders (order_id, status, origin) VALUES (%(order_id)s, 'PENDING', 'event')
ON CONFLICT (order_id) DO NOTHING

-- name: fill_order_details
UPDATE orders SET customer_id = %(customer_id)s, items = %(items)s,
    total_minor = %(total_minor)s, currency = %(currency)s, card_token = %(card_token)s,
    ship_to = %(ship_to)s, updated_at = now()
WHERE order_id = %(order_id)s AND customer_id IS NULL

-- name: lock_order
SELECT order_id, status, cancel_reason FROM orders WHERE order_id = %(order_id)s FOR UPDATE

-- name: insert_step
INSERT INTO saga_steps (event_id, order_id, event_type, producer, occurred_at, causation_id,
                        compensation, payload)
VALUES (%(event_id)s, %(order_id)s, %(event_type)s, %(producer)s, %(occurred_at)s,
        %(causation_id)s, %(compensation)s, %(payload)s)
ON CONFLICT (event_id) DO NOTHING

-- name: step_facts
SELECT event_type, payload->>'reason' AS reason FROM saga_steps WHERE order_id = %(order_id)s

-- name: set_status
UPDATE orders SET status = %(status)s, cancel_reason = %(cancel_reason)s, updated_at = now(),
    terminal_at = CASE WHEN %(terminal)s THEN coalesce(terminal_at, now()) END
WHERE order_id = %(order_id)s

-- name: get_order
SELECT order_id, status, cancel_reason, origin, customer_id, items, total_minor, currency,
       ship_to, created_at, updated_at, terminal_at
FROM orders WHERE order_id = %(order_id)s

-- name: steps_of
SELECT event_id, event_type, producer, occurred_at, recorded_at, causation_id, compensation,
       payload
FROM saga_steps WHERE order_id = %(order_id)s ORDER BY occurred_at, recorded_at

-- name: orders_not_terminal
SELECT order_id, status, cancel_reason, created_at, updated_at
FROM orders
WHERE status IN ('PENDING', 'CANCELLING') AND updated_at <= now() - make_interval(secs => %(older_than_s)s)
ORDER BY created_at
LIMIT %(limit)s

-- name: count_in_flight
SELECT count(*) FROM orders WHERE status IN ('PENDING', 'CANCELLING')
