"""`saga dlq list | show ID | redrive (ID | --all)`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from eventing.settings import SERVICES
from saga_cli.db import settings
from saga_cli.dlq import DlqId, DlqIdError, Redrive, list_entries, redrive_all, redrive_one
from saga_cli.dlq import show_entry as show_dlq_entry

__all__ = ["dlq"]

_SERVICE = click.Choice(SERVICES)


def _dlq_id(value: str) -> DlqId:
    try:
        return DlqId.parse(value)
    except DlqIdError as exc:
        raise click.BadParameter(str(exc), param_hint="ID") from None


def _short(text: str | None, width: int) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


@click.group()
def dlq() -> None:
    """Dead-lettered messages of the four services: inspect them and put them back.

    Each service keeps its own, in its database (SAGA_<SERVICE>_DB_DSN).
    """


@dlq.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--service", type=_SERVICE, help="Only this service's entries.")
@click.option("--all", "include_retrying", is_flag=True, help="Include messages still retrying.")
def list_cmd(as_json: bool, service: str | None, include_retrying: bool) -> None:
    """Dead entries of every service (oldest first per service)."""
    services = (service,) if service else SERVICES
    entries, errors = list_entries(settings(), services, include_retrying)
    if as_json:
        click.echo(json.dumps({"entries": entries, "errors": errors}))
    else:
        _print_list(entries, include_retrying)
    for svc, err in errors.items():
        click.echo(f"warning: {svc} not listed: {err}", err=True)
    if errors:
        sys.exit(1)


def _print_list(entries: list[dict[str, Any]], include_retrying: bool) -> None:
    if not entries:
        what = "dead or retrying" if include_retrying else "dead"
        click.echo(f"no {what} entries: the DLQ is empty")
        return
    click.echo(
        f"{'ID':<15} {'STATE':<8} {'ORDER':<36}  {'EVENT':<18} {'KIND':<12} {'TRIES':>5}  "
        f"{'LAST FAILED (UTC)':<19}  SOURCE / ERROR"
    )
    for e in entries:
        last = (e["last_failed_at"] or "")[:19].replace("T", " ")
        click.echo(
            f"{e['id']:<15} {e['state']:<8} {e['order_id'] or '-':<36}  "
            f"{e['event_type'] or '(poison)':<18} {e['error_kind'] or '-':<12} "
            f"{e['attempts']:>5}  {last:<19}  "
            f"{e['source_topic']}/{e['source_partition']}@{e['source_offset']}\n"
            f"{'':<15} {_short(e['error'], 120)}"
        )
    dead = sum(1 for e in entries if e["state"] == "dead")
    click.echo(
        f"\n{dead} dead entr{'y' if dead == 1 else 'ies'}. "
        "Details: saga dlq show ID; once the cause is fixed: saga dlq redrive ID (or --all)"
    )


@dlq.command("show")
@click.argument("entry_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(entry_id: str, as_json: bool) -> None:
    """One entry: the error, its history and the original message, untouched."""
    try:
        e = show_dlq_entry(settings(), _dlq_id(entry_id))
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(e))
        return
    m = e["message"]
    lines = [
        f"entry          {e['id']}  ({e['state']})",
        f"order          {e['order_id'] or '- (no order id in the message key)'}",
        f"event          {e['event_type'] or '(poison: could not be decoded)'}  id {e['event_id']}",
        f"error kind     {e['error_kind']}",
        f"error          {e['error']}",
        f"attempts       {e['attempts']} (redriven {e['redriven_count']} time(s))",
        f"first failed   {e['first_failed_at']}",
        f"last failed    {e['last_failed_at']}",
        f"source         {e['source_topic']} partition {e['source_partition']} "
        f"offset {e['source_offset']}",
        f"copied to      {e['dlq_topic']}",
    ]
    if e["state"] == "retrying":
        lines.append(f"next attempt   {e['next_attempt_at']}")
    if e["held_behind"]:
        lines.append(
            f"holding back   {e['held_behind']} later message(s) of this order in {e['service']}"
        )
    lines.append(f"key ({m['key_encoding']})".ljust(15) + f"{m['key']}")
    lines.append("headers")
    lines.extend(f"  {h['key']} = {h['value']}  ({h['encoding']})" for h in m["headers"])
    value = m["value"]
    if m["value_encoding"] == "json":
        value = json.dumps(json.loads(value), indent=2)
    lines.append(f"value ({m['value_encoding']})")
    lines.append(value if value is not None else "  (none: a tombstone)")
    if e["state"] == "dead":
        hint = "  (poison: it will die again unless the decoder changed)" if e["poison"] else ""
        lines.append(f"\nonce the cause is fixed: saga dlq redrive {e['id']}{hint}")
    click.echo("\n".join(lines))


@dlq.command("redrive")
@click.argument("entry_id", metavar="[ID]", required=False)
@click.option("--all", "redrive_every", is_flag=True, help="Every dead entry.")
@click.option("--service", type=_SERVICE, help="With --all: only this service's entries.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def redrive(entry_id: str | None, redrive_every: bool, service: str | None, as_json: bool) -> None:
    """Put dead entries back for processing, with a fresh retry budget.

    Safe to repeat: only a dead entry moves, and what it replays is idempotent (a refund
    redriven twice refunds once).
    """
    if (entry_id is None) == (not redrive_every):
        raise click.UsageError("give one entry ID (e.g. payment:12) or --all, not both")
    if service and not redrive_every:
        raise click.UsageError("--service goes with --all; an ID already names its service")
    cfg = settings()
    if redrive_every:
        results = redrive_all(cfg, (service,) if service else SERVICES)
    else:
        try:
            results = [redrive_one(cfg, _dlq_id(str(entry_id)))]
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"redriven": [r.as_dict() for r in results]}))
        return
    _print_redrives(results, redrive_every)


def _print_redrives(results: list[Redrive], every: bool) -> None:
    if every and not results:
        click.echo("no dead entries to redrive")
        return
    for r in results:
        if r.outcome == "redriven":
            what = r.event_type or "poison message"
            order = f" of order {r.order_id}" if r.order_id else ""
            click.echo(f"{r.id}: redriven ({what}{order}); {r.note}")
        else:
            click.echo(f"{r.id}: {r.note}")
    if any(r.outcome == "redriven" for r in results):
        click.echo("follow progress with `saga dlq list --all` or `saga trace ORDER_ID`")
