-- The simulated gateway answers a batch in one statement, as a remote API answers in one
-- round trip (payment_svc/gateway.py): it was four statements and a transaction of its own.
-- Each statement of a plpgsql function reads a fresh snapshot, so the check for a key
-- already answered runs after the key's lock is held, as it did as separate statements.
CREATE FUNCTION gateway_call(kinds text[], order_ids uuid[], keys text[], amounts bigint[],
                             currencies text[], outcomes text[])
RETURNS TABLE (idempotency_key text, id bigint, outcome text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    fault record;
BEGIN
    SELECT f.mode, f.latency_ms, f.until INTO fault FROM gateway_faults f
    WHERE f.target = 'payment-gateway' AND f.until > now();
    IF FOUND AND fault.mode = 'down' THEN
        RAISE EXCEPTION 'payment gateway unavailable (fault injected until %)',
            to_char(fault.until, 'HH24:MI:SS') USING ERRCODE = 'SG001';
    ELSIF FOUND THEN
        PERFORM pg_sleep(fault.latency_ms / 1000.0);
    END IF;
    -- One call per key at a time, as a gateway's idempotency demands (sorted: no deadlocks).
    PERFORM count(pg_advisory_xact_lock(hashtextextended(k, 7)))
    FROM (SELECT k FROM unnest(keys) AS k ORDER BY k) AS sorted;
    INSERT INTO gateway_ledger (kind, order_id, idempotency_key, amount_minor, currency, outcome)
    SELECT u.kind, u.order_id, u.key, u.amount, u.currency, u.outcome
    FROM unnest(kinds, order_ids, keys, amounts, currencies, outcomes)
         AS u (kind, order_id, key, amount, currency, outcome)
    WHERE NOT EXISTS (SELECT 1 FROM gateway_ledger g WHERE g.idempotency_key = u.key);
    RETURN QUERY SELECT g.idempotency_key, g.id, g.outcome FROM gateway_ledger g
    WHERE g.idempotency_key = ANY(keys);
END
$$;
