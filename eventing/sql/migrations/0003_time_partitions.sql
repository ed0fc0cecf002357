-- Inbox and outbox become time-partitioned: old data goes by dropping whole partitions
-- (eventing/partitions.py), never by DELETE. The partitions themselves are made by the
-- runtime's maintenance, which runs before a service consumes or publishes anything.
--
-- On a database that already holds data nothing is lost or rewritten:
--   - the old inbox stays as `inbox_legacy` and is still consulted for duplicates until its
--     newest entry is older than the inbox retention, then the maintenance drops it;
--   - the old outbox becomes one partition of the new outbox (FROM MINVALUE to now), so
--     rows not yet published are published in id order as before, and the partition is
--     dropped once everything in it is sent and older than the outbox retention.
-- On an empty database both old tables are dropped at once.

-- Inbox: keyed by each event's own occurred_at, so both copies of one event meet in the
-- same partition and ON CONFLICT finds the duplicate with a single index probe.
ALTER TABLE inbox RENAME TO inbox_legacy;
ALTER INDEX inbox_pkey RENAME TO inbox_legacy_pkey;
ALTER INDEX inbox_consumed_at RENAME TO inbox_legacy_consumed_at;
CREATE TABLE inbox (
    event_id    uuid NOT NULL,
    occurred_at timestamptz NOT NULL,
    consumed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);

-- Outbox: keyed by created_at (now() at insert).
DROP TRIGGER outbox_notify ON outbox;
ALTER TABLE outbox RENAME TO outbox_legacy;
ALTER INDEX outbox_pkey RENAME TO outbox_legacy_pkey;
ALTER INDEX outbox_unsent RENAME TO outbox_legacy_unsent;
DROP INDEX outbox_sent_at;
CREATE TABLE outbox (
    id         bigint NOT NULL DEFAULT nextval('outbox_id_seq'),
    topic      text NOT NULL,
    key        bytea,
    value      bytea NOT NULL,
    headers    jsonb NOT NULL DEFAULT '[]',
    order_id   uuid,
    event_id   uuid,
    event_type text,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
) PARTITION BY RANGE (created_at);
ALTER SEQUENCE outbox_id_seq OWNED BY outbox.id;
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

DO $$
DECLARE
    cutoff timestamptz := now();
BEGIN
    IF EXISTS (SELECT 1 FROM inbox_legacy) THEN
        -- Still read for duplicates (see inbox_claim_with_legacy) until it ages out.
        NULL;
    ELSE
        DROP TABLE inbox_legacy;
    END IF;
    IF EXISTS (SELECT 1 FROM outbox_legacy) THEN
        ALTER TABLE outbox_legacy ALTER COLUMN id DROP DEFAULT;
        EXECUTE format(
            'ALTER TABLE outbox ATTACH PARTITION outbox_legacy FOR VALUES FROM (MINVALUE) TO (%L)',
            cutoff);
    ELSE
        DROP TABLE outbox_legacy;
    END IF;
END $$;
