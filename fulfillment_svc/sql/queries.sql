-- name: shipments_for_orders
SELECT order_id FROM shipments WHERE order_id = ANY(%(order_ids)s::uuid[])

-- name: copy_shipments
COPY shipments (order_id, shipment_id, status, country, carrier, items, estimated_delivery,
                failure_reason)
FROM STDIN
