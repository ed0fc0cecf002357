"""`saga`: the operator command line."""

from __future__ import annotations

import click

from saga_cli.stack_cmd import stack

__all__ = ["cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Operate the checkout saga: local stack, services, orders and their traces."""


cli.add_command(stack)
