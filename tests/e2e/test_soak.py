"""The soak mode of the bench: steady load with retention compressed to seconds; throughput
and database sizes must stay flat.

CI runs two minutes at 60/s, sampled every 10 s. The on-demand run (marker `soak`) is the
issue's: at least 30 minutes (SAGA_SOAK_DURATION_S, default 1800) at SAGA_SOAK_RATE
checkouts/s (default 200; set it to 70 % of the peak `saga bench --curve` finds on the
machine), sampled every 30 s, judged on 5-minute windows. Its JSON report is written to
SAGA_SOAK_REPORT when that names a file.

Why the test runs the bench against four fresh databases, with the session's services
stopped:

- the session's services (`services` fixture) read the same topics in the same consumer
  groups: a second set beside them would take their messages, so they are stopped for the
  test (after their groups caught up) and `running` starts them again after it;
- the bench then starts its own services, which is the only way the compressed retention
  reaches them (and the way their memory gets sampled);
- compressed retention run on the session's databases would archive and drop what earlier
  tests left there, and could not take effect anyway: partitions made there with the
  normal widths (an hour for saga steps, six hours for archives) reach hours ahead, and
  rows keep going into them until they end. Fresh databases start with partitions of the
  compressed widths, and hold only the soak's own data, so their sizes say what the soak
  did.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from eventing.settings import SERVICES, Settings
from eventing.spec import input_topics
from saga_cli.proc_stats import broker_pids
from saga_cli.services import spec_for
from tests.conftest import SagaRunner
from tests.e2e.harness import Services
from tests.e2e.kafka_tools import lag, wait_caught_up
from tests.ports import free_port

pytestmark = pytest.mark.e2e

CI = (120, 60, 10)  # duration s, checkouts/s, sample every s
LONG = (
    int(os.environ.get("SAGA_SOAK_DURATION_S", "1800")),
    int(os.environ.get("SAGA_SOAK_RATE", "200")),
    30,
)
# A day of retention cycles in seconds (see the README's table of settings): the longest
# window, the gateway ledger's, is 5 + 30 + 10 + 10 = 55 s.
COMPRESSED = {
    "SAGA_INBOX_RETENTION_S": "20",
    "SAGA_INBOX_PARTITION_S": "5",
    "SAGA_OUTBOX_RETENTION_S": "10",
    "SAGA_OUTBOX_PARTITION_S": "5",
    "SAGA_ARCHIVE_AFTER_S": "5",
    "SAGA_ARCHIVE_RETENTION_S": "30",
    "SAGA_ARCHIVE_PARTITION_S": "10",
    "SAGA_STEPS_PARTITION_S": "10",
}
GROUPS = {f"{s}-svc": input_topics(spec_for(s)) for s in SERVICES}


def _url_dsn(template: str, dbname: str) -> str:
    # URL form, like the stack's own DSNs (the CLI shows them redacted in that form).
    c = conninfo_to_dict(template)
    return (
        f"postgresql://{c['user']}:{c.get('password', '')}@{c.get('host', '127.0.0.1')}:"
        f"{c.get('port', '5432')}/{dbname}"
    )


@contextmanager
def soak_databases(settings: Settings) -> Iterator[dict[str, str]]:
    """A fresh database per service, owned by the service's role and closed to others like
    the stack's own; SAGA_<SERVICE>_DB_DSN for each. Dropped afterwards."""
    run = uuid.uuid4().hex[:8]
    names = {s: f"soak_{run}_{s}" for s in SERVICES}
    with psycopg.connect(settings.pg_admin_dsn, autocommit=True) as admin:
        for s, name in names.items():
            role = conninfo_to_dict(settings.dsn(s))["user"]
            admin.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(str(role))
                )
            )
            admin.execute(
                sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name))
            )
    try:
        yield {
            f"SAGA_{s.upper()}_DB_DSN": _url_dsn(settings.dsn(s), name) for s, name in names.items()
        }
    finally:
        with psycopg.connect(settings.pg_admin_dsn, autocommit=True) as admin:
            for name in names.values():
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def _leave_nothing_behind(settings: Settings, env: dict[str, str], log_dir: Path) -> None:
    """The bench stopped its services once every saga had ended; a message they had not
    consumed yet would go to the session's services, about orders they never saw. Let
    services on the soak's databases take it first."""
    bootstrap = settings.kafka_bootstrap_servers
    if all(lag(bootstrap, g, t) == 0 for g, t in GROUPS.items()):
        return
    procs = Services(settings, log_dir, env=env)
    procs.start_all()
    try:
        wait_caught_up(bootstrap, GROUPS)
    finally:
        procs.stop_all()


def test_soak_ci_sized_stays_flat(
    running: Services,
    run_saga: SagaRunner,
    settings: Settings,
    stack: dict[str, Any],
    tmp_path: Path,
) -> None:
    _soak(*CI, running, run_saga, settings, stack, tmp_path)


@pytest.mark.soak
@pytest.mark.timeout(LONG[0] + 900)
def test_soak_long_stays_flat(
    running: Services,
    run_saga: SagaRunner,
    settings: Settings,
    stack: dict[str, Any],
    tmp_path: Path,
) -> None:
    report = os.environ.get("SAGA_SOAK_REPORT")
    _soak(*LONG, running, run_saga, settings, stack, tmp_path, Path(report) if report else None)


def _soak(
    duration_s: int,
    rate: int,
    every_s: int,
    running: Services,
    run_saga: SagaRunner,
    settings: Settings,
    stack: dict[str, Any],
    tmp_path: Path,
    report: Path | None = None,
) -> dict[str, Any]:
    # Memory is sampled for every process the bench can see: its services and client, and
    # Kafka and PostgreSQL when this stack runs them (not for servers elsewhere).
    local = {*SERVICES, "api", "client"}
    local |= {"kafka"} if broker_pids(stack["kafka"]) else set()
    local |= {"postgres"} if stack["postgres"]["pid"] else set()
    wait_caught_up(settings.kafka_bootstrap_servers, GROUPS)
    running.stop_all()
    with soak_databases(settings) as dsns:
        env = {
            **os.environ,
            **COMPRESSED,
            **dsns,
            "SAGA_HTTP_PORT": str(free_port()),
            "SAGA_LOG_LEVEL": "WARNING",
        }
        out = run_saga(
            "bench",
            "--duration",
            str(duration_s),
            "--rate",
            str(rate),
            "--sample-every",
            str(every_s),
            "--no-limits",
            "--json",
            "--timeout",
            "60",
            env=env,
            timeout=duration_s + 240,
        )
        _leave_nothing_behind(settings, {**COMPRESSED, **dsns}, tmp_path)
    assert out.stdout, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    if report is not None:
        report.write_text(json.dumps(result, indent=1))
    v = result["verdict"]
    context = f"verdict: {v}\n{out.stderr[-4000:]}"

    # The shape machines rely on.
    assert result["mode"] == "soak" and result["duration_s"] == duration_s
    for key in ("orders", "sagas_per_s", "latency_ms", "cpu_ms_per_saga", "series", "verdict"):
        assert key in result, key
    assert set(result["latency_ms"]) >= {"p50", "p95", "p99"}
    assert set(v) >= {
        "throughput_flat",
        "first_window_sagas_per_s",
        "last_window_sagas_per_s",
        "throughput_change",
        "sizes_flat",
        "size_reference_t_s",
        "db_growth",
        "retention_passed_at_s",
        "ok",
        "notes",
    }
    series = result["series"]
    assert [s["t_s"] for s in series] == list(range(every_s, duration_s + 1, every_s))
    for s in series:
        assert set(s["db_bytes"]) == set(SERVICES), s
        assert all(n > 0 for n in s["db_bytes"].values()), s
        assert set(s["largest_tables"]) == set(SERVICES)
        assert all(0 < len(t) <= 5 for t in s["largest_tables"].values())
        # Memory of every process: each service, the API worker, Kafka, PostgreSQL, client.
        assert set(s["rss_bytes"]) >= local, s
        assert all(n > 0 for n in s["rss_bytes"].values()), s
    # Partitioned tables are counted with their partitions: as a bare parent, zero bytes.
    assert series[-1]["largest_tables"]["order"].get("saga_steps", 0) > 0, series[-1]

    # Every accepted saga ended, nothing failed, and nothing was lost to the archive.
    assert not result["errors"], result["errors"]
    assert result["accepted"] + result["refused_429"] == result["orders"]
    assert result["finished"] == result["accepted"] > 0, context
    assert sum(s["completed"] for s in series) <= result["finished"]
    # The active table holds seconds of sagas, however long the run: the archive works.
    most_active = max(s["active_sagas"] for s in series)
    assert most_active < rate * 30 < result["accepted"] / 3, (most_active, context)

    # The verdict: flat throughput and flat sizes once the retention windows have passed.
    assert v["retention_passed_at_s"] < duration_s - every_s, context
    assert v["throughput_flat"] is True, context
    assert v["sizes_flat"] is True, context
    assert v["ok"] is True and out.returncode == 0, context
    return result
