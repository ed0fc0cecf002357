-- A customer's orders (support, and the benchmark following its own run).
CREATE INDEX orders_customer ON orders (customer_id, created_at);
