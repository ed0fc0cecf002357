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
    terminal_at     timestamptz
);
CREATE INDEX orders_in_flight ON orders (created_at) WHERE status IN ('PENDING', 'CANCELLING');

-- Every event of the saga this service has seen, its own OrderPlaced included.
CREATE TABLE saga_steps (
    event_id     uuid PRIMARY KEY,
    order_id     uuid NOT NULL REFERENCES orders (order_id),
    event_type   text NOT NULL,
    producer     text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    causation_id uuid,
    compensation boolean NOT NULL DEFAULT false,
    payload      jsonb NOT NULL
);
CREATE INDEX saga_steps_order ON saga_steps (order_id, occurred_at);
CREATE INDEX orders_customer ON orders (customer_id, created_at);
