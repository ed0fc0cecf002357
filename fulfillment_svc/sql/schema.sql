-- Fulfillment: at most one shipment decision per order.

CREATE TABLE shipments (
    order_id           uuid PRIMARY KEY,
    shipment_id        uuid NOT NULL UNIQUE,
    status             text NOT NULL CHECK (status IN ('scheduled', 'failed')),
    country            text NOT NULL,
    carrier            text,
    items              jsonb NOT NULL,
    estimated_delivery date,
    failure_reason     text,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shipments_created ON shipments (created_at);

-- Shipment decisions, SAGA_ARCHIVE_AFTER_S after they were made (eventing/archive.py).
CREATE TABLE shipments_archive (
    LIKE shipments INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    archived_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (archived_at);
CREATE INDEX shipments_archive_order ON shipments_archive (order_id);
