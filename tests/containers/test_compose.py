"""compose.yaml on the real Docker engine: the 3-broker KRaft cluster, PostgreSQL and two
instances of each service come up healthy from the locally built images; one order goes down
every path through each order instance's published API port; `saga trace --json`, `saga
audit`, `saga dlq list` and `saga stack status`, run in the tools container as the README
says, see each saga end as designed; and `down -v` leaves nothing behind.

Run it with `make compose-test` (which builds the images first) or
`pytest -m containers tests/containers/test_compose.py`. It takes two to three minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.containers import infra

pytestmark = pytest.mark.containers

COMPOSE_FILE = infra.ROOT / "compose.yaml"
ENV_FILE = infra.ROOT / "deploy" / "images" / "local.env"
SERVICES = ("order", "inventory", "payment", "fulfillment")
INFRA = ("kafka-1", "kafka-2", "kafka-3", "postgres")
REPLICAS = 2
UP_TIMEOUT_S = 600.0
HEALTHY_TIMEOUT_S = 300.0
TERMINAL_TIMEOUT_S = 120.0
TERMINAL = ("COMPLETED", "CANCELLED")

# One order per path, as `saga demo` sends them, with the end each must reach and the events
# that tell its story (producer order as the design table gives it).
PATHS: dict[str, tuple[dict[str, Any], str, str | None, set[str]]] = {
    "success": (
        {"items": [{"sku": "WIDGET-1", "qty": 2}], "card_token": "tok_ok", "country": "US"},
        "COMPLETED",
        None,
        {"OrderPlaced", "InventoryReserved", "PaymentCharged", "ShipmentScheduled"},
    ),
    "card declined": (
        {"items": [{"sku": "GADGET-2", "qty": 1}], "card_token": "tok_declined", "country": "US"},
        "CANCELLED",
        "payment_declined",
        {"OrderPlaced", "InventoryReserved", "PaymentFailed", "InventoryReleased"},
    ),
    "cannot ship": (
        {"items": [{"sku": "GADGET-2", "qty": 1}], "card_token": "tok_ok", "country": "ZZ"},
        "CANCELLED",
        "fulfillment_failed",
        {
            "OrderPlaced",
            "InventoryReserved",
            "PaymentCharged",
            "FulfillmentFailed",
            "PaymentRefunded",
            "InventoryReleased",
        },
    ),
    "out of stock": (
        # SOLDOUT-9 is seeded with no stock.
        {"items": [{"sku": "SOLDOUT-9", "qty": 1}], "card_token": "tok_ok", "country": "US"},
        "CANCELLED",
        "out_of_stock",
        {"OrderPlaced", "InventoryRejected"},
    ),
}


def _compose_command() -> list[str]:
    # Debian packages compose v1 (docker-compose); elsewhere the v2 plugin may be all there is.
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return ["docker", "compose"]


def _two_free_ports(start: int = 18080) -> tuple[int, int]:
    """Two consecutive free loopback ports from `start` on: the host range of the order
    service's two instances (compose gives each instance one port of the range)."""
    for port in range(start, start + 200, 2):
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port, port + 1
    raise AssertionError(f"no two consecutive free ports in {start}..{start + 200}")


@dataclass
class Compose:
    """One compose project on the engine, and the commands the README documents against it."""

    project: str
    env: dict[str, str]
    api_ports: tuple[int, int]

    def run(self, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        cmd = [*_compose_command(), "-p", self.project, "-f", str(COMPOSE_FILE)]
        cmd += ["--env-file", str(ENV_FILE), *args]
        try:
            return subprocess.run(
                cmd,
                cwd=infra.ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"`{' '.join(cmd)}` did not finish within {timeout:.0f} s; output so far:\n"
                f"{exc.stdout!r}\n{exc.stderr!r}\n{self.diagnosis()}"
            ) from None

    def ok(self, *args: str, timeout: float = 180.0) -> str:
        done = self.run(*args, timeout=timeout)
        assert done.returncode == 0, (
            f"`docker-compose {' '.join(args)}` exited {done.returncode}:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{self.diagnosis()}"
        )
        return done.stdout

    def tool(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """`docker-compose run --rm tools ARGS...`: the CLI in a container on the network."""
        return self.run("run", "--rm", "-T", "tools", *args, timeout=timeout)

    def containers(self) -> list[dict[str, str]]:
        """service, state and status ("Up 3 minutes (healthy)") of every container."""
        fmt = '{{.Label "com.docker.compose.service"}}\t{{.State}}\t{{.Status}}\t{{.Names}}'
        label = f"label=com.docker.compose.project={self.project}"
        out = subprocess.run(
            ["docker", "ps", "-a", "--filter", label, "--format", fmt],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        rows = [line.split("\t") for line in out.splitlines() if line.strip()]
        return [dict(zip(("service", "state", "status", "name"), r, strict=True)) for r in rows]

    def diagnosis(self) -> str:
        """Every container's status and the last log lines of those not healthy."""
        lines = ["containers:"]
        try:
            rows = self.containers()
        except (subprocess.SubprocessError, OSError) as exc:
            return f"containers: cannot list them: {exc}"
        for row in rows:
            lines.append(f"  {row['name']}: {row['status']}")
        for row in rows:
            if "(healthy)" in row["status"] or row["status"].startswith("Exited (0)"):
                continue
            logs = subprocess.run(
                ["docker", "logs", "--tail", "25", row["name"]],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            lines.append(f"--- last lines of {row['name']}:")
            lines += ["  " + x for x in (logs.stdout + logs.stderr).splitlines()[-25:]]
        return "\n".join(lines)

    def leftovers(self) -> list[str]:
        """Containers, volumes and networks of the project still on the engine."""
        label = f"label=com.docker.compose.project={self.project}"
        found = []
        for kind in (["ps", "-a"], ["volume", "ls"], ["network", "ls"]):
            out = subprocess.run(
                ["docker", *kind, "-q", "--filter", label],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            ).stdout.split()
            found += [f"{kind[0]} {x}" for x in out]
        return found


def _wait_healthy(compose: Compose) -> None:
    """Until every long-lived container reports healthy and the topic set-up has exited 0."""
    want = {**{s: 1 for s in INFRA}, **{s: REPLICAS for s in SERVICES}}
    deadline = time.monotonic() + HEALTHY_TIMEOUT_S
    while True:
        rows = compose.containers()
        healthy: dict[str, int] = {}
        for row in rows:
            if "(healthy)" in row["status"]:
                healthy[row["service"]] = healthy.get(row["service"], 0) + 1
        topics = [r for r in rows if r["service"] == "topics"]
        # `restart: unless-stopped` brings a crashed service back, so an exited container
        # is either the finished topic set-up or one that will not come back.
        failed = [
            r
            for r in rows
            if r["state"] == "exited"
            and not (r["service"] == "topics" and r["status"].startswith("Exited (0)"))
        ]
        if failed:
            pytest.fail(
                f"containers exited: {[r['name'] for r in failed]}\n{compose.diagnosis()}",
                pytrace=False,
            )
        if healthy == want and topics:
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"not every container was healthy within {HEALTHY_TIMEOUT_S:.0f} s: wanted "
                f"{want}, healthy {healthy}\n{compose.diagnosis()}",
                pytrace=False,
            )
        time.sleep(2)


@pytest.fixture(scope="module")
def compose() -> Iterator[Compose]:
    """compose.yaml up with the local images, healthy, seeded; `down -v` afterwards."""
    names = infra.image_names()
    infra.require_engine_and_images(list(names.values()))
    ports = _two_free_ports()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGA_")}
    env.update(names)
    env["CHECKOUT_API_PORTS"] = f"{ports[0]}-{ports[1]}"
    c = Compose(project=f"sagatest{uuid.uuid4().hex[:8]}", env=env, api_ports=ports)
    started = time.monotonic()
    try:
        c.ok("up", "-d", timeout=UP_TIMEOUT_S)
        _wait_healthy(c)
        print(f"\ncompose: {c.project} up and healthy in {time.monotonic() - started:.0f} s")
        seeded = c.tool("saga", "seed")
        assert seeded.returncode == 0, f"saga seed failed:\n{seeded.stdout}\n{seeded.stderr}"
        assert "SOLDOUT-9" in seeded.stdout, seeded.stdout
        yield c
    finally:
        stopping = time.monotonic()
        down = c.run("down", "-v", "--remove-orphans", "-t", "60", timeout=300)
        left = c.leftovers()
        print(f"compose: down in {time.monotonic() - stopping:.0f} s")
        assert down.returncode == 0 and not left, (
            f"`down -v` exited {down.returncode} and left {left}; remove them with "
            f"`docker-compose -p {c.project} down -v`\n{down.stderr[-2000:]}"
        )


@pytest.fixture(scope="module")
def placed(compose: Compose) -> dict[str, tuple[str, str]]:
    """Each path's order placed over HTTP, through both instances' ports; waited to its end.
    Returns path -> (order_id, final status)."""
    orders: dict[str, tuple[str, str]] = {}
    urls = [f"http://127.0.0.1:{p}" for p in compose.api_ports]
    with httpx.Client(timeout=10.0) as http:
        for i, (path, (spec, _, _, _)) in enumerate(PATHS.items()):
            body = {
                "customer_id": f"compose-{path.replace(' ', '-')}",
                "items": spec["items"],
                "card_token": spec["card_token"],
                "ship_to": {"country": spec["country"]},
            }
            url = urls[i % len(urls)]  # both order instances take orders
            resp = http.post(f"{url}/orders", json=body)
            assert resp.status_code == 202, f"POST {url}/orders: {resp.status_code} {resp.text}"
            orders[path] = (resp.json()["order_id"], "")
        deadline = time.monotonic() + TERMINAL_TIMEOUT_S
        for path, (order_id, _) in orders.items():
            while True:
                resp = http.get(f"{urls[0]}/orders/{order_id}")
                status = resp.json().get("status") if resp.status_code == 200 else None
                if status in TERMINAL:
                    orders[path] = (order_id, str(status))
                    break
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"order {order_id} ({path}) was {status!r} after "
                        f"{TERMINAL_TIMEOUT_S:.0f} s, not terminal\n{compose.diagnosis()}",
                        pytrace=False,
                    )
                time.sleep(0.3)
    return orders


def test_every_long_lived_container_is_healthy_with_two_instances_per_service(
    compose: Compose,
) -> None:
    rows = compose.containers()
    per_service: dict[str, int] = {}
    for row in rows:
        if row["state"] == "running":
            assert "(healthy)" in row["status"], f"{row['name']}: {row['status']}"
            per_service[row["service"]] = per_service.get(row["service"], 0) + 1
    assert per_service == {**{s: 1 for s in INFRA}, **{s: REPLICAS for s in SERVICES}}
    # Each order instance publishes its own port of the range.
    with httpx.Client(timeout=5.0) as http:
        for port in compose.api_ports:
            assert http.get(f"http://127.0.0.1:{port}/healthz").status_code == 200


def test_kafka_runs_three_brokers_and_the_topics_are_replicated(compose: Compose) -> None:
    done = compose.tool("saga", "stack", "status", "--json")
    assert done.returncode == 0, done.stderr
    kafka = json.loads(done.stdout)["kafka"]
    assert sorted(b["id"] for b in kafka["brokers"]) == [1, 2, 3], kafka["brokers"]
    assert kafka["available"] and not kafka["missing_topics"], kafka
    for name, topic in kafka["topics"].items():
        assert (topic["replication_factor"], topic["min_insync_replicas"]) == (3, 2), name
        assert all(len(p["isr"]) == 3 for p in topic["partitions"]), (name, topic)


def test_every_path_ends_as_designed_in_saga_trace(
    compose: Compose, placed: dict[str, tuple[str, str]]
) -> None:
    # One tools container for all the traces: each `run` costs a container start.
    ids = [order_id for order_id, _ in placed.values()]
    script = 'for id in "$@"; do saga trace "$id" --json || exit $?; echo "<<end>>"; done'
    done = compose.tool("sh", "-c", script, "sh", *ids)
    assert done.returncode == 0, f"saga trace failed:\n{done.stdout}\n{done.stderr}"
    traces = [json.loads(t) for t in done.stdout.split("<<end>>") if t.strip()]
    assert [t["order_id"] for t in traces] == ids
    for (path, (order_id, http_status)), trace in zip(placed.items(), traces, strict=True):
        _, status, reason, events = PATHS[path]
        seen = {e["event_type"] for e in trace["events"]}
        assert (trace["status"], trace["cancel_reason"]) == (status, reason), (path, trace)
        assert http_status == status, (path, order_id, http_status)
        assert seen == events, f"{path} ({order_id}): events {sorted(seen)}"


def test_audit_and_dlq_are_clean_after_the_orders(
    compose: Compose, placed: dict[str, tuple[str, str]]
) -> None:
    audit = compose.tool("saga", "audit", "--json")
    assert audit.returncode == 0, f"saga audit found violations:\n{audit.stdout}\n{audit.stderr}"
    report = json.loads(audit.stdout)
    assert report["orders_checked"] >= len(placed), report
    assert report["violations"] == [] and report["stuck"] == [], report
    dlq = compose.tool("saga", "dlq", "list", "--json")
    assert dlq.returncode == 0, dlq.stderr
    assert json.loads(dlq.stdout)["entries"] == [], dlq.stdout
