-- Queries of `saga fault` (the state itself is written by payment_svc.gateway).

-- name: fault_status
-- Remaining time on the database's clock: the gateway simulator compares with it too.
SELECT mode, latency_ms, until, until > now() AS active,
       extract(epoch FROM until - now())::float8 AS remaining_s
FROM gateway_faults WHERE target = 'payment-gateway'
