-- Ended orders are found by when they ended (terminal_at), not by their last change. With
-- updated_at in no index, a step that leaves the status as it is (most steps) can be a HOT
-- update, which writes no index entry (it rewrote all five before); fillfactor keeps room
-- on each page for those updates.
UPDATE orders SET terminal_at = updated_at
WHERE status IN ('COMPLETED', 'CANCELLED') AND terminal_at IS NULL;
DROP INDEX orders_settled;
CREATE INDEX orders_settled ON orders (terminal_at) WHERE status IN ('COMPLETED', 'CANCELLED');
ALTER TABLE orders SET (fillfactor = 80);
