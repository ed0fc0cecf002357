-- Settled reservations (committed, released, expired) move to reservations_archive once idle
-- for SAGA_ARCHIVE_AFTER_S (eventing/archive.py); the archive is partitioned by archived_at
-- and its partitions are dropped whole after SAGA_ARCHIVE_RETENTION_S. Held reservations
-- ('reserved', 'paid', 'expiring') never move: the reaper and the audit read them here.
CREATE INDEX reservations_settled ON reservations (updated_at)
    WHERE status IN ('committed', 'released', 'expired');

CREATE TABLE reservations_archive (
    LIKE reservations INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    archived_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (archived_at);
CREATE INDEX reservations_archive_order ON reservations_archive (order_id);

-- Stock committed by reservations whose archive partition was dropped, per SKU: the
-- audit's "shipped equals what reservations committed" must hold after the rows are gone.
CREATE TABLE committed_dropped (
    sku text PRIMARY KEY,
    qty bigint NOT NULL
);
