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
