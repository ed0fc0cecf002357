"""The shape of the local Kafka cluster: how many brokers, and each one's id, ports and files.

Port scheme: broker i (1, 2, 3) listens for clients on SAGA_KAFKA_PORT + 2*(i-1) and for the
controller quorum on SAGA_KAFKA_CONTROLLER_PORT + 2*(i-1). With the default 19092 and 19093
that is 19092/19093, 19094/19095 and 19096/19097: the two series interleave, and a single
broker keeps the ports it always had.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventing.settings import Settings
from saga_cli.stack.common import StackError
from saga_cli.stack.paths import BrokerPaths, StackPaths, read_state

__all__ = [
    "BROKER_COUNTS",
    "MAX_BROKERS",
    "PORT_STEP",
    "Broker",
    "bootstrap_servers",
    "cluster",
    "find_broker",
    "has_data",
    "kafka_is_local",
    "local_addresses",
    "port_variables",
    "quorum_voters",
    "recorded_count",
    "replication_for",
    "stack_cluster",
]

BROKER_COUNTS = (1, 3)
MAX_BROKERS = max(BROKER_COUNTS)
PORT_STEP = 2


@dataclass(frozen=True)
class Broker:
    """One broker of the local cluster; every node is both a broker and a controller."""

    id: int
    port: int
    controller_port: int
    files: BrokerPaths

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def _ports(settings: Settings, broker_id: int) -> tuple[int, int]:
    offset = PORT_STEP * (broker_id - 1)
    return settings.kafka_port + offset, settings.kafka_controller_port + offset


def cluster(settings: Settings, paths: StackPaths, count: int) -> tuple[Broker, ...]:
    """The brokers of a stack of `count` brokers, with ids 1..count."""
    if count not in BROKER_COUNTS:
        raise StackError(f"a local stack runs 1 or 3 Kafka brokers, not {count}")
    return tuple(
        Broker(i, *_ports(settings, i), files=paths.broker(i, count)) for i in range(1, count + 1)
    )


def find_broker(brokers: tuple[Broker, ...], broker_id: int) -> Broker:
    for broker in brokers:
        if broker.id == broker_id:
            return broker
    ids = ", ".join(str(b.id) for b in brokers)
    raise StackError(
        f"this stack has no broker {broker_id}: its {len(brokers)} broker(s) have id {ids} "
        "(see `saga stack status`)"
    )


def port_variables(broker: Broker) -> tuple[str, str]:
    """Where `broker`'s client and controller ports come from, as error messages name them."""
    if broker.id == 1:
        return "SAGA_KAFKA_PORT", "SAGA_KAFKA_CONTROLLER_PORT"
    step = f" + {PORT_STEP * (broker.id - 1)}"
    return f"SAGA_KAFKA_PORT{step}", f"SAGA_KAFKA_CONTROLLER_PORT{step}"


def bootstrap_servers(brokers: tuple[Broker, ...]) -> str:
    """Every broker, so that a client can start while any one of them is down."""
    return ",".join(b.address for b in brokers)


def quorum_voters(brokers: tuple[Broker, ...]) -> str:
    return ",".join(f"{b.id}@127.0.0.1:{b.controller_port}" for b in brokers)


def local_addresses(settings: Settings) -> set[str]:
    """Every client address that a local stack of any size can listen on."""
    return {f"127.0.0.1:{_ports(settings, i)[0]}" for i in range(1, MAX_BROKERS + 1)}


def _normal(address: str) -> str:
    host, _, port = address.strip().rpartition(":")
    return f"{'127.0.0.1' if host == 'localhost' else host}:{port}"


def kafka_is_local(settings: Settings) -> bool:
    """Whether the settings point at brokers this package runs (else: someone else's Kafka).

    True when every bootstrap server is an address of the local stack: its first broker
    alone (the default) or any list of its brokers.
    """
    servers = {_normal(s) for s in settings.kafka_bootstrap_servers.split(",") if s.strip()}
    return bool(servers) and servers <= local_addresses(settings)


def replication_for(count: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for a cluster of `count` brokers.

    Three replicas with two in sync: acks=all survives one broker loss without losing an
    acknowledged write, and refuses writes (rather than risk them) when two are gone.
    """
    replicas = min(3, count)
    return replicas, 2 if replicas >= 3 else 1


def recorded_count(paths: StackPaths, state: dict[str, Any]) -> int | None:
    """The broker count this stack was created with, or None for a stack with no Kafka yet."""
    count = state.get("kafka_brokers")
    if isinstance(count, int) and count in BROKER_COUNTS:
        return count
    # A stack made before clusters existed has one broker and no count in its state file.
    return 1 if has_data(paths, 1) else None


def has_data(paths: StackPaths, count: int) -> bool:
    """Whether any broker of a `count`-broker layout has formatted storage."""
    return any(
        (paths.broker(i, count).data / "meta.properties").exists() for i in range(1, count + 1)
    )


def stack_cluster(settings: Settings, paths: StackPaths) -> tuple[Broker, ...]:
    """This stack's brokers as recorded (one broker for a stack that has none yet)."""
    return cluster(settings, paths, recorded_count(paths, read_state(paths)) or 1)
