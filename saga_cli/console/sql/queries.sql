-- Queries of the web console (saga_cli/console) beyond the read models it shares with the
-- CLI (saga_cli/trace.py, saga_cli/dlq.py and the order service's own queries).

-- name: orders_of_customer
-- A customer's orders, newest first, running or archived: orders_customer and
-- orders_archive's (customer_id, created_at) index serve both halves of orders_all.
SELECT order_id, status, cancel_reason, customer_id, total_minor, currency, created_at,
       terminal_at, archived_at
FROM orders_all
WHERE customer_id = %(customer_id)s
ORDER BY created_at DESC
LIMIT %(limit)s

-- name: live_window
-- Sagas that ended in the last %(window_s)s seconds: how many, how long they took (placed
-- to terminal), and how many ended in each second of the window (index 0 = the newest).
-- An order is archived SAGA_ARCHIVE_AFTER_S after it ended, and the console never
-- asks for a window longer than that, so `archived_at IS NULL` loses nothing and prunes
-- every archive partition at plan time (orders_settled serves the terminal_at bound).
WITH ended AS (
    SELECT status,
           extract(epoch FROM terminal_at - created_at)::float8 * 1000 AS ms,
           floor(extract(epoch FROM now() - terminal_at))::int AS age_s
    FROM orders_all
    WHERE archived_at IS NULL
      AND status IN ('COMPLETED', 'CANCELLED')
      AND terminal_at > now() - make_interval(secs => %(window_s)s)
)
SELECT (SELECT count(*) FROM ended) AS ended,
       (SELECT count(*) FROM ended WHERE status = 'COMPLETED') AS completed,
       (SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY ms) FROM ended)
           AS pcts_ms,
       (SELECT array_agg(coalesce(n, 0) ORDER BY s)
        FROM generate_series(0, %(window_s)s::int - 1) AS s
        LEFT JOIN (SELECT age_s, count(*) AS n FROM ended GROUP BY age_s) AS c
               ON c.age_s = s) AS per_second
