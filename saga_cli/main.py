"""`saga`: the operator command line."""

from __future__ import annotations

import click

from eventing.logging import configure_logging
from eventing.settings import log_format, log_level
from saga_cli.audit_cmd import audit
from saga_cli.bench_cmd import bench
from saga_cli.catalog_cmd import seed, stock
from saga_cli.console_cmd import console
from saga_cli.demo import demo
from saga_cli.dlq_cmd import dlq
from saga_cli.fault_cmd import fault
from saga_cli.order_cmd import order
from saga_cli.run_cmd import migrate, run
from saga_cli.schema_cmd import schema
from saga_cli.simulate_cmd import simulate
from saga_cli.stack_cmd import stack
from saga_cli.trace_cmd import trace

__all__ = ["cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="checkout-saga", prog_name="saga")
def cli() -> None:
    """Operate the checkout saga: local stack, services, orders and their traces."""
    # Logs go to stderr (stdout is for results, e.g. --json), and a command's own chatter
    # stays quiet unless asked for; `saga run` configures the services' logging itself.
    try:
        configure_logging(log_level("WARNING"), log_format())
    except ValueError as exc:  # a malformed SAGA_LOG_*: say which, no traceback
        raise click.ClickException(str(exc)) from None


for command in (
    stack,
    run,
    migrate,
    seed,
    stock,
    order,
    trace,
    demo,
    dlq,
    fault,
    audit,
    bench,
    simulate,
    schema,
    console,
):
    cli.add_command(command)


if __name__ == "__main__":
    cli()
