-- A payment has a currency once there is an amount to charge in it: a reservation that
-- lapsed before payment ever read it (InventoryReleased 'expired', no InventoryReserved
-- handled) leaves an 'expired' payment of 0 in no currency, rather than in a made-up one.
ALTER TABLE payments ALTER COLUMN currency DROP NOT NULL;
ALTER TABLE payments_archive ALTER COLUMN currency DROP NOT NULL;
