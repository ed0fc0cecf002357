"""A replicated 3-broker Kafka under the saga: orders of every path flow while a broker that
leads partitions is SIGKILLed and brought back, then another one. Afterwards every order is
terminal, the audit finds nothing, and what went over Kafka matches the saga records: nothing
lost, causes before effects on every topic and in each saga record; events a relay published
twice (a send it could not confirm) are counted and must be harmless.

The cluster is a stack of its own (temp dir, free ports, Kafka only), with scratch databases
for the four services on the main PostgreSQL, so the session's services are not involved.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg
import pytest

from eventing.kafka.admin import topic_layout
from eventing.settings import SERVICES, Settings, load_settings
from saga_cli import stack as stack_lib
from saga_cli.catalog import ensure_schemas
from tests.chaos.published import check_published, read_published
from tests.chaos.workload import Report, Shopper, unsettled
from tests.e2e.harness import Services, connect, new_sku, wait_for
from tests.integration.service_db import scratch_database
from tests.ports import free_block

pytestmark = pytest.mark.chaos


def _load(env: dict[str, str]) -> Settings:
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("SAGA_")]:
            mp.delenv(name)
        for name, value in env.items():
            mp.setenv(name, value)
        return load_settings()


@pytest.fixture(scope="module")
def cluster(settings: Settings, stack: dict[str, Any]) -> Iterator[tuple[Settings, dict[str, str]]]:
    root = Path(tempfile.mkdtemp(prefix="saga-brokers-", dir="/tmp"))
    root.chmod(0o755)
    base = free_block(6)
    with ExitStack() as cleanup:
        dsns = {s: cleanup.enter_context(scratch_database(settings.pg_admin_dsn)) for s in SERVICES}
        env = {
            "SAGA_STACK_DIR": str(root / "stack"),
            "SAGA_KAFKA_PORT": str(base),
            "SAGA_KAFKA_CONTROLLER_PORT": str(base + 1),
            "SAGA_KAFKA_BROKERS": "3",
            "SAGA_PG_ADMIN_DSN": settings.pg_admin_dsn,
            **{f"SAGA_{s.upper()}_DB_DSN": dsn for s, dsn in dsns.items()},
        }
        if "SAGA_CACHE_DIR" in os.environ:
            env["SAGA_CACHE_DIR"] = os.environ["SAGA_CACHE_DIR"]
        cfg = _load(env)
        try:
            stack_lib.up(cfg)  # Kafka only: the databases are not this stack's
            ensure_schemas(cfg, SERVICES)
            yield cfg, env
        finally:
            stack_lib.down(cfg, wipe=True)
            shutil.rmtree(root, ignore_errors=True)


def _leader_of_most(cfg: Settings, candidates: set[int]) -> tuple[int, int]:
    """The candidate leading the most partitions, and how many it leads."""
    leaders: Counter[int] = Counter({c: 0 for c in candidates})
    for layout in topic_layout(cfg.kafka_bootstrap_servers).values():
        leaders.update(p.leader for p in layout.partitions if p.leader in candidates)
    return max(sorted(leaders.items()), key=lambda kv: kv[1])


def _steps(cfg: Settings, orders: list[uuid.UUID]) -> list[tuple[Any, ...]]:
    with psycopg.connect(cfg.dsn("order"), autocommit=True) as conn:
        return conn.execute(
            "SELECT order_id, event_id, producer, causation_id FROM saga_steps"
            " WHERE order_id = ANY(%s) ORDER BY recorded_at, event_id",
            (orders,),
        ).fetchall()


def _saga_record_out_of_order(rows: list[tuple[Any, ...]]) -> list[str]:
    """Within one producer's events of an order (one topic, one partition), the saga record
    must have seen each cause before its effect."""
    seen: dict[uuid.UUID, int] = {}
    by_event = {r[1]: r for r in rows}
    wrong = []
    for i, (order_id, event_id, producer, first_cause) in enumerate(rows):
        seen[event_id] = i
        cause = first_cause
        while cause is not None and cause in by_event:
            parent = by_event[cause]
            if parent[2] == producer and seen.get(cause, len(rows)) > i:
                wrong.append(f"{order_id}: {event_id} recorded before its cause {cause}")
            cause = parent[3]
    return wrong


def test_orders_survive_losing_a_broker_twice(
    cluster: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    cfg, env = cluster
    services = Services(cfg, tmp_path, env=env)
    services.start_all()
    rng = random.Random(int(os.environ.get("BROKERS_SEED", "5")))
    orders = int(os.environ.get("BROKERS_ORDERS", "200"))
    rate = 10.0
    report = Report(orders=orders)
    result: dict[str, Any] = {"brokers_killed": []}
    try:
        skus = {"plenty": new_sku(cfg, qty=orders * 3), "scarce": new_sku(cfg, qty=15)}
        shopper = Shopper(cfg, skus, orders, rate, rng, report)
        started = time.monotonic()
        thread = threading.Thread(target=shopper.run, daemon=True)
        thread.start()
        duration = orders / rate
        alive = {1, 2, 3}
        for at in (duration * 0.15, duration * 0.6):
            time.sleep(max(0.0, started + at - time.monotonic()))
            # A broker that leads partitions, and not the one killed before.
            victim, leads = _leader_of_most(cfg, alive - set(result["brokers_killed"]))
            result.setdefault("partitions_led_by_victim", []).append(leads)
            stack_lib.kill_broker(cfg, victim)
            alive.discard(victim)
            result["brokers_killed"].append(victim)
            report.timeline.append(f"{time.monotonic() - started:6.1f}s kill broker {victim}")
            time.sleep(rng.uniform(3.0, 6.0))  # the cluster runs on two brokers meanwhile
            stack_lib.start_broker(cfg, victim)
            alive.add(victim)
            report.timeline.append(f"{time.monotonic() - started:6.1f}s broker {victim} back")
        thread.join(timeout=duration + 120)
        assert shopper.error is None, f"placing orders failed: {shopper.error!r}"
        wait_for(
            "every order to end",
            lambda: not unsettled(cfg, shopper.placed),
            timeout=240,
            interval=0.5,
        )
        with connect(cfg, "order") as conn:
            rows = conn.execute(
                "SELECT status, cancel_reason FROM orders_all WHERE order_id = ANY(%s)",
                (shopper.placed,),
            ).fetchall()
        report.statuses = Counter(f"{s}({r})" if r else s for s, r in rows)
        assert sum(report.statuses.values()) == orders
        audit = subprocess.run(
            [sys.executable, "-m", "saga_cli.main", "audit", "--json", "--older-than", "0s"],
            env={k: v for k, v in os.environ.items() if not k.startswith("SAGA_")} | env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        found = json.loads(audit.stdout)
        report.violations, report.stuck = len(found["violations"]), len(found["stuck"])
        assert audit.returncode == 0, found["violations"][:5]

        steps = _steps(cfg, shopper.placed)
        sagas: dict[uuid.UUID, list[uuid.UUID]] = {o: [] for o in shopper.placed}
        for order_id, event_id, _producer, _cause in steps:
            sagas[order_id].append(event_id)
        check = check_published(read_published(cfg.kafka_bootstrap_servers, set(sagas)), sagas)
        report.seconds = round(time.monotonic() - started, 1)
        result.update(report.as_dict(), kafka=check.as_dict())
        result["saga_record_out_of_order"] = _saga_record_out_of_order(steps)[:20]
        text = json.dumps(result, indent=2)
        print(f"\nbroker-loss report:\n{text}")
        Path(cfg.stack_dir, "..", "brokers-report.json").write_text(text)
        assert check.missing == []
        assert check.out_of_order == []
        assert result["saga_record_out_of_order"] == []
        assert len(set(result["brokers_killed"])) == 2
        assert result["partitions_led_by_victim"][0] > 0, "the first victim led partitions"

        _below_min_insync_replicas(cfg, services, skus["plenty"])
    finally:
        services.stop_all()


def _below_min_insync_replicas(cfg: Settings, services: Services, sku: str) -> None:
    """Two of three brokers down: nothing can be acknowledged by min.insync.replicas=2. The
    outbox keeps the rows, the relay says so once, and carries on by itself afterwards."""
    from tests.e2e.harness import place

    log = services["order"]
    said_before = log.log_text().count("cannot publish to Kafka")
    stack_lib.kill_broker(cfg, 2)
    stack_lib.kill_broker(cfg, 3)
    try:
        held = [place(cfg, items={sku: 1}, customer="below-min-isr") for _ in range(5)]

        def unsent() -> int:
            with connect(cfg, "order") as conn:
                row = conn.execute(
                    "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND order_id = ANY(%s)",
                    (held,),
                ).fetchone()
            return int(row[0]) if row else 0

        wait_for(
            "the relay to say it cannot publish",
            lambda: log.log_text().count("cannot publish to Kafka") > said_before,
            timeout=90,
        )
        assert unsent() == 5, "every OrderPlaced waits in the outbox"
    finally:
        stack_lib.start_broker(cfg, 2)
        stack_lib.start_broker(cfg, 3)
    wait_for("the held orders to end", lambda: not unsettled(cfg, held), timeout=180)
    text = log.log_text()
    assert text.count("cannot publish to Kafka") == said_before + 1, "one line, not one per retry"
    assert "publishing to Kafka again" in text
