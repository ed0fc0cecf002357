-- Settled payments move to payments_archive (their refunds with them to refunds_archive)
-- once idle for SAGA_ARCHIVE_AFTER_S (eventing/archive.py); archives are partitioned by
-- archived_at and dropped whole after SAGA_ARCHIVE_RETENTION_S.
--
-- A charge is settled once the shipment is scheduled: payment now reads ShipmentScheduled
-- and marks the payment 'settled'. Until then a charged payment stays here, since a
-- FulfillmentFailed may still ask for its refund however late it comes.
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('charged', 'settled', 'declined', 'expired', 'refunded'));
-- Payments and refunds move together, in one statement: the reference added nothing.
ALTER TABLE refunds DROP CONSTRAINT refunds_order_id_fkey;
CREATE INDEX payments_settled ON payments (updated_at)
    WHERE status IN ('settled', 'declined', 'expired', 'refunded');

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

-- The simulated gateway keeps its ledger by time too, for longer than payment keeps its
-- archive (a real gateway keeps idempotency keys for a limited time as well). Idempotency
-- by key now holds per key under an advisory lock (payment_svc/gateway.py), since a unique
-- index on a partitioned table must include the partition key.
ALTER TABLE gateway_ledger RENAME TO gateway_ledger_legacy;
ALTER INDEX gateway_ledger_pkey RENAME TO gateway_ledger_legacy_pkey;
ALTER INDEX gateway_ledger_idempotency_key_key RENAME TO gateway_ledger_legacy_key;
ALTER INDEX gateway_ledger_order RENAME TO gateway_ledger_legacy_order;
CREATE TABLE gateway_ledger (
    id              bigint NOT NULL DEFAULT nextval('gateway_ledger_id_seq'),
    kind            text NOT NULL,
    order_id        uuid NOT NULL,
    idempotency_key text NOT NULL,
    amount_minor    bigint NOT NULL,
    currency        text NOT NULL,
    outcome         text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (created_at);
ALTER SEQUENCE gateway_ledger_id_seq OWNED BY gateway_ledger.id;
CREATE INDEX gateway_ledger_order ON gateway_ledger (order_id);
CREATE INDEX gateway_ledger_key ON gateway_ledger (idempotency_key);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM gateway_ledger_legacy) THEN
        ALTER TABLE gateway_ledger_legacy ALTER COLUMN id DROP DEFAULT;
        EXECUTE format(
            'ALTER TABLE gateway_ledger ATTACH PARTITION gateway_ledger_legacy'
            ' FOR VALUES FROM (MINVALUE) TO (%L)', now());
    ELSE
        DROP TABLE gateway_ledger_legacy;
    END IF;
END $$;
-- Added after the old ledger is attached, under the old names: its identical constraints
-- merge instead of being required twice.
ALTER TABLE gateway_ledger
    ADD CONSTRAINT gateway_ledger_kind_check CHECK (kind IN ('charge', 'refund')),
    ADD CONSTRAINT gateway_ledger_outcome_check CHECK (outcome IN ('approved', 'declined'));
