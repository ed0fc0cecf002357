-- The inbox only needs to remember an event for as long as Kafka can deliver it again.
CREATE INDEX inbox_consumed_at ON inbox (consumed_at);
