"""The raw PostgreSQL limit of this machine, for a transaction shaped like ours.

One of our local transactions is: claim the event in the inbox, change a row, write an
outbox row, commit. We run exactly that from several connections for a few seconds, once
with one event per transaction (what a naive consumer does) and once with a batch of
events per transaction (what ours does), in a scratch schema that is dropped afterwards.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from typing import Any

import psycopg

__all__ = ["pg_commit_rate"]

_SETUP = """
DROP SCHEMA IF EXISTS saga_bench CASCADE;
CREATE SCHEMA saga_bench;
CREATE TABLE saga_bench.inbox (event_id uuid PRIMARY KEY, at timestamptz DEFAULT now());
CREATE TABLE saga_bench.state (id int PRIMARY KEY, n bigint NOT NULL);
CREATE TABLE saga_bench.outbox (id bigserial PRIMARY KEY, value bytea NOT NULL);
INSERT INTO saga_bench.state SELECT g, 0 FROM generate_series(1, 1000) g;
"""


def _worker(dsn: str, stop: threading.Event, per_txn: int, counts: list[int]) -> None:
    payload = os.urandom(350)
    rng = random.Random()
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not stop.is_set():
            with conn.transaction(), conn.cursor() as cur:
                ids = [uuid.uuid4() for _ in range(per_txn)]
                cur.execute(
                    "INSERT INTO saga_bench.inbox (event_id) SELECT unnest(%s::uuid[])", (ids,)
                )
                # lock rows in key order first, like our services, so nothing deadlocks
                keys = sorted({rng.randint(1, 1000) for _ in range(per_txn)})
                cur.execute(
                    "SELECT id FROM saga_bench.state WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                    (keys,),
                )
                cur.execute("UPDATE saga_bench.state SET n = n + 1 WHERE id = ANY(%s)", (keys,))
                with cur.copy("COPY saga_bench.outbox (value) FROM STDIN") as copy:
                    for _ in range(per_txn):
                        copy.write_row((payload,))
            counts[0] += 1


def _run(dsn: str, seconds: float, clients: int, per_txn: int) -> float:
    stop = threading.Event()
    counts = [[0] for _ in range(clients)]
    threads = [threading.Thread(target=_worker, args=(dsn, stop, per_txn, c)) for c in counts]
    start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(c[0] for c in counts) / (time.perf_counter() - start)


def pg_commit_rate(
    dsn: str, seconds: float = 4.0, clients: int = 8, batch: int = 50
) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(_SETUP)
    try:
        single = _run(dsn, seconds, clients, 1)
        batched = _run(dsn, seconds, clients, batch)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS saga_bench CASCADE")
    return {
        "pg_commits_per_s": round(single),
        "pg_batched_events_per_s": round(batched * batch),
        "pg_batch_size": batch,
        "pg_clients": clients,
    }
