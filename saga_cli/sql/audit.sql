-- Set-based reads of `saga audit`, one pass per database. Every query takes %(ids)s: NULL
-- for every order, or an array of order ids when re-checking a few suspects. Order ids come
-- back as text: hashing 100k strings in Python is several times cheaper than 100k UUIDs.
-- Records are read from the active tables and their archives alike; each row says when it
-- was archived (NULL: active) so that saga_cli/audit.py can leave out the orders at the
-- edge of the archive's retention, whose records elsewhere may already be dropped.

-- name: audit_orders
SELECT order_id::text, status, cancel_reason, total_minor, archived_at
FROM orders_all
WHERE %(ids)s::uuid[] IS NULL OR order_id = ANY(%(ids)s::uuid[])

-- name: audit_idle_orders
-- Non-terminal orders and the seconds since their last progress: a status change or a step.
SELECT o.order_id::text, o.status,
       extract(epoch FROM now() - greatest(o.updated_at, max(s.recorded_at)))::float8 AS idle_s
FROM orders o
LEFT JOIN saga_steps s ON s.order_id = o.order_id
WHERE o.status IN ('PENDING', 'CANCELLING')
  AND (%(ids)s::uuid[] IS NULL OR o.order_id = ANY(%(ids)s::uuid[]))
GROUP BY o.order_id, o.status, o.updated_at

-- name: audit_steps
SELECT order_id::text, event_type, payload->>'reason' AS reason
FROM saga_steps WHERE order_id = ANY(%(ids)s::uuid[])

-- name: audit_skus
-- The stock counters beside what the ledger of adjustments and the reservations say; what
-- committed reservations whose archive partition is gone shipped is in committed_dropped.
WITH every_reservation AS (
    SELECT status, items FROM reservations
    UNION ALL
    SELECT status, items FROM reservations_archive
), lines AS (
    SELECT r.status, li->>'sku' AS sku, (li->>'qty')::int AS qty
    FROM every_reservation r, jsonb_array_elements(r.items) AS li
    WHERE r.status IN ('reserved', 'paid', 'expiring', 'committed')
), by_sku AS (
    SELECT sku,
           sum(qty) FILTER (WHERE status <> 'committed') AS held,
           sum(qty) FILTER (WHERE status = 'committed') AS committed
    FROM lines GROUP BY sku
), adjusted AS (
    SELECT sku, sum(delta) AS total FROM stock_adjustments GROUP BY sku
)
SELECT coalesce(s.sku, b.sku) AS sku,
       coalesce(s.on_hand, 0) AS on_hand, coalesce(s.reserved, 0) AS reserved,
       coalesce(s.shipped, 0) AS shipped, coalesce(s.received, 0) AS received,
       coalesce(a.total, 0)::bigint AS adjustments,
       coalesce(b.held, 0)::bigint AS held,
       (coalesce(b.committed, 0) + coalesce(d.qty, 0))::bigint AS committed
FROM stock s
LEFT JOIN adjusted a ON a.sku = s.sku
LEFT JOIN committed_dropped d ON d.sku = s.sku
FULL JOIN by_sku b ON b.sku = s.sku
ORDER BY 1

-- name: audit_reservations
SELECT order_id::text, status, NULL::timestamptz AS archived_at FROM reservations
WHERE %(ids)s::uuid[] IS NULL OR order_id = ANY(%(ids)s::uuid[])
UNION ALL
SELECT order_id::text, status, archived_at FROM reservations_archive
WHERE %(ids)s::uuid[] IS NULL OR order_id = ANY(%(ids)s::uuid[])

-- name: audit_money
-- The gateway's ledger (the outside world's truth) per order, beside payment's own record.
WITH ledger AS (
    SELECT order_id,
           count(*) FILTER (WHERE kind = 'charge' AND outcome = 'approved') AS charges,
           coalesce(sum(amount_minor) FILTER (WHERE kind = 'charge' AND outcome = 'approved'), 0)
               AS charged,
           count(*) FILTER (WHERE kind = 'refund' AND outcome = 'approved') AS refunds,
           coalesce(sum(amount_minor) FILTER (WHERE kind = 'refund' AND outcome = 'approved'), 0)
               AS refunded,
           max(created_at) AS last_at
    FROM gateway_ledger
    WHERE %(ids)s::uuid[] IS NULL OR order_id = ANY(%(ids)s::uuid[])
    GROUP BY order_id
), payment AS (
    SELECT order_id, status, NULL::timestamptz AS archived_at FROM payments
    WHERE %(ids)s::uuid[] IS NULL OR order_id = ANY(%(ids)s::uuid[])
    UNION ALL
    SELECT order_id, status, archived_at FROM payments_archive
    WHERE %(ids)s::uuid[] IS NULL OR order_id = ANY(%(ids)s::uuid[])
)
SELECT coalesce(l.order_id, p.order_id)::text AS order_id, p.status AS payment_status,
       coalesce(l.charges, 0) AS charges, coalesce(l.charged, 0)::bigint AS charged,
       coalesce(l.refunds, 0) AS refunds, coalesce(l.refunded, 0)::bigint AS refunded,
       -- The gateway keeps its ledger a partition longer than payment its archive: an entry
       -- whose payment is gone is as old as its own time says.
       CASE WHEN p.order_id IS NULL THEN l.last_at ELSE p.archived_at END AS archived_at
FROM ledger l
FULL JOIN payment p ON p.order_id = l.order_id

-- name: audit_shipments
SELECT order_id::text, status, NULL::timestamptz AS archived_at FROM shipments
WHERE %(ids)s::uuid[] IS NULL OR order_id = ANY(%(ids)s::uuid[])
UNION ALL
SELECT order_id::text, status, archived_at FROM shipments_archive
WHERE %(ids)s::uuid[] IS NULL OR order_id = ANY(%(ids)s::uuid[])

-- name: audit_parked
-- Runtime table, in every service database.
SELECT seq, order_id::text, event_type, state, attempts, error_kind, last_error,
       extract(epoch FROM now() - next_attempt_at)::float8 AS overdue_s
FROM parked
WHERE order_id IS NOT NULL AND (%(ids)s::uuid[] IS NULL OR order_id = ANY(%(ids)s::uuid[]))
ORDER BY seq

-- name: audit_unsent
-- Runtime table, in every service database: what a relay has not published yet.
SELECT order_id::text, count(*) AS n, extract(epoch FROM now() - min(created_at))::float8 AS age_s
FROM outbox
WHERE sent_at IS NULL AND order_id IS NOT NULL
  AND (%(ids)s::uuid[] IS NULL OR order_id = ANY(%(ids)s::uuid[]))
GROUP BY order_id

-- name: audit_repeated_steps
-- One fact of each kind in a saga record (order_svc.domain.fact_kind: the event type, but a
-- reservation's lapse is a kind of its own): a kind recorded twice is two facts of one saga.
SELECT order_id::text, kind, count(*) AS n
FROM (
    SELECT order_id,
           CASE WHEN event_type = 'InventoryReleased' AND payload->>'reason' = 'expired'
                THEN 'InventoryReleased(expired)' ELSE event_type END AS kind
    FROM saga_steps
    WHERE %(ids)s::uuid[] IS NULL OR order_id = ANY(%(ids)s::uuid[])
) steps
GROUP BY order_id, kind
HAVING count(*) > 1
