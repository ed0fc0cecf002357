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
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from eventing.kafka.admin import KafkaAdminError, ensure_topics, topic_partitions
from eventing.settings import SERVICES, Settings, local_dsn
from shared_events.topics import ALL_TOPICS

__all__ = [
    "KAFKA_VERSION",
    "StackError",
    "StackPaths",
    "down",
    "kafka_is_local",
    "postgres_is_local",
    "status",
    "up",
]

KAFKA_VERSION = "4.1.1"
# The machine has 2 cores shared with Postgres and the services: a small heap and the serial
# collector keep the broker from competing for them.
KAFKA_JVM_OPTS = ("-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError")
PG_ADMIN_USER = "postgres"
PG_ADMIN_PASSWORD = "postgres"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
_SOCKET_PATH_MAX = 107  # sun_path limit on Linux, minus the trailing NUL

Echo = Callable[[str], None]


class StackError(Exception):
    """A stack operation failed; the message says what to do about it."""


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class StackPaths:
    """Where each part of one stack lives (see the module docstring)."""

    root: Path
    state: Path
    lock: Path
    kafka_dir: Path
    kafka_data: Path
    kafka_config: Path
    kafka_log4j: Path
    kafka_pid: Path
    pg_data: Path
    pg_socket_dir: Path
    run_dir: Path
    logs: Path
    kafka_log: Path
    kafka_out: Path
    pg_log: Path

    @classmethod
    def at(cls, root: Path) -> StackPaths:
        kafka, run, logs = root / "kafka", root / "run", root / "logs"
        return cls(
            root=root,
            state=root / "saga-stack.json",
            lock=root / ".lock",
            kafka_dir=kafka,
            kafka_data=kafka / "data",
            kafka_config=kafka / "server.properties",
            kafka_log4j=kafka / "log4j2.yaml",
            kafka_pid=run / "kafka.pid",
            pg_data=root / "postgres",
            pg_socket_dir=run / "postgres",
            run_dir=run,
            logs=logs,
            kafka_log=logs / "kafka.log",
            kafka_out=logs / "kafka.out",
            pg_log=logs / "postgres.log",
        )


def kafka_is_local(settings: Settings) -> bool:
    """Whether the settings point at the broker this module runs (else: someone else's)."""
    port = settings.kafka_port
    return settings.kafka_bootstrap_servers in (f"127.0.0.1:{port}", f"localhost:{port}")


def postgres_is_local(settings: Settings) -> bool:
    """Whether any service database is in the private cluster this module runs."""
    return any(settings.db_dsns[s] == local_dsn(s, settings.pg_port) for s in SERVICES)


# --- processes -------------------------------------------------------------------------------


def _cmdline(pid: int) -> str:
    """The command line of a live, non-zombie process, or '' (a zombie has none)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return ""
    except OSError:  # no /proc (macOS): ask ps
        out = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
        return out.stdout.strip()
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _cmdline(pid) != ""


def _read_int(path: Path, line: int = 0) -> int | None:
    try:
        return int(path.read_text().splitlines()[line].strip())
    except (OSError, IndexError, ValueError):
        return None


def _kafka_pid(paths: StackPaths) -> int | None:
    """The pid of this stack's broker if it runs (a reused pid of another program is not)."""
    pid = _read_int(paths.kafka_pid)
    if pid is None:
        return None
    cmd = _cmdline(pid)
    return pid if "kafka.Kafka" in cmd and str(paths.kafka_config) in cmd else None


def _postgres_pid(paths: StackPaths) -> tuple[int, int] | None:
    """(pid, port) of this stack's postmaster if it runs, from its own postmaster.pid."""
    pidfile = paths.pg_data / "postmaster.pid"
    pid, port = _read_int(pidfile, 0), _read_int(pidfile, 3)
    if pid is None or port is None:
        return None
    cmd = _cmdline(pid)
    return (pid, port) if "postgres" in cmd and str(paths.pg_data) in cmd else None


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.2)
    return not _alive(pid)


def _terminate(pid: int, timeout: float, sig: signal.Signals = signal.SIGTERM) -> None:
    """`sig` (the clean shutdown signal of the program), then SIGKILL after `timeout`."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if not _wait_gone(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 10.0)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"  ({path} is missing)"
    return "\n".join(f"  {line}" for line in text) or f"  ({path} is empty)"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Without SO_REUSEADDR a port in TIME_WAIT from our own last run would look taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _require_free(port: int, env_var: str, what: str) -> None:
    if not _port_free(port):
        raise StackError(
            f"port {port} ({what}) is already in use by a process that is not this stack's; "
            f"stop that process, or choose another port with {env_var}=<port>"
        )


@contextlib.contextmanager
def _locked(paths: StackPaths, timeout: float = 300.0) -> Iterator[None]:
    """One `saga stack` command at a time per stack dir (two `up`s would race to start)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with paths.lock.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StackError(f"another `saga stack` command holds {paths.lock}") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- prerequisites ---------------------------------------------------------------------------


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


# --- Kafka -----------------------------------------------------------------------------------


def _stack_file(name: str) -> bytes:
    return resources.files("saga_cli").joinpath("stack_files", name).read_bytes()


def _kafka_home(settings: Settings) -> Path:
    return settings.cache_dir / f"kafka-{KAFKA_VERSION}"


def _jars_ready(settings: Settings) -> bool:
    marker = _kafka_home(settings) / ".complete"
    digest = hashlib.sha256(_stack_file("pom.xml")).hexdigest()
    return marker.is_file() and marker.read_text().strip() == digest


def _fetch_jars(settings: Settings, tools: Tools, echo: Echo) -> Path:
    """The broker's classpath dir, fetched with Maven the first time only."""
    home = _kafka_home(settings)
    if _jars_ready(settings):
        return home / "libs"
    cache = settings.cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".fetch.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another stack may be fetching the same jars
        if _jars_ready(settings):
            return home / "libs"
        if tools.mvn is None:
            raise StackError("mvn is needed to fetch the Kafka jars; install Apache Maven")
        echo(f"kafka: fetching Apache Kafka {KAFKA_VERSION} jars with Maven into {home} (once)")
        staging = cache / f".kafka-{KAFKA_VERSION}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        pom = _stack_file("pom.xml")
        (staging / "pom.xml").write_bytes(pom)
        log = cache / f"kafka-{KAFKA_VERSION}-fetch.log"
        cmd = [tools.mvn, "-B", "-q", "-f", str(staging / "pom.xml")]
        cmd += ["dependency:copy-dependencies", f"-DoutputDirectory={staging / 'libs'}"]
        with log.open("w") as out:
            done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0 or not list((staging / "libs").glob("kafka_2.13-*.jar")):
            shutil.rmtree(staging, ignore_errors=True)
            raise StackError(
                f"Maven could not fetch the Kafka jars (is Maven Central reachable?). "
                f"Last lines of {log}:\n{_tail(log)}"
            )
        (staging / ".complete").write_text(hashlib.sha256(pom).hexdigest())
        shutil.rmtree(home, ignore_errors=True)
        staging.rename(home)
    return home / "libs"


def _kafka_properties(settings: Settings, paths: StackPaths, partitions: int) -> str:
    port, ctl = settings.kafka_port, settings.kafka_controller_port
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{ctl}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctl}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(paths.kafka_data),
        # Topics are created on purpose, with the configured partition count, by `up`.
        "auto.create.topics.enable": "false",
        "num.partitions": str(partitions),
        # One node: every internal topic has one replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Fewer internal partitions and threads than the defaults: 2 shared cores.
        "offsets.topic.num.partitions": "16",
        "transaction.state.log.num.partitions": "8",
        "num.network.threads": "2",
        "num.io.threads": "4",
        # Tests and the demo start consumer groups constantly: don't wait 3 s for more members.
        "group.initial.rebalance.delay.ms": "0",
    }
    header = "# Written by `saga stack up` at every start; edit saga_cli/stack.py instead.\n"
    return header + "".join(f"{k}={v}\n" for k, v in lines.items())


def _cluster_id() -> str:
    # Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding; Kafka itself
    # avoids ids that start with '-' because they read like command-line options.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


# Starts "$@" in the background and prints its pid: the broker becomes the child of a shell
# that exits at once, never of this process. A process that calls `up()` in-process (the chaos
# tests do) would otherwise keep the broker as its child, and a killed broker would linger
# as its zombie until reaped.
_LAUNCH = 'exec "$@" </dev/null >>"$SAGA_LAUNCH_LOG" 2>&1 &\necho $!\n'


def _start_kafka(
    settings: Settings, paths: StackPaths, tools: Tools, *, libs: Path, partitions: int, echo: Echo
) -> int:
    paths.kafka_data.mkdir(parents=True, exist_ok=True)
    paths.kafka_config.write_text(_kafka_properties(settings, paths, partitions))
    paths.kafka_log4j.write_bytes(_stack_file("log4j2.yaml"))
    java = [
        tools.java,
        *KAFKA_JVM_OPTS,
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={paths.kafka_log4j}",
        f"-Dsaga.kafka.log={paths.kafka_log}",
        "-cp",
        f"{libs}/*",
    ]
    if not (paths.kafka_data / "meta.properties").exists():
        echo(f"kafka: formatting KRaft storage in {paths.kafka_data}")
        state = _read_state(paths)
        cluster_id = state.get("cluster_id") or _cluster_id()
        _write_state(paths, {**state, "cluster_id": cluster_id})
        fmt = [*java, "kafka.tools.StorageTool", "format", "-t", cluster_id]
        done = subprocess.run(
            [*fmt, "-c", str(paths.kafka_config)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{done.stdout}{done.stderr}")
    echo(f"kafka: starting on 127.0.0.1:{settings.kafka_port}")
    launched = subprocess.run(
        ["/bin/sh", "-c", _LAUNCH, "sh", *java, "kafka.Kafka", str(paths.kafka_config)],
        env={**os.environ, "SAGA_LAUNCH_LOG": str(paths.kafka_out)},
        cwd=paths.kafka_dir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        start_new_session=True,  # outlives `saga`, and a Ctrl-C in the terminal
    )
    try:
        pid = int(launched.stdout.strip())
    except ValueError:
        raise StackError(f"could not start Kafka: {launched.stderr.strip()}") from None
    paths.kafka_pid.write_text(f"{pid}\n")
    return pid


def _wait_kafka(settings: Settings, paths: StackPaths, pid: int | None, deadline: float) -> None:
    bootstrap = settings.kafka_bootstrap_servers
    while True:
        try:
            topic_partitions(bootstrap, timeout=2.0)
            return
        except KafkaAdminError as exc:
            error = str(exc)
        if pid is not None and not _alive(pid):
            raise StackError(
                f"Kafka exited while starting. Last lines of {paths.kafka_log}:\n"
                f"{_tail(paths.kafka_log)}\nand of {paths.kafka_out}:\n{_tail(paths.kafka_out)}"
            )
        if time.monotonic() > deadline:
            where = f"; see {paths.kafka_log}" if pid is not None else ""
            raise StackError(f"Kafka did not answer in time: {error}{where}")
        time.sleep(0.5)


# --- PostgreSQL ------------------------------------------------------------------------------


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
    header = "# Written by `saga stack up` at every start; edit saga_cli/stack.py instead.\n"
    return header + "".join(f"{k} = {v}\n" for k, v in conf.items())


# Local connections: only the superuser, over a socket in a 0700 dir of the cluster's owner,
# so only that OS user (or root) gets in. Over TCP every role needs its password; which
# database a role reaches is decided by CONNECT privileges (see _provision), the same rule
# that compose's init script sets on the postgres image.
_PG_HBA = """\
# Written by `saga stack up`.
local   all   postgres                 trust
host    all   all       127.0.0.1/32   scram-sha-256
"""


def _init_postgres(paths: StackPaths, tools: Tools, echo: Echo) -> None:
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


def _start_postgres(settings: Settings, paths: StackPaths, tools: Tools, echo: Echo) -> int:
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
    running = _postgres_pid(paths)
    if done.returncode != 0 or running is None:
        raise StackError(
            f"PostgreSQL did not start: {done.stdout.strip()} {done.stderr.strip()}\n"
            f"Last lines of {paths.pg_log}:\n{_tail(paths.pg_log)}"
        )
    return running[0]


def _provision(settings: Settings, paths: StackPaths) -> None:
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


def _pg_error(dsn: str, timeout: int = 3) -> str | None:
    """None when `dsn` accepts a connection and a query, else the first line of the error."""
    try:
        with psycopg.connect(dsn, connect_timeout=timeout) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return lines[0] if lines else type(exc).__name__
    return None


def _wait_databases(settings: Settings, deadline: float) -> None:
    while True:
        errors = {s: e for s in SERVICES if (e := _pg_error(settings.db_dsns[s])) is not None}
        if not errors:
            return
        if time.monotonic() > deadline:
            detail = "\n".join(
                f"  {s} (SAGA_{s.upper()}_DB_DSN={settings.db_dsns[s]}): {e}"
                for s, e in errors.items()
            )
            raise StackError(f"PostgreSQL does not accept the service roles:\n{detail}")
        time.sleep(0.5)


def _stop_postgres(paths: StackPaths, tools: Tools | None) -> bool:
    running = _postgres_pid(paths)
    if running is None:
        return False
    pid = running[0]
    if tools is not None:
        # fast: roll back open transactions, then a clean shutdown checkpoint.
        _run_pg(tools, tools.pg_ctl, "stop", "-D", str(paths.pg_data), "-m", "fast", "-w")
    if _alive(pid):
        # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for every client to leave.
        _terminate(pid, STOP_TIMEOUT_S, signal.SIGINT)
    return True


# --- state -----------------------------------------------------------------------------------


def _read_state(paths: StackPaths) -> dict[str, Any]:
    try:
        data = json.loads(paths.state.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(paths: StackPaths, state: dict[str, Any]) -> None:
    tmp = paths.state.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    tmp.replace(paths.state)


def _prepare_dirs(paths: StackPaths) -> None:
    for path in (paths.root, paths.kafka_dir, paths.run_dir, paths.logs):
        path.mkdir(parents=True, exist_ok=True)
    # The postgres OS user must traverse the stack dir to reach its cluster and socket.
    paths.root.chmod(0o755)
    socket_path = f"{paths.pg_socket_dir}/.s.PGSQL.65535"
    if len(socket_path) > _SOCKET_PATH_MAX:
        raise StackError(
            f"SAGA_STACK_DIR={paths.root} is too long for PostgreSQL's unix socket path "
            f"({len(socket_path)} > {_SOCKET_PATH_MAX} characters); choose a shorter one"
        )


def _check_ours(settings: Settings, paths: StackPaths, state: dict[str, Any]) -> None:
    """Refuse to reuse a running stack whose ports differ from the settings."""
    pg = _postgres_pid(paths)
    if pg is not None and pg[1] != settings.pg_port:
        raise StackError(
            f"this stack's PostgreSQL runs on port {pg[1]} but SAGA_PG_PORT is "
            f"{settings.pg_port}; run `saga stack down` first"
        )
    if _kafka_pid(paths) is not None:
        for key, env in (
            ("kafka_port", "SAGA_KAFKA_PORT"),
            ("kafka_controller_port", "SAGA_KAFKA_CONTROLLER_PORT"),
        ):
            if state.get(key) not in (None, getattr(settings, key)):
                raise StackError(
                    f"this stack's Kafka runs with {env}={state[key]} but it is now "
                    f"{getattr(settings, key)}; run `saga stack down` first"
                )


# --- commands --------------------------------------------------------------------------------


def _paths(settings: Settings) -> StackPaths:
    # Absolute, because the paths are matched against the command lines of running processes.
    return StackPaths.at(settings.stack_dir.expanduser().absolute())


def up(settings: Settings, partitions: int | None = None, echo: Echo = _quiet) -> dict[str, Any]:
    """Start what is not running yet, wait until it accepts connections, create the topics."""
    partitions = partitions or settings.topic_partitions
    manage_kafka, manage_pg = kafka_is_local(settings), postgres_is_local(settings)
    deadline = time.monotonic() + START_TIMEOUT_S
    if manage_kafka or manage_pg:
        _up_local(
            settings,
            partitions=partitions,
            manage_kafka=manage_kafka,
            manage_pg=manage_pg,
            deadline=deadline,
            echo=echo,
        )
    if not manage_kafka:
        echo(f"kafka: using {settings.kafka_bootstrap_servers} (SAGA_KAFKA_BOOTSTRAP_SERVERS)")
        _wait_kafka(settings, _paths(settings), None, deadline)
    if not manage_pg:
        echo("postgres: using the databases of SAGA_<SERVICE>_DB_DSN")
        _wait_databases(settings, deadline)
    try:
        created = ensure_topics(settings.kafka_bootstrap_servers, ALL_TOPICS, partitions)
    except KafkaAdminError as exc:
        raise StackError(str(exc)) from None
    odd = {t: n for t, n in created.items() if n != partitions}
    if odd:
        echo(f"kafka: note: existing topics keep their partition count: {odd}")
    return status(settings)


def _up_local(
    settings: Settings,
    *,
    partitions: int,
    manage_kafka: bool,
    manage_pg: bool,
    deadline: float,
    echo: Echo,
) -> None:
    paths = _paths(settings)
    with _locked(paths):
        state = _read_state(paths)
        _check_ours(settings, paths, state)
        kafka_pid = _kafka_pid(paths) if manage_kafka else None
        pg_running = _postgres_pid(paths) if manage_pg else None
        start_kafka = manage_kafka and kafka_pid is None
        start_pg = manage_pg and pg_running is None
        tools = check_prerequisites(
            kafka=start_kafka,
            maven=start_kafka and not _jars_ready(settings),
            postgres=start_pg,
        )
        ports = {
            "SAGA_KAFKA_PORT": settings.kafka_port,
            "SAGA_KAFKA_CONTROLLER_PORT": settings.kafka_controller_port,
            "SAGA_PG_PORT": settings.pg_port,
        }
        if len(set(ports.values())) < len(ports):
            raise StackError(f"the stack needs three different ports: {ports}")
        # Every port is checked before anything starts, so a clash leaves nothing behind.
        if start_kafka:
            _require_free(settings.kafka_port, "SAGA_KAFKA_PORT", "Kafka")
            _require_free(
                settings.kafka_controller_port, "SAGA_KAFKA_CONTROLLER_PORT", "Kafka controller"
            )
        if start_pg:
            _require_free(settings.pg_port, "SAGA_PG_PORT", "PostgreSQL")
        _prepare_dirs(paths)
        _write_state(
            paths,
            {
                **state,
                "kafka_port": settings.kafka_port,
                "kafka_controller_port": settings.kafka_controller_port,
                "pg_port": settings.pg_port,
            },
        )
        started: list[str] = []
        try:
            if start_kafka:
                libs = _fetch_jars(settings, tools, echo)
                # A first fetch takes a minute or more: it must not eat the startup budget.
                deadline = max(deadline, time.monotonic() + START_TIMEOUT_S)
                kafka_pid = _start_kafka(
                    settings, paths, tools, libs=libs, partitions=partitions, echo=echo
                )
                started.append("kafka")
            elif manage_kafka:
                echo(f"kafka: already running (pid {kafka_pid})")
            if start_pg:
                _init_postgres(paths, tools, echo)
                _start_postgres(settings, paths, tools, echo)
                started.append("postgres")
            elif manage_pg and pg_running is not None:
                echo(f"postgres: already running (pid {pg_running[0]})")
            if manage_pg:
                _provision(settings, paths)
                _wait_databases(settings, deadline)
            if manage_kafka:
                _wait_kafka(settings, paths, kafka_pid, deadline)
        except BaseException:
            # Leave nothing half-started behind; what already ran before this `up` stays.
            if "kafka" in started and kafka_pid is not None:
                _terminate(kafka_pid, STOP_TIMEOUT_S)
            if "postgres" in started:
                _stop_postgres(paths, tools)
            raise


def down(settings: Settings, wipe: bool = False, echo: Echo = _quiet) -> None:
    """Stop this stack's processes by pid (data kept), and delete the stack dir if `wipe`."""
    paths = _paths(settings)
    if not paths.root.exists():
        echo(f"nothing to stop: {paths.root} does not exist")
        return
    with _locked(paths):
        pid = _kafka_pid(paths)
        if pid is not None:
            echo(f"kafka: stopping pid {pid}")
            _terminate(pid, STOP_TIMEOUT_S)
        else:
            echo("kafka: not running")
        paths.kafka_pid.unlink(missing_ok=True)
        tools = None
        if _postgres_pid(paths) is not None:
            with contextlib.suppress(StackError):
                tools = check_prerequisites(kafka=False, maven=False, postgres=True)
        echo("postgres: stopped" if _stop_postgres(paths, tools) else "postgres: not running")
        if wipe:
            _wipe(paths, echo)


def _wipe(paths: StackPaths, echo: Echo) -> None:
    others = {p.name for p in paths.root.iterdir()} - {paths.lock.name}
    if others and not paths.state.exists():
        raise StackError(f"{paths.root} does not look like a saga stack dir; not deleting it")
    shutil.rmtree(paths.root)
    echo(f"wiped {paths.root}")


def status(settings: Settings) -> dict[str, Any]:
    """Health of the configured endpoints (local or not) and of this stack's processes."""
    paths = _paths(settings)
    kafka: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "managed": kafka_is_local(settings),
        "pid": _kafka_pid(paths),
        "log": str(paths.kafka_log),
    }
    try:
        topics = topic_partitions(settings.kafka_bootstrap_servers, timeout=5.0)
        kafka.update(healthy=True, error=None)
        kafka["missing_topics"] = [t for t in ALL_TOPICS if t not in topics]
    except KafkaAdminError as exc:
        kafka.update(healthy=False, error=str(exc), missing_topics=None)
    errors = {s: _pg_error(settings.db_dsns[s]) for s in SERVICES}
    pg_running = _postgres_pid(paths)
    postgres = {
        "healthy": all(e is None for e in errors.values()),
        "managed": postgres_is_local(settings),
        "pid": pg_running[0] if pg_running else None,
        "log": str(paths.pg_log),
        "databases": dict(settings.db_dsns),
        "admin_dsn": settings.pg_admin_dsn,
        "errors": {s: e for s, e in errors.items() if e is not None},
    }
    return {
        "healthy": kafka["healthy"] and postgres["healthy"],
        "stack_dir": str(paths.root),
        "kafka": kafka,
        "postgres": postgres,
    }
