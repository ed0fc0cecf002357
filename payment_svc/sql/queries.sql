-- name: gateway_active_fault
SELECT mode, latency_ms, until FROM gateway_faults
WHERE target = 'payment-gateway' AND until > now()

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

-- name: gateway_lock_keys
-- One call per key at a time, as a gateway's idempotency demands (sorted: no deadlocks).
SELECT count(pg_advisory_xact_lock(hashtextextended(k, 7)))
FROM (SELECT k FROM unnest(%(keys)s::text[]) AS k ORDER BY k) AS sorted

-- name: gateway_record_many
INSERT INTO gateway_ledger (kind, order_id, idempotency_key, amount_minor, currency, outcome)
SELECT u.kind, u.order_id, u.key, u.amount, u.currency, u.outcome
FROM unnest(%(kinds)s::text[], %(order_ids)s::uuid[], %(keys)s::text[],
            %(amounts)s::bigint[], %(currencies)s::text[], %(outcomes)s::text[])
     AS u (kind, order_id, key, amount, currency, outcome)
WHERE NOT EXISTS (SELECT 1 FROM gateway_ledger g WHERE g.idempotency_key = u.key)

-- name: gateway_lookup_many
SELECT idempotency_key, id, outcome FROM gateway_ledger
WHERE idempotency_key = ANY(%(keys)s::text[])

-- name: mark_settled_many
UPDATE payments SET status = 'settled', updated_at = now()
WHERE order_id = ANY(%(order_ids)s::uuid[]) AND status = 'charged'

-- name: gateway_charge_answered
-- The gateway's answer to the order's charge, if it gave one (by the charge's idempotency key).
SELECT outcome FROM gateway_ledger
WHERE order_id = %(order_id)s AND idempotency_key = 'charge:' || %(order_id)s::text
LIMIT 1
