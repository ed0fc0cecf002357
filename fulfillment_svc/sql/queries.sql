-- name: shipments_for_orders
SELECT order_id FROM shipments WHERE order_id = ANY(%(order_ids)s::uuid[])

-- name: insert_shipments
INSERT INTO shipments (order_id, shipment_id, status, country, carrier, items,
                       estimated_delivery, failure_reason)
SELECT * FROM unnest(%(order_ids)s::uuid[], %(shipment_ids)s::uuid[], %(statuses)s::text[],
                     %(countries)s::text[], %(carriers)s::text[], %(items)s::jsonb[],
                     %(estimated_deliveries)s::date[], %(failure_reasons)s::text[])
ON CONFLICT (order_id) DO NOTHING
