"""`saga stack up|down|status`: which parts this stack runs, and starting, stopping, checking them.

This is where the parts meet; the package's __init__ re-exports the public names from here.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from typing import Any

from eventing.kafka.admin import KafkaAdminError, ensure_topics, topic_partitions
from eventing.settings import SERVICES, Settings, local_dsn
from saga_cli.stack.common import START_TIMEOUT_S, STOP_TIMEOUT_S, Echo, StackError
from saga_cli.stack.kafka import fetch_jars, jars_ready, running_kafka, start_kafka, wait_kafka
from saga_cli.stack.paths import StackPaths, prepare_dirs, read_state, stack_paths, write_state
from saga_cli.stack.postgres import (
    init_postgres,
    pg_error,
    provision,
    running_postgres,
    start_postgres,
    stop_postgres,
    wait_databases,
)
from saga_cli.stack.procs import locked, require_free, terminate
from saga_cli.stack.tools import check_prerequisites
from shared_events.topics import ALL_TOPICS

__all__ = ["down", "kafka_is_local", "postgres_is_local", "status", "up"]


def _quiet(_: str) -> None:
    pass


def kafka_is_local(settings: Settings) -> bool:
    """Whether the settings point at the broker this package runs (else: someone else's)."""
    port = settings.kafka_port
    return settings.kafka_bootstrap_servers in (f"127.0.0.1:{port}", f"localhost:{port}")


def postgres_is_local(settings: Settings) -> bool:
    """Whether any service database is in the private cluster this package runs."""
    return any(settings.db_dsns[s] == local_dsn(s, settings.pg_port) for s in SERVICES)


def _check_ours(settings: Settings, paths: StackPaths, state: dict[str, Any]) -> None:
    """Refuse to reuse a running stack whose ports differ from the settings."""
    pg = running_postgres(paths)
    if pg is not None and pg[1] != settings.pg_port:
        raise StackError(
            f"this stack's PostgreSQL runs on port {pg[1]} but SAGA_PG_PORT is "
            f"{settings.pg_port}; run `saga stack down` first"
        )
    if running_kafka(paths) is not None:
        for key, env in (
            ("kafka_port", "SAGA_KAFKA_PORT"),
            ("kafka_controller_port", "SAGA_KAFKA_CONTROLLER_PORT"),
        ):
            if state.get(key) not in (None, getattr(settings, key)):
                raise StackError(
                    f"this stack's Kafka runs with {env}={state[key]} but it is now "
                    f"{getattr(settings, key)}; run `saga stack down` first"
                )


def up(settings: Settings, partitions: int | None = None, echo: Echo = _quiet) -> dict[str, Any]:
    """Start what is not running yet, wait until it accepts connections, create the topics."""
    partitions = partitions or settings.topic_partitions
    manage_kafka, manage_pg = kafka_is_local(settings), postgres_is_local(settings)
    deadline = time.monotonic() + START_TIMEOUT_S
    if manage_kafka or manage_pg:
        _up_local(
            settings,
            partitions=partitions,
            manage_kafka=manage_kafka,
            manage_pg=manage_pg,
            deadline=deadline,
            echo=echo,
        )
    if not manage_kafka:
        echo(f"kafka: using {settings.kafka_bootstrap_servers} (SAGA_KAFKA_BOOTSTRAP_SERVERS)")
        wait_kafka(settings, stack_paths(settings), None, deadline)
    if not manage_pg:
        echo("postgres: using the databases of SAGA_<SERVICE>_DB_DSN")
        wait_databases(settings, deadline)
    try:
        created = ensure_topics(settings.kafka_bootstrap_servers, ALL_TOPICS, partitions)
    except KafkaAdminError as exc:
        raise StackError(str(exc)) from None
    odd = {t: n for t, n in created.items() if n != partitions}
    if odd:
        echo(f"kafka: note: existing topics keep their partition count: {odd}")
    return status(settings)


def _up_local(
    settings: Settings,
    *,
    partitions: int,
    manage_kafka: bool,
    manage_pg: bool,
    deadline: float,
    echo: Echo,
) -> None:
    paths = stack_paths(settings)
    with locked(paths):
        state = read_state(paths)
        _check_ours(settings, paths, state)
        kafka_pid = running_kafka(paths) if manage_kafka else None
        pg_running = running_postgres(paths) if manage_pg else None
        start_kafka_now = manage_kafka and kafka_pid is None
        start_pg_now = manage_pg and pg_running is None
        tools = check_prerequisites(
            kafka=start_kafka_now,
            maven=start_kafka_now and not jars_ready(settings),
            postgres=start_pg_now,
        )
        ports = {
            "SAGA_KAFKA_PORT": settings.kafka_port,
            "SAGA_KAFKA_CONTROLLER_PORT": settings.kafka_controller_port,
            "SAGA_PG_PORT": settings.pg_port,
        }
        if len(set(ports.values())) < len(ports):
            raise StackError(f"the stack needs three different ports: {ports}")
        # Every port is checked before anything starts, so a clash leaves nothing behind.
        if start_kafka_now:
            require_free(settings.kafka_port, "SAGA_KAFKA_PORT", "Kafka")
            require_free(
                settings.kafka_controller_port, "SAGA_KAFKA_CONTROLLER_PORT", "Kafka controller"
            )
        if start_pg_now:
            require_free(settings.pg_port, "SAGA_PG_PORT", "PostgreSQL")
        prepare_dirs(paths)
        write_state(
            paths,
            {
                **state,
                "kafka_port": settings.kafka_port,
                "kafka_controller_port": settings.kafka_controller_port,
                "pg_port": settings.pg_port,
            },
        )
        started: list[str] = []
        try:
            if start_kafka_now:
                libs = fetch_jars(settings, tools, echo)
                # A first fetch takes a minute or more: it must not eat the startup budget.
                deadline = max(deadline, time.monotonic() + START_TIMEOUT_S)
                kafka_pid = start_kafka(
                    settings, paths, tools, libs=libs, partitions=partitions, echo=echo
                )
                started.append("kafka")
            elif manage_kafka:
                echo(f"kafka: already running (pid {kafka_pid})")
            if start_pg_now:
                init_postgres(paths, tools, echo)
                start_postgres(settings, paths, tools, echo)
                started.append("postgres")
            elif manage_pg and pg_running is not None:
                echo(f"postgres: already running (pid {pg_running[0]})")
            if manage_pg:
                provision(settings, paths)
                wait_databases(settings, deadline)
            if manage_kafka:
                wait_kafka(settings, paths, kafka_pid, deadline)
        except BaseException:
            # Leave nothing half-started behind; what already ran before this `up` stays.
            if "kafka" in started and kafka_pid is not None:
                terminate(kafka_pid, STOP_TIMEOUT_S)
            if "postgres" in started:
                stop_postgres(paths, tools)
            raise


def down(settings: Settings, wipe: bool = False, echo: Echo = _quiet) -> None:
    """Stop this stack's processes by pid (data kept), and delete the stack dir if `wipe`."""
    paths = stack_paths(settings)
    if not paths.root.exists():
        echo(f"nothing to stop: {paths.root} does not exist")
        return
    with locked(paths):
        pid = running_kafka(paths)
        if pid is not None:
            echo(f"kafka: stopping pid {pid}")
            terminate(pid, STOP_TIMEOUT_S)
        else:
            echo("kafka: not running")
        paths.kafka_pid.unlink(missing_ok=True)
        tools = None
        if running_postgres(paths) is not None:
            with contextlib.suppress(StackError):
                tools = check_prerequisites(kafka=False, maven=False, postgres=True)
        echo("postgres: stopped" if stop_postgres(paths, tools) else "postgres: not running")
        if wipe:
            _wipe(paths, echo)


def _wipe(paths: StackPaths, echo: Echo) -> None:
    # The state file marks a stack dir: never rmtree a directory someone pointed us at by mistake.
    others = {p.name for p in paths.root.iterdir()} - {paths.lock.name}
    if others and not paths.state.exists():
        raise StackError(f"{paths.root} does not look like a saga stack dir; not deleting it")
    shutil.rmtree(paths.root)
    echo(f"wiped {paths.root}")


def status(settings: Settings) -> dict[str, Any]:
    """Health of the configured endpoints (local or not) and of this stack's processes."""
    paths = stack_paths(settings)
    kafka: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "managed": kafka_is_local(settings),
        "pid": running_kafka(paths),
        "log": str(paths.kafka_log),
    }
    try:
        topics = topic_partitions(settings.kafka_bootstrap_servers, timeout=5.0)
        kafka.update(healthy=True, error=None)
        kafka["missing_topics"] = [t for t in ALL_TOPICS if t not in topics]
    except KafkaAdminError as exc:
        kafka.update(healthy=False, error=str(exc), missing_topics=None)
    errors = {s: pg_error(settings.db_dsns[s]) for s in SERVICES}
    pg_running = running_postgres(paths)
    postgres = {
        "healthy": all(e is None for e in errors.values()),
        "managed": postgres_is_local(settings),
        "pid": pg_running[0] if pg_running else None,
        "log": str(paths.pg_log),
        "databases": dict(settings.db_dsns),
        "admin_dsn": settings.pg_admin_dsn,
        "errors": {s: e for s, e in errors.items() if e is not None},
    }
    return {
        "healthy": kafka["healthy"] and postgres["healthy"],
        "stack_dir": str(paths.root),
        "kafka": kafka,
        "postgres": postgres,
    }
