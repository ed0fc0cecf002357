"""Free loopback ports for the processes a test starts (one helper for every suite)."""

from __future__ import annotations

import random
import socket

from saga_cli.stack.procs import port_free

__all__ = ["free_block", "free_port", "free_ports"]


def free_ports(count: int) -> list[int]:
    """`count` distinct ports the kernel says are free now (all held until all are chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


def free_block(count: int) -> int:
    """The first of `count` consecutive free ports (a Kafka cluster derives its ports from
    one: broker i on base + 2*(i-1), its controller on the next)."""
    for _ in range(200):
        # Below Linux's ephemeral range (32768-60999), where client connections come from.
        base = random.randrange(20000, 32000)
        if all(port_free(base + i) for i in range(count)):
            return base
    raise AssertionError(f"no {count} consecutive free ports found")
