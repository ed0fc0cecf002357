"""`saga audit [--json] [--older-than 30s] [--settle 2s]`: exit 1 on any violation."""

from __future__ import annotations

import json
import sys
import uuid

import click

from saga_cli.audit import AuditReport, IdleOrder, SchemaMissing, run_audit
from saga_cli.db import settings
from saga_cli.durations import as_seconds

__all__ = ["audit"]

_SHOWN = 100  # per section in the text report; --json has everything


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--older-than",
    "older_than_s",
    callback=as_seconds,
    metavar="DURATION",
    default="30s",
    show_default=True,
    help="A saga without progress for this long must be terminal or wait on a DLQ entry.",
)
@click.option(
    "--settle",
    "settle_s",
    callback=as_seconds,
    metavar="DURATION",
    default="2s",
    show_default=True,
    help="Re-read orders that look wrong for up to this long (services catching up) "
    "before reporting them; 0 reports the first read.",
)
@click.option(
    "--order",
    "orders",
    multiple=True,
    type=click.UUID,
    help="Audit only this order (repeatable); the per-SKU checks then run for --sku only.",
)
@click.option("--sku", "skus", multiple=True, help="With --order: also check this SKU's stock.")
def audit(
    as_json: bool,
    older_than_s: float,
    settle_s: float,
    orders: tuple[uuid.UUID, ...],
    skus: tuple[str, ...],
) -> None:
    """Check DESIGN.md's invariants across the four databases, read-only.

    No oversell per SKU; money per order at the gateway; reservations and shipments match
    the order's outcome; every idle saga is terminal or waits on a named DLQ entry; no
    record elsewhere for an order the order service does not know. Archived sagas count
    too, but for those at the edge of the archive's retention (SAGA_ARCHIVE_RETENTION_S).
    Reads SAGA_<SERVICE>_DB_DSN.
    """
    try:
        report = run_audit(
            settings(),
            older_than_s,
            settle_s,
            orders=[str(o) for o in orders] or None,
            skus=list(skus) if orders else None,
        )
    except SchemaMissing as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(report.as_dict()) if as_json else _render(report))
    sys.exit(1 if report.violations else 0)


def _render(r: AuditReport) -> str:
    out = [
        f"audited {r.orders_checked} orders and {r.skus_checked} SKUs across order, inventory, "
        f"payment and fulfillment: {len(r.violations)} violation(s), {len(r.stuck)} saga(s) "
        f"idle for {r.older_than_s:g}s or more"
    ]
    if r.violations:
        out.append("\nVIOLATIONS")
        for v in r.violations[:_SHOWN]:
            subject = f"order {v.order_id}" if v.order_id else f"sku {v.sku}"
            out.append(f"  [{v.invariant}] {subject}: {v.detail}")
        out.extend(_more(len(r.violations)))
    if r.stuck:
        out.append("\nNOT TERMINAL (oldest first)")
        out.extend(_stuck_line(s) for s in r.stuck[:_SHOWN])
        out.extend(_more(len(r.stuck)))
    if not r.violations:
        out.append("\nall invariants hold")
    else:
        out.append(
            "\nthe trace of an order tells its story: saga trace ORDER_ID; "
            "dead-lettered messages: saga dlq list"
        )
    return "\n".join(out)


def _more(n: int) -> list[str]:
    return [f"  ... and {n - _SHOWN} more: saga audit --json lists them all"] if n > _SHOWN else []


def _stuck_line(s: IdleOrder) -> str:
    lines = [f"  {s.order_id}  {s.status:<10} idle {s.idle_s:.0f}s  {s.verdict}"]
    lines += [f"      waiting for {w}" for w in s.waiting_for]
    for b in s.blocked_on:
        lines.append(
            f"      {b.dlq_id} {b.state}: {b.event_type or '(poison)'}, "
            f"{b.attempts} attempt(s){': ' + b.error if b.error else ''}"
        )
        if b.state == "dead":
            lines.append(f"        once fixed: saga dlq redrive {b.dlq_id}")
    lines += [
        f"      {u.count} unpublished outbox row(s) in {u.service} for {round(u.age_s, 1):.0f}s"
        for u in s.unsent_outbox
    ]
    return "\n".join(lines)
