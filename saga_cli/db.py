"""Connections from the CLI to the service databases, with errors an operator can act on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import psycopg

from eventing.settings import Settings, load_settings

__all__ = ["connect", "settings"]


def settings() -> Settings:
    try:
        return load_settings()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def connect(service: str, cfg: Settings | None = None) -> Iterator[psycopg.Connection[Any]]:
    cfg = cfg or settings()
    dsn = cfg.dsn(service)
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise click.ClickException(
            f"cannot reach the {service} database ({_redact(dsn)}): {str(exc).strip()}\n"
            f"Start the local stack with `saga stack up`, or set SAGA_{service.upper()}_DB_DSN."
        ) from None
    with conn:
        yield conn


def _redact(dsn: str) -> str:
    if "://" in dsn and "@" in dsn:
        scheme, rest = dsn.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return dsn
