-- Inventory: stock per SKU and soft reservations per order.

CREATE TABLE stock (
    sku        text PRIMARY KEY,
    on_hand    integer NOT NULL CHECK (on_hand >= 0),
    reserved   integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    shipped    integer NOT NULL DEFAULT 0 CHECK (shipped >= 0),
    received   integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- available = on_hand - reserved can never go below zero: no oversell.
    CONSTRAINT stock_no_oversell CHECK (reserved <= on_hand)
);

-- Every change of on_hand by an operator (initial stock, restocks, write-offs).
CREATE TABLE stock_adjustments (
    id         bigserial PRIMARY KEY,
    sku        text NOT NULL REFERENCES stock (sku),
    delta      integer NOT NULL,
    reason     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- reserved -> paid -> committed (shipped); reserved|paid -> released;
-- reserved -> expiring (lapsed, stock still held until payment answers) -> expired | paid.
CREATE TABLE reservations (
    reservation_id uuid PRIMARY KEY,
    order_id       uuid NOT NULL UNIQUE,
    status         text NOT NULL CHECK (
        status IN ('reserved', 'paid', 'committed', 'released', 'expiring', 'expired')
    ),
    items          jsonb NOT NULL,
    expires_at     timestamptz NOT NULL,
    release_reason text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- The saga's trace context where the reservation was made (for the reaper's events).
    trace          text
);
CREATE INDEX reservations_expiry ON reservations (expires_at) WHERE status = 'reserved';
CREATE INDEX reservations_settled ON reservations (updated_at)
    WHERE status IN ('committed', 'released', 'expired');

-- Settled reservations, SAGA_ARCHIVE_AFTER_S after their last change (eventing/archive.py).
CREATE TABLE reservations_archive (
    LIKE reservations INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    archived_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (archived_at);
CREATE INDEX reservations_archive_order ON reservations_archive (order_id);

-- Stock committed by reservations whose archive partition was dropped, per SKU: the
-- audit's "shipped equals what reservations committed" must hold after the rows are gone.
CREATE TABLE committed_dropped (
    sku text PRIMARY KEY,
    qty bigint NOT NULL
);
