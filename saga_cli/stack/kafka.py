"""The local Kafka brokers: the jar cache, server.properties, KRaft format, start and wait.

The broker jars come from Maven Central once, into SAGA_CACHE_DIR/kafka-<version>/, and are
reused by every stack on the machine. Which brokers a stack has, and their ports and files,
is saga_cli.stack.topology's business; this module runs them.
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

from eventing.kafka.admin import KafkaAdminError, broker_answers, cluster_state, topic_partitions
from eventing.settings import Settings
from saga_cli.stack.common import KAFKA_VERSION, STOP_TIMEOUT_S, Echo, StackError
from saga_cli.stack.paths import StackPaths, read_state, write_state
from saga_cli.stack.procs import cmdline, read_int, require_free, tail, terminate_all
from saga_cli.stack.tools import Tools
from saga_cli.stack.topology import (
    Broker,
    bootstrap_servers,
    port_variables,
    quorum_voters,
    replication_for,
)

__all__ = [
    "KAFKA_JVM_OPTS",
    "cluster_id",
    "fetch_jars",
    "jars_ready",
    "new_cluster_id",
    "quorum_hint",
    "require_broker_ports",
    "running_broker",
    "start_brokers",
    "wait_brokers",
    "wait_external",
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


def _kafka_properties(broker: Broker, brokers: tuple[Broker, ...], partitions: int) -> str:
    replicas, min_isr = replication_for(len(brokers))
    lines = {
        "process.roles": "broker,controller",
        "node.id": str(broker.id),
        # A static quorum of every node: formatted once, never reconfigured (the cluster
        # never changes size; a new size is a new cluster).
        "controller.quorum.voters": quorum_voters(brokers),
        "listeners": (
            f"PLAINTEXT://127.0.0.1:{broker.port},CONTROLLER://127.0.0.1:{broker.controller_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker.port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(broker.files.data),
        # Topics are created on purpose, with the configured partition count, by `up`.
        "auto.create.topics.enable": "false",
        "num.partitions": str(partitions),
        # Every topic, internal ones included, on as many brokers as there are (up to 3),
        # and acks=all needs two of three: one broker may die without losing a write.
        "default.replication.factor": str(replicas),
        "min.insync.replicas": str(min_isr),
        "offsets.topic.replication.factor": str(replicas),
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": str(min_isr),
        "share.coordinator.state.topic.replication.factor": str(replicas),
        "share.coordinator.state.topic.min.isr": str(min_isr),
        # Spelled out because "nothing acknowledged is lost" rests on it: an out-of-sync
        # replica never becomes leader.
        "unclean.leader.election.enable": "false",
        # Fewer internal partitions and threads than the defaults: 2 shared cores, and
        # possibly three brokers on them.
        "offsets.topic.num.partitions": "16",
        "transaction.state.log.num.partitions": "8",
        "num.network.threads": "2",
        "num.io.threads": "4" if len(brokers) == 1 else "2",
        "background.threads": "4",
        "num.replica.fetchers": "1",
        # Leadership goes back to each partition's preferred broker within half a minute
        # of a broker's return (default: 5 minutes), so that load spreads again.
        "leader.imbalance.check.interval.seconds": "30",
        # Tests and the demo start consumer groups constantly: don't wait 3 s for more members.
        "group.initial.rebalance.delay.ms": "0",
    }
    header = "# Written by `saga stack up` at every start; edit saga_cli/stack/kafka.py instead.\n"
    return header + "".join(f"{k}={v}\n" for k, v in lines.items())


def new_cluster_id() -> str:
    # Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding; Kafka itself
    # avoids ids that start with '-' because they read like command-line options.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def cluster_id(paths: StackPaths) -> str:
    """The stack's KRaft cluster id, made and recorded on first use: every broker of the
    cluster is formatted with it (a broker formatted with another would be refused)."""
    state = read_state(paths)
    found = state.get("cluster_id")
    if isinstance(found, str) and found:
        return found
    made = new_cluster_id()
    write_state(paths, {**state, "cluster_id": made})
    return made


# Starts "$@" in the background and prints its pid: the broker becomes the child of a shell
# that exits at once, never of this process. A process that calls `up()` in-process (the chaos
# tests do) would otherwise keep the broker as its child, and a killed broker would linger
# as its zombie until reaped.
_LAUNCH = 'exec "$@" </dev/null >>"$SAGA_LAUNCH_LOG" 2>&1 &\necho $!\n'


def require_broker_ports(broker: Broker) -> None:
    """Both ports of `broker` free, or an error naming the variable that moves each."""
    client, controller = port_variables(broker)
    require_free(broker.port, "SAGA_KAFKA_PORT", f"Kafka broker {broker.id}, at {client}")
    require_free(
        broker.controller_port,
        "SAGA_KAFKA_CONTROLLER_PORT",
        f"Kafka controller {broker.id}, at {controller}",
    )


def running_broker(broker: Broker) -> int | None:
    """The pid of this broker if it runs (a reused pid of another program is not)."""
    pid = read_int(broker.files.pid)
    if pid is None:
        return None
    cmd = cmdline(pid)
    return pid if "kafka.Kafka" in cmd and str(broker.files.config) in cmd else None


def _java(tools: Tools, libs: Path, broker: Broker) -> list[str]:
    return [
        tools.java,
        *KAFKA_JVM_OPTS,
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={broker.files.log4j}",
        f"-Dsaga.kafka.log={broker.files.log}",
        "-cp",
        f"{libs}/*",
    ]


def _format(brokers: list[Broker], tools: Tools, libs: Path, cluster: str, echo: Echo) -> None:
    """Format the KRaft storage of `brokers`, side by side: each is a JVM start."""
    running: list[tuple[Broker, subprocess.Popen[str]]] = []
    for broker in brokers:
        echo(f"kafka: formatting KRaft storage of broker {broker.id} in {broker.files.data}")
        cmd = [
            *_java(tools, libs, broker),
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster}",
        ]
        cmd += ["-c", str(broker.files.config)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        running.append((broker, proc))
    failed = []
    for broker, proc in running:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            failed.append(f"broker {broker.id}:\n{out}")
    if failed:
        raise StackError("formatting Kafka storage failed:\n" + "\n".join(failed))


def _launch(tools: Tools, libs: Path, broker: Broker) -> int:
    java = [*_java(tools, libs, broker), "kafka.Kafka", str(broker.files.config)]
    launched = subprocess.run(
        ["/bin/sh", "-c", _LAUNCH, "sh", *java],
        env={**os.environ, "SAGA_LAUNCH_LOG": str(broker.files.out)},
        cwd=broker.files.dir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        start_new_session=True,  # outlives `saga`, and a Ctrl-C in the terminal
    )
    try:
        pid = int(launched.stdout.strip())
    except ValueError:
        raise StackError(
            f"could not start Kafka broker {broker.id}: {launched.stderr.strip()}"
        ) from None
    broker.files.pid.write_text(f"{pid}\n")
    return pid


def start_brokers(
    paths: StackPaths,
    tools: Tools,
    *,
    start: list[Broker],
    brokers: tuple[Broker, ...],
    libs: Path,
    partitions: int,
    echo: Echo,
) -> dict[int, int]:
    """Start `start` (brokers of the cluster `brokers`) with their existing data, formatting
    the storage of any that has none. Returns broker id -> pid; does not wait for them.

    They start together, not one after another: with three brokers none can finish
    starting until a majority of the controllers runs.
    """
    for broker in start:
        broker.files.data.mkdir(parents=True, exist_ok=True)
        broker.files.config.write_text(_kafka_properties(broker, brokers, partitions))
        broker.files.log4j.write_bytes(_stack_file("log4j2.yaml"))
    unformatted = [b for b in start if not (b.files.data / "meta.properties").exists()]
    if unformatted:
        _format(unformatted, tools, libs, cluster_id(paths), echo)
    pids: dict[int, int] = {}
    try:
        for broker in start:
            echo(f"kafka: starting broker {broker.id} on {broker.address}")
            pids[broker.id] = _launch(tools, libs, broker)
    except BaseException:
        terminate_all(list(pids.values()), STOP_TIMEOUT_S)
        raise
    return pids


def quorum_hint(brokers: tuple[Broker, ...]) -> str | None:
    """Why brokers cannot register, if too few controllers run to elect a leader."""
    running = sum(running_broker(b) is not None for b in brokers)
    needed = len(brokers) // 2 + 1
    if running >= needed:
        return None
    return (
        f"only {running} of the {len(brokers)} controllers run and {needed} are needed to "
        "elect a leader: start another broker (`saga stack start-broker ID`, or "
        "`saga stack up`)"
    )


def _serving(brokers: tuple[Broker, ...], candidates: list[Broker]) -> set[int]:
    """Ids of `candidates` that answer for themselves and that the cluster counts alive."""
    answering = [b for b in candidates if broker_answers(b.address)]
    if not answering:
        return set()
    try:
        live = cluster_state(bootstrap_servers(brokers), topics=(), timeout=2.0).brokers
    except KafkaAdminError:
        return set()
    return {b.id for b in answering if b.id in live}


def wait_brokers(brokers: tuple[Broker, ...], wait_for: list[Broker], deadline: float) -> None:
    """Until every broker of `wait_for` serves: it answers requests itself (it has caught up)
    and the cluster counts it alive (registered, unfenced). Fails fast if one exits."""
    pending = list(wait_for)
    while True:
        serving = _serving(brokers, pending)
        pending = [b for b in pending if b.id not in serving]
        if not pending:
            return
        for broker in pending:
            if running_broker(broker) is None:
                files = broker.files
                raise StackError(
                    f"Kafka broker {broker.id} exited while starting. Last lines of "
                    f"{files.log}:\n{tail(files.log)}\nand of {files.out}:\n{tail(files.out)}"
                )
        if time.monotonic() > deadline:
            hint = quorum_hint(brokers)
            ids = ", ".join(str(b.id) for b in pending)
            logs = ", ".join(str(b.files.log) for b in pending)
            raise StackError(
                f"Kafka broker(s) {ids} did not start serving in time"
                + (f": {hint}" if hint else "")
                + f"; see {logs}"
            )
        time.sleep(0.5)


def wait_external(bootstrap: str, deadline: float) -> None:
    """Until a Kafka this stack does not run answers at `bootstrap`."""
    while True:
        try:
            topic_partitions(bootstrap, timeout=2.0)
            return
        except KafkaAdminError as exc:
            error = str(exc)
        if time.monotonic() > deadline:
            raise StackError(f"Kafka did not answer in time: {error}")
        time.sleep(0.5)
