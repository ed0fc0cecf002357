"""Prerequisites: find the programs the stack runs (Java, Maven, PostgreSQL's server tools)."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from saga_cli.stack.common import KAFKA_VERSION, StackError

__all__ = ["Tools", "check_prerequisites"]


@dataclass(frozen=True)
class Tools:
    java: str
    mvn: str | None
    initdb: str
    pg_ctl: str
    # Prefix that runs PostgreSQL's programs as the `postgres` OS user when we are root
    # (PostgreSQL refuses to run as root), and that user's uid/gid for the files it must own.
    run_as: tuple[str, ...]
    pg_owner: tuple[int, int] | None


def _find_pg_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    # Debian/Ubuntu keep the server programs off PATH.
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    return str(candidates[-1]) if candidates else None


def _java_major(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def check_prerequisites(*, kafka: bool, maven: bool, postgres: bool) -> Tools:
    """Find the programs the stack needs, or name every missing one in a single error."""
    missing: list[str] = []
    java = shutil.which("java") if kafka else ""
    mvn = shutil.which("mvn") if maven else None
    initdb = _find_pg_tool("initdb") if postgres else ""
    pg_ctl = _find_pg_tool("pg_ctl") if postgres else ""
    if java is None:
        missing.append("java: a Java 17+ runtime (`apt-get install openjdk-17-jre-headless`)")
    if maven and mvn is None:
        missing.append(
            "mvn: Apache Maven, used once to fetch the Kafka jars (`apt-get install maven`)"
        )
    if initdb is None or pg_ctl is None:
        missing.append(
            "initdb and pg_ctl: the PostgreSQL 15+ server (`apt-get install postgresql`)"
        )
    run_as: tuple[str, ...] = ()
    owner: tuple[int, int] | None = None
    if postgres and os.geteuid() == 0:
        # sbin is often off a plain user's PATH, and root may come from `su` without it.
        runuser = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
        try:
            entry = pwd.getpwnam("postgres")
            owner = (entry.pw_uid, entry.pw_gid)
        except KeyError:
            missing.append(
                "the `postgres` OS user, since PostgreSQL refuses to run as root "
                "(`useradd --system --home-dir /var/lib/postgresql postgres`)"
            )
        if runuser is None:
            missing.append("runuser: util-linux (`apt-get install util-linux`)")
        run_as = (runuser or "runuser", "-u", "postgres", "--")
    if missing:
        raise StackError("missing prerequisites; install:\n  " + "\n  ".join(missing))
    if java and _java_major(java) < 17:
        raise StackError(f"{java} is older than Java 17, which Kafka {KAFKA_VERSION} needs")
    return Tools(
        java=java or "",
        mvn=mvn,
        initdb=initdb or "",
        pg_ctl=pg_ctl or "",
        run_as=run_as,
        pg_owner=owner,
    )
