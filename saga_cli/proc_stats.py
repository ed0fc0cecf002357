"""Memory of the processes a benchmark runs on (Linux /proc), grouped by what they are.

Two measures, because they answer different questions:

- RSS (VmRSS) for a process that shares little with others: a service, the API worker, a
  Kafka broker, the load generator;
- PSS (proportional set size, /proc/PID/smaps_rollup) for PostgreSQL: the postmaster and
  every backend map the same shared_buffers, and a sum of their RSS would count those pages
  once per backend. PSS splits every shared page between the processes that map it, so the
  sum over the cluster is what it really holds. Reading another user's smaps_rollup needs
  the right to ptrace it; without it we fall back to the RSS sum and say so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eventing.settings import SERVICES
from saga_cli.background import child_pids

__all__ = [
    "GroupMemory",
    "broker_pids",
    "group_memory",
    "memory_kb",
    "service_processes",
]


def _kb_field(path: str, name: str) -> int | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_kb(pid: int, measure: str) -> int | None:
    """`measure` ("rss" or "pss") of one process in kB, None if it is gone or unreadable."""
    if measure == "pss":
        return _kb_field(f"/proc/{pid}/smaps_rollup", "Pss:")
    return _kb_field(f"/proc/{pid}/status", "VmRSS:")


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _role(args: list[str]) -> str:
    """What a process of `saga run all` is, from its command line."""
    if "order_svc.api.workers" in args:
        return "api"
    if "run" in args:
        i = args.index("run")
        name = args[i + 1] if i + 1 < len(args) else ""
        if name in SERVICES:
            return name
        if name == "all":
            return "supervisor"
    return "other"


def service_processes(supervisor_pid: int) -> dict[str, list[int]]:
    """The supervisor's process tree by role: each service, "api", "supervisor", "other".

    Read again at every sample: the supervisor restarts a child that dies, with a new pid.
    """
    out: dict[str, list[int]] = {}
    for pid in child_pids(supervisor_pid):
        args = _cmdline(pid)
        if args:
            out.setdefault(_role(args), []).append(pid)
    return out


def broker_pids(kafka: Mapping[str, Any]) -> list[int]:
    """Pids of the local Kafka brokers from `saga stack status`'s "kafka" object: the
    "brokers" list of a cluster, or the single "pid" of one broker."""
    brokers = kafka.get("brokers")
    if brokers:
        return [int(b["pid"]) for b in brokers if b.get("pid")]
    return [int(kafka["pid"])] if kafka.get("pid") else []


@dataclass(frozen=True)
class GroupMemory:
    bytes: int
    measure: str  # "rss", "pss", or "rss (pss unreadable)"


def group_memory(pids: Iterable[int], measure: str) -> GroupMemory | None:
    """The sum of `measure` over the living processes of `pids`; None if none is readable."""
    pids = list(pids)
    values = [memory_kb(p, measure) for p in pids]
    if measure == "pss" and pids and all(v is None for v in values):
        values, measure = [memory_kb(p, "rss") for p in pids], "rss (pss unreadable)"
    found = [v for v in values if v is not None]
    if not found:
        return None
    return GroupMemory(sum(found) * 1024, measure)
