"""`saga run SERVICE|all` and `saga migrate`."""

from __future__ import annotations

import sys

import click

from eventing.maintenance import prepare_database
from eventing.runtime import run_service
from eventing.settings import SERVICES
from saga_cli.db import settings
from saga_cli.services import spec_for
from saga_cli.supervisor import supervise

__all__ = ["migrate", "run"]


@click.command()
@click.argument("service", type=click.Choice([*SERVICES, "all"]))
def run(service: str) -> None:
    """Run one service (long-lived), or `all` four under a supervisor."""
    if service == "all":
        sys.exit(supervise(SERVICES, color=sys.stdout.isatty()))
    cfg = settings()
    run_service(spec_for(service), cfg)


@click.command()
@click.argument("service", type=click.Choice([*SERVICES, "all"]), default="all")
def migrate(service: str) -> None:
    """Apply pending schema migrations (services also do this at start)."""
    cfg = settings()
    for name in SERVICES if service == "all" else (service,):
        applied = prepare_database(cfg.dsn(name), spec_for(name), cfg)
        click.echo(f"{name}: {applied} migration(s) applied")
