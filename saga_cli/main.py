"""`saga`: the operator command line."""

from __future__ import annotations

import os

import click

from eventing.logging import configure_logging
from saga_cli.audit_cmd import audit
from saga_cli.bench_cmd import bench
from saga_cli.catalog_cmd import seed, stock
from saga_cli.demo import demo
from saga_cli.dlq_cmd import dlq
from saga_cli.fault_cmd import fault
from saga_cli.order_cmd import order
from saga_cli.run_cmd import migrate, run
from saga_cli.stack_cmd import stack
from saga_cli.trace_cmd import trace

__all__ = ["cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Operate the checkout saga: local stack, services, orders and their traces."""
    # Logs go to stderr (stdout is for results, e.g. --json), and a command's own chatter
    # stays quiet unless asked for; `saga run` configures the services' logging itself.
    configure_logging(
        os.environ.get("SAGA_LOG_LEVEL") or "WARNING", os.environ.get("SAGA_LOG_FORMAT") or "auto"
    )


for command in (stack, run, migrate, seed, stock, order, trace, demo, dlq, fault, audit, bench):
    cli.add_command(command)


if __name__ == "__main__":
    cli()
