"""The private PostgreSQL cluster: initdb, its config, start and stop, roles and databases.

When we are root, PostgreSQL's programs run as the `postgres` OS user (see tools.Tools), and
the files they must own are chowned to it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psycopg
from psycopg import sql

from eventing.settings import SERVICES, Settings
from saga_cli.stack.common import STOP_TIMEOUT_S, Echo, StackError
from saga_cli.stack.paths import StackPaths
from saga_cli.stack.procs import alive, cmdline, read_int, tail, terminate
from saga_cli.stack.tools import Tools

__all__ = [
    "PG_ADMIN_PASSWORD",
    "PG_ADMIN_USER",
    "init_postgres",
    "pg_error",
    "provision",
    "running_postgres",
    "start_postgres",
    "stop_postgres",
    "wait_databases",
]

PG_ADMIN_USER = "postgres"
PG_ADMIN_PASSWORD = "postgres"


def running_postgres(paths: StackPaths) -> tuple[int, int] | None:
    """(pid, port) of this stack's postmaster if it runs, from its own postmaster.pid."""
    pidfile = paths.pg_data / "postmaster.pid"
    pid, port = read_int(pidfile, 0), read_int(pidfile, 3)
    if pid is None or port is None:
        return None
    cmd = cmdline(pid)
    return (pid, port) if "postgres" in cmd and str(paths.pg_data) in cmd else None


def _own(path: Path, tools: Tools) -> None:
    if tools.pg_owner is not None:
        os.chown(path, *tools.pg_owner)


def _run_pg(tools: Tools, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*tools.run_as, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        start_new_session=True,  # the postmaster that pg_ctl leaves behind inherits it
    )


def _pg_conf(settings: Settings, paths: StackPaths) -> str:
    conf = {
        "port": str(settings.pg_port),
        "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": f"'{paths.pg_socket_dir}'",
        "unix_socket_permissions": "0700",
        "password_encryption": "'scram-sha-256'",
        # Many small commits from four services and the tests on a small shared box.
        "max_connections": "200",
        "shared_buffers": "256MB",
        "work_mem": "8MB",
        "maintenance_work_mem": "64MB",
        "max_wal_size": "2GB",
        "checkpoint_timeout": "10min",
        "wal_buffers": "16MB",
        # Durability is the point of the outbox and inbox: never trade it for speed here.
        "fsync": "on",
        "synchronous_commit": "on",
        "full_page_writes": "on",
        "log_line_prefix": "'%m [%p] %q%u@%d '",
        "log_min_duration_statement": "1000",
    }
    header = (
        "# Written by `saga stack up` at every start; edit saga_cli/stack/postgres.py instead.\n"
    )
    return header + "".join(f"{k} = {v}\n" for k, v in conf.items())


# Local connections: only the superuser, over a socket in a 0700 dir of the cluster's owner,
# so only that OS user (or root) gets in. Over TCP every role needs its password; which
# database a role reaches is decided by CONNECT privileges (see provision), the same rule
# that compose's init script sets on the postgres image.
_PG_HBA = """\
# Written by `saga stack up`.
local   all   postgres                 trust
host    all   all       127.0.0.1/32   scram-sha-256
"""


def init_postgres(paths: StackPaths, tools: Tools, echo: Echo) -> None:
    if (paths.pg_data / "PG_VERSION").exists():
        return
    if paths.pg_data.exists() and any(paths.pg_data.iterdir()):
        raise StackError(
            f"{paths.pg_data} is not empty and holds no PostgreSQL cluster; "
            "remove it or run `saga stack down --wipe`"
        )
    echo(f"postgres: creating a cluster in {paths.pg_data}")
    paths.pg_data.mkdir(mode=0o700, exist_ok=True)
    _own(paths.pg_data, tools)
    if tools.run_as and _run_pg(tools, "test", "-w", str(paths.pg_data)).returncode != 0:
        raise StackError(
            f"the postgres OS user cannot reach {paths.pg_data}: every parent directory must "
            "be searchable by others (chmod o+x), or set SAGA_STACK_DIR to a directory that is"
        )
    pwfile = paths.run_dir / "pg-admin-password"
    pwfile.write_text(PG_ADMIN_PASSWORD + "\n")
    pwfile.chmod(0o600)
    _own(pwfile, tools)
    try:
        done = _run_pg(
            tools,
            tools.initdb,
            "-D",
            str(paths.pg_data),
            "-U",
            PG_ADMIN_USER,
            f"--pwfile={pwfile}",
            "--encoding=UTF8",
            "--no-locale",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        )
    finally:
        pwfile.unlink(missing_ok=True)
    if done.returncode != 0:
        raise StackError(f"initdb failed:\n{done.stdout}{done.stderr}")
    with (paths.pg_data / "postgresql.conf").open("a") as conf:
        conf.write("\ninclude_if_exists = 'saga.conf'\n")


def start_postgres(settings: Settings, paths: StackPaths, tools: Tools, echo: Echo) -> int:
    for name, text in (("saga.conf", _pg_conf(settings, paths)), ("pg_hba.conf", _PG_HBA)):
        (paths.pg_data / name).write_text(text)
        _own(paths.pg_data / name, tools)
    paths.pg_socket_dir.mkdir(mode=0o700, exist_ok=True)
    _own(paths.pg_socket_dir, tools)
    paths.pg_log.touch()
    _own(paths.pg_log, tools)
    echo(f"postgres: starting on 127.0.0.1:{settings.pg_port}")
    done = _run_pg(
        tools, tools.pg_ctl, "start", "-D", str(paths.pg_data), "-l", str(paths.pg_log), "-w"
    )
    running = running_postgres(paths)
    if done.returncode != 0 or running is None:
        raise StackError(
            f"PostgreSQL did not start: {done.stdout.strip()} {done.stderr.strip()}\n"
            f"Last lines of {paths.pg_log}:\n{tail(paths.pg_log)}"
        )
    return running[0]


def provision(settings: Settings, paths: StackPaths) -> None:
    """One login role and one database per service, idempotently; each role reaches only its own."""
    with psycopg.connect(
        host=str(paths.pg_socket_dir),
        port=settings.pg_port,
        user=PG_ADMIN_USER,
        dbname="postgres",
        autocommit=True,
        connect_timeout=10,
    ) as conn:
        for service in SERVICES:
            role, db = sql.Identifier(f"{service}_svc"), sql.Identifier(f"{service}_db")
            has_role = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (f"{service}_svc",)
            ).fetchone()
            verb = sql.SQL("ALTER ROLE" if has_role else "CREATE ROLE")
            conn.execute(
                sql.SQL("{} {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                    verb, role, sql.Literal(f"{service}_svc")
                )
            )
            has_db = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (f"{service}_db",)
            ).fetchone()
            if not has_db:
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(db, role))
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, role))
            # New databases let PUBLIC connect; the owner keeps CONNECT as owner.
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
        conn.execute("REVOKE ALL ON DATABASE postgres FROM PUBLIC")


def pg_error(dsn: str, timeout: int = 3) -> str | None:
    """None when `dsn` accepts a connection and a query, else the first line of the error."""
    try:
        with psycopg.connect(dsn, connect_timeout=timeout) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return lines[0] if lines else type(exc).__name__
    return None


def wait_databases(settings: Settings, deadline: float) -> None:
    """Until every service's own DSN works (local or external), naming each one that does not."""
    while True:
        errors = {s: e for s in SERVICES if (e := pg_error(settings.db_dsns[s])) is not None}
        if not errors:
            return
        if time.monotonic() > deadline:
            detail = "\n".join(
                f"  {s} (SAGA_{s.upper()}_DB_DSN={settings.db_dsns[s]}): {e}"
                for s, e in errors.items()
            )
            raise StackError(f"PostgreSQL does not accept the service roles:\n{detail}")
        time.sleep(0.5)


def stop_postgres(paths: StackPaths, tools: Tools | None) -> bool:
    """Stop this stack's postmaster; False when it was not running."""
    running = running_postgres(paths)
    if running is None:
        return False
    pid = running[0]
    if tools is not None:
        # fast: roll back open transactions, then a clean shutdown checkpoint.
        _run_pg(tools, tools.pg_ctl, "stop", "-D", str(paths.pg_data), "-m", "fast", "-w")
    if alive(pid):
        # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for every client to leave.
        terminate(pid, STOP_TIMEOUT_S, signal.SIGINT)
    return True
