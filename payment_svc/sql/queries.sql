-- name: gateway_set_fault
INSERT INTO gateway_faults (target, mode, latency_ms, until)
VALUES ('payment-gateway', %(mode)s, %(latency_ms)s, now() + make_interval(secs => %(for_s)s))
ON CONFLICT (target) DO UPDATE SET mode = excluded.mode, latency_ms = excluded.latency_ms,
    until = excluded.until

-- name: gateway_clear_fault
DELETE FROM gateway_faults WHERE target = 'payment-gateway'

-- name: lock_payments
SELECT order_id, payment_id, status, amount_minor, currency, gateway_ref
FROM payments WHERE order_id = ANY(%(order_ids)s::uuid[])
ORDER BY order_id
FOR UPDATE

-- name: copy_payments
COPY payments (order_id, payment_id, status, amount_minor, currency, gateway_ref, detail)
FROM STDIN

-- name: copy_refunds
COPY refunds (order_id, refund_id, amount_minor, reason, gateway_ref) FROM STDIN

-- name: mark_refunded_many
UPDATE payments SET status = 'refunded', updated_at = now()
WHERE order_id = ANY(%(order_ids)s::uuid[])

-- name: mark_settled_many
UPDATE payments SET status = 'settled', updated_at = now()
WHERE order_id = ANY(%(order_ids)s::uuid[]) AND status = 'charged'

-- name: gateway_charge_answered
-- The gateway's answer to the order's charge, if it gave one (by the charge's idempotency key).
SELECT outcome FROM gateway_ledger
WHERE order_id = %(order_id)s AND idempotency_key = 'charge:' || %(order_id)s::text
LIMIT 1

-- name: gateway_call
-- The simulated gateway's one call (the function in schema.sql): (idempotency_key, id,
-- outcome) of each key, recorded now or before; SQLSTATE SG001 while a fault holds it down.
SELECT idempotency_key, id, outcome FROM gateway_call(
    %(kinds)s::text[], %(order_ids)s::uuid[], %(keys)s::text[], %(amounts)s::bigint[],
    %(currencies)s::text[], %(outcomes)s::text[])
