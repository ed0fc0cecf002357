"""The dead-letter queue end to end: poison input, a refund that runs out of retries, redrive.

Everything goes through the `saga` command as an operator would use it, against the four
services running as real processes.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from eventing.settings import Settings
from tests.conftest import SagaRunner
from tests.e2e.harness import (
    Services,
    connect,
    event_types,
    new_sku,
    place,
    trace,
    wait_for,
    wait_terminal,
)
from tests.e2e.kafka_tools import produce_raw

pytestmark = pytest.mark.e2e


def saga_json(run_saga: SagaRunner, *args: str, rc: int = 0) -> Any:
    done = run_saga(*args, "--json")
    assert done.returncode == rc, f"saga {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def dlq_entries(run_saga: SagaRunner, service: str, *extra: str) -> list[dict[str, Any]]:
    out = saga_json(run_saga, "dlq", "list", "--service", service, *extra)
    assert out["errors"] == {}
    entries: list[dict[str, Any]] = out["entries"]
    return entries


def of_order(entries: list[dict[str, Any]], order_id: object) -> list[dict[str, Any]]:
    return [e for e in entries if e["order_id"] == str(order_id)]


def log_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in path.read_text("utf-8", "replace").splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue  # e.g. a librdkafka line before logging was configured
    return lines


def ledger(settings: Settings, order_id: uuid.UUID) -> list[tuple[str, str, int]]:
    with connect(settings, "payment") as conn:
        rows = conn.execute(
            "SELECT kind, outcome, amount_minor FROM gateway_ledger WHERE order_id = %s "
            "ORDER BY id",
            (order_id,),
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


# -- poison input ---------------------------------------------------------------------


def test_poison_input_is_dead_lettered_with_its_reason_and_orders_still_flow(
    settings: Settings, services: Services, run_saga: SagaRunner
) -> None:
    not_json, unknown, invalid = (uuid.uuid4() for _ in range(3))
    envelope = {
        "event_id": str(uuid.uuid4()),
        "schema_version": 1,
        "occurred_at": "2024-01-01T00:00:00Z",
        "correlation_id": str(invalid),
        "producer": "order",
        "payload": {"items": "not a list"},
    }
    produce_raw(
        settings.kafka_bootstrap_servers,
        [
            ("orders.events", str(not_json).encode(), b"\xff\x00 not json {", []),
            (
                "orders.events",
                str(unknown).encode(),
                json.dumps({**envelope, "event_type": "OrderTeleported"}).encode(),
                [("event_type", b"OrderTeleported")],
            ),
            (
                "orders.events",
                str(invalid).encode(),
                json.dumps(
                    {**envelope, "event_type": "OrderPlaced", "order_id": str(invalid)}
                ).encode(),
                [("event_type", b"OrderPlaced"), ("bin", b"\xff\xfe")],
            ),
        ],
    )

    def all_dead() -> dict[str, dict[str, Any]] | None:
        entries = dlq_entries(run_saga, "inventory")
        found = {
            e["order_id"]: e
            for e in entries
            if e["order_id"] in {str(not_json), str(unknown), str(invalid)}
        }
        return found if len(found) == 3 else None

    found = wait_for("the three poison messages in inventory's DLQ", all_dead, timeout=60)
    reasons = {
        not_json: ("not_json", "not JSON"),
        unknown: ("unknown_type", "unknown event type 'OrderTeleported'"),
        invalid: ("invalid", "OrderPlaced v1 failed validation"),
    }
    for order_id, (kind, words) in reasons.items():
        e = found[str(order_id)]
        assert (e["state"], e["error_kind"], e["poison"]) == ("dead", kind, True)
        assert words in e["error"], e
        assert e["source_topic"] == "orders.events" and e["source_offset"] >= 0
        assert e["attempts"] == 1 and e["first_failed_at"] and e["last_failed_at"]

    # The original message is kept untouched: bytes that are not text come back as base64.
    shown = saga_json(run_saga, "dlq", "show", found[str(not_json)]["id"])
    assert shown["message"]["value_encoding"] == "base64"
    assert shown["message"]["value"] == "/wAgbm90IGpzb24gew=="
    assert shown["message"]["key"] == str(not_json)
    shown = saga_json(run_saga, "dlq", "show", found[str(invalid)]["id"])
    assert shown["message"]["value_encoding"] == "json"
    assert json.loads(shown["message"]["value"])["payload"] == {"items": "not a list"}
    assert {"key": "bin", "value": "//4=", "encoding": "base64"} in shown["message"]["headers"]

    # One ERROR line per dead letter, naming the order and the reason.
    def logged() -> list[dict[str, Any]] | None:
        lines = [
            line
            for line in log_lines(services["inventory"].log_path)
            if line.get("level") == "error" and line.get("order_id") == str(not_json)
        ]
        return lines or None

    [line] = wait_for("the dead-letter log line", logged)
    assert "dead-lettered" in line["event"] and "not JSON" in line["reason"]

    # The partition was not blocked: a new order goes all the way.
    sku = new_sku(settings, qty=3)
    t = wait_terminal(settings, place(settings, items={sku: 1}))
    assert t["status"] == "COMPLETED"

    # Redriving poison re-decodes the same bytes: it dies again, and the output says so.
    redriven = run_saga("dlq", "redrive", found[str(unknown)]["id"])
    assert redriven.returncode == 0, redriven.stderr
    assert "poison" in redriven.stdout and "dead-lettered again" in redriven.stdout

    def dead_again() -> dict[str, Any] | None:
        [e] = of_order(dlq_entries(run_saga, "inventory", "--all"), unknown)
        return e if e["state"] == "dead" and e["redriven_count"] == 1 else None

    e = wait_for("the redriven poison message to die again", dead_again, timeout=30)
    assert "unknown event type" in e["error"]


def test_bad_and_unknown_dlq_ids_get_clear_errors(run_saga: SagaRunner, stack: object) -> None:
    bad = run_saga("dlq", "show", "payments-12")
    assert bad.returncode == 2
    assert "not a DLQ entry id" in bad.stderr and "payment:12" in bad.stderr
    unknown = run_saga("dlq", "redrive", "payment:999999999")
    assert unknown.returncode == 1
    assert "there is no DLQ entry payment:999999999" in unknown.stderr
    neither = run_saga("dlq", "redrive")
    assert neither.returncode == 2 and "give one entry ID" in neither.stderr


# -- a compensation that runs out of retries -------------------------------------------


def test_refund_dead_lettered_during_an_outage_is_redriven_and_refunds_once(
    settings: Settings, running: Services, run_saga: SagaRunner, saga_exe: str
) -> None:
    sku = new_sku(settings, qty=3, price_minor=1500)
    # Fulfillment is held back so that the gateway can go down between charge and refund.
    running["fulfillment"].stop()
    order_id = place(settings, items={sku: 1}, country="ZZ")
    wait_for("the charge", lambda: "PaymentCharged" in event_types(trace(settings, order_id)))
    assert run_saga("fault", "payment-gateway", "down", "--for", "5m").returncode == 0
    try:
        running["fulfillment"].start()

        def refund_dead() -> dict[str, Any] | None:
            entries = of_order(dlq_entries(run_saga, "payment"), order_id)
            return entries[0] if entries else None

        entry = wait_for("the refund to be dead-lettered", refund_dead, timeout=60)
        assert entry["event_type"] == "FulfillmentFailed"
        assert entry["error_kind"] == "transient" and "GatewayUnavailable" in entry["error"]
        assert entry["attempts"] >= 2, "a compensation is retried before it is dead-lettered"
        dlq_id = entry["id"]

        # Visible: the trace, the stuck list, the audit (waiting on a named entry: no violation).
        t = saga_json(run_saga, "trace", str(order_id))
        assert (t["status"], t["cancel_reason"]) == ("CANCELLING", "fulfillment_failed")
        assert [b["dlq_id"] for b in t["blocked_on"] if b["state"] == "dead"] == [dlq_id]
        stuck = saga_json(run_saga, "trace", "--stuck", "--older-than", "0s")["stuck"]
        [mine] = [s for s in stuck if s["order_id"] == str(order_id)]
        assert dlq_id in [b["dlq_id"] for b in mine["blocked_on"]]
        text = run_saga("trace", "--stuck", "--older-than", "0s").stdout
        assert f"saga dlq redrive {dlq_id}" in text
        report = run_saga("audit", "--json", "--older-than", "0s", "--settle", "0s")
        audit = json.loads(report.stdout)
        [mine] = [s for s in audit["stuck"] if s["order_id"] == str(order_id)]
        assert dlq_id in mine["verdict"]
        assert not [v for v in audit["violations"] if v.get("order_id") == str(order_id)]

        # One ERROR line names the order and the reason.
        dead_lines = [
            line
            for line in log_lines(running["payment"].log_path)
            if line.get("level") == "error" and line.get("order_id") == str(order_id)
        ]
        assert len(dead_lines) == 1, dead_lines
        assert "dead-lettered" in dead_lines[0]["event"]
        assert "GatewayUnavailable" in dead_lines[0]["reason"]
        assert [k for k, _, _ in ledger(settings, order_id)] == ["charge"]  # still charged
    finally:
        assert run_saga("fault", "payment-gateway", "up").returncode == 0

    # Two operators redrive at once: one puts it back, the other finds nothing to do.
    procs = [
        subprocess.Popen(
            [saga_exe, "dlq", "redrive", dlq_id],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sum(": redriven" in out for out, _ in outs) == 1, outs

    t = wait_terminal(settings, order_id)
    assert (t["status"], t["cancel_reason"]) == ("CANCELLED", "fulfillment_failed")
    again = run_saga("dlq", "redrive", dlq_id)
    assert again.returncode == 0 and "nothing left to do" in again.stdout
    assert run_saga("dlq", "redrive", "--all", "--service", "payment").returncode == 0
    wait_for(
        "the payment DLQ to settle",
        lambda: not of_order(dlq_entries(run_saga, "payment", "--all"), order_id),
    )

    assert sorted(ledger(settings, order_id)) == [
        ("charge", "approved", 1500),
        ("refund", "approved", 1500),
    ]
    with connect(settings, "payment") as conn:
        refunds = conn.execute(
            "SELECT count(*) FROM refunds WHERE order_id = %s", (order_id,)
        ).fetchone()
    assert refunds == (1,)
    assert event_types(t).count("PaymentRefunded") == 1
