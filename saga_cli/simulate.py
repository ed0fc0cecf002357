"""`saga simulate`: seeded runs of the whole checkout in one process, faults and all, judged by
the audit's invariants and by liveness.

One seed decides everything (`random.Random(seed)`): the catalog (hot SKUs with one to three
units beside plentiful ones), the orders (every path, one to three items, external orders
and an external system's duplicates), the partition count, and a schedule of steps: which
service's relay or consumer runs next and with what batch (delivery order across topics and
partitions, rebalances as re-cut batches), crashes at every crash point of the runtime
(`eventing.testing.Crash`, a relay dying between produce and mark-sent, a broker refusing a
batch's tail), duplicate deliveries (a group's committed offsets lost), gateway outages and
slowness, the virtual clock ticking and jumping past the reservation TTL, restocks and DLQ
redrives. The runtime's own backoff jitter uses the global `random`, which is seeded too.

Then the faults stop: the gateway comes back and the system runs until quiet. The oracle:

1. `saga audit`'s invariants (saga_cli.audit on the scratch databases); liveness included:
   every order is terminal or waits on a named dead letter;
2. the dead letters are redriven, the system runs until quiet again: now every order must be
   terminal and the audit clean (conflicting duplicates excepted: they are reported until an
   operator acknowledges them, and must be reported exactly for the injected ones);
3. per order: an outcome its path allows (`reservation_expired` only if the clock jumped past
   the TTL, `out_of_stock` only with a hot SKU), one OrderPlaced step, no step twice, an
   idempotency-key retry answered with the same order.

A failing seed prints its violations and the schedule of faults, and replays exactly: the
same seed runs the same steps against databases reset to the same state (see
eventing/testing.py for what makes a run deterministic).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from eventing.settings import SERVICES, Settings
from eventing.testing import Crash, SagaHarness, checkout_harness
from order_svc.placement import IdempotencyConflict
from shared_events.codec import decode, header_value
from shared_events.common import Address, LineItem
from shared_events.envelope import Contract
from shared_events.ids import new_id
from shared_events.order import OrderPlaced, OrderPlacedPayload
from shared_events.topics import EVENT_TOPICS, events_topic

__all__ = ["OrderPlan", "SeedResult", "plan_orders", "run_seed", "simulation"]

# The outcomes each kind of order may end in, whatever the faults.
_ALLOWED: dict[str, set[tuple[str, str | None]]] = {
    "ok": {
        ("COMPLETED", None),
        ("CANCELLED", "out_of_stock"),
        ("CANCELLED", "reservation_expired"),
    },
    "declined": {
        ("CANCELLED", "payment_declined"),
        ("CANCELLED", "out_of_stock"),
        ("CANCELLED", "reservation_expired"),
    },
    "undeliverable": {
        ("CANCELLED", "fulfillment_failed"),
        ("CANCELLED", "out_of_stock"),
        ("CANCELLED", "reservation_expired"),
    },
}


# How often each step of the random phase comes, relative to the others.
_WEIGHTS = {
    "place": 3.0,
    "again": 1.0,
    "relay": 3.0,
    "deliver": 6.0,
    "retry": 1.0,
    "timers": 1.0,
    "tick": 1.0,
    "jump": 0.15,
    "gateway": 0.4,
    "rewind": 0.3,
    "redrive": 0.2,
    "restock": 0.1,
    "poison": 0.1,
}
_REPEATED = ("api_key_retry", "external_retry", "external_conflict")


@dataclass(frozen=True)
class OrderPlan:
    """One order of a seed: how it is placed and which path it is meant for."""

    index: int
    path: str  # ok | declined | undeliverable: what the card and country make of it
    items: tuple[tuple[str, int], ...]
    origin: str  # api | api_key_retry | external | external_retry | external_conflict

    @property
    def card(self) -> str:
        return "tok_declined" if self.path == "declined" else "tok_ok"

    @property
    def country(self) -> str:
        return "ZZ" if self.path == "undeliverable" else "US"


@dataclass
class SeedResult:
    seed: int
    orders: int
    partitions: int
    violations: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    digest: str = ""
    steps: int = 0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "ok": self.ok,
            "orders": self.orders,
            "partitions": self.partitions,
            "steps": self.steps,
            "violations": self.violations,
            "faults": self.faults,
            "outcomes": self.outcomes,
            "digest": self.digest,
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def reproduction(self) -> str:
        lines = [f"seed {self.seed}: {len(self.violations)} violation(s)"]
        lines += [f"  ! {v}" for v in self.violations]
        lines.append(f"  schedule of faults ({self.partitions} partition(s), step: fault):")
        lines += [f"    {f}" for f in self.faults] or ["    (none)"]
        lines.append(
            f"  replay: saga simulate --seeds 1 --start-seed {self.seed} --orders {self.orders}"
        )
        return "\n".join(lines)


def _altered(payload: Contract) -> Contract:
    """The same kind of payload saying something else: new ids, another detail or SKU."""
    data = payload.model_dump()
    for key, value in data.items():
        if isinstance(value, uuid.UUID):
            data[key] = uuid.uuid4()
        elif key in ("detail", "carrier"):
            data[key] = f"{value} (a second opinion)"[:50]
        elif key == "skus":
            data[key] = (*value, "FORGED-1")
    if data == payload.model_dump():
        data["amount_minor"] = data.get("amount_minor", 0) + 1
    return type(payload).model_validate(data)


# --- the plan ------------------------------------------------------------------------------


def _catalog(rng: random.Random) -> dict[str, tuple[int, int]]:
    """SKU -> (stock, price): one or two hot SKUs with 1-3 units, two or three plentiful."""
    hot = {
        f"HOT-{i}": (rng.randint(1, 3), rng.choice((500, 1999, 4999)))
        for i in range(rng.randint(1, 2))
    }
    plenty = {f"SKU-{i}": (100, rng.choice((250, 999, 1250))) for i in range(rng.randint(2, 3))}
    return {**hot, **plenty}


def plan_orders(rng: random.Random, n: int, catalog: dict[str, tuple[int, int]]) -> list[OrderPlan]:
    skus = sorted(catalog)
    plans = []
    for i in range(n):
        path = rng.choices(("ok", "declined", "undeliverable"), weights=(6, 2, 2))[0]
        chosen = rng.sample(skus, rng.choices((1, 2, 3), weights=(5, 3, 1))[0])
        items = tuple((s, rng.randint(1, 2)) for s in sorted(chosen))
        origin = rng.choices(
            ("api", "api_key_retry", "external", "external_retry", "external_conflict"),
            weights=(10, 2, 2, 1, 1),
        )[0]
        plans.append(OrderPlan(i, path, items, origin))
    return plans


# --- one seed -----------------------------------------------------------------------------


class _Run:
    """The state of one seed's run: the harness, the plan, the log of steps."""

    def __init__(self, h: SagaHarness, seed: int, orders: int) -> None:
        self.h = h
        self.seed = seed
        self.rng = random.Random(seed)
        self.partitions = self.rng.choice((1, 2, 3))
        # One seed in five runs as if the inbox's window had lapsed for every event.
        self.inbox = self.rng.random() >= 0.2
        self.catalog = _catalog(self.rng)
        self.plans = plan_orders(self.rng, orders, self.catalog)
        self.placed: dict[int, uuid.UUID] = {}
        self.keys: dict[int, str] = {}
        self.externals: dict[int, OrderPlaced] = {}
        # Events sent to contradict a saga's record (event id -> order index): each must be
        # set aside and reported until acknowledged; copies of a fact must pass silently.
        self.conflicts: dict[uuid.UUID, int] = {}
        self.log: list[str] = []
        self.faults: list[str] = []
        self.violations: list[str] = []
        self.jumped = False
        self.acknowledged: set[uuid.UUID] = set()
        self.step_no = 0

    # -- bookkeeping ----------------------------------------------------------------------

    def note(self, what: str, fault: bool = False) -> None:
        self.log.append(f"{self.step_no}: {what}")
        if fault:
            self.faults.append(f"{self.step_no}: {what}")

    def name(self, i: int) -> str:
        return f"order #{i} ({self.placed.get(i, '?')})"

    # -- placing orders ---------------------------------------------------------------------

    def place(self, plan: OrderPlan) -> None:
        items = dict(plan.items)
        if plan.origin.startswith("api"):
            key = f"sim-{self.seed}-{plan.index}" if plan.origin == "api_key_retry" else None
            self.placed[plan.index] = self.h.place(
                items, card=plan.card, country=plan.country, customer=f"sim-{plan.index}", key=key
            )
            if key:
                self.keys[plan.index] = key
            self.note(f"place #{plan.index} {plan.path} {items} via the API")
            return
        event = self._external(plan, plan.index, items)
        self.externals[plan.index] = event
        self.placed[plan.index] = event.order_id
        self.h.publish(event)
        self.note(f"publish #{plan.index} {plan.path} {items} as an external OrderPlaced")

    def _external(
        self, plan: OrderPlan, index: int, items: dict[str, int], order_id: uuid.UUID | None = None
    ) -> OrderPlaced:
        lines = tuple(
            LineItem(sku=s, qty=q, unit_price_minor=self.catalog[s][1]) for s, q in items.items()
        )
        return OrderPlaced.create(
            # Ids in placement order (their clock part): the run does not depend on chance.
            order_id=order_id or new_id(now_ms=1_700_000_000_000 + self.seed * 1000 + index),
            producer="storefront",
            payload=OrderPlacedPayload(
                customer_id=f"ext-{index}",
                items=lines,
                total_minor=sum(li.qty * li.unit_price_minor for li in lines),
                card_token=plan.card,
                ship_to=Address(country=plan.country),
            ),
        )

    def again(self, plan: OrderPlan) -> None:
        """The client or the external system sends the order a second time."""
        i = plan.index
        if plan.origin == "api_key_retry":
            same = self.h.place(
                dict(plan.items),
                card=plan.card,
                country=plan.country,
                customer=f"sim-{i}",
                key=self.keys[i],
            )
            if same != self.placed[i]:
                self.violations.append(
                    f"{self.name(i)}: a retry with its Idempotency-Key made order {same}"
                )
            try:
                self.h.place({plan.items[0][0]: 9}, card=plan.card, key=self.keys[i])
            except IdempotencyConflict:
                pass
            else:
                self.violations.append(
                    f"{self.name(i)}: its key reused with another body was accepted"
                )
            self.note(f"retry #{i} with its Idempotency-Key")
        elif plan.origin == "external_retry":
            first = self.externals[i]
            retry = first.model_copy(update={"event_id": new_id()})
            self.h.publish(retry)
            self.note(f"publish #{i} again with a new event id, same content", fault=True)
        elif plan.origin == "external_conflict":
            first = self.externals[i]
            other = dict(plan.items)
            sku = sorted(self.catalog)[-1]
            other[sku] = other.get(sku, 0) + 1
            conflict = self._external(plan, i, other, order_id=first.order_id)
            self.conflicts[conflict.event_id] = i
            self.h.publish(conflict)
            self.note(f"publish #{i} again with a new event id and other items {other}", fault=True)

    # -- the random phase -------------------------------------------------------------------

    def chaos(self) -> None:
        pending = list(self.plans)
        repeats = [p for p in self.plans if p.origin in _REPEATED]
        budget = len(self.plans) * 10 + self.rng.randint(0, 20)
        while self.step_no < budget or pending:
            self.step_no += 1
            weights = dict(_WEIGHTS)
            weights["place"] = 3 if pending else 0
            # A retry or a duplicate comes once the first has had time to go out.
            weights["again"] = 1 if repeats and not pending else 0
            action = self.rng.choices(list(weights), weights=list(weights.values()))[0]
            getattr(self, f"_{action}")(pending, repeats)

    def _place(self, pending: list[OrderPlan], _r: list[OrderPlan]) -> None:
        self.place(pending.pop(0))

    def _again(self, _p: list[OrderPlan], repeats: list[OrderPlan]) -> None:
        self.again(repeats.pop(self.rng.randrange(len(repeats))))

    def _relay(self, _p: list[OrderPlan], _r: list[OrderPlan]) -> None:
        service = self.rng.choice(SERVICES)
        roll = self.rng.random()
        if roll < 0.1:
            self.h.relay(service, crash_after_produce=True)
            self.note(f"relay {service} dies after producing, before marking sent", fault=True)
        elif roll < 0.15:
            cut = self.rng.randint(0, 3)
            self.h.relay(service, refuse_from=cut)
            self.note(f"relay {service}: the broker refuses the batch from row {cut}", fault=True)
        else:
            n = self.h.relay(service)
            self.note(f"relay {service}: {n} sent")

    def _deliver(self, _p: list[OrderPlan], _r: list[OrderPlan]) -> None:
        service = self.rng.choice(SERVICES)
        roll = self.rng.random()
        crash = (
            Crash.BEFORE_COMMIT
            if roll < 0.08
            else Crash.AFTER_COMMIT
            if roll < 0.16
            else Crash.NONE
        )
        limit = self.rng.choice((1, 2, 3, 5, 50))
        out = self.h.deliver(service, limit=limit, rng=self.rng, crash=crash)
        if crash is not Crash.NONE:
            self.note(f"deliver {service} (up to {limit}) and crash {crash.value}", fault=True)
        elif out is not None:
            self.note(
                f"deliver {service}: {out.handled} handled, {out.duplicates} dup, "
                f"{out.parked} parked, {out.dead} dead"
            )

    def _retry(self, _p: list[OrderPlan], _r: list[OrderPlan]) -> None:
        service = self.rng.choice(SERVICES)
        if self.rng.random() < 0.1:
            self.h.retry(service, crash=Crash.BEFORE_COMMIT)
            self.note(f"retrier {service} crashes before its commit", fault=True)
        else:
            self.note(f"retrier {service}: {self.h.retry(service)} tried")

    def _timers(self, _p: list[OrderPlan], _r: list[OrderPlan]) -> None:
        if self.rng.random() < 0.1:
            self.h.run_timers("inventory", crash=Crash.BEFORE_COMMIT)
            self.note("reaper crashes before its commit", fault=True)
        else:
            self.note(f"reaper: {self.h.run_timers('inventory')} lapsed")

    def _tick(self, _p: list[OrderPlan], _r: list[OrderPlan]) -> None:
        s = self.rng.randint(1, 60)
        self.h.advance(s)
        self.note(f"clock +{s}s")

    def _jump(self, _p: list[OrderPlan], _r: list[OrderPlan]) -> None:
        s = int(self.h.settings.reservation_ttl_s) + self.rng.randint(1, 120)
        self.h.advance(s)
        self.jumped = True
        self.note(f"clock jumps +{s}s, past the reservation TTL", fault=True)

    def _gateway(self, _p: list[OrderPlan], _r: list[OrderPlan]) -> None:
        mode = self.rng.choice(("down", "down", "slow", "up"))
        latency = self.rng.randint(1, 3) if mode == "slow" else 0
        self.h.gateway(mode, latency_ms=latency)
        self.note(f"gateway {mode}" + (f" ({latency} ms a call)" if latency else ""), fault=True)

    def _rewind(self, _p: list[OrderPlan], _r: list[OrderPlan]) -> None:
        service = self.rng.choice(SERVICES)
        committed = [k for k, v in self.h.bus.committed.items() if k[0] == service and v > 0]
        if not committed:
            return
        group, topic, partition = self.rng.choice(sorted(committed))
        n = self.h.bus.rewind(group, topic, partition, self.rng.randint(1, 5))
        self.note(
            f"{service} loses {n} committed offset(s) of {topic}[{partition}]: redelivered",
            fault=True,
        )

    def _redrive(self, _p: list[OrderPlan], _r: list[OrderPlan]) -> None:
        entries = self.h.redrive()
        # A conflict redriven is one an operator acknowledged: no longer reported.
        self.acknowledged |= {e["event_id"] for e in entries}
        self.note(f"redrive all: {len(entries)} entries", fault=True)

    def _poison(self, _p: list[OrderPlan], _r: list[OrderPlan]) -> None:
        topic = self.rng.choice(sorted(EVENT_TOPICS.values()))
        value = self.rng.choice((b"\xff not json", b"[1, 2]", b'{"event_type": "OrderTeleported"}'))
        key = str(uuid.UUID(int=self.rng.getrandbits(128))).encode()
        self.h.publish(raw=(topic, key, value, []))
        self.note(f"poison message on {topic}: {value!r}", fault=True)

    def _restock(self, _p: list[OrderPlan], _r: list[OrderPlan]) -> None:
        sku = self.rng.choice(sorted(self.catalog))
        now = self.h.stock_of(sku)
        self.h.set_stock(sku, now["on_hand"] + self.rng.randint(1, 3), self.catalog[sku][1])
        self.note(f"restock {sku}", fault=True)

    # -- the end: faults stop ---------------------------------------------------------------

    def finish(self) -> dict[str, int]:
        h = self.h
        h.gateway("up")
        self.note("faults stop: gateway up")
        h.settle()
        self.forge()
        h.settle()
        self.check_audit("once quiet", before_redrive=True)
        for _ in range(3):
            if not h.redrive():
                break
            h.settle()
        return self.check_outcomes()

    def forge(self) -> None:
        """Once every saga has ended: another event of a kind a saga already has, from its
        producer, with other content (a contradiction) or the same (a copy)."""
        for plan in self.rng.sample(self.plans, min(len(self.plans), self.rng.randint(0, 2))):
            oid = self.placed[plan.index]
            # OrderPlaced has its own duplicates (the external orders'); these are the rest.
            recorded = [e for e in self.h.trace(oid)["events"] if e["event_type"] != "OrderPlaced"]
            if not recorded:
                continue
            step = self.rng.choice(recorded)
            original = next(
                decode(r.value, r.headers)
                for r in self.h.bus.messages(events_topic(step["producer"]))
                if header_value(r.headers, "event_id") == step["event_id"]
            )
            if self.rng.random() < 0.5:
                forged = original.model_copy(update={"event_id": new_id()})
                self.note(
                    f"{step['producer']} sends #{plan.index}'s {step['event_type']} again, new id",
                    fault=True,
                )
            else:
                forged = original.model_copy(
                    update={"event_id": new_id(), "payload": _altered(original.payload)}
                )
                self.conflicts[forged.event_id] = plan.index
                self.note(
                    f"{step['producer']} sends #{plan.index} another {step['event_type']}: other",
                    fault=True,
                )
            self.h.publish(forged)

    def check_audit(self, when: str, before_redrive: bool) -> None:
        report = self.h.audit()
        expected = {
            str(self.placed[i]): eid
            for eid, i in self.conflicts.items()
            if eid not in self.acknowledged
        }
        reported = set()
        for v in report.violations:
            if v.invariant == "conflict" and before_redrive and v.order_id in expected:
                reported.add(v.order_id)
                continue
            self.violations.append(
                f"audit {when}: {v.invariant}: {v.order_id or v.sku}: {v.detail}"
            )
        if not before_redrive:
            return
        for oid, eid in sorted(expected.items()):
            if oid not in reported:
                self.violations.append(
                    f"audit {when}: the conflicting event {eid} of {oid} is not reported"
                )
            listed = {c["event_type"] for c in self.h.trace(uuid.UUID(oid))["conflicts"]}
            if not listed:
                self.violations.append(
                    f"the trace of {oid} does not show its conflicting event {eid}"
                )

    def check_outcomes(self) -> dict[str, int]:
        h = self.h
        self.check_audit("after redriving every dead letter", before_redrive=False)
        outcomes: dict[str, int] = {}
        hot = {s for s in self.catalog if s.startswith("HOT-")}
        for plan in self.plans:
            i, oid = plan.index, self.placed[plan.index]
            t = h.trace(oid)
            outcome: tuple[str, str | None] = (t["status"], t["cancel_reason"])
            label = t["status"] + (f"({t['cancel_reason']})" if t["cancel_reason"] else "")
            outcomes[label] = outcomes.get(label, 0) + 1
            if outcome not in _ALLOWED[plan.path]:
                self.violations.append(f"{self.name(i)} ({plan.path}): ended {label}")
            elif outcome[1] == "reservation_expired" and not self.jumped:
                self.violations.append(
                    f"{self.name(i)}: reservation_expired, but the clock never passed the TTL"
                )
            elif outcome[1] == "out_of_stock" and not hot & {s for s, _ in plan.items}:
                self.violations.append(f"{self.name(i)}: out_of_stock without a hot SKU")
            types = [e["event_type"] for e in t["events"]]
            if types.count("OrderPlaced") != 1:
                self.violations.append(
                    f"{self.name(i)}: {types.count('OrderPlaced')} OrderPlaced steps"
                )
            ids = [e["event_id"] for e in t["events"]]
            if len(ids) != len(set(ids)):
                self.violations.append(f"{self.name(i)}: a step recorded twice: {types}")
        leftover = [d for d in h.dead_letters() if d["event_type"] is not None]
        for d in leftover:
            self.violations.append(
                f"dead letter {d['service']}:{d['seq']} ({d['event_type']}) left after "
                f"redrive: {d['last_error']}"
            )
        return dict(sorted(outcomes.items()))


def run_seed(h: SagaHarness, seed: int, orders: int = 12) -> SeedResult:
    """One seed, start to finish, on `h` (reset first); never raises for a violation."""
    started = time.perf_counter()
    random.seed(seed)  # the runtime's backoff jitter: the same delays on a replay
    run = _Run(h, seed, orders)
    h.reset(partitions=run.partitions, inbox=run.inbox)
    for sku, (qty, price) in sorted(run.catalog.items()):
        h.set_stock(sku, qty, price)
    outcomes: dict[str, int] = {}
    try:
        run.chaos()
        outcomes = run.finish()
    except Exception as exc:  # a crash of the harness or the code under test is a finding too
        run.violations.append(f"step {run.step_no}: {type(exc).__name__}: {exc}")
    digest = hashlib.sha256(json.dumps([run.log, outcomes, run.violations]).encode()).hexdigest()[
        :16
    ]
    return SeedResult(
        seed,
        orders,
        run.partitions,
        run.violations,
        run.faults,
        outcomes,
        digest,
        run.step_no,
        time.perf_counter() - started,
    )


@contextmanager
def simulation(settings: Settings | None = None) -> Iterator[SagaHarness]:
    """The harness a simulation runs on: scratch databases for the four services."""
    with checkout_harness(settings) as h:
        yield h
