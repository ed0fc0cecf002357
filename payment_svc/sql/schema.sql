-- Payment: at most one payment per order, at most one refund per payment.

CREATE TABLE payments (
    order_id       uuid PRIMARY KEY,
    payment_id     uuid NOT NULL UNIQUE,
    -- charged -> settled (the shipment is scheduled) | refunded; declined | expired (not
    -- charged: the reservation lapsed)
    status         text NOT NULL,
    amount_minor   bigint NOT NULL CHECK (amount_minor >= 0),
    -- NULL: nothing was ever to be charged (a reservation lapsed before payment read it)
    currency       text,
    gateway_ref    text,
    detail         text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payments_status_check
        CHECK (status IN ('charged', 'settled', 'declined', 'expired', 'refunded'))
);
CREATE INDEX payments_settled ON payments (updated_at)
    WHERE status IN ('settled', 'declined', 'expired', 'refunded');

CREATE TABLE refunds (
    order_id     uuid PRIMARY KEY,
    refund_id    uuid NOT NULL UNIQUE,
    amount_minor bigint NOT NULL CHECK (amount_minor >= 0),
    reason       text NOT NULL,
    gateway_ref  text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Settled payments and their refunds, SAGA_ARCHIVE_AFTER_S after their last change
-- (eventing/archive.py); partitions are made and dropped by the runtime's maintenance.
CREATE TABLE payments_archive (
    LIKE payments INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    archived_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (archived_at);
CREATE INDEX payments_archive_order ON payments_archive (order_id);

CREATE TABLE refunds_archive (
    LIKE refunds INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    archived_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (archived_at);
CREATE INDEX refunds_archive_order ON refunds_archive (order_id);

-- The simulated payment gateway (the outside world). It writes through its own
-- connection, outside the service's transaction, like a real remote API would: an
-- idempotency key is what keeps a retried charge from charging twice. It keeps its ledger
-- by time, longer than payment keeps its archive; a key is unique under an advisory lock
-- (payment_svc/gateway.py), as a unique index of a partitioned table must include the time.
CREATE TABLE gateway_ledger (
    id              bigserial NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('charge', 'refund')),
    order_id        uuid NOT NULL,
    idempotency_key text NOT NULL,
    amount_minor    bigint NOT NULL,
    currency        text NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('approved', 'declined')),
    created_at      timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (created_at);
CREATE INDEX gateway_ledger_order ON gateway_ledger (order_id);
CREATE INDEX gateway_ledger_key ON gateway_ledger (idempotency_key);

-- Fault injection for the simulated gateway: `saga fault payment-gateway down --for 30s`.
CREATE TABLE gateway_faults (
    target     text PRIMARY KEY,
    mode       text NOT NULL CHECK (mode IN ('down', 'slow')),
    latency_ms integer NOT NULL DEFAULT 0,
    until      timestamptz NOT NULL
);

-- The gateway's one call: fault, locks, ledger entries and answers in one statement.
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
