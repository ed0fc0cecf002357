"""Kafka and PostgreSQL from testcontainers, for the suites run with SAGA_TEST_INFRA=containers.

`SAGA_TEST_INFRA` chooses where the integration, e2e and chaos suites get their
infrastructure:

    local (default)  the local stack, `saga stack up` (`make test` starts it)
    containers       one Kafka broker (KRaft) and one PostgreSQL in containers, started for the
                     test session from the images of `make images` and removed after it

In containers mode the session exports the SAGA_* variables that point at the containers'
mapped ports on 127.0.0.1, so every service process and `saga` command a test starts
inherits them, and SAGA_STACK_DIR points at a scratch dir: nothing touches the local stack.
Tests that drive the local stack itself (start, stop or crash its processes) are skipped in
this mode, with the reason.

The images are local (deploy/images/local.env names them; CHECKOUT_KAFKA_IMAGE and
CHECKOUT_POSTGRES_IMAGE choose others, e.g. the public apache/kafka:4.1.1 and postgres:15,
which take the same settings). testcontainers' reaper (Ryuk) would come from Docker Hub,
so it is off: the containers are removed by context managers, also when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

from eventing.kafka.admin import broker_answers
from eventing.settings import SERVICES, Settings, load_settings
from saga_cli import stack as stack_lib
from saga_cli.stack.kafka import new_cluster_id
from tests.ports import free_port

if TYPE_CHECKING:
    # Imported where used, so that a run on the local stack needs no testcontainers.
    from testcontainers.core.container import DockerContainer

__all__ = [
    "INFRA_VARIABLE",
    "LOCAL_STACK_TESTS",
    "ROOT",
    "containers_requested",
    "containers_stack",
    "docker_problem",
    "image_names",
    "missing_images",
    "skip_local_stack_tests",
]

ROOT = Path(__file__).resolve().parents[2]
INFRA_VARIABLE = "SAGA_TEST_INFRA"
_MODES = ("local", "containers")

# Test files that need the local stack's own processes, and why: they have no meaning
# against containers.
_DRIVES = "drives the local stack's own processes"
LOCAL_STACK_TESTS = {
    "tests/integration/test_stack.py": f"{_DRIVES} (saga stack up/down/status)",
    "tests/integration/test_stack_cluster.py": f"{_DRIVES} (a 3-broker stack, kill-broker)",
    "tests/chaos/test_brokers.py": f"{_DRIVES} (kills and restarts its brokers)",
    "tests/chaos/test_chaos.py": f"{_DRIVES} (crashes its Kafka and PostgreSQL)",
    "tests/e2e/test_soak.py": "measures the CPU of the local stack's Kafka and PostgreSQL "
    "processes, found by their pid files",
}

START_TIMEOUT_S = 180.0
KAFKA_CONTAINER_PORT = 9092
PG_CONTAINER_PORT = 5432
# The local stack's ports (brokers 1-3, controllers, PostgreSQL): a container must not take
# them, or the settings would take the container for the local stack.
_STACK_PORTS = {*range(19092, 19098), 15432}


def containers_requested() -> bool:
    """Whether SAGA_TEST_INFRA asks for containers; any value but the two is a usage error."""
    mode = os.environ.get(INFRA_VARIABLE, "") or "local"
    if mode not in _MODES:
        raise pytest.UsageError(
            f"{INFRA_VARIABLE}={mode!r}: use 'local' (the local stack, the default) or "
            "'containers' (Kafka and PostgreSQL from testcontainers)"
        )
    return mode == "containers"


def image_names() -> dict[str, str]:
    """The images to run: deploy/images/local.env, each overridable by its variable."""
    names: dict[str, str] = {}
    for line in (ROOT / "deploy" / "images" / "local.env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.lstrip().startswith("#"):
            names[key.strip()] = os.environ.get(key.strip()) or value.strip()
    return names


def docker_problem() -> str | None:
    """Why the Docker engine cannot be used, or None when `docker info` answers."""
    try:
        done = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except FileNotFoundError:
        return "the docker command is not installed"
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30 s"
    if done.returncode != 0:
        return f"no Docker engine answers: {done.stderr.strip() or done.stdout.strip()}"
    return None


def missing_images(names: list[str]) -> list[str]:
    return [
        n
        for n in names
        if subprocess.run(
            ["docker", "image", "inspect", n], capture_output=True, timeout=30, check=False
        ).returncode
        != 0
    ]


def require_engine_and_images(names: list[str]) -> None:
    """Fail (not skip: the run asked for containers) saying what to do when either is missing."""
    problem = docker_problem()
    if problem:
        pytest.fail(
            f"{INFRA_VARIABLE}=containers needs a Docker engine: {problem}. "
            "`make images` installs and starts one (deploy/images/engine.sh).",
            pytrace=False,
        )
    missing = missing_images(names)
    if missing:
        pytest.fail(
            f"images not built: {', '.join(missing)}; run `make images` "
            "(deploy/images/build.sh; a few minutes the first time, seconds after).",
            pytrace=False,
        )


def skip_local_stack_tests(items: list[pytest.Item]) -> None:
    """In containers mode, skip the tests of LOCAL_STACK_TESTS, saying why and where they run."""
    if not containers_requested():
        return
    for item in items:
        path = Path(str(item.fspath)).resolve()
        for rel, why in LOCAL_STACK_TESTS.items():
            if path == ROOT / rel:
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"{why}; {INFRA_VARIABLE}=containers has no local stack: run it "
                        "with `make test`"
                    )
                )


def _free_port() -> int:
    # Ephemeral ports are never the stack's, but check: a clash would make the settings
    # believe the container is the local stack.
    while True:
        port = free_port()
        if port not in _STACK_PORTS:
            return port


def _wait(
    what: str, ready: Callable[[], str | None], container: DockerContainer, timeout: float
) -> None:
    """Until ready() returns None (it returns why not yet), or fail with the container's logs."""
    deadline = time.monotonic() + timeout
    why = "not asked yet"
    while time.monotonic() < deadline:
        container.reload()
        if container.status in ("exited", "dead"):
            break
        why = ready() or ""
        if not why:
            return
        time.sleep(0.5)
    out, err = container.get_logs()
    logs = (out + err).decode(errors="replace").splitlines()[-40:]
    pytest.fail(
        f"{what} in container {container.get_container_id()[:12]} ({container.image}, "
        f"status {container.status}) was not ready within {timeout:.0f} s: {why}. "
        "Its last log lines:\n  " + "\n  ".join(logs),
        pytrace=False,
    )


def _kafka_env(port: int) -> dict[str, str]:
    """One KRaft node (broker + controller) advertising 127.0.0.1:port, configured like the
    1-broker local stack (saga_cli/stack/kafka.py)."""
    return {
        # Kafka's id form, made as the local stack makes it.
        "CLUSTER_ID": new_cluster_id(),
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_LISTENERS": f"PLAINTEXT://:{KAFKA_CONTAINER_PORT},CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_LOG_DIRS": "/var/lib/kafka/data",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        # One broker: every internal topic at one replica.
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "16",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS": "8",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        # Tests start consumer groups constantly: no 3 s wait for more members.
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_NUM_NETWORK_THREADS": "2",
        "KAFKA_NUM_IO_THREADS": "4",
        "KAFKA_HEAP_OPTS": "-Xms128m -Xmx512m",
    }


def _start_kafka(image: str) -> tuple[DockerContainer, str]:
    from testcontainers.core.container import DockerContainer

    # The broker must advertise the address clients use, the host's mapped port, which is
    # known only once bound: choose it first, and choose again if another process took it.
    for attempt in range(3):
        port = _free_port()
        container = DockerContainer(image, env=_kafka_env(port))
        # Loopback only: the broker is for this machine's tests.
        container.ports[f"{KAFKA_CONTAINER_PORT}/tcp"] = ("127.0.0.1", port)  # type: ignore[assignment]
        try:
            container.start()
        except Exception as exc:
            with contextlib.suppress(Exception):
                container.stop()
            clash = "port is already allocated" in str(exc) or "address already in use" in str(exc)
            if clash and attempt < 2:
                continue
            raise
        return container, f"127.0.0.1:{port}"
    raise AssertionError("unreachable: the last attempt returns or raises")


@contextlib.contextmanager
def _kafka(image: str) -> Iterator[str]:
    """One Kafka node in a container; yields its bootstrap address on 127.0.0.1."""
    container, address = _start_kafka(image)
    try:
        _wait(
            f"Kafka at {address}",
            lambda: None if broker_answers(address) else "no ApiVersions answer yet",
            container,
            START_TIMEOUT_S,
        )
        yield address
    finally:
        container.stop()


@contextlib.contextmanager
def _postgres(image: str) -> Iterator[int]:
    """PostgreSQL with the four roles and databases; yields its port on 127.0.0.1."""
    from testcontainers.core.container import DockerContainer

    container = (
        DockerContainer(image, env={"POSTGRES_PASSWORD": "postgres"})
        # The local stack's settings, and durability on (the outbox and inbox rely on it).
        .with_command(
            "postgres -c max_connections=200 -c shared_buffers=256MB -c fsync=on "
            "-c synchronous_commit=on -c max_wal_size=2GB"
        )
        # Built into the local image, mounted for the public postgres:15 alike.
        .with_volume_mapping(
            str(ROOT / "deploy" / "postgres-init.sql"), "/docker-entrypoint-initdb.d/10-saga.sql"
        )
        .with_kwargs(shm_size="256m")
    )
    container.ports[f"{PG_CONTAINER_PORT}/tcp"] = ("127.0.0.1",)  # type: ignore[assignment]
    with container:
        port = container.get_exposed_port(PG_CONTAINER_PORT)

        def ready() -> str | None:
            # The last role of the init script answering over TCP: the script has run and
            # the real server (not the socket-only one of the init phase) is up.
            try:
                with psycopg.connect(_dsn("fulfillment", port), connect_timeout=3):
                    return None
            except psycopg.Error as exc:
                return str(exc).strip() or type(exc).__name__

        _wait(f"PostgreSQL at 127.0.0.1:{port}", ready, container, START_TIMEOUT_S)
        yield port


def _dsn(service: str, port: int) -> str:
    role = f"{service}_svc"
    return f"postgresql://{role}:{role}@127.0.0.1:{port}/{service}_db"


@contextlib.contextmanager
def _exported(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the session; restore the previous values after it."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in before.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@contextlib.contextmanager
def containers_stack(scratch: Path) -> Iterator[Settings]:
    """Start Kafka and PostgreSQL containers, export the SAGA_* variables that reach them,
    create the topics as `saga stack up` does for external servers; yield the settings.
    Everything is removed on the way out, whatever happened."""
    names = image_names()
    kafka_image, pg_image = names["CHECKOUT_KAFKA_IMAGE"], names["CHECKOUT_POSTGRES_IMAGE"]
    require_engine_and_images([kafka_image, pg_image])
    # Read when the first container starts. Ryuk's image is on Docker Hub, out of reach.
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    started = time.monotonic()
    with _postgres(pg_image) as pg_port, _kafka(kafka_image) as bootstrap:
        env = {
            "SAGA_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "SAGA_PG_ADMIN_DSN": f"postgresql://postgres:postgres@127.0.0.1:{pg_port}/postgres",
            **{f"SAGA_{s.upper()}_DB_DSN": _dsn(s, pg_port) for s in SERVICES},
            # Not the local stack's dir: the settings read (and some tests write) files there.
            "SAGA_STACK_DIR": str(scratch / "stack"),
        }
        with _exported(env):
            settings = load_settings()
            assert not stack_lib.kafka_is_local(settings), settings.kafka_bootstrap_servers
            assert not stack_lib.postgres_is_local(settings), settings.db_dsns
            # External servers: `up` starts nothing, waits for both, creates the topics.
            stack_lib.up(settings)
            print(
                f"\ncontainers: Kafka {bootstrap} ({kafka_image}), PostgreSQL "
                f"127.0.0.1:{pg_port} ({pg_image}), ready in {time.monotonic() - started:.0f} s"
            )
            yield settings
