-- The saga record stays small while running for days:
--   - each order keeps the facts its status is derived from (the event types seen and the
--     reasons that matter), so handling an event no longer reads the saga's steps;
--   - an order that ended moves, SAGA_ARCHIVE_AFTER_S later, to orders_archive (partitioned
--     by archived_at, dropped whole after SAGA_ARCHIVE_RETENTION_S; eventing/archive.py);
--   - saga_steps is partitioned by recorded_at and dropped whole after the archive's
--     retention (eventing/partitions.py), instead of growing for ever.
-- On a database that already holds data: facts are filled in from the steps, the old steps
-- become one partition (FROM MINVALUE to now) that ages out like any other, and ended
-- orders are archived by the running service in chunks, not here.

ALTER TABLE orders
    ADD COLUMN seen text[] NOT NULL DEFAULT '{}',
    ADD COLUMN payment_failure text,
    ADD COLUMN expired boolean NOT NULL DEFAULT false;

UPDATE orders o SET seen = f.seen, payment_failure = f.payment_failure, expired = f.expired
FROM (
    SELECT order_id,
           array_agg(DISTINCT event_type ORDER BY event_type) AS seen,
           (array_agg(payload->>'reason') FILTER (WHERE event_type = 'PaymentFailed'))[1]
               AS payment_failure,
           bool_or(event_type = 'InventoryReleased' AND payload->>'reason' = 'expired')
               AS expired
    FROM saga_steps GROUP BY order_id
) f
WHERE f.order_id = o.order_id;

CREATE INDEX orders_settled ON orders (updated_at) WHERE status IN ('COMPLETED', 'CANCELLED');

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

ALTER TABLE saga_steps RENAME TO saga_steps_legacy;
ALTER TABLE saga_steps_legacy DROP CONSTRAINT saga_steps_order_id_fkey;
ALTER INDEX saga_steps_pkey RENAME TO saga_steps_legacy_pkey;
ALTER INDEX saga_steps_order RENAME TO saga_steps_legacy_order;
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
    PRIMARY KEY (event_id, recorded_at)
) PARTITION BY RANGE (recorded_at);
CREATE INDEX saga_steps_order ON saga_steps (order_id, occurred_at);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM saga_steps_legacy) THEN
        -- The partitioned table's key is (event_id, recorded_at): ATTACH builds it.
        ALTER TABLE saga_steps_legacy DROP CONSTRAINT saga_steps_legacy_pkey;
        EXECUTE format(
            'ALTER TABLE saga_steps ATTACH PARTITION saga_steps_legacy'
            ' FOR VALUES FROM (MINVALUE) TO (%L)', now());
    ELSE
        DROP TABLE saga_steps_legacy;
    END IF;
END $$;
