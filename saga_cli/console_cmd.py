"""`saga console [--host 127.0.0.1] [--port 8090]`: the web console."""

from __future__ import annotations

import click
import uvicorn

from saga_cli.console import create_app
from saga_cli.db import settings

__all__ = ["console"]


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="SAGA_CONSOLE_HOST",
    help="Address to listen on. The console has no login: keep it on loopback.",
)
@click.option(
    "--port",
    default=8090,
    show_default=True,
    type=click.IntRange(1, 65535),
    envvar="SAGA_CONSOLE_PORT",
)
@click.option(
    "--allow-host",
    "extra_hosts",
    multiple=True,
    metavar="NAME",
    help="Another Host name to answer to (e.g. behind an SSH tunnel's own name); repeatable.",
)
def console(host: str, port: int, extra_hosts: tuple[str, ...]) -> None:
    """Web console: find orders, their timelines, stuck sagas, dead letters, live numbers.

    Reads the same databases as `saga trace` and `saga dlq` (SAGA_<SERVICE>_DB_DSN).
    """
    cfg = settings()
    app = create_app(cfg, bind_host=host, extra_hosts=extra_hosts)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"saga console on http://{shown}:{port}/  (Ctrl-C to stop)", err=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(
            f"warning: listening on {host}: anyone who reaches it can read orders and "
            f"redrive dead letters (there is no login)",
            err=True,
        )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        # One operator's page: no need for uvicorn's default of 2048 pending connections.
        backlog=64,
    )
