"""CPU seconds used by groups of processes (Linux /proc): where the time of a run goes."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from saga_cli.background import child_pids

__all__ = ["cpu_seconds", "process_cpu_s"]

_HZ = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of one process; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _HZ  # utime + stime


def cpu_seconds(
    groups: Mapping[str, int | Sequence[int] | None], alone: frozenset[str] = frozenset()
) -> dict[str, float]:
    """For each named root pid (or root pids, e.g. the brokers of a cluster): CPU seconds of
    it and its living descendants (of it alone for the names in `alone`, e.g. a client whose
    children are measured on their own)."""
    out = {}
    for name, roots in groups.items():
        pids = [] if not roots else [roots] if isinstance(roots, int) else list(roots)
        if name in alone:
            out[name] = sum(process_cpu_s(p) for p in pids)
        else:
            out[name] = sum(process_cpu_s(p) for root in pids for p in child_pids(root))
    return out
