"""The local stack: real Apache Kafka brokers (KRaft) and a private PostgreSQL cluster, no Docker.

Kafka runs as one broker or as a cluster of three (`saga stack up --brokers 3`), each node
a broker and a controller. Everything lives in the stack dir (SAGA_STACK_DIR):

    saga-stack.json   ports, broker count and cluster id; also the mark `down --wipe` checks
    kafka/            one broker: server.properties, log4j2.yaml, data/
                      three: 1/, 2/, 3/, each with its own server.properties, log4j2.yaml, data/
    postgres/         the cluster's data directory (owned by the `postgres` OS user when root)
    run/              kafka.pid (kafka-<id>.pid for three); run/postgres/ holds PG's socket
    logs/             kafka.log, kafka.out (JVM stdout/stderr), postgres.log; kafka-<id>.*

Broker i (1..3) listens on SAGA_KAFKA_PORT + 2*(i-1), its controller on
SAGA_KAFKA_CONTROLLER_PORT + 2*(i-1): 19092/19093, 19094/19095, 19096/19097 by default.

The broker jars come from Maven Central once, into SAGA_CACHE_DIR/kafka-<version>/, and are
reused by every stack on the machine. A part that the settings point elsewhere (an external
Kafka or PostgreSQL) is not started: `up` then only checks it and creates the topics.

The modules, each named for what it holds:

    lifecycle  up, down, status, and which parts the settings make local
    brokers    kill-broker and start-broker: one broker away and back, for tests and drills
    topology   the cluster's shape: broker count, ids, ports, files, replication
    kafka      the brokers: jar cache, server.properties, KRaft format, start, wait
    kafka_report  status of the brokers and of each topic's leaders and in-sync replicas
    postgres   the cluster: initdb, config, start, stop, roles and databases
    tools      prerequisite programs (java, mvn, initdb, pg_ctl, runuser)
    procs      pids, signals, free ports, the per-stack-dir lock
    paths      StackPaths and the state file
    common     StackError, the Echo callback, the Kafka version and timeouts
    redact     passwords out of the DSNs that status prints

Callers use this package (`from saga_cli import stack; stack.up(...)`), not the modules.
"""

from __future__ import annotations

from saga_cli.stack.brokers import brokers, kill_broker, start_broker
from saga_cli.stack.common import KAFKA_VERSION, START_TIMEOUT_S, STOP_TIMEOUT_S, Echo, StackError
from saga_cli.stack.kafka import KAFKA_JVM_OPTS
from saga_cli.stack.lifecycle import down, postgres_is_local, status, up
from saga_cli.stack.paths import StackPaths
from saga_cli.stack.postgres import PG_ADMIN_PASSWORD, PG_ADMIN_USER
from saga_cli.stack.redact import redact_dsn
from saga_cli.stack.tools import Tools, check_prerequisites
from saga_cli.stack.topology import BROKER_COUNTS, kafka_is_local

# The names the single-module saga_cli/stack.py exported, plus the public constants, types and
# check_prerequisites it defined, so `stack.<name>` keeps working for every one of them; and
# the broker operations of a cluster.
__all__ = [
    "BROKER_COUNTS",
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
    "brokers",
    "check_prerequisites",
    "down",
    "kafka_is_local",
    "kill_broker",
    "postgres_is_local",
    "redact_dsn",
    "start_broker",
    "status",
    "up",
]
