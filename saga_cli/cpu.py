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


def cpu_seconds(
    groups: dict[str, int | None], alone: frozenset[str] = frozenset()
) -> dict[str, float]:
    """For each named root pid: CPU seconds of it and its living descendants (of it alone
    for the names in `alone`, e.g. a client whose children are measured on their own)."""
    out = {}
    for name, pid in groups.items():
        if not pid:
            out[name] = 0.0
        elif name in alone:
            out[name] = _own(pid)
        else:
            out[name] = sum(_own(p) for p in child_pids(pid))
    return out
