-- name: set_reservation_status
UPDATE reservations SET status = %(status)s, release_reason = coalesce(%(reason)s, release_reason),
       updated_at = now()
WHERE reservation_id = %(reservation_id)s

-- name: lapsed_reservations
SELECT reservation_id, order_id, status, items, expires_at, trace
FROM reservations
WHERE status = 'reserved' AND expires_at <= now()
ORDER BY expires_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED

-- name: upsert_stock
INSERT INTO stock (sku, on_hand, received) VALUES (%(sku)s, %(qty)s, %(qty)s)
ON CONFLICT (sku) DO NOTHING
RETURNING sku

-- name: stock_row
SELECT sku, on_hand, reserved, shipped, received FROM stock WHERE sku = %(sku)s FOR UPDATE

-- name: set_on_hand
UPDATE stock SET on_hand = %(qty)s, received = received + %(delta)s, updated_at = now()
WHERE sku = %(sku)s

-- name: insert_adjustment
INSERT INTO stock_adjustments (sku, delta, reason) VALUES (%(sku)s, %(delta)s, %(reason)s)

-- name: stock_levels
SELECT sku, on_hand, reserved, on_hand - reserved AS available, shipped, received
FROM stock ORDER BY sku

-- name: lock_reservations
SELECT reservation_id, order_id, status, items, expires_at, release_reason
FROM reservations WHERE order_id = ANY(%(order_ids)s::uuid[])
ORDER BY order_id
FOR UPDATE

-- name: lock_stock_levels
SELECT sku, on_hand, reserved, shipped FROM stock
WHERE sku = ANY(%(skus)s::text[])
ORDER BY sku
FOR UPDATE

-- name: write_stock_levels
UPDATE stock s SET on_hand = u.on_hand, reserved = u.reserved, shipped = u.shipped,
    updated_at = now()
FROM unnest(%(skus)s::text[], %(on_hand)s::int[], %(reserved)s::int[], %(shipped)s::int[])
     AS u (sku, on_hand, reserved, shipped)
WHERE s.sku = u.sku

-- name: copy_reservations
-- A refused request is kept too, as a reservation released at once (release_reason
-- 'rejected'): a second OrderPlaced for the order then finds the decision.
COPY reservations (reservation_id, order_id, status, items, expires_at, trace, release_reason)
FROM STDIN

-- name: write_reservations
UPDATE reservations r SET status = u.status, release_reason = u.release_reason,
    updated_at = now()
FROM unnest(%(reservation_ids)s::uuid[], %(statuses)s::text[], %(release_reasons)s::text[])
     AS u (reservation_id, status, release_reason)
WHERE r.reservation_id = u.reservation_id

-- name: rollup_committed
-- Before an archive partition of reservations is dropped: keep what it committed, per SKU.
INSERT INTO committed_dropped (sku, qty)
SELECT li->>'sku', sum((li->>'qty')::bigint)
FROM {partition} r, jsonb_array_elements(r.items) AS li
WHERE r.status = 'committed'
GROUP BY 1
ON CONFLICT (sku) DO UPDATE SET qty = committed_dropped.qty + excluded.qty
