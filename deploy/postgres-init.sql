-- Run once by the postgres:15 image on a new volume (compose.yaml mounts it into
-- /docker-entrypoint-initdb.d). The same roles and rules as `saga stack up` creates
-- (saga_cli/stack/postgres.py, provision): one login role and one database per service, and a
-- role can connect to its own database only.
CREATE ROLE order_svc LOGIN PASSWORD 'order_svc';
CREATE DATABASE order_db OWNER order_svc;
REVOKE ALL ON DATABASE order_db FROM PUBLIC;

CREATE ROLE inventory_svc LOGIN PASSWORD 'inventory_svc';
CREATE DATABASE inventory_db OWNER inventory_svc;
REVOKE ALL ON DATABASE inventory_db FROM PUBLIC;

CREATE ROLE payment_svc LOGIN PASSWORD 'payment_svc';
CREATE DATABASE payment_db OWNER payment_svc;
REVOKE ALL ON DATABASE payment_db FROM PUBLIC;

CREATE ROLE fulfillment_svc LOGIN PASSWORD 'fulfillment_svc';
CREATE DATABASE fulfillment_db OWNER fulfillment_svc;
REVOKE ALL ON DATABASE fulfillment_db FROM PUBLIC;

REVOKE ALL ON DATABASE postgres FROM PUBLIC;
