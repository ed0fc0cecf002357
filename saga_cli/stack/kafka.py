"""The local Kafka broker: its jar cache, server.properties, KRaft format, start and wait.

The broker jars come from Maven Central once, into SAGA_CACHE_DIR/kafka-<version>/, and are
reused by every stack on the machine.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import shutil
import subprocess
import time
import uuid
from importlib import resources
from pathlib import Path

from eventing.kafka.admin import KafkaAdminError, topic_partitions
from eventing.settings import Settings
from saga_cli.stack.common import KAFKA_VERSION, Echo, StackError
from saga_cli.stack.paths import StackPaths, read_state, write_state
from saga_cli.stack.procs import alive, cmdline, read_int, tail
from saga_cli.stack.tools import Tools

__all__ = [
    "KAFKA_JVM_OPTS",
    "fetch_jars",
    "jars_ready",
    "running_kafka",
    "start_kafka",
    "wait_kafka",
]

# The machine has 2 cores shared with Postgres and the services: a small heap and the serial
# collector keep the broker from competing for them.
KAFKA_JVM_OPTS = ("-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError")


def _stack_file(name: str) -> bytes:
    return resources.files("saga_cli").joinpath("stack_files", name).read_bytes()


def _kafka_home(settings: Settings) -> Path:
    return settings.cache_dir / f"kafka-{KAFKA_VERSION}"


def jars_ready(settings: Settings) -> bool:
    # The marker holds the digest of the pom.xml that fetched the jars: a changed pom refetches.
    marker = _kafka_home(settings) / ".complete"
    digest = hashlib.sha256(_stack_file("pom.xml")).hexdigest()
    return marker.is_file() and marker.read_text().strip() == digest


def fetch_jars(settings: Settings, tools: Tools, echo: Echo) -> Path:
    """The broker's classpath dir, fetched with Maven the first time only."""
    home = _kafka_home(settings)
    if jars_ready(settings):
        return home / "libs"
    cache = settings.cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".fetch.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another stack may be fetching the same jars
        if jars_ready(settings):
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
                f"Last lines of {log}:\n{tail(log)}"
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
    header = "# Written by `saga stack up` at every start; edit saga_cli/stack/kafka.py instead.\n"
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


def running_kafka(paths: StackPaths) -> int | None:
    """The pid of this stack's broker if it runs (a reused pid of another program is not)."""
    pid = read_int(paths.kafka_pid)
    if pid is None:
        return None
    cmd = cmdline(pid)
    return pid if "kafka.Kafka" in cmd and str(paths.kafka_config) in cmd else None


def start_kafka(
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
        state = read_state(paths)
        cluster_id = state.get("cluster_id") or _cluster_id()
        write_state(paths, {**state, "cluster_id": cluster_id})
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


def wait_kafka(settings: Settings, paths: StackPaths, pid: int | None, deadline: float) -> None:
    """Until the broker answers; `pid` (None for an external broker) fails fast if it exits."""
    bootstrap = settings.kafka_bootstrap_servers
    while True:
        try:
            topic_partitions(bootstrap, timeout=2.0)
            return
        except KafkaAdminError as exc:
            error = str(exc)
        if pid is not None and not alive(pid):
            raise StackError(
                f"Kafka exited while starting. Last lines of {paths.kafka_log}:\n"
                f"{tail(paths.kafka_log)}\nand of {paths.kafka_out}:\n{tail(paths.kafka_out)}"
            )
        if time.monotonic() > deadline:
            where = f"; see {paths.kafka_log}" if pid is not None else ""
            raise StackError(f"Kafka did not answer in time: {error}{where}")
        time.sleep(0.5)
