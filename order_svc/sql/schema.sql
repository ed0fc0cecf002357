-- Order: the authoritative saga record (status, every step seen, compensations).

-- The price list checkout totals are computed from.
CREATE TABLE prices (
    sku         text PRIMARY KEY,
    price_minor bigint NOT NULL CHECK (price_minor >= 0),
    currency    text NOT NULL DEFAULT 'USD',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    order_id        uuid PRIMARY KEY,
    status          text NOT NULL CHECK (status IN ('PENDING', 'CANCELLING', 'COMPLETED', 'CANCELLED')),
    cancel_reason   text CHECK (cancel_reason IN (
        'out_of_stock', 'payment_declined', 'fulfillment_failed', 'reservation_expired')),
    -- 'api' (placed here) or 'event' (an OrderPlaced from another system, or an event that
    -- overtook it: details stay NULL until the OrderPlaced arrives).
    origin          text NOT NULL CHECK (origin IN ('api', 'event')),
    customer_id     text,
    items           jsonb,
    total_minor     bigint,
    currency        text,
    card_token      text,
    ship_to         jsonb,
    idempotency_key text UNIQUE,
    request_hash    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    terminal_at     timestamptz,
    -- The facts the status is derived from (order_svc/domain.py), kept with the order so
    -- that handling an event never reads the saga's steps.
    seen            text[] NOT NULL DEFAULT '{}',
    payment_failure text,
    expired         boolean NOT NULL DEFAULT false
);
CREATE INDEX orders_in_flight ON orders (created_at) WHERE status IN ('PENDING', 'CANCELLING');
CREATE INDEX orders_customer ON orders (customer_id, created_at);
-- By when they ended: updated_at is in no index, so a step that keeps the status is a HOT
-- update (no index entries), with room for it on the page (fillfactor).
CREATE INDEX orders_settled ON orders (terminal_at) WHERE status IN ('COMPLETED', 'CANCELLED');
ALTER TABLE orders SET (fillfactor = 80);

-- Ended orders, SAGA_ARCHIVE_AFTER_S after they ended (eventing/archive.py); partitions are
-- made and dropped by the runtime's maintenance (eventing/partitions.py).
CREATE TABLE orders_archive (
    LIKE orders INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    archived_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (archived_at);
CREATE INDEX orders_archive_order ON orders_archive (order_id);
CREATE INDEX orders_archive_key ON orders_archive (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX orders_archive_customer ON orders_archive (customer_id, created_at);

-- Every order, running or archived: what the trace, the API, the audit and the bench read.
CREATE VIEW orders_all AS
    SELECT order_id, status, cancel_reason, origin, customer_id, items, total_minor, currency,
           card_token, ship_to, idempotency_key, request_hash, created_at, updated_at,
           terminal_at, seen, payment_failure, expired, NULL::timestamptz AS archived_at
    FROM orders
    UNION ALL
    SELECT order_id, status, cancel_reason, origin, customer_id, items, total_minor, currency,
           card_token, ship_to, idempotency_key, request_hash, created_at, updated_at,
           terminal_at, seen, payment_failure, expired, archived_at
    FROM orders_archive;

-- Every event of the saga this service has seen, its own OrderPlaced included. Partitioned
-- by recorded_at and dropped whole once past the archive's retention.
CREATE TABLE saga_steps (
    event_id     uuid NOT NULL,
    order_id     uuid NOT NULL,
    event_type   text NOT NULL,
    producer     text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    causation_id uuid,
    compensation boolean NOT NULL DEFAULT false,
    payload      jsonb NOT NULL,
    traceparent  text,
    PRIMARY KEY (event_id, recorded_at)
) PARTITION BY RANGE (recorded_at);
CREATE INDEX saga_steps_order ON saga_steps (order_id, occurred_at);
