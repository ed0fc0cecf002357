"""Where one stack's files live, and its state file (saga-stack.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventing.settings import Settings
from saga_cli.stack.common import StackError

__all__ = [
    "BrokerPaths",
    "StackPaths",
    "prepare_dirs",
    "read_state",
    "stack_paths",
    "write_state",
]

_SOCKET_PATH_MAX = 107  # sun_path limit on Linux, minus the trailing NUL


@dataclass(frozen=True)
class BrokerPaths:
    """Where one Kafka broker's files live: config, data, pid file and logs."""

    dir: Path
    data: Path
    config: Path
    log4j: Path
    pid: Path
    log: Path
    out: Path


@dataclass(frozen=True)
class StackPaths:
    """Where each part of one stack lives (see the saga_cli.stack package docstring)."""

    root: Path
    state: Path
    lock: Path
    kafka_dir: Path
    kafka_data: Path
    kafka_config: Path
    kafka_log4j: Path
    kafka_pid: Path
    pg_data: Path
    pg_socket_dir: Path
    run_dir: Path
    logs: Path
    kafka_log: Path
    kafka_out: Path
    pg_log: Path

    @classmethod
    def at(cls, root: Path) -> StackPaths:
        kafka, run, logs = root / "kafka", root / "run", root / "logs"
        return cls(
            root=root,
            state=root / "saga-stack.json",
            lock=root / ".lock",
            kafka_dir=kafka,
            kafka_data=kafka / "data",
            kafka_config=kafka / "server.properties",
            kafka_log4j=kafka / "log4j2.yaml",
            kafka_pid=run / "kafka.pid",
            pg_data=root / "postgres",
            pg_socket_dir=run / "postgres",
            run_dir=run,
            logs=logs,
            kafka_log=logs / "kafka.log",
            kafka_out=logs / "kafka.out",
            pg_log=logs / "postgres.log",
        )

    def broker(self, broker_id: int, count: int) -> BrokerPaths:
        """The files of broker `broker_id` in a stack of `count` brokers.

        One broker keeps the layout that single-broker stacks have always had (kafka/data,
        run/kafka.pid, logs/kafka.log), so existing stacks start again with their data; a
        cluster gives each broker a directory of its own (kafka/<id>/, run/kafka-<id>.pid,
        logs/kafka-<id>.log). A stack never changes its size, so the two never mix.
        """
        if count == 1:
            return BrokerPaths(
                dir=self.kafka_dir,
                data=self.kafka_data,
                config=self.kafka_config,
                log4j=self.kafka_log4j,
                pid=self.kafka_pid,
                log=self.kafka_log,
                out=self.kafka_out,
            )
        home = self.kafka_dir / str(broker_id)
        return BrokerPaths(
            dir=home,
            data=home / "data",
            config=home / "server.properties",
            log4j=home / "log4j2.yaml",
            pid=self.run_dir / f"kafka-{broker_id}.pid",
            log=self.logs / f"kafka-{broker_id}.log",
            out=self.logs / f"kafka-{broker_id}.out",
        )


def stack_paths(settings: Settings) -> StackPaths:
    # Absolute, because the paths are matched against the command lines of running processes.
    return StackPaths.at(settings.stack_dir.expanduser().absolute())


def read_state(paths: StackPaths) -> dict[str, Any]:
    try:
        data = json.loads(paths.state.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_state(paths: StackPaths, state: dict[str, Any]) -> None:
    # Write then rename, so a crash never leaves a half-written state file behind.
    tmp = paths.state.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    tmp.replace(paths.state)


def prepare_dirs(paths: StackPaths) -> None:
    for path in (paths.root, paths.kafka_dir, paths.run_dir, paths.logs):
        path.mkdir(parents=True, exist_ok=True)
    # The postgres OS user must traverse the stack dir to reach its cluster and socket.
    paths.root.chmod(0o755)
    socket_path = f"{paths.pg_socket_dir}/.s.PGSQL.65535"
    if len(socket_path) > _SOCKET_PATH_MAX:
        raise StackError(
            f"SAGA_STACK_DIR={paths.root} is too long for PostgreSQL's unix socket path "
            f"({len(socket_path)} > {_SOCKET_PATH_MAX} characters); choose a shorter one"
        )
