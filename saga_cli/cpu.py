"""CPU seconds used by groups of processes (Linux /proc): where the time of a run goes."""

from __future__ import annotations

import os

from saga_cli.background import child_pids

__all__ = ["cpu_seconds"]

_HZ = os.sysconf("SC_CLK_TCK")


def _own(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _HZ  # utime + stime


def cpu_seconds(groups: dict[str, int | None]) -> dict[str, float]:
    """For each named root pid: CPU seconds of it and its living descendants."""
    return {
        name: sum(_own(p) for p in child_pids(pid)) if pid else 0.0 for name, pid in groups.items()
    }
