"""`saga stack up|down|status`: which parts this stack runs, and starting, stopping, checking them.

This is where the parts meet; the package's __init__ re-exports the public names from here.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from typing import Any

from eventing.kafka.admin import KafkaAdminError, ensure_topics, topic_layout
from eventing.settings import SERVICES, Settings, local_dsn
from saga_cli.stack.common import START_TIMEOUT_S, STOP_TIMEOUT_S, Echo, StackError
from saga_cli.stack.kafka import (
    fetch_jars,
    jars_ready,
    require_broker_ports,
    running_broker,
    start_brokers,
    wait_brokers,
    wait_external,
)
from saga_cli.stack.kafka_report import kafka_report, low_replication_message
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
from saga_cli.stack.procs import locked, require_free, terminate_all
from saga_cli.stack.redact import redact_dsn
from saga_cli.stack.tools import check_prerequisites
from saga_cli.stack.topology import (
    BROKER_COUNTS,
    PORT_STEP,
    Broker,
    bootstrap_servers,
    cluster,
    has_data,
    kafka_is_local,
    port_variables,
    recorded_count,
    replication_for,
)
from shared_events.topics import ALL_TOPICS

__all__ = ["down", "kafka_is_local", "postgres_is_local", "status", "up"]


def _quiet(_: str) -> None:
    pass


def postgres_is_local(settings: Settings) -> bool:
    """Whether any service database is in the private cluster this package runs."""
    return any(settings.db_dsns[s] == local_dsn(s, settings.pg_port) for s in SERVICES)


def _broker_count(
    settings: Settings, paths: StackPaths, state: dict[str, Any], requested: int | None
) -> int:
    """The stack's broker count: the recorded one, or `requested` for a stack without Kafka
    data yet. A cluster with data never changes size: its replicas, quorum voters and
    internal topics were laid out for the size it was formatted with."""
    recorded = recorded_count(paths, state)
    if requested is None:
        # SAGA_KAFKA_BROKERS (settings) sizes a new stack like --brokers does.
        return recorded or settings.kafka_brokers
    if recorded is not None and recorded != requested:
        layout = [running_broker(b) for b in cluster(settings, paths, recorded)]
        if has_data(paths, recorded) or any(pid is not None for pid in layout):
            running = sum(pid is not None for pid in layout)
            raise StackError(
                f"this stack is a {recorded}-broker Kafka cluster ({running} running; data in "
                f"{paths.kafka_dir}) and a cluster cannot change its size: run "
                f"`saga stack down --wipe` (deletes this stack's topics and databases), then "
                f"`saga stack up --brokers {requested}`; or keep it with `saga stack up`"
            )
    return requested


def _check_ours(
    settings: Settings, paths: StackPaths, state: dict[str, Any], brokers: tuple[Broker, ...]
) -> None:
    """Refuse to reuse a running stack whose ports differ from the settings."""
    pg = running_postgres(paths)
    if pg is not None and pg[1] != settings.pg_port:
        raise StackError(
            f"this stack's PostgreSQL runs on port {pg[1]} but SAGA_PG_PORT is "
            f"{settings.pg_port}; run `saga stack down` first"
        )
    if any(running_broker(b) is not None for b in brokers):
        for key, env in (
            ("kafka_port", "SAGA_KAFKA_PORT"),
            ("kafka_controller_port", "SAGA_KAFKA_CONTROLLER_PORT"),
        ):
            if state.get(key) not in (None, getattr(settings, key)):
                raise StackError(
                    f"this stack's Kafka runs with {env}={state[key]} but it is now "
                    f"{getattr(settings, key)}; run `saga stack down` first"
                )


def _check_ports(
    settings: Settings, brokers: tuple[Broker, ...], start: list[Broker], start_pg: bool
) -> None:
    """All ports distinct, and those of what will start free: checked before anything starts,
    so that a clash leaves nothing behind."""
    ports: dict[int, list[str]] = {}
    for b in brokers:
        client, controller = port_variables(b)
        ports.setdefault(b.port, []).append(f"{client} (Kafka broker {b.id})")
        ports.setdefault(b.controller_port, []).append(f"{controller} (controller {b.id})")
    ports.setdefault(settings.pg_port, []).append("SAGA_PG_PORT (PostgreSQL)")
    clashes = [f"{port}: {' and '.join(users)}" for port, users in ports.items() if len(users) > 1]
    if clashes:
        raise StackError(
            "the stack needs a different port for each of these: "
            + "; ".join(clashes)
            + f" (broker i listens on SAGA_KAFKA_PORT + {PORT_STEP}*(i-1) and its controller "
            f"on SAGA_KAFKA_CONTROLLER_PORT + {PORT_STEP}*(i-1)); choose other ports"
        )
    for b in start:
        require_broker_ports(b)
    if start_pg:
        require_free(settings.pg_port, "SAGA_PG_PORT", "PostgreSQL")


def up(
    settings: Settings,
    partitions: int | None = None,
    echo: Echo = _quiet,
    brokers: int | None = None,
) -> dict[str, Any]:
    """Start what is not running yet, wait until it accepts connections, create the topics.

    `brokers` (1 or 3) sizes a new stack's Kafka; None keeps the recorded size (1 for a new
    stack). Asking an existing cluster for another size is an error, not a silent resize.
    """
    partitions = partitions or settings.topic_partitions
    manage_kafka, manage_pg = kafka_is_local(settings), postgres_is_local(settings)
    if brokers is not None and brokers not in BROKER_COUNTS:
        raise StackError(f"--brokers must be 1 or 3, not {brokers}")
    deadline = time.monotonic() + START_TIMEOUT_S
    local: tuple[Broker, ...] = ()
    if manage_kafka or manage_pg:
        local = _up_local(
            settings,
            partitions=partitions,
            brokers=brokers,
            manage_kafka=manage_kafka,
            manage_pg=manage_pg,
            deadline=deadline,
            echo=echo,
        )
    replicas: int | None = None  # None: the cluster's own policy (ensure_topics' default)
    min_isr: int | None = None
    if manage_kafka:
        bootstrap = bootstrap_servers(local)
        replicas, min_isr = replication_for(len(local))
    else:
        bootstrap = settings.kafka_bootstrap_servers
        echo(f"kafka: using {bootstrap} (SAGA_KAFKA_BOOTSTRAP_SERVERS)")
        if brokers is not None:
            echo("kafka: --brokers sizes a local stack only; the Kafka above is not one")
        wait_external(bootstrap, deadline)
    if not manage_pg:
        echo("postgres: using the databases of SAGA_<SERVICE>_DB_DSN")
        wait_databases(settings, deadline)
    try:
        created = ensure_topics(
            bootstrap,
            ALL_TOPICS,
            partitions,
            replication_factor=replicas,
            min_insync_replicas=min_isr,
        )
    except KafkaAdminError as exc:
        raise StackError(str(exc)) from None
    odd = {t: n for t, n in created.items() if n != partitions}
    if odd:
        echo(f"kafka: note: existing topics keep their partition count: {odd}")
    if manage_kafka:
        # Its own budget: a first jar fetch may have used up the startup one.
        _wait_writable(bootstrap, max(deadline, time.monotonic() + 60.0))
    report = status(settings)
    warning = low_replication_message(report["kafka"])
    if warning:
        echo(warning)
    if manage_kafka and len(local) > 1 and settings.kafka_bootstrap_servers != bootstrap:
        echo(
            f"kafka: SAGA_KAFKA_BOOTSTRAP_SERVERS is {settings.kafka_bootstrap_servers}: a "
            "client started while that broker is down cannot connect; list every broker: "
            f"export SAGA_KAFKA_BOOTSTRAP_SERVERS={bootstrap}"
        )
    return report


def _short_partitions(bootstrap: str) -> list[str]:
    """Saga topic partitions that cannot take an acks=all write yet, as "topic/partition".

    A partition with fewer replicas than its min.insync.replicas never will: waiting for it
    is pointless, and the low-replication warning names its topic.
    """
    layout = topic_layout(bootstrap, ALL_TOPICS, timeout=5.0)
    return [
        f"{name}/{p.partition}"
        for name, topic in layout.items()
        for p in topic.partitions
        if len(p.replicas) >= (need := topic.min_insync_replicas or 1)
        and (p.leader < 0 or len(p.isr) < need)
    ]


def _wait_writable(bootstrap: str, deadline: float) -> None:
    # Brokers that start together come back with one in-sync replica per partition and
    # gather the others within seconds; until then an acks=all write is refused. `up`
    # means "ready for the services", so it waits for that too.
    while True:
        try:
            short = _short_partitions(bootstrap)
        except KafkaAdminError as exc:
            short = [str(exc)]
        if not short:
            return
        if time.monotonic() > deadline:
            raise StackError(
                "Kafka runs but these partitions have fewer in-sync replicas than "
                f"min.insync.replicas, so writes to them fail: {', '.join(short)}; see "
                "`saga stack status` and the brokers' logs"
            )
        time.sleep(0.5)


def _up_local(
    settings: Settings,
    *,
    partitions: int,
    brokers: int | None,
    manage_kafka: bool,
    manage_pg: bool,
    deadline: float,
    echo: Echo,
) -> tuple[Broker, ...]:
    paths = stack_paths(settings)
    with locked(paths):
        state = read_state(paths)
        local: tuple[Broker, ...] = ()
        if manage_kafka:
            local = cluster(settings, paths, _broker_count(settings, paths, state, brokers))
        _check_ours(settings, paths, state, local)
        running = {b.id: running_broker(b) for b in local}
        start = [b for b in local if running[b.id] is None]
        pg_running = running_postgres(paths) if manage_pg else None
        start_pg_now = manage_pg and pg_running is None
        tools = check_prerequisites(
            kafka=bool(start),
            maven=bool(start) and not jars_ready(settings),
            postgres=start_pg_now,
        )
        _check_ports(settings, local, start, start_pg_now)
        prepare_dirs(paths)
        recorded: dict[str, Any] = {
            "kafka_port": settings.kafka_port,
            "kafka_controller_port": settings.kafka_controller_port,
            "pg_port": settings.pg_port,
        }
        if manage_kafka:
            recorded["kafka_brokers"] = len(local)
            recorded["kafka_bootstrap_servers"] = bootstrap_servers(local)
        write_state(paths, {**state, **recorded})
        started: dict[int, int] = {}
        pg_started = False
        try:
            for b in local:
                if running[b.id] is not None:
                    echo(f"kafka: broker {b.id} already running (pid {running[b.id]})")
            if start:
                libs = fetch_jars(settings, tools, echo)
                # A first fetch takes a minute or more: it must not eat the startup budget.
                deadline = max(deadline, time.monotonic() + START_TIMEOUT_S)
                started = start_brokers(
                    paths,
                    tools,
                    start=start,
                    brokers=local,
                    libs=libs,
                    partitions=partitions,
                    echo=echo,
                )
            if start_pg_now:
                init_postgres(paths, tools, echo)
                start_postgres(settings, paths, tools, echo)
                pg_started = True
            elif manage_pg and pg_running is not None:
                echo(f"postgres: already running (pid {pg_running[0]})")
            if manage_pg:
                provision(settings, paths)
                wait_databases(settings, deadline)
            if manage_kafka:
                wait_brokers(local, list(local), deadline)
        except BaseException:
            # Leave nothing half-started behind; what already ran before this `up` stays.
            terminate_all(list(started.values()), STOP_TIMEOUT_S)
            if pg_started:
                stop_postgres(paths, tools)
            raise
    return local


def down(settings: Settings, wipe: bool = False, echo: Echo = _quiet) -> None:
    """Stop this stack's processes by pid (data kept), and delete the stack dir if `wipe`."""
    paths = stack_paths(settings)
    if not paths.root.exists():
        echo(f"nothing to stop: {paths.root} does not exist")
        return
    with locked(paths):
        # Both layouts, whatever the state file says: no broker of this dir is left running.
        candidates = {b.files.pid: b for n in BROKER_COUNTS for b in cluster(settings, paths, n)}
        running = {b: pid for b in candidates.values() if (pid := running_broker(b)) is not None}
        for b, pid in running.items():
            echo(f"kafka: stopping broker {b.id} (pid {pid})")
        if not running:
            echo("kafka: not running")
        # Together: a broker stopping alone waits for a quorum that the others may have left.
        terminate_all(list(running.values()), STOP_TIMEOUT_S)
        for pidfile in candidates:
            pidfile.unlink(missing_ok=True)
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
    kafka = kafka_report(settings)
    errors = {s: pg_error(settings.db_dsns[s]) for s in SERVICES}
    pg_running = running_postgres(paths)
    postgres = {
        "healthy": all(e is None for e in errors.values()),
        "managed": postgres_is_local(settings),
        "pid": pg_running[0] if pg_running else None,
        "log": str(paths.pg_log),
        # Shown, never their passwords: status output ends up in terminals, CI logs, issues.
        "databases": {s: redact_dsn(dsn) for s, dsn in settings.db_dsns.items()},
        "admin_dsn": redact_dsn(settings.pg_admin_dsn),
        "errors": {s: e for s, e in errors.items() if e is not None},
    }
    return {
        "healthy": kafka["healthy"] and postgres["healthy"],
        "stack_dir": str(paths.root),
        "kafka": kafka,
        "postgres": postgres,
    }
