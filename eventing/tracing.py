"""W3C trace context through the saga, and OpenTelemetry spans when exporting is on.

One trace per saga: the checkout API starts it (or continues the caller's `traceparent`),
and every event carries the context of the span that produced it, in its envelope and its
Kafka headers. Handling an event is a span whose parent is that context; the events the
handler emits carry the handling span's context, a new span id at every hop. So the spans
of one saga form one tree, whichever services and processes it crossed.

Exporting is off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
is set: then spans go out over OTLP/HTTP in batches. When off no span objects are made at
all; only the ids are, so the envelopes and log lines still tell one saga's trace.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "child_of",
    "configure",
    "enabled",
    "handling",
    "new_root",
    "span",
    "trace_id",
]

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_PROPAGATOR = TraceContextTextMapPropagator()
_state: dict[str, Any] = {"tracer": None}


def configure(service: str, exporter: Any = None) -> bool:
    """Turn exporting on when the standard OTLP variables ask for it (or `exporter` is given,
    for tests); returns whether spans are recorded."""
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    if exporter is None and not endpoint:
        _state["tracer"] = None
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor: Any = BatchSpanProcessor(OTLPSpanExporter())
    else:
        processor = SimpleSpanProcessor(exporter)
    provider = TracerProvider(resource=Resource.create({"service.name": f"saga-{service}"}))
    provider.add_span_processor(processor)
    _state["tracer"] = provider.get_tracer("checkout-saga")
    _state["provider"] = provider
    return True


def shutdown() -> None:
    """Flush what is batched (at service stop)."""
    provider = _state.get("provider")
    if provider is not None:
        provider.shutdown()


def enabled() -> bool:
    return _state["tracer"] is not None


def _random_hex(nbytes: int) -> str:
    return os.urandom(nbytes).hex()


def new_root() -> str:
    """A traceparent for a saga that arrives without one."""
    return f"00-{_random_hex(16)}-{_random_hex(8)}-01"


def child_of(traceparent: str | None) -> str:
    """The same trace, a new span id: what an event's own context is when no span is
    recorded (and a new trace when it comes without one)."""
    m = _TRACEPARENT.match(traceparent or "")
    if m is None:
        return new_root()
    return f"00-{m.group(1)}-{_random_hex(8)}-{m.group(3)}"


def trace_id(traceparent: str | None) -> str | None:
    m = _TRACEPARENT.match(traceparent or "")
    return m.group(1) if m else None


def _parent(traceparent: str | None) -> Any:
    if not traceparent:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


def _traceparent_of(ctx: SpanContext) -> str:
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


class _Spans:
    """The handling spans of one batch: each event's context for the events it causes."""

    def __init__(self) -> None:
        self.contexts: dict[Any, str] = {}
        self.spans: list[Any] = []

    def fail(self, exc: BaseException) -> None:
        for s in self.spans:
            s.record_exception(exc)
            s.set_status(Status(StatusCode.ERROR, str(exc)[:200]))


@contextlib.contextmanager
def handling(
    service: str, events: Sequence[Any], attributes: Mapping[str, Any] | None = None
) -> Iterator[_Spans]:
    """One span per event being handled (a batch's spans share its start and end)."""
    spans = _Spans()
    tracer = _state["tracer"]
    if tracer is None:
        for e in events:
            spans.contexts[e.event_id] = child_of(e.traceparent)
        yield spans
        return
    for e in events:
        s = tracer.start_span(
            f"{service} {e.event_type}",
            context=_parent(e.traceparent),
            kind=SpanKind.CONSUMER,
            attributes={
                "saga.order_id": str(e.order_id),
                "saga.event_id": str(e.event_id),
                "saga.event_type": e.event_type,
                "saga.producer": e.producer,
                "saga.batch_size": len(events),
                **(attributes or {}),
            },
        )
        spans.spans.append(s)
        spans.contexts[e.event_id] = _traceparent_of(s.get_span_context())
    try:
        yield spans
    except BaseException as exc:
        spans.fail(exc)
        raise
    finally:
        for s in spans.spans:
            s.end()


@contextlib.contextmanager
def span(name: str, traceparent: str | None, **attributes: Any) -> Iterator[str]:
    """A span of its own (the API's request, a dead-lettering); yields its traceparent."""
    tracer = _state["tracer"]
    if tracer is None:
        yield child_of(traceparent) if traceparent else new_root()
        return
    with tracer.start_as_current_span(
        name, context=_parent(traceparent), kind=SpanKind.INTERNAL, attributes=attributes
    ) as s:
        yield _traceparent_of(s.get_span_context())


def mark(traceparent: str | None, name: str, **attributes: Any) -> None:
    """A point in the saga worth seeing in its trace (parked, dead-lettered, redriven), as a
    zero-length span under the event's context."""
    tracer = _state["tracer"]
    if tracer is None:
        return
    s = tracer.start_span(name, context=_parent(traceparent), attributes=attributes)
    if attributes.get("error"):
        s.set_status(Status(StatusCode.ERROR, str(attributes["error"])[:200]))
    s.end()


__all__ += ["mark", "shutdown"]
