-- A shipment decision is final when made: it moves to shipments_archive once
-- SAGA_ARCHIVE_AFTER_S old (eventing/archive.py); the archive is partitioned by archived_at
-- and dropped whole after SAGA_ARCHIVE_RETENTION_S.
CREATE INDEX shipments_created ON shipments (created_at);

CREATE TABLE shipments_archive (
    LIKE shipments INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    archived_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (archived_at);
CREATE INDEX shipments_archive_order ON shipments_archive (order_id);
