"""`saga stack`, driven as a user drives it: through the command, in subprocesses.

The lifecycle test runs a second, throw-away stack in a temp dir on free ports, so that the
main stack the other integration tests use stays up.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from eventing.settings import SERVICES, Settings, local_dsn
from saga_cli.stack import redact_dsn
from saga_cli.stack.procs import alive
from shared_events.topics import ALL_TOPICS
from tests.conftest import SagaRunner
from tests.e2e.harness import wait_for
from tests.ports import free_ports

pytestmark = pytest.mark.integration


def _status(run_saga: SagaRunner, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    done = run_saga("stack", "status", "--json", env=env, timeout=60)
    return done.returncode, json.loads(done.stdout)


def isolated_env(stack_dir: Path, kafka: int, controller: int, pg: int) -> dict[str, str]:
    # Drop every SAGA_* of the outer environment: the second stack must not inherit, say,
    # SAGA_ORDER_DB_DSN pointing at the main stack.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGA_")}
    env.update(
        SAGA_STACK_DIR=str(stack_dir),
        SAGA_KAFKA_PORT=str(kafka),
        SAGA_KAFKA_CONTROLLER_PORT=str(controller),
        SAGA_PG_PORT=str(pg),
        SAGA_TOPIC_PARTITIONS="2",
    )
    if "SAGA_CACHE_DIR" in os.environ:  # the Kafka jars are shared: never fetch them twice
        env["SAGA_CACHE_DIR"] = os.environ["SAGA_CACHE_DIR"]
    return env


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    # Under /tmp, not pytest's tmp_path: as root, PostgreSQL runs as the `postgres` user, who
    # cannot traverse pytest's 0700 temp root.
    path = Path(tempfile.mkdtemp(prefix="saga-it-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def second_stack(run_saga: SagaRunner, scratch_dir: Path) -> Iterator[dict[str, str]]:
    env = isolated_env(scratch_dir / "stack", *free_ports(3))
    yield env
    # Whatever the test did, leave no broker or postmaster of this stack behind.
    run_saga("stack", "down", "--wipe", env=env, timeout=180)


def test_status_json_reports_both_parts_healthy(
    run_saga: SagaRunner, stack: dict[str, Any], settings: Settings
) -> None:
    code, report = _status(run_saga)
    assert code == 0, report
    assert report["kafka"]["healthy"] is True
    assert report["kafka"]["bootstrap_servers"] == settings.kafka_bootstrap_servers
    assert report["kafka"]["missing_topics"] == []
    assert report["postgres"]["healthy"] is True
    # Shown without their passwords: status output lands in terminals and CI logs.
    assert report["postgres"]["databases"] == {s: redact_dsn(settings.dsn(s)) for s in SERVICES}
    assert all(":***@" in dsn for dsn in report["postgres"]["databases"].values())
    assert "postgres:postgres@" not in json.dumps(report)


def test_up_twice_is_harmless(run_saga: SagaRunner, stack: dict[str, Any]) -> None:
    _, before = _status(run_saga)
    done = run_saga("stack", "up")
    assert done.returncode == 0, done.stderr
    _, after = _status(run_saga)
    assert after["healthy"] is True
    # The same processes, not new ones: `up` reused what ran.
    assert after["kafka"]["pid"] == before["kafka"]["pid"]
    assert after["postgres"]["pid"] == before["postgres"]["pid"]
    if before["kafka"]["managed"]:
        assert "already running" in done.stdout


def test_second_stack_up_status_down_wipe(
    run_saga: SagaRunner, second_stack: dict[str, str]
) -> None:
    env = second_stack
    stack_dir = Path(env["SAGA_STACK_DIR"])

    first = run_saga("stack", "up", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    code, up = _status(run_saga, env)
    assert code == 0, up
    assert up["kafka"]["healthy"] and up["postgres"]["healthy"]
    assert up["kafka"]["bootstrap_servers"] == f"127.0.0.1:{env['SAGA_KAFKA_PORT']}"
    assert up["kafka"]["missing_topics"] == []
    kafka_pid, pg_pid = up["kafka"]["pid"], up["postgres"]["pid"]
    assert kafka_pid and pg_pid
    # One broker: the layout and ports single-broker stacks have always had.
    [broker] = up["kafka"]["brokers"]
    assert broker == {
        "id": 1,
        "address": f"127.0.0.1:{env['SAGA_KAFKA_PORT']}",
        "pid": kafka_pid,
        "healthy": True,
        "log": str(stack_dir / "logs" / "kafka.log"),
    }
    assert (stack_dir / "kafka" / "data" / "meta.properties").exists()
    assert json.loads((stack_dir / "saga-stack.json").read_text())["kafka_brokers"] == 1
    assert up["kafka"]["quorum"] is True and up["kafka"]["available"] is True
    for name in ALL_TOPICS:
        topic = up["kafka"]["topics"][name]
        assert topic["replication_factor"] == 1
        assert [p["isr"] for p in topic["partitions"]] == [[1], [1]]

    again = run_saga("stack", "up", env=env)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    _, same = _status(run_saga, env)
    assert (same["kafka"]["pid"], same["postgres"]["pid"]) == (kafka_pid, pg_pid)
    # A one-broker stack stays one: three brokers need a new cluster, and `up` says so.
    bigger = run_saga("stack", "up", "--brokers", "3", env=env)
    assert bigger.returncode != 0
    assert "1-broker" in bigger.stderr and "saga stack down --wipe" in bigger.stderr
    assert "Traceback" not in bigger.stderr

    # Something to find again after a restart: `down` keeps the data.
    order_dsn = local_dsn("order", int(env["SAGA_PG_PORT"]))
    with psycopg.connect(order_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (id int)")

    down = run_saga("stack", "down", env=env)
    assert down.returncode == 0, down.stderr
    for pid in (kafka_pid, pg_pid):
        wait_for(f"pid {pid} to exit", lambda p=pid: not alive(p), timeout=30)
    code, after = _status(run_saga, env)
    assert code == 1
    assert after["kafka"]["healthy"] is False
    assert after["postgres"]["healthy"] is False
    assert after["kafka"]["pid"] is None and after["postgres"]["pid"] is None

    harmless = run_saga("stack", "down", env=env)
    assert harmless.returncode == 0, harmless.stderr

    restart = run_saga("stack", "up", env=env)
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert "formatting" not in restart.stdout and "creating a cluster" not in restart.stdout
    with psycopg.connect(order_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)

    wipe = run_saga("stack", "down", "--wipe", env=env)
    assert wipe.returncode == 0, wipe.stderr
    assert not stack_dir.exists()


def test_port_in_use_fails_fast_naming_the_variable(
    run_saga: SagaRunner, scratch_dir: Path
) -> None:
    kafka, controller, pg = free_ports(3)
    env = isolated_env(scratch_dir / "stack", kafka, controller, pg)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", pg))
        squatter.listen()
        started = time.monotonic()
        done = run_saga("stack", "up", env=env, timeout=60)
    assert time.monotonic() - started < 30
    assert done.returncode != 0
    assert f"port {pg}" in done.stderr and "SAGA_PG_PORT" in done.stderr
    assert "Traceback" not in done.stderr
    # Ports are checked before anything starts: no broker was left running.
    assert not (scratch_dir / "stack" / "run" / "kafka.pid").exists()


def test_missing_prerequisite_is_named(run_saga: SagaRunner, scratch_dir: Path) -> None:
    env = isolated_env(scratch_dir / "stack", *free_ports(3))
    empty = scratch_dir / "empty-path"
    empty.mkdir()
    env["PATH"] = str(empty)  # no java, no mvn, no initdb on PATH
    done = run_saga("stack", "up", env=env, timeout=60)
    assert done.returncode != 0
    assert "missing prerequisites" in done.stderr
    assert "java" in done.stderr
    assert "Traceback" not in done.stderr


def test_topics_exist_with_the_configured_partitions(
    stack: dict[str, Any], settings: Settings
) -> None:
    from eventing.kafka.admin import topic_partitions

    partitions = topic_partitions(settings.kafka_bootstrap_servers)
    assert set(ALL_TOPICS) <= set(partitions)
    assert all(partitions[t] >= 1 for t in ALL_TOPICS)
