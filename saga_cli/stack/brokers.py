"""`saga stack kill-broker | start-broker`: take one broker of the local cluster away, as a
crash, and bring it back with its data; for tests and failure drills."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from eventing.settings import Settings
from saga_cli.stack.common import START_TIMEOUT_S, STOP_TIMEOUT_S, Echo, StackError
from saga_cli.stack.kafka import (
    fetch_jars,
    jars_ready,
    quorum_hint,
    require_broker_ports,
    running_broker,
    start_brokers,
    wait_brokers,
)
from saga_cli.stack.kafka_report import kafka_report
from saga_cli.stack.paths import StackPaths, read_state, stack_paths
from saga_cli.stack.procs import alive, locked, terminate_all
from saga_cli.stack.tools import check_prerequisites
from saga_cli.stack.topology import Broker, cluster, find_broker, kafka_is_local, recorded_count

__all__ = ["brokers", "kill_broker", "start_broker"]


def _quiet(_: str) -> None:
    pass


def _local_cluster(settings: Settings) -> tuple[StackPaths, tuple[Broker, ...]]:
    if not kafka_is_local(settings):
        raise StackError(
            f"SAGA_KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers} is not this "
            "stack's Kafka: kill-broker and start-broker act only on the brokers that "
            "`saga stack up` runs; unset it (or point it at the local brokers)"
        )
    paths = stack_paths(settings)
    count = recorded_count(paths, read_state(paths))
    if count is None:
        raise StackError(f"the stack in {paths.root} has no Kafka yet: run `saga stack up` first")
    return paths, cluster(settings, paths, count)


def brokers(settings: Settings) -> list[dict[str, Any]]:
    """This stack's brokers as `saga stack status` lists them: id, address, pid, healthy."""
    entries: list[dict[str, Any]] = kafka_report(settings)["brokers"]
    return entries


def kill_broker(settings: Settings, broker_id: int, echo: Echo = _quiet) -> int:
    """SIGKILL broker `broker_id` (a crash: no controlled shutdown); returns its pid."""
    paths, local = _local_cluster(settings)
    with locked(paths):
        broker = find_broker(local, broker_id)
        pid = running_broker(broker)
        if pid is None:
            raise StackError(
                f"broker {broker_id} is not running; `saga stack start-broker {broker_id}` "
                "starts it"
            )
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while alive(pid):
            if time.monotonic() > deadline:
                raise StackError(f"broker {broker_id} (pid {pid}) survived SIGKILL")
            time.sleep(0.05)
        echo(f"kafka: killed broker {broker_id} (pid {pid})")
        return pid


def start_broker(
    settings: Settings, broker_id: int, echo: Echo = _quiet, timeout: float = START_TIMEOUT_S
) -> int:
    """Start broker `broker_id` again with its data and wait until it serves; returns its pid.

    A broker that cannot join yet because too few controllers run is left starting, and
    the message says which to start: it joins once a majority runs.
    """
    paths, local = _local_cluster(settings)
    with locked(paths):
        broker = find_broker(local, broker_id)
        pid = running_broker(broker)
        started = pid is None
        if pid is None:
            require_broker_ports(broker)
            tools = check_prerequisites(kafka=True, maven=not jars_ready(settings), postgres=False)
            libs = fetch_jars(settings, tools, echo)
            pid = start_brokers(
                paths,
                tools,
                start=[broker],
                brokers=local,
                libs=libs,
                partitions=settings.topic_partitions,
                echo=echo,
            )[broker.id]
        else:
            echo(f"kafka: broker {broker_id} already running (pid {pid})")
        hint = quorum_hint(local)
        if hint is not None:
            echo(f"kafka: broker {broker_id} runs (pid {pid}) but cannot join yet: {hint}")
            return pid
        try:
            wait_brokers(local, [broker], time.monotonic() + timeout)
        except BaseException:
            if started:
                terminate_all([pid], STOP_TIMEOUT_S)
            raise
        echo(f"kafka: broker {broker_id} serves on {broker.address} (pid {pid})")
        return pid
