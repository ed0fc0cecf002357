"""`saga run SERVICE|all` and `saga migrate`."""

from __future__ import annotations

import json
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
@click.option(
    "--instances",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes per service, in one consumer group, supervised (restarted if they die).",
)
def run(service: str, instances: int) -> None:
    """Run one service (long-lived), or `all` four under a supervisor.

    With --instances N each service runs as N processes that share its consumer group,
    its database and (for order) the checkout API's port. A service that stops because
    something failed exits with status 1.

    Configured by the SAGA_* variables (README, "Environment variables"): among them
    SAGA_KAFKA_BOOTSTRAP_SERVERS, SAGA_<SERVICE>_DB_DSN, SAGA_HTTP_HOST/PORT (order),
    SAGA_METRICS_PORT, the retention and retry settings, SAGA_LOG_LEVEL/FORMAT, and
    OTEL_EXPORTER_OTLP_ENDPOINT for traces.
    """
    if service == "all" or instances > 1:
        names = SERVICES if service == "all" else (service,)
        sys.exit(supervise(names, color=sys.stdout.isatty(), instances=instances))
    cfg = settings()
    failure = run_service(spec_for(service), cfg)
    if failure:
        sys.exit(1)


@click.command()
@click.argument("service", type=click.Choice([*SERVICES, "all"]), default="all")
@click.option("--json", "as_json", is_flag=True, help="Print migrations applied per service.")
def migrate(service: str, as_json: bool) -> None:
    """Apply pending schema migrations and make the partitions due now (services also do
    this at start). Reaches each service's SAGA_<SERVICE>_DB_DSN."""
    cfg = settings()
    applied = {}
    for name in SERVICES if service == "all" else (service,):
        applied[name] = prepare_database(cfg.dsn(name), spec_for(name), cfg)
        if not as_json:
            click.echo(f"{name}: {applied[name]} migration(s) applied")
    if as_json:
        click.echo(json.dumps({"migrations_applied": applied}))
