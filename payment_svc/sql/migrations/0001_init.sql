-- Payment: at most one payment per order, at most one refund per payment.

CREATE TABLE payments (
    order_id       uuid PRIMARY KEY,
    payment_id     uuid NOT NULL UNIQUE,
    -- charged | declined | expired (not charged: the reservation lapsed) | refunded
    status         text NOT NULL CHECK (status IN ('charged', 'declined', 'expired', 'refunded')),
    amount_minor   bigint NOT NULL CHECK (amount_minor >= 0),
    currency       text NOT NULL,
    gateway_ref    text,
    detail         text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE refunds (
    order_id     uuid PRIMARY KEY REFERENCES payments (order_id),
    refund_id    uuid NOT NULL UNIQUE,
    amount_minor bigint NOT NULL CHECK (amount_minor >= 0),
    reason       text NOT NULL,
    gateway_ref  text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- The simulated payment gateway (the outside world). It writes through its own
-- connection, outside the service's transaction, like a real remote API would: an
-- idempotency key is what keeps a retried charge from charging twice.
CREATE TABLE gateway_ledger (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('charge', 'refund')),
    order_id        uuid NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    amount_minor    bigint NOT NULL,
    currency        text NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('approved', 'declined')),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gateway_ledger_order ON gateway_ledger (order_id);

-- Fault injection for the simulated gateway: `saga fault payment-gateway down --for 30s`.
CREATE TABLE gateway_faults (
    target     text PRIMARY KEY,
    mode       text NOT NULL CHECK (mode IN ('down', 'slow')),
    latency_ms integer NOT NULL DEFAULT 0,
    until      timestamptz NOT NULL
);
