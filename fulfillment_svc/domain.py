"""Fulfillment's rules, pure: can we ship there, with whom, and when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

__all__ = ["Plan", "Unserviceable", "plan_shipment"]

# Destinations we cannot serve. `ZZ` is the simulated world's unreachable country.
UNSERVICEABLE = frozenset({"ZZ"})
CARRIERS = {"US": "UPS", "CA": "Canada Post", "GB": "Royal Mail", "DE": "DHL", "FR": "La Poste"}


@dataclass(frozen=True)
class Plan:
    carrier: str
    estimated_delivery: date


@dataclass(frozen=True)
class Unserviceable:
    detail: str


def plan_shipment(country: str, today: date) -> Plan | Unserviceable:
    if country in UNSERVICEABLE:
        return Unserviceable(f"no carrier serves destination country {country}")
    domestic = country in ("US", "CA")
    return Plan(CARRIERS.get(country, "DHL Express"), today + timedelta(days=3 if domestic else 7))
