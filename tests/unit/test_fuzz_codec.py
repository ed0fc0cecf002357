"""The codec, fuzzed: every valid event round-trips byte for byte, and nothing a consumer can
receive makes decoding raise anything but a PoisonMessage (which the runtime dead-letters;
any other exception would stop the consumer on that message again and again)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared_events.codec import PoisonMessage, decode, encode
from shared_events.envelope import Event
from tests.sim.strategies import events

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@SETTINGS
@given(events)
def test_every_valid_event_round_trips_byte_for_byte(event: Event) -> None:
    rec = encode(event)
    back = decode(rec.value, rec.headers)
    assert back == event
    again = encode(back)
    assert (again.key, again.value, again.headers) == (rec.key, rec.value, rec.headers)


@SETTINGS
@given(
    st.binary(max_size=300),
    st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=20)), max_size=4),
)
def test_any_bytes_decode_or_are_poison(value: bytes, headers: list[tuple[str, bytes]]) -> None:
    try:
        decode(value, headers)
    except PoisonMessage as exc:
        assert exc.reason
    # and nothing else escapes


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    copy[path[0]] = _replace(copy[path[0]], path[1:], value)
    return copy


@SETTINGS
@given(events, st.data())
def test_a_valid_event_with_any_field_changed_decodes_or_is_poison(
    event: Event, data: st.DataObject
) -> None:
    rec = encode(event)
    doc = json.loads(rec.value)
    path = data.draw(st.sampled_from(_paths(doc)[1:]), label="field")
    value = data.draw(
        json_values
        | st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "\x00"]),
        label="new value",
    )
    mutated = json.dumps(_replace(doc, path, value)).encode()
    try:
        decoded = decode(mutated, rec.headers)
    except PoisonMessage as exc:
        assert exc.reason
    else:
        # Accepted: then it is an event like any other, and round-trips too.
        assert decode(encode(decoded).value, rec.headers) == decoded


@SETTINGS
@given(events, st.data())
def test_a_nul_character_anywhere_is_poison_for_every_consumer(
    event: Event, data: st.DataObject
) -> None:
    rec = encode(event)
    doc = json.loads(rec.value)
    texts = [p for p in _paths(doc)[1:] if isinstance(_get(doc, p), str) and p[0] != "event_type"]
    path = data.draw(st.sampled_from(texts), label="text field")
    value = _get(doc, path)
    mutated = json.dumps(_replace(doc, path, value[:1] + "\x00" + value[1:])).encode()
    with pytest.raises(PoisonMessage):
        decode(mutated, rec.headers)


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc
