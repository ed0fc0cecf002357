"""`saga stack up | down | status`: the local Kafka + PostgreSQL, for development and tests."""

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


def _describe(report: dict[str, Any]) -> str:
    kafka, pg = report["kafka"], report["postgres"]
    lines = [f"stack dir  {report['stack_dir']}"]
    where = f"pid {kafka['pid']}, log {kafka['log']}" if kafka["pid"] else "not started here"
    lines.append(f"kafka      {_health(kafka['healthy'])}  {kafka['bootstrap_servers']}  ({where})")
    if kafka["error"]:
        lines.append(f"           {kafka['error']}")
    elif kafka["missing_topics"]:
        lines.append(f"           missing topics: {', '.join(kafka['missing_topics'])}")
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
def up(partitions: int | None) -> None:
    """Start the stack (reusing what runs) and create the topics.

    Waits until Kafka and every service's database accept connections, then prints where
    they are.
    """
    settings = _settings()
    try:
        report = stack_lib.up(settings, partitions=partitions, echo=click.echo)
    except stack_lib.StackError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(_describe(report))


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
    """Health of Kafka and the databases; exit status 1 if unhealthy.

    Checks the configured endpoints, so it also reports on servers that are not local.
    """
    report = stack_lib.status(_settings())
    click.echo(json.dumps(report, indent=2) if as_json else _describe(report))
    raise SystemExit(0 if report["healthy"] else 1)
