-- The shared runtime's tables, present in every service database.

-- Effectively-once: the event_id of every consumed event, inserted in the same
-- transaction as the event's effect.
CREATE TABLE inbox (
    event_id    uuid PRIMARY KEY,
    consumed_at timestamptz NOT NULL DEFAULT now()
);

-- Transactional outbox: rows written with the state change, published by the relay.
CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    topic      text NOT NULL,
    key        bytea,
    value      bytea NOT NULL,
    headers    jsonb NOT NULL DEFAULT '[]',
    order_id   uuid,
    event_id   uuid,
    event_type text,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- Wake the relay as soon as rows commit, instead of waiting for its next poll.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Messages set aside: waiting for a retry ('retrying') or dead-lettered ('dead').
-- A row that `blocks` holds back every later message of the same order in this service,
-- which keeps per-order ordering while other orders flow.
CREATE TABLE parked (
    seq              bigserial PRIMARY KEY,
    event_id         uuid NOT NULL UNIQUE,
    order_id         uuid,
    event_type       text,
    state            text NOT NULL CHECK (state IN ('retrying', 'dead')),
    blocks           boolean NOT NULL DEFAULT true,
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    key              bytea,
    value            bytea,
    headers          jsonb NOT NULL DEFAULT '[]',
    attempts         integer NOT NULL DEFAULT 0,
    error_kind       text,
    last_error       text,
    first_failed_at  timestamptz,
    last_failed_at   timestamptz,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    parked_at        timestamptz NOT NULL DEFAULT now(),
    redriven_count   integer NOT NULL DEFAULT 0
);
CREATE INDEX parked_order ON parked (order_id, seq);
CREATE INDEX parked_due ON parked (next_attempt_at) WHERE state = 'retrying';
