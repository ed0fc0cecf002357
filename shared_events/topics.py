"""Topic names: one events topic per producing service, one dead-letter topic per consumer."""

from __future__ import annotations

__all__ = ["ALL_TOPICS", "EVENT_TOPICS", "dlq_topic", "events_topic"]

EVENT_TOPICS: dict[str, str] = {
    "order": "orders.events",
    "inventory": "inventory.events",
    "payment": "payments.events",
    "fulfillment": "fulfillment.events",
}


def events_topic(service: str) -> str:
    return EVENT_TOPICS[service]


def dlq_topic(service: str) -> str:
    return f"{service}.dlq"


ALL_TOPICS: tuple[str, ...] = (*EVENT_TOPICS.values(), *(dlq_topic(s) for s in EVENT_TOPICS))
