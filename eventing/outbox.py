"""Transactional outbox: rows written in the caller's transaction, published by the relay."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from eventing.queries import Queries
from shared_events.codec import encode
from shared_events.envelope import Event

__all__ = ["OutboxRow", "decode_headers", "encode_headers", "insert_outbox", "row_for_event"]

Q = Queries.load("eventing")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    order_id: uuid.UUID | None
    event_id: uuid.UUID | None
    event_type: str | None


def row_for_event(event: Event, topic: str) -> OutboxRow:
    rec = encode(event)
    return OutboxRow(
        topic, rec.key, rec.value, rec.headers, event.order_id, event.event_id, event.event_type
    )


def _encode_value(v: bytes) -> str:
    try:
        return "t:" + v.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(v).decode()


def _decode_value(v: str) -> bytes:
    return v[2:].encode() if v.startswith("t:") else base64.b64decode(v)


def encode_headers(headers: list[tuple[str, bytes]]) -> str:
    """Header values as JSON strings: UTF-8 text as `t:<text>` (the common case, cheap both
    ways), anything else (a poison message's headers may be any bytes) as base64, which
    never contains a colon."""
    return json.dumps([[k, _encode_value(v)] for k, v in headers])


def decode_headers(raw: Any) -> list[tuple[str, bytes]]:
    items = json.loads(raw) if isinstance(raw, str | bytes) else raw
    return [(k, _decode_value(v)) for k, v in items or []]


def insert_outbox(conn: psycopg.Connection[Any], rows: list[OutboxRow]) -> None:
    if rows:
        Q.copy(
            conn,
            "outbox_copy",
            (
                (
                    r.topic,
                    r.key,
                    r.value,
                    encode_headers(r.headers),
                    r.order_id,
                    r.event_id,
                    r.event_type,
                )
                for r in rows
            ),
        )
