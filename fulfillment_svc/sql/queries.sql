-- name: shipment_for_order
SELECT order_id, shipment_id, status FROM shipments WHERE order_id = %(order_id)s

-- name: insert_shipment
INSERT INTO shipments (order_id, shipment_id, status, country, carrier, items,
                       estimated_delivery, failure_reason)
VALUES (%(order_id)s, %(shipment_id)s, %(status)s, %(country)s, %(carrier)s, %(items)s,
        %(estimated_delivery)s, %(failure_reason)s)
ON CONFLICT (order_id) DO NOTHING
RETURNING shipment_id
