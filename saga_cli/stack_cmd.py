"""`saga stack up | down | status | kill-broker | start-broker`: the local Kafka + PostgreSQL,
for development, tests and failure drills."""

from __future__ import annotations

import json
from typing import Any

import click

from eventing.settings import Settings, load_settings
from saga_cli import stack as stack_lib

__all__ = ["stack"]


def _settings() -> Settings:
    try:
        return load_settings()
    except ValueError as exc:  # a malformed SAGA_* variable: say which, no traceback
        raise click.ClickException(str(exc)) from None


def _health(ok: bool) -> str:
    return "healthy" if ok else "DOWN"


def _partitions(topic: dict[str, Any]) -> str:
    # "0:1[1,2,3]": partition 0 led by broker 1, in-sync replicas 1, 2 and 3.
    return " ".join(
        f"{p['partition']}:{p['leader'] if p['leader'] >= 0 else '-'}"
        f"[{','.join(map(str, p['isr']))}]"
        for p in topic["partitions"]
    )


def _describe_kafka(kafka: dict[str, Any]) -> list[str]:
    brokers = kafka["brokers"]
    state = _health(kafka["healthy"])
    if not kafka["healthy"] and any(b["healthy"] for b in brokers):
        state = "DEGRADED"
    size = f"{len(brokers)} broker{'s' if len(brokers) != 1 else ''}"
    facts = [size if kafka["managed"] else f"{size}, not started here"]
    if kafka["quorum"] is False:
        facts.append("NO controller quorum")
    if brokers and not kafka["available"] and kafka["error"] is None:
        facts.append("some partitions cannot take writes")
    lines = [f"kafka      {state}  {kafka['bootstrap_servers']}  ({'; '.join(facts)})"]
    for b in brokers:
        where = f"pid {b['pid']}, log {b['log']}" if b["pid"] else "not running"
        if not kafka["managed"]:
            where = "external"
        lines.append(f"  broker {b['id']:<4} {_health(b['healthy']):<8} {b['address']}  ({where})")
    if kafka["error"]:
        lines.append(f"           {kafka['error']}")
        return lines
    if kafka["missing_topics"]:
        lines.append(f"           missing topics: {', '.join(kafka['missing_topics'])}")
    width = max((len(t) for t in kafka["topics"]), default=0)
    for name, topic in kafka["topics"].items():
        lines.append(
            f"  {name:<{width}}  RF {topic['replication_factor']}  "
            f"min.isr {topic['min_insync_replicas']}  leader[isr] {_partitions(topic)}"
        )
    if kafka["low_replication_topics"]:
        thin = ", ".join(kafka["low_replication_topics"])
        lines.append(f"           fewer replicas than the cluster gives new topics: {thin}")
    return lines


def _describe(report: dict[str, Any]) -> str:
    pg = report["postgres"]
    lines = [f"stack dir  {report['stack_dir']}", *_describe_kafka(report["kafka"])]
    where = f"pid {pg['pid']}, log {pg['log']}" if pg["pid"] else "not started here"
    lines.append(f"postgres   {_health(pg['healthy'])}  ({where})")
    for service, dsn in pg["databases"].items():
        error = pg["errors"].get(service)
        lines.append(f"  {service:<12} {dsn}" + (f"  <- {error}" if error else ""))
    lines.append(f"  {'admin':<12} {pg['admin_dsn']}  (SAGA_PG_ADMIN_DSN; tools and tests only)")
    return "\n".join(lines)


@click.group()
def stack() -> None:
    """Run Apache Kafka (KRaft) and PostgreSQL locally, without Docker.

    Set the SAGA_* variables to use other ports, or your own Kafka and PostgreSQL.
    """


@stack.command()
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    default=None,
    help="Partitions of new topics (default: SAGA_TOPIC_PARTITIONS, else 4).",
)
@click.option(
    "--brokers",
    type=click.Choice([str(n) for n in stack_lib.BROKER_COUNTS]),
    envvar="SAGA_KAFKA_BROKERS",
    default=None,
    help="Kafka brokers of a new stack: 1, or 3 (replication factor 3, min.insync.replicas "
    "2). Default: SAGA_KAFKA_BROKERS, else the stack's own count (1 for a new stack).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON when up.")
def up(partitions: int | None, brokers: str | None, as_json: bool) -> None:
    """Start the stack (reusing what runs, starting any broker that is down) and create the
    topics.

    Waits until every Kafka broker and every service's database accept connections, then
    prints where they are. Broker i listens on SAGA_KAFKA_PORT + 2*(i-1), its controller on
    SAGA_KAFKA_CONTROLLER_PORT + 2*(i-1). A stack keeps its size: another needs
    `saga stack down --wipe` first.
    """
    settings = _settings()
    count = int(brokers) if brokers is not None else None
    echo = (lambda text: click.echo(text, err=True)) if as_json else click.echo
    try:
        report = stack_lib.up(settings, partitions=partitions, echo=echo, brokers=count)
    except stack_lib.StackError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(report, indent=2) if as_json else _describe(report))


@stack.command()
@click.option("--wipe", is_flag=True, help="Also delete the stack dir: topics, databases, logs.")
def down(wipe: bool) -> None:
    """Stop the stack; its data is kept unless --wipe.

    Each process gets a graceful shutdown, and is killed if it is still there after 60 s.
    """
    try:
        stack_lib.down(_settings(), wipe=wipe, echo=click.echo)
    except stack_lib.StackError as exc:
        raise click.ClickException(str(exc)) from None


@stack.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def status(as_json: bool) -> None:
    """Health of each Kafka broker, each topic's leaders and in-sync replicas, and the
    databases; exit status 1 if anything is down (a cluster missing a broker included).

    Checks the configured endpoints, so it also reports on servers that are not local.
    Passwords in the DSNs are shown as ***.
    """
    report = stack_lib.status(_settings())
    click.echo(json.dumps(report, indent=2) if as_json else _describe(report))
    raise SystemExit(0 if report["healthy"] else 1)


@stack.command("kill-broker")
@click.argument("broker_id", metavar="ID", type=int)
def kill_broker(broker_id: int) -> None:
    """SIGKILL Kafka broker ID of the local stack, as a crash (no controlled shutdown).

    Its data stays; `saga stack start-broker ID` (or `saga stack up`) brings it back.
    """
    try:
        stack_lib.kill_broker(_settings(), broker_id, echo=click.echo)
    except stack_lib.StackError as exc:
        raise click.ClickException(str(exc)) from None


@stack.command("start-broker")
@click.argument("broker_id", metavar="ID", type=int)
def start_broker(broker_id: int) -> None:
    """Start Kafka broker ID of the local stack again with its data; wait until it serves."""
    try:
        stack_lib.start_broker(_settings(), broker_id, echo=click.echo)
    except stack_lib.StackError as exc:
        raise click.ClickException(str(exc)) from None
