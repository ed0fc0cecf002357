-- The saga's trace context where the reservation was made: the reaper's InventoryReleased
-- (expired) then joins the saga's trace instead of starting one of its own.
ALTER TABLE reservations ADD COLUMN trace text;
ALTER TABLE reservations_archive ADD COLUMN trace text;
