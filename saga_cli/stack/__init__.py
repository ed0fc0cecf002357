"""The local stack: a real Apache Kafka broker (KRaft) and a private PostgreSQL cluster, no Docker.

Everything lives in the stack dir (SAGA_STACK_DIR):

    saga-stack.json   ports and cluster id of this stack; also the mark that `down --wipe` checks
    kafka/            server.properties, log4j2.yaml, data/
    postgres/         the cluster's data directory (owned by the `postgres` OS user when root)
    run/              kafka.pid; run/postgres/ holds PostgreSQL's unix socket
    logs/             kafka.log, kafka.out (JVM stdout/stderr), postgres.log

The broker jars come from Maven Central once, into SAGA_CACHE_DIR/kafka-<version>/, and are
reused by every stack on the machine. A part that the settings point elsewhere (an external
Kafka or PostgreSQL) is not started: `up` then only checks it and creates the topics.

The modules, each named for what it holds:

    lifecycle  up, down, status, and which parts the settings make local
    kafka      the broker: jar cache, server.properties, KRaft format, start, wait
    postgres   the cluster: initdb, config, start, stop, roles and databases
    tools      prerequisite programs (java, mvn, initdb, pg_ctl, runuser)
    procs      pids, signals, free ports, the per-stack-dir lock
    paths      StackPaths and the state file
    common     StackError, the Echo callback, the Kafka version and timeouts

Callers use this package (`from saga_cli import stack; stack.up(...)`), not the modules.
"""

from __future__ import annotations

from saga_cli.stack.common import KAFKA_VERSION, START_TIMEOUT_S, STOP_TIMEOUT_S, Echo, StackError
from saga_cli.stack.kafka import KAFKA_JVM_OPTS
from saga_cli.stack.lifecycle import down, kafka_is_local, postgres_is_local, status, up
from saga_cli.stack.paths import StackPaths
from saga_cli.stack.postgres import PG_ADMIN_PASSWORD, PG_ADMIN_USER
from saga_cli.stack.tools import Tools, check_prerequisites

# The names the single-module saga_cli/stack.py exported, plus the public constants, types and
# check_prerequisites it defined, so `stack.<name>` keeps working for every one of them.
__all__ = [
    "KAFKA_JVM_OPTS",
    "KAFKA_VERSION",
    "PG_ADMIN_PASSWORD",
    "PG_ADMIN_USER",
    "START_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "Echo",
    "StackError",
    "StackPaths",
    "Tools",
    "check_prerequisites",
    "down",
    "kafka_is_local",
    "postgres_is_local",
    "status",
    "up",
]
