"""The dead-letter queue across the four services: list, show and redrive parked messages.

Each service keeps its dead letters in its own `parked` table (the `<service>.dlq` topic
holds copies for other consumers); an entry is named `<service>:<seq>`. Redrive only moves
a 'dead' row back to 'retrying' with a fresh budget, in one UPDATE guarded by the state, so
redriving the same entry twice (even concurrently) puts it back once; and the effects it
then replays are idempotent (inbox dedupe, one refund per order at the gateway).
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import click
import psycopg

from eventing.outbox import decode_headers
from eventing.settings import SERVICES, Settings
from saga_cli import queries
from saga_cli.db import connect
from saga_cli.times import iso
from shared_events.topics import dlq_topic

__all__ = [
    "DlqId",
    "DlqIdError",
    "Redrive",
    "list_entries",
    "redrive_all",
    "redrive_one",
    "show_entry",
]


class DlqIdError(ValueError):
    """An id that is not `<service>:<seq>`."""


@dataclass(frozen=True, order=True)
class DlqId:
    service: str
    seq: int

    @classmethod
    def parse(cls, text: str) -> DlqId:
        service, sep, seq = text.strip().partition(":")
        if not sep or service not in SERVICES or not seq.isdigit() or int(seq) < 1:
            raise DlqIdError(
                f"{text!r} is not a DLQ entry id: expected SERVICE:NUMBER with SERVICE one of "
                f"{', '.join(SERVICES)}, e.g. payment:12 (ids are listed by `saga dlq list`)"
            )
        return cls(service, int(seq))

    def __str__(self) -> str:
        return f"{self.service}:{self.seq}"


def _entry(service: str, row: dict[str, Any]) -> dict[str, Any]:
    # A message that could not even be decoded has no event type: redriving it re-decodes
    # the same bytes, so it dies again unless the decoder changed.
    poison = row["event_type"] is None
    return {
        "id": str(DlqId(service, row["seq"])),
        "service": service,
        "seq": row["seq"],
        "state": row["state"],
        "order_id": str(row["order_id"]) if row["order_id"] else None,
        "event_id": str(row["event_id"]),
        "event_type": row["event_type"],
        "poison": poison,
        "error_kind": row["error_kind"],
        "error": row["last_error"],
        "attempts": row["attempts"],
        "first_failed_at": iso(row["first_failed_at"]),
        "last_failed_at": iso(row["last_failed_at"]),
        "next_attempt_at": iso(row["next_attempt_at"]) if row["state"] == "retrying" else None,
        "redriven_count": row["redriven_count"],
        "blocks_order": row["blocks"],
        "source_topic": row["source_topic"],
        "source_partition": row["source_partition"],
        "source_offset": row["source_offset"],
    }


def list_entries(
    cfg: Settings, services: tuple[str, ...] = SERVICES, include_retrying: bool = False
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Dead entries (and retrying ones if asked) of each service, oldest first per service.

    A service whose database cannot be reached is reported in the second value instead of
    hiding what the others hold.
    """
    entries: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    for service in services:
        try:
            with connect(service, cfg) as conn:
                rows = queries.dlq_list(conn, include_retrying)
        except click.ClickException as exc:
            errors[service] = exc.message
            continue
        except psycopg.errors.UndefinedTable:
            continue  # the service never ran here: no runtime tables, so nothing parked
        entries.extend(_entry(service, r) for r in rows)
    return entries, errors


def _bytes_view(raw: bytes | None, as_json: bool = False) -> dict[str, Any]:
    if raw is None:
        return {"data": None, "encoding": None}
    try:
        text = raw.decode("utf-8")
        if as_json:
            json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {"data": base64.b64encode(raw).decode(), "encoding": "base64"}
    return {"data": text, "encoding": "json" if as_json else "utf-8"}


def _unknown(dlq_id: DlqId, issued: int | None) -> str:
    if issued is not None and dlq_id.seq <= issued:
        return (
            f"{dlq_id} is no longer parked: it was processed after a redrive (or the retrier "
            f"succeeded), so there is nothing left to do"
        )
    return f"there is no DLQ entry {dlq_id}: see `saga dlq list --all` for the current ids"


def show_entry(cfg: Settings, dlq_id: DlqId) -> dict[str, Any]:
    """Everything about one entry, the original message included; LookupError if absent."""
    with connect(dlq_id.service, cfg) as conn:
        try:
            row = queries.dlq_get(conn, dlq_id.seq)
        except psycopg.errors.UndefinedTable:
            raise LookupError(
                f"the {dlq_id.service} database has no runtime tables yet: the service never "
                f"ran against it, so there is no {dlq_id}"
            ) from None
        if row is None:
            raise LookupError(_unknown(dlq_id, queries.dlq_seq_issued(conn)))
        held = queries.dlq_held_behind(conn, row["order_id"], row["seq"])
    entry = _entry(dlq_id.service, row)
    key = bytes(row["key"]) if row["key"] is not None else None
    value = bytes(row["value"]) if row["value"] is not None else None
    entry["held_behind"] = held if row["blocks"] else 0
    entry["parked_at"] = iso(row["parked_at"])
    entry["dlq_topic"] = dlq_topic(dlq_id.service)
    key_view, value_view = _bytes_view(key), _bytes_view(value, as_json=True)
    entry["message"] = {
        "key": key_view["data"],
        "key_encoding": key_view["encoding"],
        "value": value_view["data"],
        "value_encoding": value_view["encoding"],
        "headers": [
            {"key": k, "value": v["data"], "encoding": v["encoding"]}
            for k, v in ((k, _bytes_view(b)) for k, b in decode_headers(row["headers"]))
        ],
    }
    return entry


Outcome = Literal["redriven", "not_dead", "gone"]


@dataclass(frozen=True)
class Redrive:
    """What one redrive did to one entry."""

    id: DlqId
    outcome: Outcome
    order_id: uuid.UUID | None = None
    event_type: str | None = None
    note: str = ""

    @property
    def poison(self) -> bool:
        return self.outcome == "redriven" and self.event_type is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "outcome": self.outcome,
            "order_id": str(self.order_id) if self.order_id else None,
            "event_type": self.event_type,
            "poison": self.poison,
            "note": self.note,
        }


def _redriven(service: str, row: dict[str, Any]) -> Redrive:
    dlq_id = DlqId(service, row["seq"])
    if row["event_type"] is None:
        note = (
            "it will be decoded again and, unless the decoder changed, dead-lettered again "
            "with the same reason"
        )
    else:
        note = f"the {service} service's retrier picks it up within about a second (if running)"
    return Redrive(dlq_id, "redriven", row["order_id"], row["event_type"], note)


def redrive_one(cfg: Settings, dlq_id: DlqId) -> Redrive:
    """Put one dead entry back; a repeat is a no-op; LookupError if it never existed."""
    with connect(dlq_id.service, cfg) as conn:
        try:
            rows = queries.dlq_redrive_one(conn, dlq_id.seq)
        except psycopg.errors.UndefinedTable:
            raise LookupError(
                f"the {dlq_id.service} database has no runtime tables yet: there is no {dlq_id}"
            ) from None
        if rows:
            return _redriven(dlq_id.service, rows[0])
        row = queries.dlq_get(conn, dlq_id.seq)
        if row is not None:
            due = row["next_attempt_at"].strftime("%H:%M:%S")
            return Redrive(
                dlq_id,
                "not_dead",
                row["order_id"],
                row["event_type"],
                f"not dead but {row['state']} (attempt {row['attempts']}, next try at "
                f"{due} UTC): already queued for processing, nothing to do",
            )
        issued = queries.dlq_seq_issued(conn)
    if issued is not None and dlq_id.seq <= issued:
        return Redrive(dlq_id, "gone", note=_unknown(dlq_id, issued))
    raise LookupError(_unknown(dlq_id, issued))


def redrive_all(cfg: Settings, services: tuple[str, ...] = SERVICES) -> list[Redrive]:
    """Every dead entry of `services` back to processing, one UPDATE per service."""
    done: list[Redrive] = []
    for service in services:
        with connect(service, cfg) as conn:
            try:
                rows = queries.dlq_redrive_all(conn)
            except psycopg.errors.UndefinedTable:
                continue
        done.extend(_redriven(service, r) for r in rows)
    return done
