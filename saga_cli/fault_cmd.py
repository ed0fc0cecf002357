"""`saga fault payment-gateway down|slow|up` and `saga fault status`: break the outside world.

The simulated gateway reads its fault state from the payment database on every call, so a
fault set here takes effect at once in every running payment service, and lapses by itself
when its time is up (a forgotten fault cannot outlive `--for`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import psycopg

from payment_svc.gateway import clear_fault, set_fault
from saga_cli.catalog import ensure_schemas
from saga_cli.db import connect, settings
from saga_cli.durations import as_seconds, format_duration
from saga_cli.queries import fault_status

__all__ = ["fault"]

_MAX_S = 24 * 3600.0


@contextmanager
def _payment_db() -> Iterator[psycopg.Connection[Any]]:
    cfg = settings()
    with connect("payment", cfg) as conn:  # first: its errors say how to start the stack
        # The fault table is part of payment's schema: create it if the service never ran.
        ensure_schemas(cfg, ("payment",))
        yield conn


def _gateway_state(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    row = fault_status(conn)
    if row is None or not row["active"]:
        return {
            "target": "payment-gateway",
            "state": "up",
            "latency_ms": 0,
            "until": None,
            "remaining_s": 0.0,
        }
    return {
        "target": "payment-gateway",
        "state": row["mode"],
        "latency_ms": row["latency_ms"] if row["mode"] == "slow" else 0,
        "until": row["until"].isoformat(),
        "remaining_s": round(row["remaining_s"], 1),
    }


def _describe(s: dict[str, Any]) -> str:
    if s["state"] == "up":
        return "payment-gateway: up (no fault injected)"
    left = format_duration(s["remaining_s"])
    until = f"until {s['until'][11:19]} UTC ({left} left); clear now: saga fault payment-gateway up"
    if s["state"] == "down":
        return f"payment-gateway: DOWN, every charge and refund fails transiently, {until}"
    return f"payment-gateway: SLOW, {s['latency_ms']} ms per call, {until}"


def _check_for(for_s: float) -> float:
    if not 0 < for_s <= _MAX_S:
        raise click.BadParameter("give a duration above 0 and at most 24h", param_hint="--for")
    return for_s


@click.group()
def fault() -> None:
    """Inject faults into the simulated outside world (for demos and tests).

    The gateway's state lives in the payment database (SAGA_PAYMENT_DB_DSN).
    """


@fault.group("payment-gateway")
def payment_gateway() -> None:
    """The simulated payment gateway: take it down, slow it, bring it back."""


@payment_gateway.command()
@click.option(
    "--for",
    "for_s",
    callback=as_seconds,
    metavar="DURATION",
    default="30s",
    show_default=True,
    help="How long the gateway stays down (500ms, 30s, 5m).",
)
def down(for_s: float) -> None:
    """Make every charge and refund fail as if the gateway were unreachable."""
    with _payment_db() as conn:
        set_fault(conn, "down", _check_for(for_s))
        click.echo(_describe(_gateway_state(conn)))


@payment_gateway.command()
@click.option(
    "--latency",
    callback=as_seconds,
    metavar="DURATION",
    required=True,
    help="Delay added to every call (2s).",
)
@click.option(
    "--for",
    "for_s",
    callback=as_seconds,
    metavar="DURATION",
    default="30s",
    show_default=True,
    help="How long the gateway stays slow.",
)
def slow(latency: float, for_s: float) -> None:
    """Add latency to every gateway call."""
    if not 0 < latency <= 600:
        raise click.BadParameter("give a latency above 0 and at most 10m", param_hint="--latency")
    with _payment_db() as conn:
        set_fault(conn, "slow", _check_for(for_s), latency_ms=round(latency * 1000))
        click.echo(_describe(_gateway_state(conn)))


@payment_gateway.command()
def up() -> None:
    """Clear any fault: the gateway answers normally again."""
    with _payment_db() as conn:
        clear_fault(conn)
    click.echo(
        "payment-gateway: up (fault cleared); retrying charges and refunds go through "
        "on their next attempt, dead-lettered ones need `saga dlq redrive`"
    )


@fault.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Which faults are active now."""
    with _payment_db() as conn:
        s = _gateway_state(conn)
    click.echo(json.dumps({"faults": [s]}) if as_json else _describe(s))
